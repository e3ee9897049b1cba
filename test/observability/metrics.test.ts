import { assert, describe, it } from "@effect/vitest"
import type { MetricState } from "effect"
import { Effect, Layer, Metric, Schedule } from "effect"
import { Registry } from "prom-client"
import {
  EffectMetrics,
  Kinesis,
  KinesisMetrics,
  KinesisProducer,
  KinesisWriter,
  LargePayloadStore,
  MetricNames
} from "../../src/index.js"
import { putPayloadUnits } from "../../src/internal/core/payloadUnits.js"
import { KinesisTest, RecordGenerator } from "../../src/testing.js"
import { createStream, readAllRecords } from "../support/LocalAws.js"
import { localClients, uniqueName } from "../support/names.js"
import { baseOptions, writerLayer } from "../support/writerLayers.js"

const { kinesis: kinesisClient } = localClients()

/** The sample lines of our metrics in an exposition text, without the latency buckets and sums. */
const samples = (text: string) =>
  text.split("\n").filter((l) => l.startsWith("kinesis_") && !l.includes("_bucket") && !l.includes("_sum"))

// 600 small records and 2 large: call 0 (500 records) has 3 records throttled, call 1 (102)
// fails whole with a 503 once; the retry (3 + 102 records) succeeds in one call.
const script = (call: KinesisTest.PutRecordsCall) =>
  call.index === 0
    ? KinesisTest.perRecord(call, (_, i) => i < 3 ? "ProvisionedThroughputExceededException" : undefined)
    : call.index === 1
    ? KinesisTest.failCall(call, "ServiceUnavailable", { httpStatus: 503, retryable: true })
    : KinesisTest.acceptAll(call)

const batch = [
  ...RecordGenerator.makeDataFiles(600, { columns: 4 }),
  RecordGenerator.makeDataFile({ seed: 9_001, serializedBytes: 3_000 }),
  RecordGenerator.makeDataFile({ seed: 9_002, serializedBytes: 3_000 })
]

// 200 small records (one PUT payload unit each) and 4 whose random padding does not compress,
// of 1 to 4 units.
const unitsBatch = [
  ...RecordGenerator.makeDataFiles(200, { columns: 5 }),
  ...[20_000, 30_000, 60_000, 90_000].map((serializedBytes, i) =>
    RecordGenerator.makeDataFile({ seed: 7_000 + i, serializedBytes })
  )
]

/** Writes `unitsBatch` with a writer's `writeBatch`. */
const writeBatchOfUnits = Effect.flatMap(KinesisWriter, (w) => w.writeBatch(unitsBatch)).pipe(
  Effect.tap((result) => assert.strictEqual(result.largePayloads, 0)),
  Effect.asVoid
)

/** Sends `unitsBatch` through a producer on the writer; closing its scope waits for every record. */
const sendUnits = Effect.flatMap(KinesisProducer, (p) => Effect.forEach(unitsBatch, p.send, { concurrency: 64 })).pipe(
  Effect.provide(KinesisProducer.layer({ pace: false })),
  Effect.asVoid
)

/**
 * `unitsBatch` written on kinesalite (a new 2-shard stream) by `write`, over a writer with the
 * given metrics; the stream's name and the PUT payload units of the records read back from it.
 */
const writeToKinesalite = (
  metrics: Layer.Layer<KinesisMetrics>,
  write: Effect.Effect<void, unknown, KinesisWriter> = writeBatchOfUnits
) =>
  Effect.gen(function*() {
    const streamName = uniqueName("metrics-units")
    yield* Effect.promise(() => createStream(kinesisClient, streamName, 2))
    yield* write.pipe(
      Effect.provide(
        KinesisWriter.layer({ ...baseOptions, streamName }).pipe(
          Layer.provide(Layer.mergeAll(Kinesis.layer(kinesisClient), LargePayloadStore.layerMemory(), metrics))
        )
      )
    )
    const stored = yield* Effect.promise(() => readAllRecords(kinesisClient, streamName))
    assert.strictEqual(stored.length, unitsBatch.length)
    const units = stored.reduce(
      (sum, r) => sum + putPayloadUnits(r.data.length + Buffer.byteLength(r.partitionKey, "utf8")),
      0
    )
    // The large records cost more than a unit each: the count is of units, not records.
    assert.isAbove(units, stored.length + 4)
    return { streamName, units }
  })

/** The sample lines of the per-shard series of `streamName`. */
const shardSamples = (text: string, streamName: string) =>
  text.split("\n").filter((l) => l.startsWith("kinesis_") && l.includes(`stream_name="${streamName}"`))

describe("KinesisMetrics", () => {
  it.effect("Prometheus exposition after a scripted run has the exact counts", () =>
    Effect.gen(function*() {
      const registry = new Registry()
      const result = yield* Effect.flatMap(KinesisWriter, (w) => w.writeBatch(batch, { schedule: Schedule.recurs(3) }))
        .pipe(
          Effect.provide(
            writerLayer(script, { largePayloadThreshold: 2_000 }, { metrics: KinesisMetrics.layerPrometheus(registry) })
          )
        )
      assert.strictEqual(result.kinesisCalls, 3)
      const text = yield* Effect.promise(() => registry.metrics())
      assert.deepStrictEqual(samples(text), [
        `kinesis_write_attempts_total{stream_name="test-stream"} 3`,
        `kinesis_write_success_total{stream_name="test-stream"} 1`,
        `kinesis_failed_records_total{stream_name="test-stream"} 105`,
        `kinesis_large_payloads_total{stream_name="test-stream"} 2`,
        `kinesis_batch_write_failures_total{stream_name="test-stream"} 1`,
        `kinesis_write_latency_seconds_count{stream_name="test-stream"} 3`,
        // Each of the 602 records written once, a unit each; the throttled and failed sends cost nothing.
        `kinesis_put_payload_units_total{stream_name="test-stream"} 602`
      ])
      assert.include(text, "# TYPE kinesis_write_latency_seconds histogram")
      for (const le of ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]) {
        assert.include(text, `kinesis_write_latency_seconds_bucket{le="${le}",stream_name="test-stream"} 3`)
      }
    }))

  it.effect("an empty batch changes no metric", () =>
    Effect.gen(function*() {
      const registry = new Registry()
      yield* Effect.flatMap(KinesisWriter, (w) => w.writeBatch([])).pipe(
        Effect.provide(writerLayer(undefined, {}, { metrics: KinesisMetrics.layerPrometheus(registry) }))
      )
      const json = yield* Effect.promise(() => registry.getMetricsAsJSON())
      assert.isTrue(json.every((m) => m.values.every((v) => v.value === 0)))
    }))

  it.effect("a payload build failure counts as a batch write failure", () =>
    Effect.gen(function*() {
      const registry = new Registry()
      yield* Effect.flatMap(KinesisWriter, (w) =>
        Effect.flip(w.writeBatch([RecordGenerator.makeDataFile({ seed: 1 }), { ...batch[0]!, filePath: "" }]))).pipe(
          Effect.provide(writerLayer(undefined, {}, { metrics: KinesisMetrics.layerPrometheus(registry) }))
        )
      assert.deepStrictEqual(
        samples(
          yield* Effect.promise(() =>
            registry.metrics()
          )
        ).filter((l) => !l.endsWith(" 0")),
        [
          `kinesis_batch_write_failures_total{stream_name="test-stream"} 1`
        ]
      )
    }))

  it.effect("two writers for different streams share one registry, each under its own label; the global registry is untouched", () =>
    Effect.gen(function*() {
      const registry = new Registry()
      const metrics = KinesisMetrics.layerPrometheus(registry)
      for (const streamName of ["stream-a", "stream-b"]) {
        yield* Effect.flatMap(
          KinesisWriter,
          (w) => w.writeBatch(RecordGenerator.makeDataFiles(streamName === "stream-a" ? 3 : 700))
        ).pipe(
          Effect.provide(writerLayer(undefined, { streamName }, { metrics }))
        )
      }
      // A second layer on the same registry reuses the registered metrics.
      yield* Effect.flatMap(KinesisWriter, (w) => w.writeBatch(RecordGenerator.makeDataFiles(1))).pipe(
        Effect.provide(
          writerLayer(undefined, { streamName: "stream-a" }, { metrics: KinesisMetrics.layerPrometheus(registry) })
        )
      )
      const text = yield* Effect.promise(() => registry.metrics())
      assert.include(text, `kinesis_write_attempts_total{stream_name="stream-a"} 2`)
      assert.include(text, `kinesis_write_attempts_total{stream_name="stream-b"} 2`)
      const { register } = yield* Effect.promise(() => import("prom-client"))
      assert.isUndefined(register.getSingleMetric(MetricNames.writeAttempts))
    }))

  it.effect("the Effect Metric layer counts the same things, tagged by stream", () =>
    Effect.gen(function*() {
      const streamName = "effect-metrics-stream"
      const value = <A>(metric: Metric.Metric<any, any, A>) =>
        Metric.value(Metric.tagged(metric, "stream_name", streamName))
      const count = (metric: Metric.Metric.Counter<number>) =>
        Effect.map(value(metric), (s) => (s as MetricState.MetricState.Counter<number>).count)
      yield* Effect.flatMap(KinesisWriter, (w) => w.writeBatch(batch, { schedule: Schedule.recurs(3) })).pipe(
        Effect.provide(
          writerLayer(script, { largePayloadThreshold: 2_000, streamName }, { metrics: KinesisMetrics.layerEffect })
        )
      )
      assert.strictEqual(yield* count(EffectMetrics.writeAttempts), 3)
      assert.strictEqual(yield* count(EffectMetrics.writeSuccess), 1)
      assert.strictEqual(yield* count(EffectMetrics.failedRecords), 105)
      assert.strictEqual(yield* count(EffectMetrics.largePayloads), 2)
      assert.strictEqual(yield* count(EffectMetrics.batchWriteFailures), 1)
      const latency = (yield* value(EffectMetrics.writeLatency)) as MetricState.MetricState.Histogram
      assert.strictEqual(latency.count, 3)
    }))

  it.live("kinesis_put_payload_units_total counts the PUT payload units of the records kinesalite accepted", () =>
    Effect.gen(function*() {
      const registry = new Registry()
      const { streamName, units } = yield* writeToKinesalite(KinesisMetrics.layerPrometheus(registry))
      const text = yield* Effect.promise(() => registry.metrics())
      assert.include(text, `# TYPE ${MetricNames.putPayloadUnits} counter`)
      assert.include(text, `${MetricNames.putPayloadUnits}{stream_name="${streamName}"} ${units}\n`)
    }))

  it.live("the producer, on the writer's sender, counts the PUT payload units of what it delivered", () =>
    Effect.gen(function*() {
      const registry = new Registry()
      const { streamName, units } = yield* writeToKinesalite(KinesisMetrics.layerPrometheus(registry), sendUnits)
      const text = yield* Effect.promise(() => registry.metrics())
      assert.include(text, `${MetricNames.putPayloadUnits}{stream_name="${streamName}"} ${units}\n`)
    }))

  it.live("the Effect Metric layer counts the same PUT payload units", () =>
    Effect.gen(function*() {
      const { streamName, units } = yield* writeToKinesalite(KinesisMetrics.layerEffect)
      const state = yield* Metric.value(Metric.tagged(EffectMetrics.putPayloadUnits, "stream_name", streamName))
      assert.strictEqual(state.count, units)
    }))

  it.effect("per-shard series carry stream_name and shard_id, and shardsGone removes a closed shard's series", () =>
    Effect.gen(function*() {
      const registry = new Registry()
      const metrics = yield* Effect.provide(KinesisMetrics, KinesisMetrics.layerPrometheus(registry))
      const [s0, s1] = ["shardId-000000000000", "shardId-000000000001"]
      for (const shardId of [s0, s1]) {
        yield* metrics.shardThrottled("s", shardId, 7)
        yield* metrics.shardThrottled("s", shardId, 0)
        yield* metrics.shardPacedRate("s", shardId, 1_000, 1_048_576)
        yield* metrics.shardWaiting("s", shardId, 12)
      }
      yield* metrics.shardThrottled("s", s1, 3)
      yield* metrics.shardWaiting("s", s1, 4)
      yield* metrics.shardWaiting("other", s0, 5)
      const series = (shardId: string) => [
        `kinesis_shard_throttled_records_total{stream_name="s",shard_id="${shardId}"} ${shardId === s0 ? 7 : 10}`,
        `kinesis_producer_shard_rate_records_per_second{stream_name="s",shard_id="${shardId}"} 1000`,
        `kinesis_producer_shard_rate_bytes_per_second{stream_name="s",shard_id="${shardId}"} 1048576`,
        `kinesis_producer_shard_waiting_records{stream_name="s",shard_id="${shardId}"} ${shardId === s0 ? 12 : 4}`
      ]
      const text = yield* Effect.promise(() => registry.metrics())
      assert.sameMembers(shardSamples(text, "s"), [...series(s0), ...series(s1)])
      assert.include(text, "# TYPE kinesis_shard_throttled_records_total counter")
      assert.include(text, "# TYPE kinesis_producer_shard_waiting_records gauge")

      yield* metrics.shardsGone("s", [s0, "shardId-000000000009"])
      const after = yield* Effect.promise(() => registry.metrics())
      assert.sameMembers(shardSamples(after, "s"), series(s1))
      // Another stream's series of a shard with the same id stay.
      assert.include(after, `kinesis_producer_shard_waiting_records{stream_name="other",shard_id="${s0}"} 5`)
    }))

  it.effect("the Effect Metric layer tags per-shard metrics by stream and shard; shardsGone zeroes a closed shard's gauges", () =>
    Effect.gen(function*() {
      const streamName = "effect-shard-stream"
      const metrics = yield* Effect.provide(KinesisMetrics, KinesisMetrics.layerEffect)
      const tagged = <M extends Metric.Metric<any, any, any>>(metric: M, shardId: string) =>
        Metric.tagged(Metric.tagged(metric, "stream_name", streamName), "shard_id", shardId) as M
      const gauge = (metric: Metric.Metric.Gauge<number>, shardId: string) =>
        Effect.map(Metric.value(tagged(metric, shardId)), (s) => s.value)
      const throttled = (shardId: string) =>
        Effect.map(Metric.value(tagged(EffectMetrics.shardThrottled, shardId)), (s) => s.count)
      const [s0, s1] = ["shardId-000000000000", "shardId-000000000001"]
      yield* metrics.shardThrottled(streamName, s0, 7)
      yield* metrics.shardThrottled(streamName, s1, 2)
      yield* metrics.shardPacedRate(streamName, s0, 500, 524_288)
      yield* metrics.shardPacedRate(streamName, s1, 250, 262_144)
      yield* metrics.shardWaiting(streamName, s0, 12)
      yield* metrics.shardWaiting(streamName, s1, 3)
      assert.strictEqual(yield* throttled(s0), 7)
      assert.strictEqual(yield* throttled(s1), 2)
      assert.strictEqual(yield* gauge(EffectMetrics.shardRateRecords, s0), 500)
      assert.strictEqual(yield* gauge(EffectMetrics.shardRateBytes, s0), 524_288)
      assert.strictEqual(yield* gauge(EffectMetrics.shardWaiting, s0), 12)
      assert.strictEqual(yield* gauge(EffectMetrics.shardRateRecords, s1), 250)

      yield* metrics.shardsGone(streamName, [s0])
      assert.strictEqual(yield* gauge(EffectMetrics.shardRateRecords, s0), 0)
      assert.strictEqual(yield* gauge(EffectMetrics.shardRateBytes, s0), 0)
      assert.strictEqual(yield* gauge(EffectMetrics.shardWaiting, s0), 0)
      assert.strictEqual(yield* gauge(EffectMetrics.shardRateRecords, s1), 250)
      assert.strictEqual(yield* gauge(EffectMetrics.shardWaiting, s1), 3)
      // Effect's registry cannot drop a series: the counter keeps its count.
      assert.strictEqual(yield* throttled(s0), 7)
    }))

  it.effect("the no-op layer records nothing and never fails", () =>
    Effect.gen(function*() {
      const result = yield* Effect.flatMap(KinesisWriter, (w) => w.writeBatch(RecordGenerator.makeDataFiles(2))).pipe(
        Effect.provide(writerLayer(undefined, {}, { metrics: KinesisMetrics.layerNoop }))
      )
      assert.strictEqual(result.records, 2)
      const metrics = yield* Effect.provide(KinesisMetrics, KinesisMetrics.layerNoop)
      yield* metrics.putPayloadUnits("s", 3)
      yield* metrics.shardThrottled("s", "shardId-000000000000", 1)
      yield* metrics.shardPacedRate("s", "shardId-000000000000", 1, 1)
      yield* metrics.shardWaiting("s", "shardId-000000000000", 1)
      yield* metrics.shardsGone("s", ["shardId-000000000000"])
    }))
})
