/**
 * The README's tracing and metrics set-up (examples/observability.ts, the README block word for
 * word: test/readmeExamples.test.ts) run for
 * real: a batch written to kinesalite and s3rver through the library's own Kinesis and S3
 * services leaves the documented spans, with their attributes, in an OpenTelemetry exporter,
 * and the writer's metrics in an OpenTelemetry metric reader, without Prometheus.
 */
import { assert, describe, it } from "@effect/vitest"
import { SpanKind } from "@opentelemetry/api"
import type { ResourceMetrics } from "@opentelemetry/sdk-metrics"
import { MetricReader } from "@opentelemetry/sdk-metrics"
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base"
import { Effect, Layer } from "effect"
import { MetricsLive, ObservabilityLive } from "../../examples/observability.js"
import { Kinesis, KinesisWriter, LargePayloadStore } from "../../src/index.js"
import { RecordGenerator } from "../../src/testing.js"
import { createBucket, createStream } from "../support/LocalAws.js"
import { localClients, uniqueName } from "../support/names.js"

/** Keeps what it is given; the SDK's InMemorySpanExporter forgets it on shutdown. */
const recordingExporter = () => {
  const spans: Array<ReadableSpan> = []
  const exporter: SpanExporter = {
    export: (batch, done) => {
      for (const span of batch) spans.push(span)
      done({ code: 0 })
    },
    shutdown: () => Promise.resolve()
  }
  return { spans, exporter }
}

/** A metric reader read on demand (`collect`), as a periodic exporter would be. */
class OnDemandReader extends MetricReader {
  protected override onForceFlush = () => Promise.resolve()
  protected override onShutdown = () => Promise.resolve()
}

const dataPoints = (metrics: ResourceMetrics, name: string, stream: string) =>
  metrics.scopeMetrics.flatMap((s) => s.metrics).filter((m) => m.descriptor.name === name).flatMap((m) =>
    (m.dataPoints as ReadonlyArray<{ readonly attributes: Record<string, unknown>; readonly value: unknown }>)
      .filter((p) => p.attributes["stream_name"] === stream)
  )

describe("observability (README: Tracing and metrics)", () => {
  const { kinesis, s3 } = localClients()

  it.live("a batch leaves writeBatch, Kinesis.putRecords and LargePayloadStore.write spans with their attributes, and the writer's metrics reach an OpenTelemetry reader", () =>
    Effect.gen(function*() {
      const stream = uniqueName("otel")
      const bucket = uniqueName("otel")
      yield* Effect.promise(() => Promise.all([createStream(kinesis, stream, 2), createBucket(s3, bucket)]))
      const { exporter, spans } = recordingExporter()
      const reader = new OnDemandReader()
      const WriterLive = KinesisWriter.layer({
        streamName: stream,
        logGroupId: "lg",
        schemaName: "orders",
        accountId: "123456789012",
        largePayloadThreshold: 4_096
      }).pipe(
        Layer.provide(Kinesis.layer(kinesis)),
        Layer.provide(LargePayloadStore.layerS3({ client: s3, bucket })),
        Layer.provide(MetricsLive)
      )
      const records = [
        ...RecordGenerator.makeDataFiles(9),
        RecordGenerator.makeDataFile({ seed: 5, serializedBytes: 8_000 })
      ]

      // Leaving the observability layer shuts the SDK down, which flushes the spans.
      const { metrics, result } = yield* Effect.gen(function*() {
        const result = yield* Effect.flatMap(KinesisWriter, (w) => w.writeBatch(records)).pipe(
          Effect.provide(WriterLive)
        )
        const { resourceMetrics } = yield* Effect.promise(() => reader.collect())
        return { result, metrics: resourceMetrics }
      }).pipe(Effect.provide(ObservabilityLive(exporter, reader)))

      const named = (name: string) => spans.filter((s) => s.name === name)
      const [writeBatch] = named("KinesisWriter.writeBatch")
      assert.isDefined(writeBatch)
      assert.deepInclude(writeBatch!.attributes, {
        "kinesis.stream_name": stream,
        "kinesis.records": 10,
        "kinesis.calls": result.kinesisCalls,
        "kinesis.attempts": 1
      })
      assert.strictEqual(writeBatch!.kind, SpanKind.INTERNAL)
      const putRecords = named("Kinesis.putRecords")
      assert.isTrue(putRecords.every((s) => s.kind === SpanKind.CLIENT))
      assert.strictEqual(putRecords.length, result.kinesisCalls)
      assert.strictEqual(putRecords.reduce((n, s) => n + Number(s.attributes["kinesis.records"]), 0), 10)
      assert.isTrue(putRecords.every((s) => s.attributes["kinesis.stream_name"] === stream))
      const [write] = named("LargePayloadStore.write")
      assert.isDefined(write)
      assert.strictEqual(write!.attributes["s3.bucket"], bucket)
      assert.match(String(write!.attributes["s3.key"]), new RegExp(`^lg-orders-${stream}/`))
      assert.isAbove(Number(write!.attributes["s3.bytes"]), 8_000)
      assert.deepInclude(named("KinesisWriter.putAttempt")[0]!.attributes, { "kinesis.attempt": 0 })
      // One trace: every span of the batch descends from writeBatch.
      const traceId = writeBatch!.spanContext().traceId
      assert.isTrue([...putRecords, write!].every((s) => s.spanContext().traceId === traceId))
      assert.strictEqual(writeBatch!.resource.attributes["service.name"], "orders-publisher")

      const attempts = dataPoints(metrics, "kinesis_write_attempts_total", stream)
      assert.deepStrictEqual(attempts.map((p) => p.value), [result.kinesisCalls])
      assert.deepStrictEqual(dataPoints(metrics, "kinesis_large_payloads_total", stream).map((p) => p.value), [1])
      assert.strictEqual(dataPoints(metrics, "kinesis_write_latency_seconds", stream).length, 1)
    }))
})
