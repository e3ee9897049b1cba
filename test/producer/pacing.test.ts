/**
 * Shard-aware pacing (`pace: true`): the shard map's load and refresh (bounded, retried,
 * and said when it fails), and what pacing is for — on a simulated 2-shard stream offered three times its
 * capacity, pacing cuts the records throttled per 1,000 sent to a small fraction of the
 * unpaced figure. Time is the TestClock's.
 */
import type { KinesisClient } from "@aws-sdk/client-kinesis"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Either, Exit, Fiber, Layer, Logger, LogLevel, TestClock } from "effect"
import { Registry } from "prom-client"
import type { RecordReceipt, SendError, ShardRange } from "../../src/index.js"
import {
  Kinesis,
  KinesisError,
  KinesisMetrics,
  KinesisProducer,
  KinesisWriter,
  LargePayloadStore
} from "../../src/index.js"
import { evenShards, hashKeyOf, ShardMap } from "../../src/internal/core/routing.js"
import { makePacer } from "../../src/internal/pacing.js"
import { KinesisTestRecorder } from "../../src/KinesisTest.js"
import * as ShardSimulator from "../../src/ShardSimulator.js"
import { KinesisTest, RecordGenerator } from "../../src/testing.js"
import { writerLayer } from "../support/writerLayers.js"

const quiet = Logger.withMinimumLogLevel(LogLevel.None)

/**
 * Offers a simulated 2-shard stream three times its capacity for `seconds`, then lets
 * everything settle. The records are ~30 KB, so the shards' byte limit binds (about 35
 * records/s per shard), which keeps the run short: 21 sends every 100 ms. Retries are off
 * (`maxRetries: 0`), so each record is put once and the figure is the share of records
 * refused on their first try (the unpaced producer's retries would be refused more).
 */
const offerThreeTimesCapacity = (
  pace: boolean,
  seconds: number,
  options: {
    readonly metrics?: Layer.Layer<KinesisMetrics>
    readonly bytesPerSecondPerShard?: number
  } = {}
) =>
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
        Layer.provideMerge(ShardSimulator.layer({
          shards: 2,
          seed: 3,
          ...(options.bytesPerSecondPerShard === undefined
            ? {}
            : { bytesPerSecondPerShard: options.bytesPerSecondPerShard })
        })),
        Layer.provideMerge(LargePayloadStore.layerMemory()),
        Layer.provideMerge(options.metrics ?? KinesisMetrics.layerNoop)
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

describe("pacing: per-shard metrics", () => {
  it.effect(
    "on shards that take half of Kinesis' byte limit, each shard's series show the records refused for throughput, the pace learned below the limit, and the records waiting for it",
    () =>
      Effect.gen(function*() {
        const registry = new Registry()
        const half = 512 * 1024
        const run = yield* offerThreeTimesCapacity(true, 4, {
          metrics: KinesisMetrics.layerPrometheus(registry),
          bytesPerSecondPerShard: half
        })
        // Retries are off: each record refused once failed, every other one was delivered.
        assert.strictEqual(run.delivered, run.sends - run.throttled)
        const series = async (name: string) => (await registry.getSingleMetric(name)!.get()).values
        const values = yield* Effect.promise(() =>
          Promise.all([
            series("kinesis_shard_throttled_records_total"),
            series("kinesis_producer_shard_rate_bytes_per_second"),
            series("kinesis_producer_shard_waiting_records")
          ])
        )
        const [throttled, rate, waiting] = values
        const shards = ["shardId-000000000000", "shardId-000000000001"]
        for (const shardId of shards) {
          const of = (vs: typeof rate) =>
            vs.filter((v) => v.labels["shard_id"] === shardId && v.labels["stream_name"] === "paced")
          assert.strictEqual(of(rate).length, 1, `${shardId} has a pace`)
          assert.isBelow(of(rate)[0]!.value, 1024 * 1024, `${shardId}'s pace is learned below Kinesis' limit`)
          assert.isAbove(of(rate)[0]!.value, half / 4, `${shardId}'s pace is not starved`)
          assert.strictEqual(of(waiting).length, 1, `${shardId} has a waiting gauge`)
        }
        const refused = throttled.reduce((n, v) => n + v.value, 0)
        assert.isAbove(refused, 0, "the shards refused records while the pace was learned")
        assert.strictEqual(refused, run.throttled, "every refusal is counted on its shard")
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

describe("pacing: a shard map that cannot be loaded", () => {
  const listShardsError = new KinesisError({
    operation: "ListShards",
    streamName: "test-stream",
    errorName: "LimitExceededException",
    httpStatus: 400,
    retryable: true
  })

  /** ListShards answering `script[i]` on its i-th call, and the last entry ever after. */
  const listing = (script: ReadonlyArray<Effect.Effect<ReadonlyArray<ShardRange>, KinesisError>>) => {
    let calls = 0
    return Effect.suspend(() => script[Math.min(calls++, script.length - 1)]!)
  }

  /** When each call went out (`Clock` millis) and how many records it carried. */
  const callTimes: Array<{ readonly at: number; readonly records: number }> = []

  /** One key for every record (`distributionFactor: 1`): every first attempt goes to one shard. */
  const pacedProducer = (shards: Effect.Effect<ReadonlyArray<ShardRange>, KinesisError>) =>
    KinesisProducer.layer({ pace: true, linger: "10 millis" }).pipe(
      Layer.provideMerge(writerLayer(
        (call) =>
          Effect.flatMap(Clock.currentTimeMillis, (at) => {
            callTimes.push({ at, records: call.request.records.length })
            return KinesisTest.acceptAll(call)
          }),
        { compressionWorkers: 0, distributionFactor: 1 },
        { shards }
      ))
    )

  /**
   * Sends `n` small records at once and lets them all settle; returns the most records that
   * went out at one instant. Paced, that is at most a shard's burst: 100 records.
   */
  const burstOf = (n: number) =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const before = callTimes.length
      const sends: Array<Fiber.RuntimeFiber<RecordReceipt, SendError>> = []
      for (let i = 0; i < n; i++) {
        sends.push(yield* Effect.fork(producer.send(RecordGenerator.makeDataFile({ seed: i, columns: 1 }))))
      }
      for (let i = 0; i < 1_000 && sends.some((f) => f.unsafePoll() === null); i++) yield* TestClock.adjust("10 millis")
      for (const exit of yield* Effect.forEach(sends, Fiber.await)) assert.isTrue(Exit.isSuccess(exit))
      const atOnce = new Map<number, number>()
      for (const c of callTimes.slice(before)) atOnce.set(c.at, (atOnce.get(c.at) ?? 0) + c.records)
      return Math.max(...atOnce.values())
    })

  interface Captured {
    readonly level: LogLevel.LogLevel
    readonly message: string
  }

  const capturing = (logs: Array<Captured>) =>
    Effect.provide(Logger.replace(
      Logger.defaultLogger,
      Logger.make(({ logLevel, message }) => {
        logs.push({ level: logLevel, message: (Array.isArray(message) ? message : [message]).map(String).join(" ") })
      })
    ))

  it.effect("a ListShards that never answers is given up at requestTimeout and tried again: records are then paced", () =>
    Effect.gen(function*() {
      const recorder = yield* KinesisTestRecorder
      // While the load hangs, records go unpaced, and are not held.
      yield* burstOf(150)
      // The writer's requestTimeout (30 s by default) ends the load; it is tried again about a second later.
      yield* TestClock.adjust("30 seconds")
      for (let i = 0; i < 3; i++) yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* recorder.listShardsCalls, 2)
      // Paced: one shard takes at most a tenth of a second's records at once.
      assert.isAtMost(yield* burstOf(300), 100)
    }).pipe(
      Effect.provide(pacedProducer(listing([Effect.never, Effect.succeed(KinesisTest.defaultShards)]))),
      quiet
    ))

  it.effect("a failing ListShards is retried on a schedule, and one log line at Info says records go unpaced", () => {
    const logs: Array<Captured> = []
    return Effect.gen(function*() {
      const recorder = yield* KinesisTestRecorder
      yield* TestClock.adjust("10 millis")
      // After 1, 2 and 4 seconds (each ±20%), the fourth load succeeds.
      for (let i = 0; i < 10; i++) yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* recorder.listShardsCalls, 4)
      assert.isAtMost(yield* burstOf(300), 100)
      const loud = logs.filter((l) => LogLevel.greaterThanEqual(l.level, LogLevel.Info))
      assert.deepStrictEqual(loud.map((l) => `${l.level.label} ${l.message}`), [
        "INFO could not list the stream's shards: records go unpaced until it can"
      ])
      assert.strictEqual(logs.filter((l) => l.message.includes("could not list")).length, 3)
    }).pipe(
      Effect.provide(pacedProducer(listing([
        Effect.fail(listShardsError),
        Effect.fail(listShardsError),
        Effect.fail(listShardsError),
        Effect.succeed(KinesisTest.defaultShards)
      ]))),
      capturing(logs),
      Logger.withMinimumLogLevel(LogLevel.All)
    )
  })

  it.effect(
    "kinesis_producer_unpaced is 1 while the map cannot be loaded, 0 once it is",
    () => {
      const registry = new Registry()
      const gauge = () =>
        Effect.promise(() => registry.metrics()).pipe(
          Effect.map((text) => /kinesis_producer_unpaced\{stream_name="test-stream"\} (\d)/.exec(text)?.[1])
        )
      return Effect.gen(function*() {
        yield* TestClock.adjust("10 millis")
        assert.strictEqual(yield* gauge(), "1")
        for (let i = 0; i < 3; i++) yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* gauge(), "0")
      }).pipe(
        Effect.provide(
          KinesisProducer.layer({ pace: true, linger: "10 millis" }).pipe(
            Layer.provideMerge(writerLayer(KinesisTest.acceptAll, { compressionWorkers: 0 }, {
              metrics: KinesisMetrics.layerPrometheus(registry),
              shards: listing([Effect.fail(listShardsError), Effect.succeed(KinesisTest.defaultShards)])
            }))
          )
        ),
        quiet
      )
    }
  )
})

describe("pacing: the pacer's load of the map", () => {
  it.effect("one load is bounded by the requestTimeout given, retried until it succeeds, and the gauge says unpaced meanwhile", () =>
    Effect.gen(function*() {
      const registry = new Registry()
      const metrics = yield* Effect.provide(KinesisMetrics, KinesisMetrics.layerPrometheus(registry))
      let calls = 0
      const pacer = yield* makePacer({
        streamName: "s",
        listShards: Effect.suspend(() => calls++ < 2 ? Effect.never : Effect.succeed(evenShards(2))),
        fork: Effect.forkDaemon,
        linger: Duration.millis(10),
        requestTimeout: "200 millis",
        metrics
      })
      const gauge = () =>
        Effect.promise(() => registry.metrics()).pipe(
          Effect.map((text) => /kinesis_producer_unpaced\{stream_name="s"\} (\d)/.exec(text)?.[1])
        )
      yield* Effect.forkDaemon(pacer.refresh)
      yield* TestClock.adjust("199 millis")
      assert.strictEqual(calls, 1)
      assert.strictEqual(yield* gauge(), "1")
      // Timed out at 200 ms; tried again 0.8–1.2 s later, timed out again 200 ms after that.
      yield* TestClock.adjust("1401 millis")
      assert.strictEqual(calls, 2)
      assert.strictEqual(pacer.state()._tag, "Unknown")
      // Then 1.6–2.4 s later: the third load answers.
      for (let i = 0; i < 5; i++) yield* TestClock.adjust("500 millis")
      assert.strictEqual(calls, 3)
      assert.strictEqual(pacer.state()._tag, "Known")
      assert.strictEqual(yield* gauge(), "0")
    }).pipe(quiet))
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

  it.effect("a load stops at 100 pages: an endpoint that always answers a next page fails it instead of holding it", () =>
    Effect.gen(function*() {
      let pages = 0
      const client = {
        send: () => {
          pages++
          return Promise.resolve({ Shards: [], NextToken: `page-${pages + 1}` })
        }
      } as unknown as KinesisClient
      const error = yield* Effect.flip(Kinesis.make(client).listShards("s"))
      assert.strictEqual(pages, 100)
      assert.include(error, { operation: "ListShards", errorName: "TooManyPages" })
    }))
})
