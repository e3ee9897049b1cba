/**
 * The writer's invariants as properties (RELIABILITY.md › "Invariants"), each checked over at
 * least 200 generated cases: whatever the `Kinesis` service answers, whatever the schedule,
 * the names and the point of interruption,
 *
 * 1. every input record is delivered or named exactly once: a record is counted delivered
 *    only when a well-formed answer said it was written, and a named record that some call
 *    may have written says `maybeDelivered`;
 * 2. no request breaks a Kinesis limit (500 records, keys of 1–256 characters, the record
 *    limit in UTF-8 bytes of data plus key, the request limit);
 * 3. no S3 object outlives a record that is certainly not on the stream, unless the error
 *    names it as not deleted;
 * 4. the writer never blocks the event loop for more than 50 ms, and a deadline ends a batch
 *    whose schedule never stops.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Schedule as ScheduleType } from "effect"
import {
  Cause,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  FastCheck as fc,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Option,
  Schedule
} from "effect"
import { PerformanceObserver } from "node:perf_hooks"
import type {
  DataFileV1,
  KinesisError,
  KinesisWriterOptions,
  PutRecordsResultEntry,
  WriteBatchError
} from "../../src/index.js"
import { KinesisMetrics, KinesisWriter, LargePayloadStore, RecordCodec } from "../../src/index.js"
import { KinesisLimits } from "../../src/internal/core/limits.js"
import type { PutRecordsCall } from "../../src/KinesisTest.js"
import * as ShardSimulator from "../../src/ShardSimulator.js"
import { KinesisTest, RecordGenerator } from "../../src/testing.js"
import { baseOptions } from "../support/writerLayers.js"

const RUNS = { numRuns: 200 }
const LARGE_THRESHOLD = 2_000

/** Inputs with unique file paths (the key back from the stream to the input); `large` ones go to S3. */
const makeInputs = (large: ReadonlyArray<boolean>): Array<DataFileV1> =>
  large.map((isLarge, i) => ({
    ...RecordGenerator.makeDataFile({ seed: i + 1, columns: 2, ...(isLarge ? { serializedBytes: 3_000 } : {}) }),
    filePath: `s3://bucket/table/${i}.parquet`
  }))

const inputIndexOf = (data: Uint8Array): number => {
  const decoded = Either.getOrThrow(RecordCodec.decodeRecordDataSync(data))
  return Number(/\/(\d+)\.parquet$/.exec(decoded.info.filePath)![1])
}

/** How the service answers one call. */
type Answer =
  | { readonly _tag: "ok" }
  | { readonly _tag: "codes"; readonly codes: ReadonlyArray<string | undefined> }
  | { readonly _tag: "short"; readonly drop: number }
  | { readonly _tag: "long"; readonly add: number }
  | { readonly _tag: "malformed"; readonly every: number }
  | { readonly _tag: "callError"; readonly name: string; readonly status: number | undefined }

const answer: fc.Arbitrary<Answer> = fc.oneof(
  fc.constant({ _tag: "ok" as const }),
  fc.record({
    _tag: fc.constant("codes" as const),
    codes: fc.array(
      fc.constantFrom(
        undefined,
        "ProvisionedThroughputExceededException",
        "InternalFailure",
        "KMSAccessDeniedException"
      ),
      { minLength: 1, maxLength: 7 }
    )
  }),
  fc.record({ _tag: fc.constant("short" as const), drop: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ _tag: fc.constant("long" as const), add: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ _tag: fc.constant("malformed" as const), every: fc.integer({ min: 1, max: 4 }) }),
  fc.record({
    _tag: fc.constant("callError" as const),
    name: fc.constantFrom("InternalFailure", "ThrottlingException", "AccessDeniedException", "TimeoutError"),
    status: fc.constantFrom(400, 500, undefined)
  })
)

/** Where the batch is interrupted, if at all. */
type Interruption =
  | { readonly _tag: "none" }
  | { readonly _tag: "call"; readonly at: number }
  | { readonly _tag: "upload"; readonly at: number }
  | { readonly _tag: "delete"; readonly at: number }

const interruption: fc.Arbitrary<Interruption> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ _tag: "none" as const }) },
  fc.record({ _tag: fc.constant("call" as const), at: fc.nat({ max: 4 }) }),
  fc.record({ _tag: fc.constant("upload" as const), at: fc.nat({ max: 3 }) }),
  fc.record({ _tag: fc.constant("delete" as const), at: fc.nat({ max: 2 }) })
)

/** What the service did, as the test sees it. */
interface Observed {
  /** Inputs some well-formed answer said written. */
  readonly confirmed: Set<number>
  /** Inputs a call may have written without saying so (an ill-formed answer, a 5xx, a timeout, a hang). */
  readonly maybeWritten: Set<number>
  calls: number
}

const results = (call: PutRecordsCall): Array<PutRecordsResultEntry> =>
  call.request.records.map((_, i) => ({ _tag: "Written", shardId: "shardId-000000000000", sequenceNumber: `${i}` }))

/** A scripted service: answers in turn, recording what each answer means. */
const scripted = (
  answers: ReadonlyArray<Answer>,
  observed: Observed,
  hangAt: number | undefined,
  reached: Deferred.Deferred<void>
) =>
(call: PutRecordsCall): Effect.Effect<ReadonlyArray<PutRecordsResultEntry>, KinesisError> =>
  Effect.suspend(() => {
    observed.calls++
    const inputs = call.request.records.map((r) => inputIndexOf(r.data))
    const maybe = () => inputs.forEach((i) => observed.maybeWritten.add(i))
    if (call.index === hangAt) {
      maybe()
      return Effect.zipRight(Deferred.succeed(reached, undefined), Effect.never)
    }
    const a = answers[call.index % answers.length]!
    switch (a._tag) {
      case "ok":
      case "codes": {
        const out = results(call).map((entry, i): PutRecordsResultEntry => {
          const code = a._tag === "codes" ? a.codes[i % a.codes.length] : undefined
          if (code === undefined) {
            observed.confirmed.add(inputs[i]!)
            return entry
          }
          return { _tag: "Failed", errorCode: code }
        })
        return Effect.succeed(out)
      }
      case "short":
        maybe()
        return Effect.succeed(results(call).slice(0, Math.max(0, inputs.length - a.drop)))
      case "long":
        maybe()
        return Effect.succeed([...results(call), ...results(call).slice(0, a.add)])
      case "malformed":
        return Effect.succeed(
          results(call).map((entry, i) => {
            if (i % a.every !== 0) {
              observed.confirmed.add(inputs[i]!)
              return entry
            }
            observed.maybeWritten.add(inputs[i]!)
            return { _tag: "Unknown" } as never
          })
        )
      case "callError":
        if (a.status !== 400) maybe()
        return KinesisTest.failCall(call, a.name, {
          httpStatus: a.status,
          retryable: a.name !== "AccessDeniedException"
        })
    }
  })

/** An in-memory store whose `at`-th write or delete (by the interruption) never answers. */
const storeWith = (
  memory: LargePayloadStore.Service,
  interrupt: Interruption,
  reached: Deferred.Deferred<void>
): LargePayloadStore.Service => {
  let writes = 0
  let deletes = 0
  return LargePayloadStore.of({
    ...memory,
    write: (key, bytes) =>
      Effect.suspend(() =>
        interrupt._tag === "upload" && writes++ === interrupt.at
          ? Effect.zipRight(Deferred.succeed(reached, undefined), Effect.never)
          : memory.write(key, bytes)
      ),
    delete: (location) =>
      Effect.suspend(() =>
        interrupt._tag === "delete" && deletes++ === interrupt.at
          ? Effect.zipRight(Deferred.succeed(reached, undefined), Effect.never)
          : memory.delete(location)
      )
  })
}

describe("writer properties: whatever the service answers, the schedule and the interruption point", () => {
  it.effect.prop(
    "every input record is delivered or named exactly once; no S3 object outlives a record certainly not on the stream",
    {
      large: fc.array(fc.boolean(), { minLength: 1, maxLength: 24 }),
      answers: fc.array(answer, { minLength: 1, maxLength: 5 }),
      retries: fc.nat({ max: 4 }),
      interrupt: interruption,
      maxRequestBytes: fc.constantFrom(1024, 4096, 5 * 1024 * 1024)
    },
    ({ answers, interrupt, large, maxRequestBytes, retries }) =>
      Effect.gen(function*() {
        const inputs = makeInputs(large)
        const observed: Observed = { confirmed: new Set(), maybeWritten: new Set(), calls: 0 }
        const reached = yield* Deferred.make<void>()
        const memory = yield* LargePayloadStore.makeMemory("bucket")
        const layer = KinesisWriter.layer({
          ...baseOptions,
          largePayloadThreshold: LARGE_THRESHOLD,
          compressionWorkers: 0,
          maxConcurrentUploads: 2,
          maxRequestBytes,
          // A stream whose records are at most maxRequestBytes (1 MiB at most): calls of one
          // record at 1 KiB.
          readStreamRecordLimit: true
        }).pipe(
          Layer.provide(Layer.mergeAll(
            KinesisTest.layer(
              scripted(answers, observed, interrupt._tag === "call" ? interrupt.at : undefined, reached),
              { maxRecordSizeInKiB: Math.min(1024, maxRequestBytes / 1024) }
            ),
            Layer.succeed(LargePayloadStore, storeWith(memory.service, interrupt, reached)),
            KinesisMetrics.layerNoop
          ))
        )
        const writer = yield* Effect.provide(KinesisWriter, layer)
        const fiber = yield* Effect.fork(writer.writeBatch(inputs, { schedule: Schedule.recurs(retries) }))
        yield* Effect.raceFirst(Deferred.await(reached), Effect.asVoid(Fiber.await(fiber)))
        const exit = yield* Fiber.interrupt(fiber)
        const objects = yield* memory.objects

        let error: WriteBatchError | undefined
        if (Exit.isFailure(exit)) {
          const failure = Cause.failureOption(exit.cause)
          if (Option.isNone(failure)) {
            // Interrupted before delivery (an upload hung): nothing sent, nothing left in S3.
            assert.isTrue(Cause.isInterrupted(exit.cause), Cause.pretty(exit.cause))
            assert.strictEqual(observed.calls, 0)
            assert.strictEqual(objects.size, 0, "objects left by a batch interrupted before sending")
            return
          }
          if (failure.value._tag !== "WriteBatchError") {
            // A payload build error: nothing sent, its objects deleted.
            assert.strictEqual(observed.calls, 0)
            assert.strictEqual(objects.size, 0)
            return
          }
          error = failure.value
        }
        const named = new Map((error?.undelivered ?? []).map((u) => [u.index, u]))
        assert.strictEqual(named.size, error?.undelivered.length ?? 0, "a record named twice")
        if (error !== undefined) assert.strictEqual(error.delivered + error.undelivered.length, inputs.length)
        for (let i = 0; i < inputs.length; i++) {
          const u = named.get(i)
          if (u === undefined) {
            assert.isTrue(observed.confirmed.has(i), `input #${i} counted delivered without a result that says so`)
          } else {
            assert.isFalse(observed.confirmed.has(i), `input #${i} named though written`)
            assert.strictEqual(u.record, inputs[i])
            if (observed.maybeWritten.has(i)) assert.isTrue(u.maybeDelivered, `input #${i} may be on the stream`)
          }
          if (!large[i]) continue
          const key = `bucket/lg-schema-test-stream/${u?.recordId ?? ""}`
          if (u === undefined || u.maybeDelivered) {
            if (u !== undefined) assert.isTrue(objects.has(key), `input #${i}: object of a maybe-delivered record`)
          } else {
            // Certainly not on the stream: deleted, or (its delete interrupted) named as not deleted.
            assert.isDefined(u.largePayload)
            if (u.largePayload!.deleted || interrupt._tag !== "delete") {
              assert.isTrue(u.largePayload!.deleted, `input #${i}: not deleted`)
              assert.isFalse(objects.has(key), `input #${i}: orphan object`)
            }
          }
        }
        // Exactly the objects of large records on or maybe on the stream, and those named not deleted.
        const kept = [...named.values()].filter((u) => u.largePayload !== undefined && !u.largePayload.deleted).length
        const delivered = large.filter((l, i) => l && !named.has(i)).length
        if (interrupt._tag === "delete") assert.isAtMost(objects.size, kept + delivered, "objects in the store")
        else assert.strictEqual(objects.size, kept + delivered, "objects in the store")
      }).pipe(Logger.withMinimumLogLevel(LogLevel.None)),
    { fastCheck: RUNS }
  )

  /** Characters of 1 to 4 UTF-8 bytes, one or two UTF-16 units. */
  const char = fc.constantFrom("a", "Z", "-", "é", "ß", "中", "日", "한", "😀", "🚀", "𝄞")

  it.effect.prop(
    "no request breaks a Kinesis limit, whatever the names (any script, keys at the 256 edge) and however many retries the schedule asks",
    {
      logGroup: fc.array(char, { minLength: 1, maxLength: 120 }),
      slack: fc.nat({ max: 2 }),
      maxRetries: fc.nat({ max: 9 }),
      distributionFactor: fc.integer({ min: 1, max: 20 }),
      refusals: fc.nat({ max: 12 }),
      sizes: fc.array(fc.integer({ min: -1_500, max: 300 }), { minLength: 1, maxLength: 6 }),
      // At least the record limit: a smaller one is refused when the writer is built.
      maxRequestBytes: fc.constantFrom(16 * 1024, 20 * 1024, 64 * 1024)
    },
    ({ distributionFactor, logGroup, maxRequestBytes, maxRetries, refusals, sizes, slack }) =>
      Effect.gen(function*() {
        const recordLimit = 16 * 1024
        // The schema name fills the longest key up to 256 - slack characters at maxRetries.
        const fixed = 3 + String(distributionFactor - 1).length + String(maxRetries).length
        const schemaLength = Math.max(1, KinesisLimits.maxPartitionKeyLength - slack - fixed - logGroup.length)
        const schemaName = Array.from({ length: schemaLength }, (_, i) => logGroup[i % logGroup.length]!).join("")
        const violations: Array<string> = []
        const check = (call: PutRecordsCall) => {
          const records = call.request.records
          if (records.length < 1 || records.length > KinesisLimits.maxRecordsPerCall) {
            violations.push(`${records.length} records`)
          }
          let bytes = 0
          for (const r of records) {
            const chars = [...r.partitionKey].length
            if (chars < 1 || chars > KinesisLimits.maxPartitionKeyLength) {
              violations.push(`a key of ${chars} characters`)
            }
            const size = r.data.length + Buffer.byteLength(r.partitionKey, "utf8")
            if (size > recordLimit) violations.push(`a record of ${size} bytes`)
            bytes += size
          }
          if (bytes > maxRequestBytes) violations.push(`a call of ${bytes} bytes`)
        }
        const options: KinesisWriterOptions = {
          ...baseOptions,
          logGroupId: logGroup.join(""),
          schemaName,
          distributionFactor,
          maxRetries,
          maxRequestBytes,
          readStreamRecordLimit: true,
          compressionWorkers: 0
        }
        const layer = KinesisWriter.layer(options).pipe(
          Layer.provide(Layer.mergeAll(
            KinesisTest.layer((call) => {
              check(call)
              return call.index < refusals
                ? KinesisTest.failEach(call, "ProvisionedThroughputExceededException")
                : KinesisTest.acceptAll(call)
            }, { maxRecordSizeInKiB: recordLimit / 1024 }),
            LargePayloadStore.layerMemory(),
            KinesisMetrics.layerNoop
          ))
        )
        const inputs = sizes.map((delta, i) => ({
          ...RecordGenerator.makeDataFile({ seed: i + 1, serializedBytes: recordLimit + delta - 400 }),
          filePath: `s3://bucket/表/${"😀".repeat(i)}${i}.parquet`
        }))
        const writer = yield* Effect.either(Effect.provide(KinesisWriter, layer))
        if (Either.isLeft(writer)) return assert.fail(`names that fit were refused: ${writer.left.message}`)
        const outcome = yield* Effect.either(writer.right.writeBatch(inputs, { schedule: Schedule.recurs(12) }))
        assert.deepStrictEqual(violations, [])
        if (Either.isLeft(outcome)) {
          const error = outcome.left
          if (error._tag !== "WriteBatchError") return assert.fail(error.message)
          // Only a retry beyond what the keys or records can carry stops a record short.
          for (const u of error.undelivered) assert.strictEqual(u.errorCode, "AttemptLimit", u.errorMessage)
        }
      }).pipe(Logger.withMinimumLogLevel(LogLevel.None)),
    { fastCheck: RUNS }
  )
})

describe("writer properties: the event loop and deadlines", () => {
  let warmedUp = false

  /**
   * The longest stretch the event loop was held while `self` runs: between two turns (a 1 ms
   * interval), the CPU time the process spent, less the garbage collector's pauses, so that
   * neither a turn delayed because other processes held the machine's CPU nor a collection
   * counts as the writer's own work.
   */
  const longestBlock = <A, E, R>(self: Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        const gaps: Array<{ readonly start: number; readonly end: number; readonly cpu: number }> = []
        const collections: Array<{ readonly start: number; readonly end: number }> = []
        const observer = new PerformanceObserver((list) => {
          for (const e of list.getEntries()) collections.push({ start: e.startTime, end: e.startTime + e.duration })
        })
        observer.observe({ entryTypes: ["gc"] })
        let last = performance.now()
        let cpu = process.cpuUsage()
        const tick = () => {
          const now = performance.now()
          const used = process.cpuUsage(cpu)
          gaps.push({ start: last, end: now, cpu: (used.user + used.system) / 1000 })
          last = now
          cpu = process.cpuUsage()
        }
        const timer = setInterval(tick, 1)
        const longest = () =>
          gaps.reduce((longest, gap) => {
            const collecting = collections.reduce(
              (ms, c) => ms + Math.max(0, Math.min(gap.end, c.end) - Math.max(gap.start, c.start)),
              0
            )
            return Math.max(longest, Math.min(gap.end - gap.start, gap.cpu) - collecting)
          }, 0)
        return { tick, timer, observer, longest }
      }),
      (m) =>
        Effect.gen(function*() {
          const a = yield* self
          m.tick()
          // Collections are reported a turn later.
          yield* Effect.sleep("2 millis")
          return { a, longest: m.longest() }
        }),
      (m) =>
        Effect.sync(() => {
          clearInterval(m.timer)
          m.observer.disconnect()
        })
    )

  it.live.prop(
    "a schedule that never stops, over services that answer synchronously: timers run, and a deadline or an interruption ends the batch",
    {
      records: fc.integer({ min: 1, max: 700 }),
      service: fc.constantFrom("refuseAll", "simulator"),
      schedule: fc.constantFrom("forever", "spaced"),
      end: fc.record({ _tag: fc.constantFrom("deadline", "interrupt"), millis: fc.integer({ min: 1, max: 25 }) })
    },
    ({ end, records, schedule, service }) =>
      Effect.gen(function*() {
        const kinesis = service === "refuseAll"
          ? KinesisTest.layer((call) => KinesisTest.failEach(call, "ProvisionedThroughputExceededException"))
          : ShardSimulator.layer({ shards: 2, seed: records, recordsPerSecondPerShard: 1 })
        const layer = KinesisWriter.layer({ ...baseOptions, compressionWorkers: 0 }).pipe(
          Layer.provide(Layer.mergeAll(kinesis, LargePayloadStore.layerMemory(), KinesisMetrics.layerNoop))
        )
        const writer = yield* Effect.provide(KinesisWriter, layer)
        const batch = RecordGenerator.makeDataFiles(records, { columns: 2 })
        const forever: ScheduleType.Schedule<unknown, unknown> = schedule === "forever"
          ? Schedule.forever
          : Schedule.spaced("1 millis")
        const started = performance.now()
        // The first batch of the file loads and compiles code paths: not the writer's to count.
        if (!warmedUp) {
          warmedUp = true
          yield* Effect.exit(writer.writeBatch(batch, { deadline: "10 millis" }))
        }
        const { a: exit, longest } = yield* longestBlock(
          end._tag === "deadline"
            ? Effect.exit(writer.writeBatch(batch, { schedule: forever, deadline: Duration.millis(end.millis) }))
            : Effect.flatMap(Effect.fork(writer.writeBatch(batch, { schedule: forever })), (fiber) =>
              Effect.zipRight(Effect.sleep(Duration.millis(end.millis)), Fiber.interrupt(fiber)))
        )
        const took = performance.now() - started
        assert.isAtMost(longest, 50, `the event loop was blocked for ${longest.toFixed(1)} ms`)
        assert.isAtMost(took, end.millis + 1_000, "the batch ended long after its deadline or interruption")
        // A simulated shard takes a record or two at once: a tiny batch may be delivered.
        if (Exit.isSuccess(exit)) {
          return assert.strictEqual(service, "simulator")
        }
        const failure = Cause.failureOption(exit.cause)
        // Interrupted while its payloads were being built: nothing was sent.
        if (Option.isNone(failure)) {
          return assert.isTrue(end._tag === "interrupt" && Cause.isInterrupted(exit.cause))
        }
        const error = failure.value
        if (error._tag !== "WriteBatchError") {
          return assert.fail(error.message)
        }
        assert.strictEqual(error.delivered + error.undelivered.length, records)
        if (end._tag === "deadline") {
          assert.isFalse(Cause.isInterrupted(exit.cause))
          assert.isTrue(error.undelivered.every((u) =>
            u.errorCode === "DeadlineExceeded"
          ))
        } else {
          assert.isTrue(Cause.isInterrupted(exit.cause) && error.interrupted)
        }
      }).pipe(Logger.withMinimumLogLevel(LogLevel.None)),
    { fastCheck: RUNS, timeout: 120_000 }
  )
})
