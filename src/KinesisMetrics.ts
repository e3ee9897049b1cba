/**
 * The `KinesisMetrics` service: the writer's counters and latency histogram (the metrics contract),
 * every one labelled with `stream_name`. Layers for a prom-client registry, for Effect's own
 * `Metric` API (OpenTelemetry exporters), and a no-op.
 *
 * | metric | type | what it counts |
 * |---|---|---|
 * | `kinesis_write_attempts_total` | counter | PutRecords calls |
 * | `kinesis_write_success_total` | counter | calls in which every record was written |
 * | `kinesis_failed_records_total` | counter | records that failed: refused one by one, or in a call that failed whole |
 * | `kinesis_large_payloads_total` | counter | records offloaded to the large-payload store |
 * | `kinesis_batch_write_failures_total` | counter | calls or payload builds that failed as a whole |
 * | `kinesis_write_latency_seconds` | histogram | duration of one PutRecords call (Prometheus default buckets) |
 * | `kinesis_producer_buffered_records` | gauge | records the producer accepted and has not settled |
 * | `kinesis_producer_buffered_bytes` | gauge | their bytes (data plus partition key) |
 * | `kinesis_record_delivery_seconds` | histogram | from a producer `send` to its settlement |
 * | `kinesis_records_expired_total` | counter | producer records that outlived `recordTtl` |
 * | `kinesis_producer_unpaced` | gauge | 1 while a producer with `pace: true` sends records unpaced (its shard map unknown), else 0 |
 * | `kinesis_put_payload_units_total` | counter | PUT payload units (25 KB, at least one a record) of the records the stream accepted |
 *
 * Per shard, labelled `shard_id` besides `stream_name` (the shard count bounds the label's values;
 * `shardsGone` drops the series of closed shards):
 *
 * | metric | type | what it counts |
 * |---|---|---|
 * | `kinesis_shard_throttled_records_total` | counter | records the stream refused for throughput on the shard |
 * | `kinesis_producer_shard_rate_records_per_second` | gauge | records per second a producer paces the shard to |
 * | `kinesis_producer_shard_rate_bytes_per_second` | gauge | bytes per second a producer paces the shard to |
 * | `kinesis_producer_shard_waiting_records` | gauge | records waiting for the shard's tokens |
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Metric, MetricBoundaries } from "effect"
import type { Registry } from "prom-client"
import type { CounterName } from "./internal/metricNames.js"
import { DELIVERY_BUCKETS, LATENCY_BUCKETS, MetricHelp, MetricNames } from "./internal/metricNames.js"

export { MetricNames } from "./internal/metricNames.js"

const counter = (metric: CounterName | "shardThrottled") =>
  Metric.counter(MetricNames[metric], { description: MetricHelp[metric], incremental: true })

/**
 * The metrics of {@link KinesisMetrics.layerEffect}, untagged: tag one with
 * `Metric.tagged(metric, "stream_name", name)` to read a stream's value with `Metric.value`
 * (the per-shard ones with `"shard_id"` too).
 *
 * @since 0.1.0
 */
export const EffectMetrics = {
  writeAttempts: counter("writeAttempts"),
  writeSuccess: counter("writeSuccess"),
  failedRecords: counter("failedRecords"),
  largePayloads: counter("largePayloads"),
  batchWriteFailures: counter("batchWriteFailures"),
  writeLatency: Metric.histogram(
    MetricNames.writeLatency,
    MetricBoundaries.fromIterable(LATENCY_BUCKETS),
    MetricHelp.writeLatency
  ),
  producerBufferedRecords: Metric.gauge(MetricNames.producerBufferedRecords, {
    description: MetricHelp.producerBufferedRecords
  }),
  producerBufferedBytes: Metric.gauge(MetricNames.producerBufferedBytes, {
    description: MetricHelp.producerBufferedBytes
  }),
  recordDelivery: Metric.histogram(
    MetricNames.recordDelivery,
    MetricBoundaries.fromIterable(DELIVERY_BUCKETS),
    MetricHelp.recordDelivery
  ),
  recordsExpired: counter("recordsExpired"),
  producerUnpaced: Metric.gauge(MetricNames.producerUnpaced, { description: MetricHelp.producerUnpaced }),
  putPayloadUnits: counter("putPayloadUnits"),
  shardThrottled: counter("shardThrottled"),
  shardRateRecords: Metric.gauge(MetricNames.shardRateRecords, { description: MetricHelp.shardRateRecords }),
  shardRateBytes: Metric.gauge(MetricNames.shardRateBytes, { description: MetricHelp.shardRateBytes }),
  shardWaiting: Metric.gauge(MetricNames.shardWaiting, { description: MetricHelp.shardWaiting })
} as const

/**
 * The outcome of one PutRecords call, as the metrics see it.
 *
 * @since 0.1.0
 */
export interface PutRecordsOutcome {
  readonly streamName: string
  /** Duration of the call in seconds. */
  readonly seconds: number
  /** Records that failed: those Kinesis refused, or all of the call's records when it failed whole. */
  readonly failedRecords: number
  /** Whether the call failed as a whole. */
  readonly callFailed: boolean
}

/**
 * Records what the writer does. Each method is cheap and never fails.
 *
 * @since 0.1.0
 */
export class KinesisMetrics extends Context.Tag("cygnus-kinesis-writer/KinesisMetrics")<
  KinesisMetrics,
  KinesisMetrics.Service
>() {
  /**
   * Metrics on a prom-client `Registry`: the one given, never the global one unless it is
   * the one given. Several writers (for different streams) may share a registry: the
   * metrics are created once per registry and labelled by stream.
   *
   * prom-client is an optional peer dependency, loaded when this layer is built; the same
   * layer is `PrometheusMetrics.layer` in `cygnus-kinesis-writer/prometheus`, beside the
   * `/metrics` server.
   *
   * @example
   * ```ts
   * import { Registry } from "prom-client"
   * const registry = new Registry()
   * const MetricsLive = KinesisMetrics.layerPrometheus(registry)
   * // later: await registry.metrics() is the exposition text
   * ```
   *
   * @since 0.1.0
   */
  static readonly layerPrometheus = (registry: Registry): Layer.Layer<KinesisMetrics> =>
    Layer.effect(
      KinesisMetrics,
      Effect.tryPromise(() => import("./internal/prometheus.js")).pipe(
        Effect.map((prometheus) => prometheus.make(registry)),
        Effect.orDieWith((cause) =>
          new Error(
            `KinesisMetrics.layerPrometheus needs the prom-client package (npm install prom-client@^15): ${
              String(cause)
            }`
          )
        )
      )
    )

  /**
   * Metrics through Effect's own `Metric` API (for applications that export with
   * OpenTelemetry): monotonic counters and a seconds histogram, tagged `stream_name`.
   * Effect's metric registry is process-wide.
   *
   * Effect's registry cannot drop a series: `shardsGone` sets the closed shards' gauges to 0
   * (a closed shard takes nothing and nothing waits for it), and their series, with the
   * throttled counter's, stay for the life of the process: one set for each shard closed by
   * a split or merge the process lives through.
   *
   * @since 0.1.0
   */
  static readonly layerEffect: Layer.Layer<KinesisMetrics> = Layer.sync(KinesisMetrics, () => {
    const m = EffectMetrics
    const tag = <M extends Metric.Metric<any, any, any>>(metric: M, streamName: string) =>
      Metric.tagged(metric, "stream_name", streamName) as M
    const shard = <M extends Metric.Metric<any, any, any>>(metric: M, streamName: string, shardId: string) =>
      Metric.tagged(tag(metric, streamName), "shard_id", shardId) as M
    return KinesisMetrics.of({
      putRecords: (o) =>
        Effect.gen(function*() {
          yield* Metric.increment(tag(m.writeAttempts, o.streamName))
          yield* Metric.update(tag(m.writeLatency, o.streamName), o.seconds)
          if (o.failedRecords > 0) yield* Metric.incrementBy(tag(m.failedRecords, o.streamName), o.failedRecords)
          if (o.callFailed) yield* Metric.increment(tag(m.batchWriteFailures, o.streamName))
          else if (o.failedRecords === 0) yield* Metric.increment(tag(m.writeSuccess, o.streamName))
        }),
      largePayloads: (streamName, count) =>
        count > 0 ? Metric.incrementBy(tag(m.largePayloads, streamName), count) : Effect.void,
      batchWriteFailure: (streamName) => Metric.increment(tag(m.batchWriteFailures, streamName)),
      producerBuffered: (streamName, records, bytes) =>
        Effect.zipRight(
          Metric.set(tag(m.producerBufferedRecords, streamName), records),
          Metric.set(tag(m.producerBufferedBytes, streamName), bytes)
        ),
      recordSettled: (streamName, seconds) => Metric.update(tag(m.recordDelivery, streamName), seconds),
      recordsExpired: (streamName, count) =>
        count > 0 ? Metric.incrementBy(tag(m.recordsExpired, streamName), count) : Effect.void,
      producerUnpaced: (streamName, unpaced) => Metric.set(tag(m.producerUnpaced, streamName), unpaced ? 1 : 0),
      putPayloadUnits: (streamName, units) =>
        units > 0 ? Metric.incrementBy(tag(m.putPayloadUnits, streamName), units) : Effect.void,
      shardThrottled: (streamName, shardId, records) =>
        records > 0 ? Metric.incrementBy(shard(m.shardThrottled, streamName, shardId), records) : Effect.void,
      shardPacedRate: (streamName, shardId, recordsPerSecond, bytesPerSecond) =>
        Effect.zipRight(
          Metric.set(shard(m.shardRateRecords, streamName, shardId), recordsPerSecond),
          Metric.set(shard(m.shardRateBytes, streamName, shardId), bytesPerSecond)
        ),
      shardWaiting: (streamName, shardId, records) => Metric.set(shard(m.shardWaiting, streamName, shardId), records),
      shardsGone: (streamName, shardIds) =>
        Effect.forEach(
          shardIds,
          (shardId) =>
            Effect.forEach(
              [m.shardRateRecords, m.shardRateBytes, m.shardWaiting],
              (gauge) => Metric.set(shard(gauge, streamName, shardId), 0),
              { discard: true }
            ),
          { discard: true }
        )
    })
  })

  /**
   * Records nothing.
   *
   * @since 0.1.0
   */
  static readonly layerNoop: Layer.Layer<KinesisMetrics> = Layer.succeed(
    KinesisMetrics,
    KinesisMetrics.of({
      putRecords: () => Effect.void,
      largePayloads: () => Effect.void,
      batchWriteFailure: () => Effect.void,
      producerBuffered: () => Effect.void,
      recordSettled: () => Effect.void,
      recordsExpired: () => Effect.void,
      producerUnpaced: () => Effect.void,
      putPayloadUnits: () => Effect.void,
      shardThrottled: () => Effect.void,
      shardPacedRate: () => Effect.void,
      shardWaiting: () => Effect.void,
      shardsGone: () => Effect.void
    })
  )
}

/**
 * @since 0.1.0
 */
export declare namespace KinesisMetrics {
  /**
   * What `yield* KinesisMetrics` gives. Each method is cheap and never fails.
   *
   * @since 0.1.0
   */
  export interface Service {
    /** One PutRecords call: an attempt, its latency, success or its failed records. */
    readonly putRecords: (outcome: PutRecordsOutcome) => Effect.Effect<void>
    /** Records offloaded to the large-payload store. */
    readonly largePayloads: (streamName: string, count: number) => Effect.Effect<void>
    /** A payload build that failed as a whole (the call failures are counted by `putRecords`). */
    readonly batchWriteFailure: (streamName: string) => Effect.Effect<void>
    /** The producer's records and bytes accepted and not settled (gauges, set to these values). */
    readonly producerBuffered: (streamName: string, records: number, bytes: number) => Effect.Effect<void>
    /** One producer record settled (delivered or not), `seconds` after its `send`. */
    readonly recordSettled: (streamName: string, seconds: number) => Effect.Effect<void>
    /** Producer records that outlived `recordTtl`. */
    readonly recordsExpired: (streamName: string, count: number) => Effect.Effect<void>
    /** Whether a producer with `pace: true` sends records unpaced, its stream's shard map unknown (a gauge: 1 or 0). */
    readonly producerUnpaced: (streamName: string, unpaced: boolean) => Effect.Effect<void>
    /**
     * PUT payload units of the records one PutRecords call wrote: each record, data plus
     * partition key, in whole 25 KB units, at least one (what a provisioned stream bills).
     */
    readonly putPayloadUnits: (streamName: string, units: number) => Effect.Effect<void>
    /** Records the stream refused for throughput (`ProvisionedThroughputExceededException`) on a shard. */
    readonly shardThrottled: (streamName: string, shardId: string, records: number) => Effect.Effect<void>
    /** The rate a producer paces a shard to (gauges, set to these values). */
    readonly shardPacedRate: (
      streamName: string,
      shardId: string,
      recordsPerSecond: number,
      bytesPerSecond: number
    ) => Effect.Effect<void>
    /** Records of a producer waiting for a shard's tokens (a gauge, set to this value). */
    readonly shardWaiting: (streamName: string, shardId: string, records: number) => Effect.Effect<void>
    /**
     * Shards that closed (split or merge): their per-shard series go, so that the series
     * follow the open shards. With `layerEffect`, whose registry cannot drop a series, their
     * gauges are set to 0 instead.
     */
    readonly shardsGone: (streamName: string, shardIds: ReadonlyArray<string>) => Effect.Effect<void>
  }
}
