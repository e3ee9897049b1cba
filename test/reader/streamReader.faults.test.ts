/**
 * `StreamReader` under what no emulator does on demand, through a reading `Kinesis` double
 * and the `TestClock`: throttling, an expired iterator, the per-shard call rate, a slow
 * consumer, repeated record ids, bad options and a stream that does not exist.
 */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, Layer, Option, Stream, TestClock } from "effect"
import type { KinesisRecord } from "../../src/index.js"
import { KinesisWriter, LargePayloadStore, LargePayloadStoreError, RecordCodec, StreamReader } from "../../src/index.js"
import { KinesisTestRecorder } from "../../src/KinesisTest.js"
import { RecordGenerator } from "../../src/testing.js"
import type { DoubleShard, ReadCall } from "../support/readingKinesis.js"
import { readingKinesis } from "../support/readingKinesis.js"
import { writerLayer } from "../support/writerLayers.js"

/** `count` records with ids `${prefix}-0…`, sequence numbers from `first`. */
const records = (count: number, prefix: string, first = 1_000): Array<KinesisRecord> =>
  RecordGenerator.makeDataFiles(count, { seed: first, columns: 2 }).map((dataFile, i) => {
    const encoded = RecordCodec.encodeRecordSync(dataFile, {
      filePath: dataFile.filePath,
      creationTime: 1n,
      accountId: "123456789012",
      recordId: `${prefix}-${i}`,
      logGroupId: "lg",
      schemaName: "s"
    })
    if (Either.isLeft(encoded)) throw encoded.left
    return { sequenceNumber: String(first + i), partitionKey: `k${i}`, data: encoded.right.data }
  })

const idsOf = (elements: Chunk.Chunk<StreamReader.StreamRecord>) =>
  Chunk.toArray(elements).map((r) => r._tag === "Decoded" ? r.record.info.recordId : `failed ${r.sequenceNumber}`)

/** Reads to the end (`follow: false`) under the TestClock, advancing it a simulated second at a time. */
const readAll = (
  shards: ReadonlyArray<DoubleShard>,
  fault?: (call: ReadCall) => string | undefined,
  options: { readonly maxRecordsPerCall?: number; readonly dedupe?: StreamReader.StreamOptions["dedupe"] } = {}
) =>
  Effect.gen(function*() {
    const double = readingKinesis(shards, fault)
    const fiber = yield* StreamReader.stream({ streamName: "double", from: "trim-horizon", follow: false, ...options })
      .pipe(
        Stream.runCollect,
        Effect.provide(Layer.merge(double.layer, LargePayloadStore.layerMemory())),
        Effect.fork
      )
    for (let second = 0; second < 600 && Option.isNone(yield* Fiber.poll(fiber)); second++) {
      yield* TestClock.adjust("1 second")
    }
    return { elements: yield* Fiber.join(fiber), calls: double.calls }
  })

/** Two open shards of `count` records each, ids `s0-…` and `s1-…`. */
const twoShards = (count: number): Array<DoubleShard> =>
  ["0", "1"].map((n) => ({
    shardId: `shardId-00000000000${n}`,
    records: records(count, `s${n}`, 1_000 + Number(n) * 1_000),
    open: true
  }))

const getRecordsCalls = (calls: ReadonlyArray<ReadCall>) => calls.filter((c) => c.operation === "GetRecords")

describe("StreamReader under faults (reading double, TestClock)", () => {
  it.effect("backs off on ProvisionedThroughputExceededException and reads every record once, in order", () =>
    Effect.gen(function*() {
      const shard = { shardId: "shardId-000000000000", records: records(30, "r"), open: true }
      const { calls, elements } = yield* readAll(
        [shard],
        (call) =>
          call.operation === "GetRecords" && call.index >= 1 && call.index <= 3
            ? "ProvisionedThroughputExceededException"
            : undefined,
        { maxRecordsPerCall: 10 }
      )
      assert.deepStrictEqual(idsOf(elements), Array.from({ length: 30 }, (_, i) => `r-${i}`))
      const gets = getRecordsCalls(calls)
      // 3 answers with records, 3 throttled, 1 at the tip.
      assert.strictEqual(gets.length, 7)
      const gaps = gets.slice(1, 5).map((c, i) => c.at - gets[i]!.at)
      // After each throttle the wait grows: 500 ms, then 1 s, then 2 s (each ×0.8–1.2).
      assert.isAtLeast(gaps[1]!, 400)
      assert.isAtLeast(gaps[2]!, 800)
      assert.isAtLeast(gaps[3]!, 1_600)
    }))

  it.effect("re-acquires an expired iterator after the last sequence number read", () =>
    Effect.gen(function*() {
      const shard = { shardId: "shardId-000000000000", records: records(30, "r"), open: true }
      const { calls, elements } = yield* readAll(
        [shard],
        (call) => call.operation === "GetRecords" && call.index === 2 ? "ExpiredIteratorException" : undefined,
        { maxRecordsPerCall: 10 }
      )
      assert.deepStrictEqual(idsOf(elements), Array.from({ length: 30 }, (_, i) => `r-${i}`))
      const starts = calls.filter((c) => c.operation === "GetShardIterator").map((c) => c.start)
      assert.deepStrictEqual(starts, [
        { _tag: "TrimHorizon" },
        { _tag: "AfterSequenceNumber", sequenceNumber: "1019" }
      ])
    }))

  it.effect("makes at most 5 GetRecords calls per shard in any simulated second", () =>
    Effect.gen(function*() {
      const shards = twoShards(100)
      const { calls, elements } = yield* readAll(shards, undefined, { maxRecordsPerCall: 5 })
      assert.strictEqual(elements.length, 200)
      for (const shard of shards) {
        const times = getRecordsCalls(calls).filter((c) => c.shardId === shard.shardId).map((c) => c.at)
        assert.isAtLeast(times.length, 20)
        const busiest = Math.max(...times.map((t) => times.filter((u) => u >= t && u < t + 1_000).length))
        assert.strictEqual(busiest, 5, `${shard.shardId}: ${busiest} calls within one second`)
      }
    }))

  it.effect("a shard at its tip, followed with an idleDelay under 200 ms, is still polled at most 5 times a second", () =>
    Effect.gen(function*() {
      const double = readingKinesis([{ shardId: "shardId-000000000000", records: [], open: true }])
      const fiber = yield* StreamReader.stream({
        streamName: "double",
        from: "latest",
        follow: true,
        idleDelay: "10 millis"
      }).pipe(Stream.runDrain, Effect.provide(Layer.merge(double.layer, LargePayloadStore.layerMemory())), Effect.fork)
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.interrupt(fiber)
      const times = getRecordsCalls(double.calls).map((c) => c.at)
      assert.isAtLeast(times.length, 45)
      assert.isAtMost(Math.max(...times.map((t) => times.filter((u) => u >= t && u < t + 1_000).length)), 5)
    }))

  it.effect("a GetRecords call that never answers is cut at requestTimeout, retried, and ends the stream as a TimeoutError", () =>
    Effect.gen(function*() {
      const shard = { shardId: "shardId-000000000000", records: records(3, "r"), open: true }
      const double = readingKinesis([shard], (call) => call.operation === "GetRecords" ? "Hang" : undefined)
      const fiber = yield* StreamReader.stream({
        streamName: "double",
        from: "trim-horizon",
        follow: false,
        requestTimeout: "2 seconds"
      }).pipe(
        Stream.runDrain,
        Effect.provide(Layer.merge(double.layer, LargePayloadStore.layerMemory())),
        Effect.flip,
        Effect.fork
      )
      for (let i = 0; i < 300 && Option.isNone(yield* Fiber.poll(fiber)); i++) yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      assert.isTrue(
        error._tag === "KinesisError" && error.errorName === "TimeoutError" && error.operation === "GetRecords"
      )
      // The first attempt and 12 retries, each cut at 2 s.
      assert.strictEqual(getRecordsCalls(double.calls).length, 13)
    }))

  it.effect("a large payload whose read fails retryably is read again; one that is missing is its record's Failed", () =>
    Effect.gen(function*() {
      const memory = yield* LargePayloadStore.makeMemory("bucket")
      const batch = [1, 2].map((seed) => RecordGenerator.makeDataFile({ seed, serializedBytes: 6_000 }))
      const data = yield* Effect.flatMap(KinesisWriter, (w) => w.writeBatch(batch)).pipe(
        Effect.zipRight(Effect.flatMap(KinesisTestRecorder, (r) => r.calls)),
        Effect.map((calls) => calls.flatMap((c) => c.request.records.map((r) => r.data))),
        Effect.provide(
          writerLayer(undefined, { largePayloadThreshold: 5_000 }, {
            store: Layer.succeed(LargePayloadStore, memory.service)
          })
        )
      )
      const keys = [...(yield* memory.objects).keys()].map((k) => k.slice("bucket/".length))
      let reads = 0
      // The first read of the first payload is throttled; the second payload is gone.
      const store = LargePayloadStore.of({
        ...memory.service,
        read: (location) =>
          Effect.suspend(() => {
            reads++
            const fail = (errorName: string, retryable: boolean) =>
              Effect.fail(new LargePayloadStoreError({ operation: "read", ...location, errorName, retryable }))
            if (location.key === keys[1]) return fail("NoSuchKey", false)
            return reads === 1 ? fail("SlowDown", true) : memory.service.read(location)
          })
      })
      const double = readingKinesis([{
        shardId: "shardId-000000000000",
        records: data.map((d, i) => ({ sequenceNumber: String(1_000 + i), partitionKey: "k", data: d })),
        open: true
      }])
      const fiber = yield* StreamReader.stream({ streamName: "double", from: "trim-horizon", follow: false }).pipe(
        Stream.runCollect,
        Effect.provide(Layer.merge(double.layer, Layer.succeed(LargePayloadStore, store))),
        Effect.fork
      )
      yield* TestClock.adjust("1 minute")
      const elements = Chunk.toArray(yield* Fiber.join(fiber))
      const decoded = elements.filter((e) => e._tag === "Decoded")
      const failed = elements.filter((e) => e._tag === "Failed")
      assert.strictEqual(decoded.length, 1, "the throttled read was retried")
      assert.strictEqual(failed.length, 1)
      assert.isTrue(decoded.every((e) => e._tag === "Decoded" && e.record.largePayload?.key !== keys[1]))
      assert.isTrue(failed.every((e) => e._tag === "Failed" && e.error._tag === "LargePayloadStoreError"))
      assert.deepStrictEqual(
        failed.map((e) => e._tag === "Failed" && e.error._tag === "LargePayloadStoreError" && e.error.key),
        [keys[1]!]
      )
    }))

  it.effect("a consumer that stops pulling makes the shard readers wait: calls stop, memory stays bounded", () =>
    Effect.gen(function*() {
      const shards = twoShards(500)
      const double = readingKinesis(shards)
      const pull = yield* StreamReader.stream({
        streamName: "double",
        from: "trim-horizon",
        follow: false,
        maxRecordsPerCall: 10
      }).pipe(Stream.provideLayer(Layer.merge(double.layer, LargePayloadStore.layerMemory())), Stream.toPull)
      const first = yield* pull
      assert.isAbove(first.length, 0)
      yield* TestClock.adjust("1 minute")
      const held = getRecordsCalls(double.calls).length
      // 4 answers queued, one more in each reader's hands, the one pulled: 100 records, not 1 000.
      assert.isAtMost(held, 4 + 2 + 1)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(getRecordsCalls(double.calls).length, held, "no call while the consumer does not pull")
    }).pipe(Effect.scoped))

  it.effect("dedupe: true drops a record_id seen before, on any shard; without it both come", () =>
    Effect.gen(function*() {
      const twice = records(3, "r")
      const shards = [
        { shardId: "shardId-000000000000", records: twice, open: true },
        {
          shardId: "shardId-000000000001",
          records: twice.map((r, i) => ({ ...r, sequenceNumber: `${5_000 + i}` })),
          open: true
        }
      ]
      const deduped = yield* readAll(shards, undefined, { dedupe: true })
      assert.deepStrictEqual(idsOf(deduped.elements).sort(), ["r-0", "r-1", "r-2"])
      const all = yield* readAll(shards)
      assert.strictEqual(all.elements.length, 6)
      const window = yield* readAll(shards, undefined, { dedupe: { window: 1 } })
      assert.isAbove(window.elements.length, 3, "a window of one id forgets all but the last")
    }))

  it.effect("a closed parent is read to its end before its child starts, from its start", () =>
    Effect.gen(function*() {
      const shards = [
        {
          shardId: "shardId-000000000001",
          records: records(5, "child", 2_000),
          open: true,
          parentShardId: "shardId-000000000000"
        },
        { shardId: "shardId-000000000000", records: records(5, "parent"), open: false }
      ]
      const { calls, elements } = yield* readAll(shards)
      assert.deepStrictEqual(idsOf(elements), [
        ...Array.from({ length: 5 }, (_, i) => `parent-${i}`),
        ...Array.from({ length: 5 }, (_, i) => `child-${i}`)
      ])
      const childStart = calls.find((c) => c.operation === "GetShardIterator" && c.shardId === "shardId-000000000001")
      assert.deepStrictEqual(childStart?.start, { _tag: "TrimHorizon" })
    }))

  it.effect("a bad option is a ConfigError naming it; a call that fails for good ends the stream with its KinesisError", () =>
    Effect.gen(function*() {
      const double = readingKinesis(
        [{ shardId: "shardId-000000000000", records: [], open: true }],
        (call) => call.operation === "ListShards" ? "ResourceNotFoundException" : undefined
      )
      const run = (options: object) =>
        StreamReader.stream(
          { streamName: "double", from: "trim-horizon", follow: false, ...options } as StreamReader.StreamOptions
        ).pipe(
          Stream.runDrain,
          Effect.provide(Layer.merge(double.layer, LargePayloadStore.layerMemory())),
          Effect.flip
        )
      const limit = yield* run({ maxRecordsPerCall: 0 })
      assert.strictEqual(limit._tag, "ConfigError")
      assert.include(limit.message, "maxRecordsPerCall")
      const arn = yield* run({ streamName: undefined, streamArn: "not-an-arn" })
      assert.include(arn.message, "streamArn")
      const missing = yield* run({})
      assert.isTrue(missing._tag === "KinesisError" && missing.errorName === "ResourceNotFoundException")
    }))
})
