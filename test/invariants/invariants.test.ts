/**
 * Invariants of the real writer over a simulated 4-shard stream with Kinesis' limits and
 * seeded faults (per-record InternalFailure, throttled calls, server errors and timeouts,
 * some of which wrote records before failing). For every seed, whatever happened:
 *
 * - every input record is on the stream or named in `WriteBatchError.undelivered`;
 * - a record named undelivered is on the stream only after an ambiguous call wrote it, and
 *   then says `maybeDelivered`;
 * - a record is written by a call that reported it written at most once; any other copy
 *   comes from an ambiguous call, and every copy carries the same `record_id`;
 * - every large entry on the stream points at an object that exists and verifies, every
 *   record reads back as its input, and the store keeps exactly the objects of records that
 *   are or may be on the stream (those of records certainly undelivered are deleted);
 * - `delivered + undelivered.length` is the batch size.
 *
 * Each scenario runs with aggregation off and on. With it on, a Kinesis record may be an
 * aggregate of the records that share its partition key: the checks read every member of
 * every Kinesis record and hold per logical record (an aggregate written by a call that
 * reported it written writes each member once).
 *
 * Time is the TestClock's: the batch runs in a fiber while the test advances the clock, and
 * the writer compresses on the calling thread (`compressionWorkers: 0`) so that the clock
 * owns every wait. A seed replays the same run: it seeds the simulator's faults, the
 * backoff's jitter and the record ids (`randomUUID` is replaced by a seeded one here, since
 * record ids change the gzip'd sizes and so where calls split). One scenario runs the
 * worker-thread compressor on the live clock instead; it checks the same invariants but is
 * not replayable. `INVARIANTS_DEBUG=1` prints each seed's outcome.
 */
import { equals } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Clock,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Option,
  Random,
  TestClock
} from "effect"
import type * as NodeCrypto from "node:crypto"
import { vi } from "vitest"
import type { DataFileV1, KinesisWriterOptions, WriteBatchError, WriteResult } from "../../src/index.js"
import {
  DataFileV1Schema,
  KinesisMetrics,
  KinesisWriter,
  LargePayloadStore,
  RecordCodec,
  RecordReader
} from "../../src/index.js"
import * as ShardSimulator from "../../src/ShardSimulator.js"
import { RecordGenerator } from "../../src/testing.js"
import { streamRecordLimit } from "../support/writerLayers.js"

/** Seeded record ids: `uuids.next` is reset per seed. */
const uuids = vi.hoisted(() => ({ next: (): string => "00000000-0000-4000-8000-000000000000" }))
vi.mock("node:crypto", async (importOriginal) => {
  const original = await importOriginal<typeof NodeCrypto>()
  return { ...original, randomUUID: () => uuids.next() }
})

const seededUuids = (seed: number): () => string => {
  const rand = RecordGenerator.prng(seed * 7919 + 1)
  const hex = (digits: number) => Array.from({ length: digits }, () => Math.floor(rand() * 16).toString(16)).join("")
  return () => `${hex(8)}-${hex(4)}-4${hex(3)}-${"89ab"[Math.floor(rand() * 4)]}${hex(3)}-${hex(12)}`
}

const RECORDS = 1_000
const LARGE_THRESHOLD = 2_048
const LARGE_BYTES = 4_096

interface Scenario {
  readonly seeds: ReadonlyArray<number>
  /** Records per batch. Default 1,000. */
  readonly records?: number | undefined
  readonly simulator: (seed: number) => Omit<ShardSimulator.ShardSimulatorOptions, "shards" | "seed">
  readonly writer: (seed: number) => Partial<KinesisWriterOptions>
  /**
   * Run on the live clock (under `it.live`) instead of driving the TestClock: for the
   * worker-thread compressor, whose real asynchronous work the TestClock cannot see.
   */
  readonly live?: boolean | undefined
}

interface SeedReport {
  readonly seed: number
  readonly outcome: "delivered" | "failed"
  readonly violations: ReadonlyArray<string>
  readonly undelivered: number
  readonly undeliveredOnStream: number
  readonly duplicates: number
  readonly ambiguousCalls: number
  readonly throttledRecords: number
  readonly largeOnStream: number
  /** Kinesis records on the stream that carry more than one logical record. */
  readonly aggregates: number
  readonly simulatedMillis: number
}

const faults = {
  recordFailureRate: 0.02,
  callFaults: { throttling: 0.03, serverError: 0.03, timeout: 0.03, ambiguousWriteRate: 0.5 }
} as const

/** Records of 8 columns, about 5% of them over the large-payload threshold; file paths unique in the batch. */
const inputs = (seed: number, count: number): Array<DataFileV1> => {
  const rand = RecordGenerator.prng(seed ^ 0x5eed)
  return Array.from({ length: count }, (_, i) =>
    RecordGenerator.makeDataFile({
      columns: 8,
      seed: seed * 10_000 + i,
      ...(rand() < 0.05 ? { serializedBytes: LARGE_BYTES } : {})
    }))
}

const runSeed = (scenario: Scenario, seed: number) =>
  Effect.gen(function*() {
    const records = inputs(seed, scenario.records ?? RECORDS)
    uuids.next = seededUuids(seed)
    const memory = yield* LargePayloadStore.makeMemory()
    const storeLayer = Layer.succeed(LargePayloadStore, memory.service)
    const layer = KinesisWriter.layer({
      streamName: "invariants",
      logGroupId: "lg",
      schemaName: "schema",
      accountId: "123456789012",
      largePayloadThreshold: LARGE_THRESHOLD,
      // On the calling thread, so that the TestClock owns every wait; see Scenario.live.
      compressionWorkers: 0,
      ...scenario.writer(seed)
    }).pipe(
      // Calls of 64 KiB (several per attempt) need a stream whose records are at most that.
      Layer.provide(streamRecordLimit(64)),
      Layer.provideMerge(ShardSimulator.layer({ ...scenario.simulator(seed), shards: 4, seed })),
      Layer.provideMerge(storeLayer),
      Layer.provideMerge(KinesisMetrics.layerNoop)
    )
    return yield* Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const state = yield* ShardSimulator.ShardSimulatorState
      const start = yield* Clock.currentTimeMillis
      // The backoff's jitter is seeded too.
      const fiber = yield* Effect.fork(
        writer.writeBatch(records).pipe(
          Effect.either,
          Effect.withRandom(Random.make(seed)),
          Logger.withMinimumLogLevel(LogLevel.Error)
        )
      )
      if (scenario.live === true) {
        yield* Effect.ignore(Effect.timeout(Fiber.await(fiber), "30 seconds"))
      } else {
        // Simulated time moves only while the writer waits for its backoff (a sleep of at most
        // backoffCap, 10 s; a call's request timeout is 30 s away), a second at a time; while
        // it works — it lets the event loop turn between slices of work — time stands still,
        // as it nearly does for a real writer between the calls of one attempt.
        const realDeadline = Date.now() + 60_000
        for (let step = 0; step < 600 && Option.isNone(yield* Fiber.poll(fiber)) && Date.now() < realDeadline;) {
          const now = yield* Clock.currentTimeMillis
          if (Chunk.some(yield* TestClock.sleeps(), (wake) => wake <= now + 10_000)) {
            yield* TestClock.adjust("1 second")
            step++
          } else {
            yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
          }
        }
      }
      const exit = yield* Fiber.poll(fiber)
      const simulatedMillis = (yield* Clock.currentTimeMillis) - start
      if (Option.isNone(exit)) {
        yield* Fiber.interrupt(fiber)
        return report(seed, "failed", [`writeBatch still running after ${simulatedMillis} ms`])
      }
      if (Exit.isFailure(exit.value)) {
        return report(seed, "failed", [`writeBatch died: ${Cause.pretty(exit.value.cause).split("\n")[0]}`])
      }
      const outcome = exit.value.value
      if (Either.isLeft(outcome) && outcome.left._tag !== "WriteBatchError") {
        return report(seed, "failed", [`writeBatch failed before delivery: ${outcome.left.message}`])
      }
      return yield* check(seed, records, outcome as Either.Either<WriteResult, WriteBatchError>, {
        written: yield* state.written,
        calls: yield* state.calls,
        totals: yield* state.totals,
        objects: yield* memory.objects,
        simulatedMillis
      }).pipe(Effect.provide(storeLayer))
    }).pipe(Effect.provide(layer))
  })

const report = (seed: number, outcome: SeedReport["outcome"], violations: ReadonlyArray<string>): SeedReport => ({
  seed,
  outcome,
  violations,
  undelivered: 0,
  undeliveredOnStream: 0,
  duplicates: 0,
  ambiguousCalls: 0,
  throttledRecords: 0,
  largeOnStream: 0,
  aggregates: 0,
  simulatedMillis: 0
})

interface Copy {
  readonly recordId: string
  readonly input: number
  readonly definite: boolean
  /** The Kinesis record's Data: the record alone, or an aggregate holding it at `member`. */
  readonly data: Uint8Array
  readonly member: number
  readonly large: boolean
}

const check = (
  seed: number,
  records: ReadonlyArray<DataFileV1>,
  outcome: Either.Either<WriteResult, WriteBatchError>,
  observed: {
    readonly written: ReadonlyArray<ShardSimulator.SimulatedRecord>
    readonly calls: ReadonlyArray<ShardSimulator.SimulatedCall>
    readonly totals: ShardSimulator.SimulatorTotals
    readonly objects: ReadonlyMap<string, Uint8Array>
    readonly simulatedMillis: number
  }
) =>
  Effect.gen(function*() {
    const violations: Array<string> = []
    const isLarge = records.map((r) => RecordGenerator.serializedSize(r) > LARGE_THRESHOLD)
    const inputByPath = new Map(records.map((r, i) => [r.filePath, i]))
    if (inputByPath.size !== records.length) violations.push("the generator made duplicate file paths")

    // What the stream holds, mapped back to the inputs by file path.
    const copiesByInput = new Map<number, Array<Copy>>()
    let aggregates = 0
    for (const w of observed.written) {
      const decoded = RecordCodec.decodeRecordDataAllSync(w.data)
      if (Either.isLeft(decoded)) {
        violations.push(`undecodable record on ${w.shardId}: ${decoded.left.message}`)
        continue
      }
      if (decoded.right.length > 1) aggregates++
      decoded.right.forEach((member, m) => {
        const input = inputByPath.get(member.info.filePath)
        if (input === undefined) {
          violations.push(`record ${member.info.recordId} on the stream matches no input`)
          return
        }
        const copies = copiesByInput.get(input) ?? []
        copies.push({
          recordId: member.info.recordId,
          input,
          definite: !observed.calls[w.callIndex]!.ambiguous,
          data: w.data,
          member: m,
          large: member.entry._tag === "large"
        })
        copiesByInput.set(input, copies)
      })
    }

    let duplicates = 0
    for (const [input, copies] of copiesByInput) {
      const ids = new Set(copies.map((c) => c.recordId))
      if (ids.size > 1) violations.push(`input #${input} is on the stream under ${ids.size} record_ids`)
      if (copies.length > 1) duplicates++
      const definite = copies.filter((c) => c.definite).length
      if (definite > 1) {
        violations.push(`input #${input} was written ${definite} times by calls that reported it written`)
      }
    }

    // Every input delivered, or named undelivered.
    const undelivered = Either.isLeft(outcome) ? outcome.left.undelivered : []
    const undeliveredByIndex = new Map(undelivered.map((u) => [u.index, u]))
    let undeliveredOnStream = 0
    if (Either.isRight(outcome)) {
      const result = outcome.right
      if (result.records !== records.length || result.recordIds.length !== records.length) {
        violations.push(
          `WriteResult counts ${result.records} records and ${result.recordIds.length} ids for ${records.length} inputs`
        )
      }
    } else {
      const error = outcome.left
      if (error.delivered + error.undelivered.length !== records.length) {
        violations.push(`delivered ${error.delivered} + undelivered ${error.undelivered.length} ≠ ${records.length}`)
      }
      if (undeliveredByIndex.size !== undelivered.length) violations.push("a record is named undelivered twice")
      if (error.interrupted) violations.push("the batch says it was interrupted")
    }
    for (let i = 0; i < records.length; i++) {
      const copies = copiesByInput.get(i) ?? []
      const definite = copies.filter((c) => c.definite).length
      const named = undeliveredByIndex.get(i)
      const expectedId = Either.isRight(outcome) ? outcome.right.recordIds[i] : named?.recordId
      if (expectedId !== undefined && copies.some((c) => c.recordId !== expectedId)) {
        violations.push(`input #${i} is on the stream with a record_id other than the one the writer reports`)
      }
      if (named === undefined) {
        if (definite !== 1) {
          violations.push(
            `input #${i} is neither named undelivered nor written once by a call that reported it (${definite} such copies, ${copies.length} in all)`
          )
        }
        continue
      }
      if (named.record !== records[i]) violations.push(`undelivered #${i} does not carry its input record`)
      if (definite > 0) {
        violations.push(`input #${i} is named undelivered (${named.errorCode}) though a call reported it written`)
      }
      if (copies.length > 0) {
        undeliveredOnStream++
        // On the stream only through an ambiguous call (definite copies are checked above), and it must say so.
        if (!named.maybeDelivered) {
          violations.push(`input #${i} is on the stream but named undelivered with maybeDelivered false`)
        }
        if (named.largePayload?.deleted === true) {
          violations.push(`input #${i} is on the stream but its large payload was deleted`)
        }
      }
      if (
        named.largePayload?.deleted === true &&
        observed.objects.has(`${named.largePayload.bucket}/${named.largePayload.key}`)
      ) {
        violations.push(`input #${i}: its large payload is said deleted but is still in the store`)
      }
      if (named.largePayload !== undefined && !named.maybeDelivered && !named.largePayload.deleted) {
        violations.push(`input #${i} is certainly undelivered but its large payload was kept`)
      }
    }
    // One object per large input, written once; those of records certainly not delivered deleted.
    const largeInputs = isLarge.filter((large) => large).length
    const deleted = undelivered.filter((u) => u.largePayload?.deleted === true).length
    if (observed.objects.size !== largeInputs - deleted) {
      violations.push(
        `the store holds ${observed.objects.size} objects for ${largeInputs} large inputs of which ${deleted} deleted`
      )
    }

    // Every record on the stream reads back as its input; large ones through their verified S3 object.
    let largeOnStream = 0
    // An aggregate is read once, not once per member.
    const readBack = new Map<Uint8Array, Either.Either<Array<RecordReader.DecodedRecord>, RecordReader.ReadError>>()
    for (const [input, copies] of copiesByInput) {
      const copy = copies[0]!
      if (copy.large !== isLarge[input]) {
        violations.push(`input #${input} is ${copy.large ? "large" : "standard"} on the stream, expected the opposite`)
      }
      if (copy.large) largeOnStream++
      const read = readBack.get(copy.data) ?? (yield* Effect.either(RecordReader.decodeRecordAll(copy.data)))
      readBack.set(copy.data, read)
      if (Either.isLeft(read)) violations.push(`input #${input} does not read back: ${read.left.message}`)
      else if (!equals(DataFileV1Schema, read.right[copy.member]!.dataFile, records[input]!)) {
        violations.push(`input #${input} reads back different`)
      }
    }

    return {
      seed,
      outcome: Either.isRight(outcome) ? "delivered" : "failed",
      violations,
      undelivered: undelivered.length,
      undeliveredOnStream,
      duplicates,
      ambiguousCalls: observed.calls.filter((c) => c.ambiguous).length,
      throttledRecords: observed.totals.throttled,
      largeOnStream,
      aggregates,
      simulatedMillis: observed.simulatedMillis
    } satisfies SeedReport
  })

/** Runs every seed of a scenario; fails naming each seed whose run broke an invariant. */
const runScenario = (scenario: Scenario) =>
  Effect.gen(function*() {
    const reports: Array<SeedReport> = []
    for (const seed of scenario.seeds) reports.push(yield* runSeed(scenario, seed))
    const broken = reports.filter((r) => r.violations.length > 0)
    assert.deepStrictEqual(
      broken.map((r) => `seed ${r.seed}: ${r.violations.length} violation(s): ${r.violations.slice(0, 5).join("; ")}`),
      [],
      `invariants broken for seed(s) ${broken.map((r) => r.seed).join(", ")}`
    )
    if (process.env["INVARIANTS_DEBUG"]) {
      console.log(reports.map(({ violations: _violations, ...r }) => JSON.stringify(r)).join("\n"))
    }
    return reports
  })

const sum = (reports: ReadonlyArray<SeedReport>, f: (r: SeedReport) => number) => reports.reduce((n, r) => n + f(r), 0)

/**
 * Aggregation off, and on. Where calls and records are held to 64 KiB (`streamRecordLimit`),
 * aggregates of 32 KiB (the default 256 KiB would not fit a record once gzip'd, and the layer
 * refuses it); on Kinesis' real limits, the defaults.
 */
const aggregations = [
  { name: "aggregation off", small: {}, real: {} },
  {
    name: "aggregation on",
    small: { aggregation: { maxBytes: 32 * 1024 } },
    real: { aggregation: {} }
  }
] as const satisfies ReadonlyArray<
  { readonly name: string; readonly small: Partial<KinesisWriterOptions>; readonly real: Partial<KinesisWriterOptions> }
>

/** With aggregation on, the run must have aggregated, or it proves nothing about aggregates. */
const assertAggregated = (on: boolean, reports: ReadonlyArray<SeedReport>) =>
  on
    ? assert.isAbove(sum(reports, (r) => r.aggregates), 0, "no aggregate on the stream")
    : assert.strictEqual(sum(reports, (r) => r.aggregates), 0, "an aggregate on the stream with aggregation off")

const limitsUnderTheLoad = {
  distributionFactor: 16,
  maxRequestBytes: 64 * 1024,
  readStreamRecordLimit: true
} as const satisfies Partial<KinesisWriterOptions>

for (const aggregation of aggregations) {
  describe(`writer invariants over a simulated 4-shard stream with faults, ${aggregation.name}`, () => {
    const on = aggregation.name === "aggregation on"
    // 4 × 250 records/s, 4 × 256 KiB/s: the first second cannot take the whole batch on an
    // uneven key spread. Aggregated, the batch is ~33 Kinesis records of up to 32 KiB: a
    // shard's bytes are what must fall short, at 4 × 64 KiB/s.
    const underTheLoad = on
      ? { bytesPerSecondPerShard: 64 * 1024 }
      : { recordsPerSecondPerShard: 250, bytesPerSecondPerShard: 256 * 1024 }
    // Each combination runs half the seeds the suite ran before it had two.
    const offset = on ? 10 : 0

    it.effect(
      "10 seeds × 1,000 records, limits a little under the load, maxRetries 2–5: nothing lost unnamed, duplicates only from ambiguous calls",
      () =>
        Effect.gen(function*() {
          const reports = yield* runScenario({
            seeds: Array.from({ length: 10 }, (_, i) => offset + i + 1),
            simulator: () => ({ ...faults, ...underTheLoad }),
            writer: (seed) => ({ ...limitsUnderTheLoad, maxRetries: 2 + (seed % 4), ...aggregation.small })
          })
          // The scenario must exercise both endings and the ambiguous paths, or it proves little.
          const delivered = reports.filter((r) => r.outcome === "delivered").length
          assert.isAbove(delivered, 0, "no seed delivered everything")
          assert.isBelow(delivered, reports.length, "no seed ran out of retries")
          assert.isAbove(sum(reports, (r) => r.duplicates), 0, "no duplicate on any seed")
          assert.isAbove(sum(reports, (r) => r.throttledRecords), 0, "no shard throttling on any seed")
          assert.isAbove(sum(reports, (r) => r.largeOnStream), 0, "no large payload on any seed")
          assertAggregated(on, reports)
        }),
      { timeout: 120_000 }
    )

    it.effect(
      "Kinesis' real limits: the writer's defaults (2 seeds), and a hot partition key taking 1,500 records to one shard (2 seeds)",
      () =>
        Effect.gen(function*() {
          const defaults = yield* runScenario({
            seeds: on ? [203, 204] : [201, 202],
            simulator: () => faults,
            writer: () => aggregation.real
          })
          // distributionFactor 1: one key per attempt, so one shard takes an attempt's records;
          // 1,500 do not fit its 1,000 records/s, and only retries in the next second deliver them.
          // Aggregated, they travel as a few large records: the shard's bytes, not its record
          // count, are what they strain.
          const hot = yield* runScenario({
            seeds: on ? [207, 208] : [205, 206],
            records: 1_500,
            simulator: () => faults,
            writer: () => ({ distributionFactor: 1, maxRetries: 5, ...aggregation.real })
          })
          if (!on) { for (const r of hot) assert.isAtLeast(r.throttledRecords, 300, `seed ${r.seed}`) }
          assertAggregated(on, [...defaults, ...hot])
        }),
      { timeout: 60_000 }
    )

    it.effect(
      on
        // 20 records/s would not throttle aggregates of hundreds of records: only bytes can.
        ? "permanent throttling (16 KiB/s per shard): retries run out and WriteBatchError names every record not on the stream"
        : "permanent throttling (20 records/s per shard, or 16 KiB/s): retries run out and WriteBatchError names every record not on the stream",
      () =>
        Effect.gen(function*() {
          const byRecords = on ? [] : yield* runScenario({
            seeds: [101, 102],
            simulator: () => ({ ...faults, recordsPerSecondPerShard: 20 }),
            writer: () => ({ ...limitsUnderTheLoad, maxRetries: 3 })
          })
          const byBytes = yield* runScenario({
            seeds: on ? [112, 113] : [111],
            simulator: () => ({ ...faults, bytesPerSecondPerShard: 16 * 1024 }),
            writer: () => ({ ...limitsUnderTheLoad, maxRetries: 3, ...aggregation.small })
          })
          for (const r of [...byRecords, ...byBytes]) {
            assert.strictEqual(r.outcome, "failed", `seed ${r.seed} delivered everything`)
            assert.isAbove(r.undelivered, 500, `seed ${r.seed}`)
          }
          assertAggregated(on, byBytes)
        }),
      { timeout: 60_000 }
    )

    it.live(
      `the worker-thread compressor on the live clock: ${on ? 1 : 2} seed(s), limits under the load, all faults on`,
      () =>
        Effect.gen(function*() {
          const reports = yield* runScenario({
            seeds: on ? [303] : [301, 302],
            live: true,
            simulator: () => ({ ...faults, ...underTheLoad }),
            writer: () => ({ ...limitsUnderTheLoad, maxRetries: 4, compressionWorkers: 1, ...aggregation.small })
          })
          assert.isAbove(sum(reports, (r) => r.throttledRecords), 0, "no shard throttling on any seed")
          assertAggregated(on, reports)
        }),
      { timeout: 60_000 }
    )
  })
}
