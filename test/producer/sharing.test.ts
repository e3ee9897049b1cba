/**
 * Producers sharing one stream, with no coordination between them: each learns its share of
 * each shard from what the stream answers (pacing, on by default). On the shard simulator,
 * one shard that takes 100 records a second (a tenth of Kinesis' limit, which the producers
 * start from and must learn down from), each producer offered 150 records a second:
 *
 * - alone, the first producer gets the whole shard;
 * - a second arriving halves the first one's share within seconds, and together they keep
 *   the shard busy;
 * - when the second leaves, the first gets the whole shard back;
 * - nothing is lost: every send ends delivered or refused, and every receipt is on the stream.
 * - throttling stays rare: at most a tenth of what the stream received.
 *
 * Time is the TestClock's, so a run is the same whatever the machine's load; the seeds fix
 * the records and the simulator.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  Clock,
  Context,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Option,
  Schedule,
  Scope,
  TestClock
} from "effect"
import type { Kinesis, RecordReceipt } from "../../src/index.js"
import { KinesisMetrics, KinesisProducer, KinesisWriter, LargePayloadStore } from "../../src/index.js"
import { RecordGenerator, ShardSimulator } from "../../src/testing.js"

const CAPACITY = 100
const OFFERED = 150
const STEP = "50 millis"
const STEP_MILLIS = 50

/** One producer's sends, and when each receipt came. */
interface Offer {
  readonly receipts: Array<{ readonly at: number; readonly receipt: RecordReceipt }>
  readonly refused: Array<unknown>
  sent: number
}

const producerLayer = (name: string, sim: Context.Context<ShardSimulator.ShardSimulatorState | Kinesis>) =>
  KinesisProducer.layer({ linger: "20 millis", shutdownTimeout: "0 millis" }).pipe(
    Layer.provideMerge(KinesisWriter.layer({
      streamName: "shared",
      logGroupId: name,
      schemaName: "orders",
      accountId: "123456789012",
      distributionFactor: 8,
      compressionWorkers: 0
    })),
    Layer.provideMerge(Layer.succeedContext(sim)),
    Layer.provideMerge(LargePayloadStore.layerMemory()),
    Layer.provideMerge(KinesisMetrics.layerNoop)
  )

/** Offers `OFFERED` records a second to `producer` until interrupted, each send forked (waiting for room if it must) and counted. */
const offer = (producer: KinesisProducer.Service, seed: number, into: Offer) =>
  Effect.gen(function*() {
    const perStep = (OFFERED * STEP_MILLIS) / 1_000
    let n = 0
    yield* Effect.repeat(
      Effect.forEach(Array.from({ length: perStep }), () => {
        const record = RecordGenerator.makeDataFile({ seed: seed * 1_000_000 + n++, columns: 5 })
        into.sent++
        // A daemon: the send outlives the offering fiber, and ends when its producer settles or refuses it.
        return Effect.forkDaemon(
          producer.send(record).pipe(
            Effect.flatMap((receipt) =>
              Effect.map(Clock.currentTimeMillis, (at) => {
                into.receipts.push({ at, receipt })
              })
            ),
            Effect.catchAll((error) => Effect.sync(() => into.refused.push(error)))
          )
        )
      }, { discard: true }),
      Schedule.spaced(STEP)
    )
  })

const receiptsIn = (o: Offer, fromSecond: number, toSecond: number) =>
  o.receipts.filter((r) => r.at >= fromSecond * 1_000 && r.at < toSecond * 1_000).length

const advance = (seconds: number) =>
  Effect.gen(function*() {
    for (let t = 0; t < seconds * 1_000; t += STEP_MILLIS) yield* TestClock.adjust(STEP)
  })

describe("producers sharing a stream", () => {
  it.effect(
    "a second producer halves the first one's share within seconds, the first gets it back when the second leaves, and nothing is lost",
    () =>
      Effect.gen(function*() {
        const simScope = yield* Scope.make()
        const sim = yield* Layer.buildWithScope(
          ShardSimulator.layer({ shards: 1, seed: 11, recordsPerSecondPerShard: CAPACITY }),
          simScope
        )
        const state = Context.get(sim, ShardSimulator.ShardSimulatorState)
        const a: Offer = { receipts: [], refused: [], sent: 0 }
        const b: Offer = { receipts: [], refused: [], sent: 0 }

        const scopeA = yield* Scope.make()
        const producerA = yield* Effect.provide(
          KinesisProducer,
          yield* Layer.buildWithScope(producerLayer("a", sim), scopeA)
        )
        const offerA = yield* Effect.fork(offer(producerA, 1, a))
        yield* advance(4)

        const scopeB = yield* Scope.make()
        const producerB = yield* Effect.provide(
          KinesisProducer,
          yield* Layer.buildWithScope(producerLayer("b", sim), scopeB)
        )
        const offerB = yield* Effect.fork(offer(producerB, 2, b))
        yield* advance(6)
        yield* Fiber.interrupt(offerB)
        const closingB = yield* Effect.fork(Scope.close(scopeB, Exit.void))
        yield* advance(7)
        assert.isTrue(Option.isSome(yield* Fiber.poll(closingB)), "the second producer closed")
        yield* Fiber.interrupt(offerA)
        const closingA = yield* Effect.fork(Scope.close(scopeA, Exit.void))
        yield* advance(1)
        assert.isTrue(Option.isSome(yield* Fiber.poll(closingA)), "the first producer closed")

        const window = (seconds: number) => CAPACITY * seconds
        if (process.env["SHARING_DEBUG"]) {
          console.log(JSON.stringify({
            alone: receiptsIn(a, 2, 4),
            together: [receiptsIn(a, 7, 10), receiptsIn(b, 7, 10)],
            after: receiptsIn(a, 14, 17),
            totals: yield* state.totals
          }))
        }
        // Alone, the first producer learns the shard's limit down from Kinesis' and fills it.
        assert.isAtLeast(receiptsIn(a, 2, 4), 0.9 * window(2), "alone, the first producer fills the shard")
        // Together, within seconds, each has about half, and the shard stays busy.
        const togetherA = receiptsIn(a, 7, 10)
        const togetherB = receiptsIn(b, 7, 10)
        assert.isAtLeast(togetherA + togetherB, 0.85 * window(3), "together they fill the shard")
        assert.isAtMost(togetherA / (togetherA + togetherB), 0.65, "the first producer's share is about halved")
        assert.isAtLeast(togetherA / (togetherA + togetherB), 0.35, "the second producer gets its share")
        // The second gone, the first gets the whole shard back.
        assert.isAtLeast(receiptsIn(a, 14, 17), 0.9 * window(3), "the first producer recovers the shard")

        // Nothing lost: every send ended, delivered or refused (its producer closed with a
        // backlog, shutdownTimeout 0); every receipt is on the stream.
        assert.strictEqual(a.receipts.length + a.refused.length, a.sent)
        assert.strictEqual(b.receipts.length + b.refused.length, b.sent)
        const stored = new Set((yield* state.written).map((r) => r.sequenceNumber))
        for (const r of [...a.receipts, ...b.receipts]) assert.isTrue(stored.has(r.receipt.sequenceNumber))
        const totals = yield* state.totals
        assert.isAtMost(totals.throttled / (totals.written + totals.throttled), 0.1, "throttling stays rare")
        yield* Scope.close(simScope, Exit.void)
      }).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.Warning))),
    { timeout: 240_000 }
  )
})
