/**
 * The metrics on a prom-client `Registry`. Loaded only by the layers that ask for it, so that
 * prom-client stays an optional peer dependency.
 *
 * @internal
 */
import { Effect } from "effect"
import { Counter, Histogram, type Registry } from "prom-client"
import { KinesisMetrics } from "../KinesisMetrics.js"
import { LATENCY_BUCKETS, MetricHelp, MetricNames } from "./metricNames.js"

/** The metrics service over `registry`, creating each metric once per registry. */
export const make = (registry: Registry): KinesisMetrics.Service => {
  const counter = (metric: Exclude<keyof typeof MetricNames, "writeLatency">): Counter<"stream_name"> =>
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
    batchWriteFailure: (streamName) => Effect.sync(() => batchFailures.inc({ stream_name: streamName }))
  })
}
