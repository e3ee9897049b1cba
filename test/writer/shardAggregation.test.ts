/**
 * Aggregation by predicted shard: with the stream's shard map (ListShards), the writer packs
 * the records bound for one shard into one Kinesis record whatever their partition keys, and
 * routes it there with an `ExplicitHashKey`; without the map, it groups by partition key. On
 * the shard simulator (seeded), on the scripted double, and on real kinesalite, which routes
 * by the explicit hash key as Kinesis does. Records at or over `maxMemberBytes` travel plain.
 */
import { ListShardsCommand } from "@aws-sdk/client-kinesis"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Fiber, Layer, LogLevel, Schedule, TestClock } from "effect"
import * as Zlib from "node:zlib"
import type { KinesisWriterOptions, ShardRange } from "../../src/index.js"
import {
  AggregationDefaults,
  Kinesis,
  KinesisError,
  KinesisMetrics,
  KinesisWriter,
  LargePayloadStore
} from "../../src/index.js"
import * as RecordCodec from "../../src/internal/codec.js"
import { distributionBucket } from "../../src/internal/core/partitionKey.js"
import {
  evenShards,
  explicitHashKeyOf,
  HASH_KEY_SPACE,
  parseExplicitHashKey,
  ShardMap
} from "../../src/internal/core/routing.js"
import { KinesisTestRecorder } from "../../src/KinesisTest.js"
import * as ShardSimulator from "../../src/ShardSimulator.js"
import { KinesisTest, RecordGenerator } from "../../src/testing.js"
import { createStream, readAllRecords } from "../support/LocalAws.js"
import { capturingLogs } from "../support/logs.js"
import { localClients, uniqueName } from "../support/names.js"
import { baseOptions, writerLayer } from "../support/writerLayers.js"

const on = { aggregation: {} } as const satisfies Partial<KinesisWriterOptions>
const noDelay = { schedule: Schedule.recurs(10) }
/** The writer's distribution factor, left at its default. */
const FACTOR = 16

/** The partition key of a record's first attempt. */
const firstKeyOf = (filePath: string) => `lg-schema-${distributionBucket(filePath, FACTOR)}-0`

/** The logical records of a Kinesis record's Data: record id and file path of each. */
const logicalOf = (data: Uint8Array) =>
  Either.getOrThrow(RecordCodec.decodeRecordDataAllSync(data)).map((r) => ({
    recordId: r.info.recordId,
    filePath: r.info.filePath
  }))

const isAggregate = (data: Uint8Array) => RecordCodec.isAggregateSync(Zlib.gunzipSync(data))

/** The writer over a seeded 4-shard simulator; `kinesis` stands between them when given. */
const simulated = (
  options: Partial<KinesisWriterOptions>,
  kinesis: Layer.Layer<Kinesis, never, Kinesis> = Layer.effect(Kinesis, Kinesis)
) =>
  KinesisWriter.layer({ ...baseOptions, ...options }).pipe(
    Layer.provide(kinesis),
    Layer.provideMerge(ShardSimulator.layer({ shards: 4, seed: 22, recordFailureRate: 0.2 })),
    Layer.provideMerge(LargePayloadStore.layerMemory()),
    Layer.provideMerge(KinesisMetrics.layerNoop)
  )

/** ListShards fails while `denied.value`, and counts its calls. */
const listShardsGate = (gate: { denied: boolean; calls: number }): Layer.Layer<Kinesis, never, Kinesis> =>
  Layer.effect(
    Kinesis,
    Effect.map(Kinesis, (kinesis) =>
      Kinesis.of({
        ...kinesis,
        listShards: (streamName, streamArn) =>
          Effect.suspend(() => {
            gate.calls++
            return gate.denied
              ? Effect.fail(
                new KinesisError({
                  operation: "ListShards",
                  streamName,
                  errorName: "AccessDeniedException",
                  httpStatus: 400,
                  retryable: false
                })
              )
              : kinesis.listShards(streamName, streamArn)
          })
      }))
  )

describe("aggregation by predicted shard: the shard simulator", () => {
  it.effect(
    "aggregates fill with whatever partition keys a shard's records have, each lands on the shard its records' keys predict, and every logical record is written once, retries included",
    () =>
      Effect.gen(function*() {
        const batch = RecordGenerator.makeDataFiles(3_000, { columns: 5, seed: 2201 })
        const result = yield* (yield* KinesisWriter).writeBatch(batch, noDelay)
        const state = yield* ShardSimulator.ShardSimulatorState
        const shards = yield* state.shards
        const written = yield* state.written
        // The seeded InternalFailures made the writer retry some aggregates (attempt suffix 1 and more).
        assert.isAbove((yield* state.totals).failed, 0)
        assert.isTrue(written.some((r) => !r.partitionKey.endsWith("-0")))
        const seen = new Map<string, string>()
        let aggregates = 0
        for (const r of written) {
          const logical = logicalOf(r.data)
          if (isAggregate(r.data)) {
            aggregates++
            const shard = shards.find((s) => s.shardId === r.shardId)!
            const key = BigInt(r.explicitHashKey!)
            assert.isTrue(shard.startingHashKey <= key && key <= shard.endingHashKey, "its hash key is its shard's")
          }
          for (const { filePath, recordId } of logical) {
            assert.isFalse(seen.has(recordId), "written once")
            seen.set(recordId, r.shardId)
            assert.strictEqual(r.shardId, ShardSimulator.shardId(ShardSimulator.shardIndexOf(firstKeyOf(filePath), 4)))
          }
        }
        assert.deepStrictEqual([...seen.keys()].sort(), [...result.recordIds].sort())
        // Whatever their keys: on each shard, every aggregate but the last is full (maxBytes
        // holds ~350 of these records), and aggregates mix the shard's keys.
        const sizes = new Map<string, Array<number>>()
        for (const r of written) sizes.set(r.shardId, [...(sizes.get(r.shardId) ?? []), logicalOf(r.data).length])
        for (const [shard, counts] of sizes) {
          assert.isAtMost(counts.filter((n) => n < 300).length, 1, `${shard}: ${counts.join(", ")}`)
        }
        assert.isAtMost(aggregates, 4 * Math.ceil(3_000 / 4 / 300) + 4)
        const keysPerAggregate = written.filter((r) => isAggregate(r.data)).map((r) =>
          new Set(logicalOf(r.data).map((l) => firstKeyOf(l.filePath))).size
        )
        assert.isTrue(keysPerAggregate.some((n) => n > 1), String(keysPerAggregate))
      }).pipe(Effect.provide(simulated(on)))
  )

  it.effect(
    "ListShards denied: records are grouped by exact partition key, no explicit hash key, logged at Debug; the map is tried again 30 s later, in the background, and then used",
    () => {
      const gate = { denied: true, calls: 0 }
      return Effect.gen(function*() {
        const writer = yield* KinesisWriter
        const state = yield* ShardSimulator.ShardSimulatorState
        const batch = RecordGenerator.makeDataFiles(1_000, { columns: 5, seed: 2202 })
        const { logs, result } = yield* capturingLogs(writer.writeBatch(batch, noDelay))
        assert.isTrue(Either.isRight(result))
        assert.isTrue(
          logs.some((l) => l.level === LogLevel.Debug && l.message.includes("could not list the stream's shards")),
          "the failed load is logged at Debug"
        )
        const byKey = yield* state.written
        for (const r of byKey) {
          assert.isUndefined(r.explicitHashKey)
          const keys = new Set(logicalOf(r.data).map((l) => firstKeyOf(l.filePath)))
          assert.deepStrictEqual([...keys], [r.partitionKey.replace(/-\d+$/, "-0")])
        }
        assert.strictEqual(gate.calls, 1)
        gate.denied = false
        // Within 30 s of the failure: not tried again.
        yield* TestClock.adjust("29 seconds")
        yield* writer.writeBatch(batch.slice(0, 100), noDelay)
        assert.strictEqual(gate.calls, 1)
        // 30 s on: the batch that asks starts a load in the background and goes on by key.
        yield* TestClock.adjust("1 second")
        yield* writer.writeBatch(batch.slice(0, 100), noDelay)
        // `prepare` (which sends nothing) shows when the background load is in.
        const routed = Effect.map(writer.prepare(batch), (p) => p.records.some((r) => r.explicitHashKey !== undefined))
        for (let i = 0; i < 100 && !(yield* routed); i++) yield* Effect.yieldNow()
        assert.strictEqual(gate.calls, 2)
        const before = (yield* state.written).length
        yield* writer.writeBatch(batch, noDelay)
        const after = (yield* state.written).slice(before)
        assert.isTrue(after.some((r) => r.explicitHashKey !== undefined), "the map is used once loaded")
      }).pipe(Effect.provide(simulated(on, listShardsGate(gate))))
    }
  )
})

describe("aggregation by predicted shard: the writer", () => {
  it.effect(
    "records at or over maxMemberBytes travel plain, the smaller ones in aggregates; raised, it aggregates them too",
    () =>
      Effect.gen(function*() {
        const small = RecordGenerator.makeDataFiles(200, { columns: 5, seed: 2203 })
        const large = RecordGenerator.makeDataFiles(40, { columns: 100, seed: 2204 })
        const batch = small.flatMap((r, i) => (i % 5 === 0 ? [r, large[i / 5]!] : [r]))
        const run = (options: Partial<KinesisWriterOptions>) =>
          Effect.gen(function*() {
            const result = yield* (yield* KinesisWriter).writeBatch(batch)
            const calls = yield* (yield* KinesisTestRecorder).calls
            return { result, records: calls.flatMap((c) => c.request.records) }
          }).pipe(Effect.provide(writerLayer(undefined, options)))
        const largeIds = (recordIds: ReadonlyArray<string>) =>
          new Set(recordIds.filter((_, i) => large.includes(batch[i]!)))
        const byDefault = yield* run(on)
        const ids = largeIds(byDefault.result.recordIds)
        let plainLarge = 0
        for (const r of byDefault.records) {
          const logical = logicalOf(r.data)
          if (isAggregate(r.data)) {
            for (const l of logical) assert.isFalse(ids.has(l.recordId), "a large record is never aggregated")
          } else if (ids.has(logical[0]!.recordId)) {
            plainLarge++
            assert.isUndefined(r.explicitHashKey, "and travels as a plain record, under its own key")
            assert.strictEqual(r.partitionKey, firstKeyOf(logical[0]!.filePath))
          }
        }
        assert.strictEqual(plainLarge, 40)
        assert.isAtMost(byDefault.records.length - 40, 4, "the small ones: one aggregate per shard")
        // maxBytes raised too, so that a shard's records fit one aggregate.
        const raised = yield* run({ aggregation: { maxMemberBytes: 1_000_000, maxBytes: 900_000 } })
        assert.isAtMost(raised.records.length, 4)
        assert.isTrue(raised.records.every((r) => isAggregate(r.data)))
      })
  )

  it.effect("a receipt on a shard other than the predicted one (a reshard) reloads the map in the background; once receipts match it, no more loads", () => {
    // The writer first sees two shards; the stream routes over four, as after a split, and
    // ListShards says so from its second answer on.
    let loads = 0
    const answer = Effect.sync((): ReadonlyArray<ShardRange> =>
      loads++ === 0 ? evenShards(2) : KinesisTest.defaultShards
    )
    return Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const recorder = yield* KinesisTestRecorder
      const batch = RecordGenerator.makeDataFiles(400, { columns: 5, seed: 2205 })
      yield* writer.writeBatch(batch)
      const first = yield* recorder.calls
      const twoShards = new Set(evenShards(2).map(explicitHashKeyOf))
      assert.isTrue(first.flatMap((c) => c.request.records).every((r) => twoShards.has(r.explicitHashKey!)))
      // The load runs in the background: `prepare` (which sends nothing) shows when it is in.
      const fourShards = new Set(KinesisTest.defaultShards.map(explicitHashKeyOf))
      const onFour = Effect.map(
        writer.prepare(batch),
        (prepared) => prepared.records.every((r) => fourShards.has(r.explicitHashKey!))
      )
      for (let i = 0; i < 100 && !(yield* onFour); i++) yield* Effect.yieldNow()
      assert.strictEqual(yield* recorder.listShardsCalls, 2)
      yield* writer.writeBatch(batch)
      const second = (yield* recorder.calls).slice(first.length).flatMap((c) => c.request.records)
      assert.isTrue(second.every((r) => fourShards.has(r.explicitHashKey!)))
      assert.isAbove(new Set(second.map((r) => r.explicitHashKey)).size, 2)
      // The receipts now match the map: no further load.
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
      assert.strictEqual(yield* recorder.listShardsCalls, 2)
    }).pipe(Effect.provide(writerLayer(undefined, on, { shards: answer })))
  })

  it.effect("a ListShards that never answers holds a batch with a deadline half its deadline, then it groups by key", () =>
    Effect.gen(function*() {
      const batch = RecordGenerator.makeDataFiles(100, { columns: 5, seed: 2207 })
      const fiber = yield* Effect.fork((yield* KinesisWriter).writeBatch(batch, { deadline: "2 seconds" }))
      yield* TestClock.adjust("1 second")
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result.records, 100)
      const records = (yield* (yield* KinesisTestRecorder).calls).flatMap((c) => c.request.records)
      assert.isNotEmpty(records)
      for (const r of records) {
        assert.isUndefined(r.explicitHashKey)
        const keys = new Set(logicalOf(r.data).map((l) => firstKeyOf(l.filePath)))
        assert.deepStrictEqual([...keys], [r.partitionKey])
      }
    }).pipe(Effect.provide(writerLayer(undefined, on, { shards: Effect.never }))))

  it.effect("by default a record of maxMemberBytes - 1 serialized bytes is aggregated, one of maxMemberBytes is not", () =>
    Effect.gen(function*() {
      const limit = AggregationDefaults.maxMemberBytes
      const sized = (bytes: number, seed: number) =>
        Array.from(
          { length: 10 },
          (_, i) => RecordGenerator.makeDataFile({ seed: seed + i, columns: 0, serializedBytes: bytes })
        )
      const under = sized(limit - 1, 2210)
      const at = sized(limit, 2230)
      const result = yield* (yield* KinesisWriter).writeBatch([...under, ...at])
      const records = (yield* (yield* KinesisTestRecorder).calls).flatMap((c) => c.request.records)
      const aggregated = new Set(
        records.filter((r) => isAggregate(r.data)).flatMap((r) => logicalOf(r.data).map((l) => l.recordId))
      )
      result.recordIds.forEach((id, i) => assert.strictEqual(aggregated.has(id), i < under.length, `record ${i}`))
    }).pipe(Effect.provide(writerLayer(undefined, { ...on, distributionFactor: 1 }))))
})

describe("ExplicitHashKey: the simulator, the double and kinesalite route by it", () => {
  it.prop("an aggregate's explicit hash key lies in its shard's range, in the decimal Kinesis takes", [
    fc.bigInt({ min: 0n, max: HASH_KEY_SPACE - 1n }),
    fc.bigInt({ min: 0n, max: HASH_KEY_SPACE - 1n })
  ], ([a, b]) => {
    const shard = { shardId: "s", startingHashKey: a < b ? a : b, endingHashKey: a < b ? b : a, open: true }
    const key = explicitHashKeyOf(shard)
    assert.strictEqual(parseExplicitHashKey(key), BigInt(key))
    assert.isTrue(shard.startingHashKey <= BigInt(key) && BigInt(key) <= shard.endingHashKey)
  }, { fastCheck: { numRuns: 500, seed: 22 } })

  it.effect("the simulator and KinesisTest.acceptAll put a record on the shard whose range holds its explicit hash key", () =>
    Effect.gen(function*() {
      const { kinesis, state } = yield* ShardSimulator.make({ shards: 4 })
      const records = evenShards(4).map((s) => ({
        data: new Uint8Array(1),
        partitionKey: "same key",
        explicitHashKey: explicitHashKeyOf(s)
      }))
      const results = yield* kinesis.putRecords({ streamName: "s", records })
      const double = yield* KinesisTest.acceptAll({ index: 0, request: { streamName: "s", records } })
      results.forEach((r, i) => {
        assert.strictEqual(r._tag === "Written" && r.shardId, ShardSimulator.shardId(i))
        assert.strictEqual(double[i]!._tag === "Written" && double[i]!.shardId, ShardSimulator.shardId(i))
      })
      assert.deepStrictEqual(
        (yield* state.written).map((r) => r.explicitHashKey),
        records.map((r) => r.explicitHashKey)
      )
      const refused = yield* Effect.flip(kinesis.putRecords({
        streamName: "s",
        records: [{ data: new Uint8Array(1), partitionKey: "k", explicitHashKey: (1n << 128n).toString() }]
      }))
      assert.strictEqual(refused.errorName, "ValidationException")
      assert.isFalse(refused.retryable)
    }))

  const { kinesis: client } = localClients()

  it.live("kinesalite writes a record on the shard whose hash-key range holds its ExplicitHashKey", () =>
    Effect.gen(function*() {
      const stream = uniqueName("ehk")
      yield* Effect.promise(() => createStream(client, stream, 4))
      const service = Kinesis.make(client)
      const shards = (yield* service.listShards(stream)).filter((s) => s.open)
      assert.strictEqual(shards.length, 4)
      // Every record has the same partition key: only the explicit hash key can spread them.
      const records = shards.flatMap((s) =>
        [s.startingHashKey, s.startingHashKey + (s.endingHashKey - s.startingHashKey) / 2n, s.endingHashKey].map((
          key
        ) => ({
          data: new TextEncoder().encode(key.toString()),
          partitionKey: "one key",
          explicitHashKey: key.toString()
        }))
      )
      const results = yield* service.putRecords({ streamName: stream, records })
      const map = new ShardMap(shards)
      results.forEach((r, i) => {
        assert.strictEqual(r._tag === "Written" && r.shardId, map.shardOf(BigInt(records[i]!.explicitHashKey)))
      })
      const stored = yield* Effect.promise(() => readAllRecords(client, stream))
      assert.strictEqual(stored.length, records.length)
      for (const r of stored) assert.strictEqual(r.shardId, map.shardOf(BigInt(new TextDecoder().decode(r.data))))
    }))

  it.live("the writer's per-shard aggregates on kinesalite: each on the shard its records' keys go to", () =>
    Effect.gen(function*() {
      const stream = uniqueName("shard-agg")
      yield* Effect.promise(() => createStream(client, stream, 3))
      const layer = KinesisWriter.layer({ ...baseOptions, streamName: stream, ...on }).pipe(
        Layer.provide(Kinesis.layer(client)),
        Layer.provide(LargePayloadStore.layerMemory()),
        Layer.provide(KinesisMetrics.layerNoop)
      )
      const batch = RecordGenerator.makeDataFiles(600, { columns: 5, seed: 2206 })
      const result = yield* Effect.flatMap(KinesisWriter, (w) => w.writeBatch(batch)).pipe(Effect.provide(layer))
      const listed = yield* Effect.promise(() => client.send(new ListShardsCommand({ StreamName: stream })))
      const map = new ShardMap(
        (listed.Shards ?? []).map((s) => ({
          shardId: s.ShardId!,
          startingHashKey: BigInt(s.HashKeyRange!.StartingHashKey!),
          endingHashKey: BigInt(s.HashKeyRange!.EndingHashKey!),
          open: true
        }))
      )
      const stored = yield* Effect.promise(() => readAllRecords(client, stream))
      assert.isAtMost(stored.length, 3 * 2)
      const ids: Array<string> = []
      for (const r of stored) {
        for (const l of logicalOf(r.data)) {
          ids.push(l.recordId)
          assert.strictEqual(r.shardId, map.shardOf(ShardSimulator.hashKey(firstKeyOf(l.filePath))))
        }
      }
      assert.deepStrictEqual(ids.sort(), [...result.recordIds].sort())
    }))
})
