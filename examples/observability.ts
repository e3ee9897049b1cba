import { NodeSdk } from "@effect/opentelemetry"
import type { MetricReader } from "@opentelemetry/sdk-metrics"
import type { SpanExporter } from "@opentelemetry/sdk-trace-base"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { KinesisMetrics } from "cygnus-kinesis-writer"

/**
 * Spans to `spanExporter`, and Effect's metrics (the writer's among them) to `metricReader`.
 * In production: an `OTLPTraceExporter`, and a `PeriodicExportingMetricReader` over an
 * `OTLPMetricExporter` (`@opentelemetry/exporter-trace-otlp-http`, `…-metrics-otlp-http`).
 * Provide it to the whole program, outside the writer's layer:
 * `program.pipe(Effect.provide(WriterLive), Effect.provide(ObservabilityLive(exporter, reader)))`.
 */
export const ObservabilityLive = (spanExporter: SpanExporter, metricReader: MetricReader) =>
  NodeSdk.layer(() => ({
    resource: { serviceName: "orders-publisher" },
    spanProcessor: new BatchSpanProcessor(spanExporter),
    metricReader
  }))

/** The writer's metrics through Effect's `Metric` API, instead of `layerPrometheus(registry)`. */
export const MetricsLive = KinesisMetrics.layerEffect
