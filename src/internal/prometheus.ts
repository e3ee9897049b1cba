/**
 * The metrics on a prom-client `Registry`. Loaded only by the layers that ask for it, so that
 * prom-client stays an optional peer dependency.
 *
 * @internal
 */
import { Effect } from "effect"
import { Counter, Gauge, Histogram, type Registry } from "prom-client"
import { KinesisMetrics } from "../KinesisMetrics.js"
import type { CounterName } from "./metricNames.js"
import { DELIVERY_BUCKETS, LATENCY_BUCKETS, MetricHelp, MetricNames } from "./metricNames.js"

/** The metrics service over `registry`, creating each metric once per registry. */
export const make = (registry: Registry): KinesisMetrics.Service => {
  const counter = (metric: CounterName): Counter<"stream_name"> =>
    (registry.getSingleMetric(MetricNames[metric]) as Counter<"stream_name"> | undefined) ??
      new Counter({
        name: MetricNames[metric],
        help: MetricHelp[metric],
        labelNames: ["stream_name"],
        registers: [registry]
      })
  const attempts = counter("writeAttempts")
  const success = counter("writeSuccess")
  const failed = counter("failedRecords")
  const large = counter("largePayloads")
  const batchFailures = counter("batchWriteFailures")
  const latency = (registry.getSingleMetric(MetricNames.writeLatency) as Histogram<"stream_name"> | undefined) ??
    new Histogram({
      name: MetricNames.writeLatency,
      help: MetricHelp.writeLatency,
      labelNames: ["stream_name"],
      buckets: [...LATENCY_BUCKETS],
      registers: [registry]
    })
  const gauge = (metric: "producerBufferedRecords" | "producerBufferedBytes"): Gauge<"stream_name"> =>
    (registry.getSingleMetric(MetricNames[metric]) as Gauge<"stream_name"> | undefined) ??
      new Gauge({
        name: MetricNames[metric],
        help: MetricHelp[metric],
        labelNames: ["stream_name"],
        registers: [registry]
      })
  const bufferedRecords = gauge("producerBufferedRecords")
  const bufferedBytes = gauge("producerBufferedBytes")
  const expired = counter("recordsExpired")
  const delivery = (registry.getSingleMetric(MetricNames.recordDelivery) as Histogram<"stream_name"> | undefined) ??
    new Histogram({
      name: MetricNames.recordDelivery,
      help: MetricHelp.recordDelivery,
      labelNames: ["stream_name"],
      buckets: [...DELIVERY_BUCKETS],
      registers: [registry]
    })
  return KinesisMetrics.of({
    putRecords: (o) =>
      Effect.sync(() => {
        const labels = { stream_name: o.streamName }
        attempts.inc(labels)
        latency.observe(labels, o.seconds)
        if (o.failedRecords > 0) failed.inc(labels, o.failedRecords)
        if (o.callFailed) batchFailures.inc(labels)
        else if (o.failedRecords === 0) success.inc(labels)
      }),
    largePayloads: (streamName, count) =>
      Effect.sync(() => {
        if (count > 0) large.inc({ stream_name: streamName }, count)
      }),
    batchWriteFailure: (streamName) => Effect.sync(() => batchFailures.inc({ stream_name: streamName })),
    producerBuffered: (streamName, records, bytes) =>
      Effect.sync(() => {
        bufferedRecords.set({ stream_name: streamName }, records)
        bufferedBytes.set({ stream_name: streamName }, bytes)
      }),
    recordSettled: (streamName, seconds) => Effect.sync(() => delivery.observe({ stream_name: streamName }, seconds)),
    recordsExpired: (streamName, count) =>
      Effect.sync(() => {
        if (count > 0) expired.inc({ stream_name: streamName }, count)
      })
  })
}
