/**
 * Invariants of the producer over a simulated 4-shard stream with Kinesis' limits and seeded
 * faults (per-record InternalFailure, throttled calls, server errors and timeouts, some of
 * which wrote records before failing), records sent from 100 concurrent fibers, and the
 * producer's scope closed at a seeded moment with a seeded shutdown timeout. For every seed:
 *
 * - every send settles exactly once, and none is left waiting once the scope is closed;
 * - every receipt's record_id is on the stream, written by a call that reported it, with the
 *   send's record; no record_id is named by two sends;
 * - every record on the stream belongs to a send that got a receipt, or to one that failed
 *   with `maybeDelivered`; a record refused with `ProducerClosedError` is not on the stream;
 * - a send fails only with `RecordUndeliveredError` or `ProducerClosedError`;
 * - every S3 object left is pointed to by a record on the stream or kept for a send that
 *   failed with `maybeDelivered`; none is left for a record certainly not on the stream.
 *
 * Each holds with the writer's `aggregation` off and on (the producer then still sends each
 * record as a Kinesis record of its own, so that each settles alone; the checks read every
 * member of every Kinesis record all the same), and with shard-aware pacing (`pace`) off and
 * on: four combinations of five seeds.
 *
 * Time is the TestClock's, one per seed, so that seeds run five at a time; the writer
 * compresses on the calling thread.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Exit, Fiber, Layer, Logger, LogLevel, Option, Scope, TestClock, TestContext } from "effect"
import type { DataFileV1, RecordReceipt, SendError } from "../../src/index.js"
import { KinesisMetrics, KinesisProducer, KinesisWriter, LargePayloadStore, RecordCodec } from "../../src/index.js"
import * as ShardSimulator from "../../src/ShardSimulator.js"
import { RecordGenerator } from "../../src/testing.js"

const FIBERS = 100
const PER_FIBER = 2
const STEP = 250
const SEEDS_PER_COMBINATION = 5
const CONCURRENT_SEEDS = 5

interface Combination {
  readonly aggregation: boolean
  readonly pace: boolean
}

const combinations: ReadonlyArray<Combination> = [
  { aggregation: false, pace: false },
  { aggregation: true, pace: false },
  { aggregation: false, pace: true },
  { aggregation: true, pace: true }
]

const nameOf = (c: Combination) => `aggregation ${c.aggregation ? "on" : "off"}, pacing ${c.pace ? "on" : "off"}`

/** The close falls in the first 1.5 s, in the `stratum`th of as many equal parts as seeds per combination. */
const CLOSE_WITHIN = 1_500

const runSeed = (seed: number, combination: Combination, stratum: number) =>
  Effect.gen(function*() {
    const rand = RecordGenerator.prng(seed * 31 + 7)
    const inputs: Array<DataFileV1> = Array.from(
      { length: FIBERS * PER_FIBER },
      (_, i) =>
        RecordGenerator.makeDataFile({
          seed: seed * 100_000 + i,
          columns: 4,
          ...(rand() < 0.03 ? { serializedBytes: 3_000 } : {})
        })
    )
    // Each combination's seeds close early and late alike: a close in the first few hundred
    // milliseconds refuses sends not yet prepared, a later one finds them in calls or backoff.
    const closeAt = Math.floor((stratum + rand()) * CLOSE_WITHIN / SEEDS_PER_COMBINATION)
    const shutdownTimeout = Math.floor(rand() * 600)
    const memory = yield* LargePayloadStore.makeMemory()
    const layer = KinesisProducer.layer({
      linger: "50 millis",
      maxBufferedRecords: 100,
      recordTtl: "2 seconds",
      shutdownTimeout,
      pace: combination.pace
    }).pipe(
      Layer.provideMerge(KinesisWriter.layer({
        streamName: "producer-invariants",
        logGroupId: "lg",
        schemaName: "schema",
        accountId: "123456789012",
        distributionFactor: 16,
        largePayloadThreshold: 2_048,
        compressionWorkers: 0,
        maxRetries: 2,
        ...(combination.aggregation ? { aggregation: {} } : {})
      })),
      Layer.provideMerge(ShardSimulator.layer({
        shards: 4,
        seed,
        recordsPerSecondPerShard: 30,
        recordFailureRate: 0.02,
        callFaults: { throttling: 0.03, serverError: 0.03, timeout: 0.03, ambiguousWriteRate: 0.5 }
      })),
      Layer.provideMerge(Layer.succeed(LargePayloadStore, memory.service)),
      Layer.provideMerge(KinesisMetrics.layerNoop)
    )
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(layer, scope)
    const producer = yield* Effect.provide(KinesisProducer, context)
    const state = yield* Effect.provide(ShardSimulator.ShardSimulatorState, context)

    const outcomes: Array<Array<Exit.Exit<RecordReceipt, SendError>>> = inputs.map(() => [])
    const senders = yield* Effect.forEach(Array.from({ length: FIBERS }, (_, f) => f), (f) =>
      Effect.fork(Effect.forEach(
        Array.from({ length: PER_FIBER }, (_, k) => f * PER_FIBER + k),
        (i) =>
          Effect.map(Effect.exit(producer.send(inputs[i]!)), (exit) => {
            outcomes[i]!.push(exit)
          }),
        { discard: true }
      )))

    const violations: Array<string> = []
    let elapsed = 0
    for (; elapsed + STEP <= closeAt; elapsed += STEP) {
      yield* TestClock.adjust(STEP)
    }
    yield* TestClock.adjust(closeAt - elapsed)
    const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
    for (let step = 0; step < 100 && Option.isNone(yield* Fiber.poll(closing)); step++) yield* TestClock.adjust(STEP)
    if (Option.isNone(yield* Fiber.poll(closing))) violations.push("the scope did not close")
    // The senders that were refused at close end at once; give the TestClock nothing more.
    yield* TestClock.adjust("0 millis")
    for (const sender of senders) {
      if (Option.isNone(yield* Fiber.poll(sender))) violations.push("a sender is still waiting after the scope closed")
    }

    // Exactly once, and only the expected failures.
    const byRecordId = new Map<string, number>()
    let delivered = 0
    let undelivered = 0
    let closed = 0
    outcomes.forEach((exits, i) => {
      if (exits.length !== 1) {
        if (exits.length === 0 && violations.length === 0) violations.push(`input #${i} never settled`)
        else if (exits.length > 1) violations.push(`input #${i} settled ${exits.length} times`)
        return
      }
      const exit = exits[0]!
      if (Exit.isSuccess(exit)) {
        delivered++
        if (byRecordId.has(exit.value.recordId)) violations.push(`record_id ${exit.value.recordId} named twice`)
        byRecordId.set(exit.value.recordId, i)
        return
      }
      const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
      if (failure === undefined) {
        violations.push(`input #${i}: send ended with ${exit.cause._tag}`)
        return
      }
      if (failure._tag === "ProducerClosedError") {
        closed++
        return
      }
      if (failure._tag !== "RecordUndeliveredError") {
        violations.push(`input #${i}: unexpected ${failure._tag}`)
        return
      }
      undelivered++
      if (failure.record !== inputs[i]) violations.push(`input #${i}: its error carries another record`)
      if (byRecordId.has(failure.recordId)) violations.push(`record_id ${failure.recordId} named twice`)
      byRecordId.set(failure.recordId, i)
    })

    // What the stream holds.
    const calls = yield* state.calls
    const definite = new Map<string, number>()
    const onStream = new Set<string>()
    const pathByRecordId = new Map<string, string>()
    let aggregates = 0
    const members = (yield* state.written).flatMap((w) => {
      const decoded = RecordCodec.decodeRecordDataAllSync(w.data)
      if (Either.isLeft(decoded)) {
        violations.push(`undecodable record on ${w.shardId}`)
        return []
      }
      if (decoded.right.length > 1) aggregates++
      return decoded.right.map((member) => ({ w, member }))
    })
    const pointedTo = new Set<string>()
    for (const { member, w } of members) {
      const { filePath, recordId } = member.info
      if (member.entry._tag === "large") pointedTo.add(`${member.entry.pointer.bucket}/${member.entry.pointer.key}`)
      onStream.add(recordId)
      pathByRecordId.set(recordId, filePath)
      if (!calls[w.callIndex]!.ambiguous) definite.set(recordId, (definite.get(recordId) ?? 0) + 1)
      const i = byRecordId.get(recordId)
      if (i === undefined) {
        violations.push(`record ${recordId} on the stream belongs to no settled send`)
        continue
      }
      if (inputs[i]!.filePath !== filePath) violations.push(`record ${recordId} on the stream is not input #${i}`)
      const exit = outcomes[i]![0]!
      if (
        Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag === "RecordUndeliveredError" &&
        !exit.cause.error.maybeDelivered
      ) {
        violations.push(
          `input #${i} is on the stream but failed with ${exit.cause.error.errorCode} and maybeDelivered false`
        )
      }
    }
    for (const [recordId, n] of definite) {
      if (n > 1) violations.push(`record ${recordId} written ${n} times by calls that reported it`)
    }
    outcomes.forEach((exits, i) => {
      const exit = exits[0]
      if (exit === undefined) return
      if (Exit.isSuccess(exit) && (definite.get(exit.value.recordId) ?? 0) !== 1) {
        violations.push(`input #${i} has a receipt but is not on the stream once by a call that reported it`)
      }
      if (Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag === "ProducerClosedError") {
        if ([...pathByRecordId.values()].includes(inputs[i]!.filePath)) {
          violations.push(`input #${i} was refused but is on the stream`)
        }
      }
    })
    // The store: what is left is pointed to, or kept for a record that may be on the stream.
    const objects = yield* memory.objects
    const kept = new Set<string>()
    outcomes.forEach((exits, i) => {
      const exit = exits[0]
      if (exit === undefined || Exit.isSuccess(exit) || exit.cause._tag !== "Fail") return
      const error = exit.cause.error
      if (error._tag !== "RecordUndeliveredError" || error.largePayload === undefined) return
      const id = `${error.largePayload.bucket}/${error.largePayload.key}`
      if (error.largePayload.deleted && objects.has(id)) {
        violations.push(`input #${i}: its object is said deleted but is left`)
      }
      if (!error.largePayload.deleted && !error.maybeDelivered) {
        violations.push(`input #${i} is certainly not on the stream but its object was kept`)
      }
      if (!error.largePayload.deleted) kept.add(id)
    })
    for (const id of objects.keys()) {
      if (!pointedTo.has(id) && !kept.has(id)) {
        violations.push(`object ${id} is pointed to by no record and kept by no error`)
      }
    }
    return {
      seed,
      violations,
      delivered,
      undelivered,
      closed,
      aggregates,
      objects: objects.size,
      closeAt,
      shutdownTimeout
    }
  }).pipe(Logger.withMinimumLogLevel(LogLevel.None))

describe("producer invariants over a simulated 4-shard stream with faults", () => {
  combinations.forEach((combination, c) => {
    it.effect(
      `${
        nameOf(combination)
      }: ${SEEDS_PER_COMBINATION} seeds × ${FIBERS} concurrent fibers, scope closed at a seeded moment: every send settles once, nothing lost or named twice`,
      () =>
        Effect.gen(function*() {
          // Each seed has its own TestClock, so seeds run side by side: most of a seed's time is
          // the TestClock waiting (on the real clock) for its fibers to suspend.
          const reports = yield* Effect.forEach(
            Array.from({ length: SEEDS_PER_COMBINATION }, (_, i) => i),
            (i) => Effect.provide(runSeed(c * SEEDS_PER_COMBINATION + i + 1, combination, i), TestContext.TestContext),
            { concurrency: CONCURRENT_SEEDS }
          )
          const broken = reports.filter((r) => r.violations.length > 0)
          assert.deepStrictEqual(
            broken.map((r) => `seed ${r.seed}: ${r.violations.slice(0, 5).join("; ")}`),
            [],
            `invariants broken for seed(s) ${broken.map((r) => r.seed).join(", ")} (${nameOf(combination)})`
          )
          if (process.env["INVARIANTS_DEBUG"]) {
            console.log(reports.map(({ violations: _violations, ...r }) => JSON.stringify(r)).join("\n"))
          }
          const sum = (f: (r: (typeof reports)[number]) => number) => reports.reduce((n, r) => n + f(r), 0)
          // The scenario must reach every ending, or it proves little.
          assert.isAbove(sum((r) => r.delivered), 0)
          assert.isAbove(sum((r) => r.undelivered), 0, "no send failed undelivered on any seed")
          assert.isAbove(sum((r) => r.closed), 0, "no send was refused at close on any seed")
          assert.isAbove(sum((r) => r.objects), 0, "no large payload on any seed")
        }),
      { timeout: 120_000 }
    )
  })
})
