import { assert, describe, it } from "@effect/vitest"
import type { MetricState } from "effect"
import { Effect, Metric, Schedule } from "effect"
import { Registry } from "prom-client"
import { EffectMetrics, KinesisMetrics, KinesisWriter, MetricNames } from "../src/index.js"
import { KinesisTest, RecordGenerator } from "../src/testing.js"
import { writerLayer } from "./support/writerLayers.js"

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
        `kinesis_write_latency_seconds_count{stream_name="test-stream"} 3`
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

  it.effect("the no-op layer records nothing and never fails", () =>
    Effect.gen(function*() {
      const result = yield* Effect.flatMap(KinesisWriter, (w) => w.writeBatch(RecordGenerator.makeDataFiles(2))).pipe(
        Effect.provide(writerLayer(undefined, {}, { metrics: KinesisMetrics.layerNoop }))
      )
      assert.strictEqual(result.records, 2)
    }))
})
