/**
 * The metrics on a prom-client `Registry`. Loaded only by the layers that ask for it, so that
 * prom-client stays an optional peer dependency.
 */
import { Effect } from "effect"
import { Counter, Gauge, Histogram, type Registry } from "prom-client"
import { KinesisMetrics } from "../KinesisMetrics.js"
import type { CounterName, ShardMetricName } from "./metricNames.js"
import { DELIVERY_BUCKETS, LATENCY_BUCKETS, MetricHelp, MetricNames } from "./metricNames.js"

interface MetricConfig {
  readonly name: string
  readonly help: string
  readonly labelNames: Array<"stream_name" | "shard_id">
  readonly registers: Array<Registry>
}

/** The metrics service over `registry`, creating each metric once per registry. */
export const make = (registry: Registry): KinesisMetrics.Service => {
  /** The registry's metric of that name, or a new one made by `create` and registered. */
  const existing = <M>(
    metric: keyof typeof MetricNames,
    create: (config: MetricConfig) => M,
    labelNames: MetricConfig["labelNames"] = ["stream_name"]
  ): M =>
    (registry.getSingleMetric(MetricNames[metric]) as M | undefined) ??
      create({ name: MetricNames[metric], help: MetricHelp[metric], labelNames, registers: [registry] })
  const counter = (metric: CounterName) => existing(metric, (c) => new Counter(c))
  const gauge = (metric: "producerBufferedRecords" | "producerBufferedBytes" | "producerUnpaced") =>
    existing(metric, (c) => new Gauge(c))
  const histogram = (metric: "writeLatency" | "recordDelivery", buckets: ReadonlyArray<number>) =>
    existing(metric, (c) => new Histogram({ ...c, buckets: [...buckets] }))
  const attempts = counter("writeAttempts")
  const success = counter("writeSuccess")
  const failed = counter("failedRecords")
  const large = counter("largePayloads")
  const batchFailures = counter("batchWriteFailures")
  const latency = histogram("writeLatency", LATENCY_BUCKETS)
  const bufferedRecords = gauge("producerBufferedRecords")
  const bufferedBytes = gauge("producerBufferedBytes")
  const expired = counter("recordsExpired")
  const unpacedGauge = gauge("producerUnpaced")
  const delivery = histogram("recordDelivery", DELIVERY_BUCKETS)
  const payloadUnits = counter("putPayloadUnits")
  const shardLabels = ["stream_name", "shard_id"] satisfies MetricConfig["labelNames"]
  const shardGauge = (metric: Exclude<ShardMetricName, "shardThrottled">) =>
    existing(metric, (c) => new Gauge(c), shardLabels)
  const shardThrottled = existing("shardThrottled", (c) => new Counter(c), shardLabels)
  const shardRateRecords = shardGauge("shardRateRecords")
  const shardRateBytes = shardGauge("shardRateBytes")
  const shardWaiting = shardGauge("shardWaiting")
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
      }),
    producerUnpaced: (streamName, unpaced) =>
      Effect.sync(() => unpacedGauge.set({ stream_name: streamName }, unpaced ? 1 : 0)),
    putPayloadUnits: (streamName, units) =>
      Effect.sync(() => {
        if (units > 0) payloadUnits.inc({ stream_name: streamName }, units)
      }),
    shardThrottled: (streamName, shardId, records) =>
      Effect.sync(() => {
        if (records > 0) shardThrottled.inc({ stream_name: streamName, shard_id: shardId }, records)
      }),
    shardPacedRate: (streamName, shardId, recordsPerSecond, bytesPerSecond) =>
      Effect.sync(() => {
        const labels = { stream_name: streamName, shard_id: shardId }
        shardRateRecords.set(labels, recordsPerSecond)
        shardRateBytes.set(labels, bytesPerSecond)
      }),
    shardWaiting: (streamName, shardId, records) =>
      Effect.sync(() => shardWaiting.set({ stream_name: streamName, shard_id: shardId }, records)),
    shardsGone: (streamName, shardIds) =>
      Effect.sync(() => {
        for (const shardId of shardIds) {
          const labels = { stream_name: streamName, shard_id: shardId }
          for (const metric of [shardThrottled, shardRateRecords, shardRateBytes, shardWaiting]) metric.remove(labels)
        }
      })
  })
}
