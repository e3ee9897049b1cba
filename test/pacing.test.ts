/**
 * Shard-aware pacing (`pace: true`): the routing, the token buckets, the shard map's
 * refresh, and what it is for — on a simulated 2-shard stream offered three times its
 * capacity, pacing cuts the records throttled per 1,000 sent to a small fraction of the
 * unpaced figure. Time is the TestClock's.
 */
import type { KinesisClient } from "@aws-sdk/client-kinesis"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Exit, Fiber, Layer, Logger, LogLevel, TestClock } from "effect"
import type { RecordReceipt, SendError, ShardRange } from "../src/index.js"
import {
  Kinesis,
  KinesisError,
  KinesisMetrics,
  KinesisProducer,
  KinesisWriter,
  LargePayloadStore
} from "../src/index.js"
import { evenShards, hashKeyOf, ShardMap, TokenBucket } from "../src/internal/pacing.js"
import { KinesisTestRecorder } from "../src/KinesisTest.js"
import * as ShardSimulator from "../src/ShardSimulator.js"
import { KinesisTest, RecordGenerator } from "../src/testing.js"
import { writerLayer } from "./support/writerLayers.js"

const quiet = Logger.withMinimumLogLevel(LogLevel.None)

describe("pacing: routing", () => {
  it("a partition key goes to the shard the simulator (and Kinesis) puts it on", () => {
    for (const shards of [1, 2, 3, 4, 7]) {
      const map = new ShardMap(evenShards(shards))
      for (let i = 0; i < 300; i++) {
        const key = `lg-schema-${i}-${i % 4}`
        assert.strictEqual(hashKeyOf(key), ShardSimulator.hashKey(key))
        assert.strictEqual(
          map.shardOf(hashKeyOf(key)),
          ShardSimulator.shardId(ShardSimulator.shardIndexOf(key, shards))
        )
      }
    }
  })

  it("closed shards take nothing; their range goes to the open children, whatever the order ListShards gives", () => {
    const half = 1n << 127n
    const map = new ShardMap([
      { shardId: "shardId-000000000002", startingHashKey: half, endingHashKey: (1n << 128n) - 1n, open: true },
      { shardId: "shardId-000000000000", startingHashKey: 0n, endingHashKey: (1n << 128n) - 1n, open: false },
      { shardId: "shardId-000000000001", startingHashKey: 0n, endingHashKey: half - 1n, open: true }
    ])
    assert.deepStrictEqual(map.shards.map((s) => s.shardId), ["shardId-000000000001", "shardId-000000000002"])
    assert.strictEqual(map.shardOf(0n), "shardId-000000000001")
    assert.strictEqual(map.shardOf(half - 1n), "shardId-000000000001")
    assert.strictEqual(map.shardOf(half), "shardId-000000000002")
    // A map with a gap routes nothing there.
    assert.isUndefined(new ShardMap([{ ...evenShards(2)[1]!, open: true }]).shardOf(0n))
  })
})

describe("pacing: token bucket", () => {
  const limits = { recordsPerSecond: 1_000, bytesPerSecond: 1_048_576, burst: 0.1 }

  it("starts with a tenth of a second's records, then refills at 900/s; a waiting record is told when", () => {
    const bucket = new TokenBucket(limits, 0)
    for (let i = 0; i < 100; i++) assert.strictEqual(bucket.offer(100, 0)._tag, "Admitted")
    assert.deepStrictEqual(bucket.offer(100, 0), { _tag: "Waiting", until: 2 })
    assert.strictEqual(bucket.offer(100, 1)._tag, "Waiting")
    assert.strictEqual(bucket.offer(100, 2)._tag, "Admitted")
  })

  it("a record larger than the bucket goes when it is full and leaves it in debt: nothing waits for ever", () => {
    const bucket = new TokenBucket(limits, 0)
    assert.strictEqual(bucket.offer(1_000_000, 0)._tag, "Admitted")
    const waiting = bucket.offer(1_000_000, 0)
    assert.strictEqual(waiting._tag, "Waiting")
    // Debt of 1,000,000 - 104,857.6, plus a full bucket again, at 943.7 bytes per ms.
    if (waiting._tag === "Waiting") {
      assert.strictEqual(waiting.until, Math.ceil(1_000_000 / 943.7184))
      assert.strictEqual(bucket.offer(1_000_000, waiting.until)._tag, "Admitted")
    }
  })

  it("in any one-second window, whatever its alignment, a greedy sender gets at most the shard's limits", () => {
    const rand = RecordGenerator.prng(5)
    const bucket = new TokenBucket(limits, 0)
    const taken: Array<readonly [number, number]> = []
    for (let now = 0; now < 10_000; now += 1 + Math.floor(rand() * 40)) {
      for (;;) {
        const bytes = 200 + Math.floor(rand() * 3_000)
        if (bucket.offer(bytes, now)._tag !== "Admitted") break
        taken.push([now, bytes])
      }
    }
    for (let start = 0; start < 9_000; start += 7) {
      const inWindow = taken.filter(([t]) => t >= start && t < start + 1_000)
      assert.isAtMost(inWindow.length, 1_000)
      assert.isAtMost(inWindow.reduce((n, [, b]) => n + b, 0), 1_048_576)
    }
    // And it is not starved: near 90% of the limits, in records or bytes.
    const last = taken.filter(([t]) => t >= 5_000 && t < 6_000)
    assert.isAbove(Math.max(last.length / 1_000, last.reduce((n, [, b]) => n + b, 0) / 1_048_576), 0.85)
  })
})

/**
 * Offers a simulated 2-shard stream three times its capacity for `seconds`, then lets
 * everything settle. The records are ~30 KB, so the shards' byte limit binds (about 35
 * records/s per shard), which keeps the run short: 21 sends every 100 ms. Retries are off
 * (`maxRetries: 0`), so each record is put once and the figure is the share of records
 * refused on their first try (the unpaced producer's retries would be refused more).
 */
const offerThreeTimesCapacity = (pace: boolean, seconds: number) =>
  Effect.gen(function*() {
    const producer = yield* KinesisProducer
    const sim = yield* ShardSimulator.ShardSimulatorState
    const pool = RecordGenerator.makeDataFiles(50, { seed: 11, serializedBytes: 30_000 })
    const sends: Array<Fiber.RuntimeFiber<RecordReceipt, SendError>> = []
    for (let step = 0; step < seconds * 10; step++) {
      // Daemons: the TestClock waits for its test fiber's descendants at every instant it runs.
      for (let i = 0; i < 21; i++) {
        sends.push(yield* Effect.forkDaemon(producer.send(pool[(step * 21 + i) % pool.length]!)))
      }
      yield* TestClock.adjust("100 millis")
    }
    for (let i = 0; i < 1_000 && sends.some((f) => f.unsafePoll() === null); i++) {
      yield* TestClock.adjust("100 millis")
    }
    const exits = yield* Effect.forEach(sends, Fiber.await)
    const totals = yield* sim.totals
    return {
      pace,
      sends: sends.length,
      delivered: exits.filter(Exit.isSuccess).length,
      attempted: totals.attempted,
      throttled: totals.throttled,
      throttledPer1000: (1_000 * totals.throttled) / totals.attempted
    }
  }).pipe(
    Effect.provide(
      KinesisProducer.layer({ pace, linger: "100 millis", recordTtl: "60 seconds" }).pipe(
        Layer.provideMerge(
          KinesisWriter.layer({
            streamName: "paced",
            logGroupId: "lg",
            schemaName: "schema",
            accountId: "123456789012",
            distributionFactor: 16,
            compressionWorkers: 0,
            maxRetries: 0
          })
        ),
        Layer.provideMerge(ShardSimulator.layer({ shards: 2, seed: 3 })),
        Layer.provideMerge(LargePayloadStore.layerMemory()),
        Layer.provideMerge(KinesisMetrics.layerNoop)
      )
    ),
    quiet
  )

describe("pacing: on a simulated stream offered 3× its capacity", () => {
  it.effect(
    "pacing cuts the records throttled per 1,000 sent to under a quarter of the unpaced figure",
    () =>
      Effect.gen(function*() {
        const unpaced = yield* offerThreeTimesCapacity(false, 3)
        const paced = yield* offerThreeTimesCapacity(true, 3)
        if (process.env["PACING_DEBUG"]) console.log(JSON.stringify({ unpaced, paced }))
        assert.isAbove(unpaced.throttledPer1000, 100, "the unpaced run must be throttled, or it proves nothing")
        assert.isBelow(paced.throttledPer1000, unpaced.throttledPer1000 / 4)
        // Pacing holds records back instead of losing them.
        assert.strictEqual(paced.delivered, paced.sends)
      }),
    { timeout: 120_000 }
  )
})

describe("pacing: the shard map", () => {
  const sendOne = (n: number) =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const fiber = yield* Effect.fork(producer.send(RecordGenerator.makeDataFile({ seed: n, columns: 2 })))
      yield* TestClock.adjust("10 millis")
      return yield* Fiber.join(fiber)
    })

  it.effect("the map is learned at start; records that land where predicted cause no refresh", () =>
    Effect.gen(function*() {
      const recorder = yield* KinesisTestRecorder
      yield* sendOne(1)
      yield* TestClock.adjust("10 seconds")
      yield* sendOne(2)
      // The double writes where the default map says: no surprise, no refresh.
      assert.strictEqual(yield* recorder.listShardsCalls, 1)
    }).pipe(Effect.provide(
      KinesisProducer.layer({ pace: true, linger: "10 millis" }).pipe(
        Layer.provideMerge(writerLayer(KinesisTest.acceptAll, { compressionWorkers: 0 }))
      )
    )))

  it.effect("a surprise (a record on a shard the map does not predict) refreshes the map, at most once per 5 s", () =>
    Effect.gen(function*() {
      const recorder = yield* KinesisTestRecorder
      yield* sendOne(1)
      assert.strictEqual(yield* recorder.listShardsCalls, 1, "loaded at start; not again within 5 s")
      yield* TestClock.adjust("5 seconds")
      yield* sendOne(2)
      assert.strictEqual(yield* recorder.listShardsCalls, 2, "refreshed on the surprise")
      yield* sendOne(3)
      yield* TestClock.adjust("4 seconds")
      yield* sendOne(4)
      assert.strictEqual(yield* recorder.listShardsCalls, 2, "not again within 5 s")
      yield* TestClock.adjust("1 second")
      yield* sendOne(5)
      assert.strictEqual(yield* recorder.listShardsCalls, 3)
    }).pipe(Effect.provide(
      KinesisProducer.layer({ pace: true, linger: "10 millis" }).pipe(
        Layer.provideMerge(writerLayer(
          (call) =>
            Effect.succeed(call.request.records.map((_, i) => ({
              _tag: "Written" as const,
              shardId: "shardId-000000000009",
              sequenceNumber: `${call.index}-${i}`
            }))),
          { compressionWorkers: 0 }
        ))
      )
    )))

  it.effect("once the map is refreshed, records are routed by the new one: no more surprises", () =>
    Effect.gen(function*() {
      const recorder = yield* KinesisTestRecorder
      // Shard 0 of 2 was split into 2 and 3: the stream now has shards 1, 2, 3.
      yield* TestClock.adjust("5 seconds")
      // Some of these keys fall in the old shard 0's range: a surprise.
      for (let i = 1; i <= 20; i++) yield* sendOne(i)
      assert.strictEqual(yield* recorder.listShardsCalls, 2, "refreshed on the surprise")
      yield* TestClock.adjust("10 seconds")
      for (let i = 21; i <= 40; i++) yield* sendOne(i)
      assert.strictEqual(yield* recorder.listShardsCalls, 2, "the new map predicts every record")
    }).pipe(Effect.provide(
      Effect.gen(function*() {
        const before = evenShards(2)
        const quarter = 1n << 126n
        const after: Array<ShardRange> = [
          { ...before[0]!, open: false },
          {
            shardId: "shardId-000000000001",
            startingHashKey: 1n << 127n,
            endingHashKey: (1n << 128n) - 1n,
            open: true
          },
          { shardId: "shardId-000000000002", startingHashKey: 0n, endingHashKey: quarter - 1n, open: true },
          { shardId: "shardId-000000000003", startingHashKey: quarter, endingHashKey: (1n << 127n) - 1n, open: true }
        ]
        let listed = 0
        const afterMap = new ShardMap(after)
        return KinesisProducer.layer({ pace: true, linger: "10 millis" }).pipe(
          Layer.provideMerge(writerLayer(
            (call) =>
              Effect.succeed(call.request.records.map((r, i) => ({
                _tag: "Written" as const,
                shardId: afterMap.shardOf(hashKeyOf(r.partitionKey))!,
                sequenceNumber: `${call.index}-${i}`
              }))),
            { compressionWorkers: 0 },
            { shards: Effect.sync(() => listed++ === 0 ? before : after) }
          ))
        )
      }).pipe(Layer.unwrapEffect)
    )))

  it.effect("ListShards failing leaves records unpaced, not stuck", () =>
    Effect.gen(function*() {
      const receipt = yield* sendOne(1)
      assert.match(receipt.shardId, /^shardId-/)
    }).pipe(
      Effect.provide(
        KinesisProducer.layer({ pace: true, linger: "10 millis" }).pipe(
          Layer.provideMerge(writerLayer(
            KinesisTest.acceptAll,
            { compressionWorkers: 0 },
            {
              shards: Effect.fail(
                new KinesisError({
                  operation: "ListShards",
                  streamName: "s",
                  errorName: "AccessDenied",
                  retryable: false
                })
              )
            }
          ))
        )
      ),
      quiet
    ))

  it.effect("pace must be a boolean", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(
        KinesisProducer.layer({ pace: "yes" as unknown as boolean }).pipe(Layer.provide(writerLayer()))
      ))
      assert.include(String(error), "pace")
    }).pipe(Effect.scoped))
})

describe("Kinesis.listShards over the SDK", () => {
  it.effect("reads every page; a page after the first is named by its NextToken alone", () =>
    Effect.gen(function*() {
      const inputs: Array<unknown> = []
      const pages = [
        {
          Shards: [{
            ShardId: "shardId-000000000000",
            HashKeyRange: { StartingHashKey: "0", EndingHashKey: "170141183460469231731687303715884105727" },
            SequenceNumberRange: { StartingSequenceNumber: "1", EndingSequenceNumber: "2" }
          }],
          NextToken: "page-2"
        },
        {
          Shards: [{
            ShardId: "shardId-000000000001",
            HashKeyRange: {
              StartingHashKey: "170141183460469231731687303715884105728",
              EndingHashKey: "340282366920938463463374607431768211455"
            },
            SequenceNumberRange: { StartingSequenceNumber: "3" }
          }]
        }
      ]
      const client = {
        send: (command: { input: unknown }) => {
          inputs.push(command.input)
          return Promise.resolve(pages[inputs.length - 1])
        }
      } as unknown as KinesisClient
      const shards = yield* Kinesis.make(client).listShards("s")
      assert.deepStrictEqual(inputs, [{ StreamName: "s" }, { NextToken: "page-2" }])
      assert.deepStrictEqual(shards, [
        {
          shardId: "shardId-000000000000",
          startingHashKey: 0n,
          endingHashKey: (1n << 127n) - 1n,
          open: false,
          startingSequenceNumber: "1",
          endingSequenceNumber: "2"
        },
        {
          shardId: "shardId-000000000001",
          startingHashKey: 1n << 127n,
          endingHashKey: (1n << 128n) - 1n,
          open: true,
          startingSequenceNumber: "3"
        }
      ])
      const byArn = yield* Effect.either(
        Kinesis.make({
          send: (command: { input: unknown }) => {
            inputs.push(command.input)
            return Promise.reject(Object.assign(new Error("nope"), { name: "ResourceNotFoundException" }))
          }
        } as unknown as KinesisClient).listShards("s", "arn:aws:kinesis:eu-west-1:123456789012:stream/s")
      )
      assert.deepStrictEqual(inputs[2], { StreamARN: "arn:aws:kinesis:eu-west-1:123456789012:stream/s" })
      assert.isTrue(Either.isLeft(byArn) && byArn.left.operation === "ListShards")
    }))
})
