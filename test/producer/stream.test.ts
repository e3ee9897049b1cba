/**
 * `KinesisProducer.sendStream` and the sink: every element taken from a stream is delivered or
 * named — in the run's one error when the upstream fails, the sends fail or the producer
 * closes; and, when the run is interrupted (or a sink's upstream fails), in the error and then
 * in `onUndelivered` or the log as each settles.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Data,
  Deferred,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Option,
  Scope,
  Stream
} from "effect"
import type { DataFileV1, KinesisProducerOptions, RecordUndeliveredError } from "../../src/index.js"
import { KinesisProducer, LargePayloadStore, RecordCodec } from "../../src/index.js"
import type { PutRecordsScript } from "../../src/KinesisTest.js"
import { KinesisTestRecorder } from "../../src/KinesisTest.js"
import { KinesisTest, RecordGenerator } from "../../src/testing.js"
import { capturingLogs } from "../support/logs.js"
import { writerLayer } from "../support/writerLayers.js"

const quiet = Logger.withMinimumLogLevel(LogLevel.None)

const records = (n: number, seed = 1) =>
  Array.from({ length: n }, (_, i) => RecordGenerator.makeDataFile({ seed: seed * 1_000 + i, columns: 3 }))

class UpstreamError extends Data.TaggedError("UpstreamError")<{ readonly after: number }> {}

const producerOver = (script: PutRecordsScript, options: KinesisProducerOptions = {}) =>
  KinesisProducer.layer({ linger: "5 millis", ...options }).pipe(
    Layer.provideMerge(
      writerLayer(script, { compressionWorkers: 0, maxRetries: 0 }, { store: LargePayloadStore.layerMemory() })
    )
  )

const filePathOf = (data: Uint8Array): string => {
  const decoded = Either.getOrThrow(RecordCodec.decodeRecordDataSync(data))
  return decoded.entry._tag === "standard" ? decoded.entry.dataFile.filePath : ""
}

/** A Kinesis double that refuses, for good, the records whose file path is in `refused`. */
const refusing = (refused: ReadonlySet<string>): PutRecordsScript => (call) =>
  KinesisTest.perRecord(call, (r) => refused.has(filePathOf(r.data)) ? "KMSAccessDeniedException" : undefined)

/** The file paths of every record the double wrote. */
const written = (refused: ReadonlySet<string>) =>
  Effect.map(
    Effect.flatMap(KinesisTestRecorder, (r) => r.calls),
    (calls) => calls.flatMap((c) => c.request.records.map((r) => filePathOf(r.data))).filter((p) => !refused.has(p))
  )

/** The error of `sendStream(stream)` on a producer whose double refuses `refused`. */
const sendStreamError = <E>(refused: ReadonlySet<string>, stream: Stream.Stream<DataFileV1, E>) =>
  Effect.flatMap(KinesisProducer, (producer) => Effect.flip(producer.sendStream(stream))).pipe(
    Effect.provide(producerOver(refusing(refused)))
  )

const paths = (rs: ReadonlyArray<DataFileV1>) => rs.map((r) => r.filePath).sort()

const errorOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
  return Option.getOrThrowWith(failure, () => new Error(`no failure in ${String(exit)}`))
}

describe("KinesisProducer.sendStream", () => {
  it.live("all delivered: it succeeds with the count, after every element has settled", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const batch = records(120)
      const result = yield* producer.sendStream(Stream.fromIterable(batch))
      assert.deepStrictEqual(result, { delivered: 120, retriedRecords: 0 })
      assert.deepStrictEqual((yield* written(new Set())).sort(), paths(batch))
    }).pipe(Effect.provide(producerOver(KinesisTest.acceptAll, { maxBufferedRecords: 50 }))))

  it.live("an element refused once and then written counts as retried", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const result = yield* producer.sendStream(Stream.fromIterable(records(3)))
      assert.deepStrictEqual(result, { delivered: 3, retriedRecords: 1 })
    }).pipe(
      Effect.provide(
        KinesisProducer.layer({ linger: "5 millis" }).pipe(
          Layer.provideMerge(
            writerLayer(
              (call) =>
                KinesisTest.perRecord(call, (_, i) =>
                  call.index === 0 && i === 0 ? "ProvisionedThroughputExceededException" : undefined),
              { compressionWorkers: 0, backoffBase: "1 millis" }
            )
          )
        )
      )
    ))

  it.live("the upstream fails after elements were sent, some refused: one error carries the upstream's cause and names exactly the sent elements not delivered", () =>
    Effect.gen(function*() {
      const batch = records(10)
      const refused = new Set([batch[2]!.filePath, batch[7]!.filePath])
      const error = yield* sendStreamError(
        refused,
        Stream.fromIterable(batch).pipe(Stream.concat(Stream.fail(new UpstreamError({ after: 10 }))))
      )
      assert.strictEqual(error._tag, "ProducerStreamError")
      // The upstream's own error, typed.
      const upstream = Option.getOrThrow(Cause.failureOption(error.upstream!))
      assert.deepStrictEqual(upstream, new UpstreamError({ after: 10 }))
      assert.deepStrictEqual(paths(error.undelivered.map((u) => u.record)), [...refused].sort())
      for (const { error: e } of error.undelivered) {
        assert.strictEqual(e._tag, "RecordUndeliveredError")
        assert.strictEqual((e as RecordUndeliveredError).errorCode, "KMSAccessDeniedException")
      }
      assert.strictEqual(error.delivered, 8)
      assert.isFalse(error.interrupted)
      assert.deepStrictEqual(error.unsettled, [])
      assert.include(error.message, "the upstream failed after 10 element(s) were sent")
      assert.include(error.message, "2 not delivered to stream test-stream (KMSAccessDeniedException ×2)")
    }).pipe(quiet))

  it.live("an upstream that dies is carried as its cause, with the elements sent delivered", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const error = yield* Effect.flip(
        producer.sendStream(Stream.fromIterable(records(4)).pipe(Stream.concat(Stream.die("upstream bug"))))
      )
      assert.isTrue(Cause.isDie(error.upstream!))
      assert.strictEqual(error.delivered, 4)
      assert.deepStrictEqual(error.undelivered, [])
      assert.include(error.message, "upstream bug")
    }).pipe(Effect.provide(producerOver(KinesisTest.acceptAll)), quiet))

  it.live("its own sends failing: the error names each element not delivered, without an upstream cause", () =>
    Effect.gen(function*() {
      const batch = records(6)
      const refused = new Set([batch[0]!.filePath, batch[5]!.filePath])
      const error = yield* sendStreamError(refused, Stream.fromIterable(batch))
      assert.isUndefined(error.upstream)
      assert.deepStrictEqual(paths(error.undelivered.map((u) => u.record)), [...refused].sort())
      assert.strictEqual(error.delivered, 4)
      assert.include(error.message, "6 element(s) sent; 2 not delivered")
    }).pipe(quiet))

  it.live("it pulls nothing while the producer's bounds are full", () =>
    Effect.gen(function*() {
      const gate = yield* Effect.makeLatch(false)
      let pulled = 0
      yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        const source = Stream.fromIterable(records(40)).pipe(Stream.tap(() => Effect.sync(() => pulled++)))
        const run = yield* Effect.fork(producer.sendStream(source))
        while (pulled < 5) yield* Effect.sleep("5 millis")
        // Calls hang at the gate: five records fill the bound, one more waits for room.
        yield* Effect.sleep("100 millis")
        assert.isAtMost(pulled, 6)
        yield* gate.open
        assert.strictEqual((yield* Fiber.join(run)).delivered, 40)
        assert.strictEqual(pulled, 40)
      }).pipe(
        Effect.provide(producerOver((call) => Effect.zipRight(gate.await, KinesisTest.acceptAll(call)), {
          maxBufferedRecords: 5
        }))
      )
    }))

  it.live("the producer closing mid-run: the element refused is named with ProducerClosedError and nothing more is pulled", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(producerOver(KinesisTest.acceptAll), scope)
      const producer = yield* Effect.provide(KinesisProducer, context)
      let pulled = 0
      const source = Stream.fromIterable(records(10)).pipe(
        Stream.tap(() => ++pulled === 3 ? Scope.close(scope, Exit.void) : Effect.void)
      )
      const error = yield* Effect.flip(producer.sendStream(source))
      assert.strictEqual(pulled, 3)
      assert.deepStrictEqual(error.undelivered.map((u) => u.error._tag), ["ProducerClosedError"])
      assert.strictEqual(error.delivered, 2)
    }).pipe(quiet))
})

describe("KinesisProducer.sendStream interrupted", () => {
  /**
   * Eight elements sent while every call hangs at `gate`, the run interrupted, then the gate
   * opened: what the interrupted exit names, and where each element ends.
   */
  const interruptedRun = (options: KinesisProducerOptions, refused: ReadonlySet<string>, batch: Array<DataFileV1>) =>
    Effect.gen(function*() {
      const gate = yield* Effect.makeLatch(false)
      const script: PutRecordsScript = (call) => Effect.zipRight(gate.await, refusing(refused)(call))
      // Pulled once every element of the batch has been sent.
      const allSent = yield* Deferred.make<void>()
      return yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        const source = Stream.fromIterable(batch).pipe(
          Stream.concat(Stream.execute(Deferred.succeed(allSent, undefined))),
          Stream.concat(Stream.never)
        )
        const run = yield* Effect.fork(producer.sendStream(source))
        yield* Deferred.await(allSent)
        const exit = yield* Fiber.interrupt(run)
        yield* gate.open
        // Every element taken stays with the producer and settles.
        yield* producer.flush
        return { exit, written: yield* written(refused) }
      }).pipe(Effect.provide(producerOver(script, options)))
    })

  it.live("the exit holds the interruption and an error naming every element not settled; each then settles, refused ones in onUndelivered", () =>
    Effect.gen(function*() {
      const batch = records(8, 3)
      const refused = new Set([batch[1]!.filePath, batch[4]!.filePath, batch[6]!.filePath])
      const handed: Array<RecordUndeliveredError> = []
      const { exit, written } = yield* interruptedRun(
        { onUndelivered: (u) => Effect.sync(() => handed.push(u)) },
        refused,
        batch
      )
      assert.isTrue(Exit.isFailure(exit) && Cause.isInterrupted(exit.cause))
      const error = errorOf(exit)
      assert.strictEqual(error._tag, "ProducerStreamError")
      assert.isTrue(error.interrupted)
      assert.deepStrictEqual(paths(error.unsettled), paths(batch))
      assert.strictEqual(error.delivered, 0)
      assert.include(error.message, "interrupted after 8 element(s) were sent")
      // Nothing lost: each element was written or handed to onUndelivered (each handler in a fiber of its own).
      while (handed.length < refused.size) yield* Effect.sleep("5 millis")
      assert.deepStrictEqual(paths(handed.map((u) => u.record)), [...refused].sort())
      assert.deepStrictEqual(written.sort(), paths(batch.filter((r) => !refused.has(r.filePath))))
    }).pipe(quiet))

  it.live("without onUndelivered, each element that settles undelivered after the interruption is logged at Warning", () =>
    Effect.gen(function*() {
      const batch = records(6, 4)
      const refused = new Set([batch[0]!.filePath, batch[3]!.filePath])
      const { logs, result } = yield* capturingLogs(interruptedRun({}, refused, batch))
      const { exit, written } = Either.getOrThrow(result)
      assert.deepStrictEqual(paths(errorOf(exit).unsettled), paths(batch))
      const warned = logs.filter((l) =>
        l.level === LogLevel.Warning && l.message.includes("stream run that has ended was not delivered")
      )
      assert.deepStrictEqual(warned.map((l) => String(l.annotations.filePath)).sort(), [...refused].sort())
      assert.deepStrictEqual(written.sort(), paths(batch.filter((r) => !refused.has(r.filePath))))
    }))
})

describe("KinesisProducer.sendStream interrupted while waiting for room", () => {
  it.live("the element waiting is not withdrawn: it is named unsettled, then sent when room comes", () =>
    Effect.gen(function*() {
      const gate = yield* Effect.makeLatch(false)
      const batch = records(5, 6)
      const fourthPulled = yield* Deferred.make<void>()
      yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        let pulled = 0
        const source = Stream.fromIterable(batch).pipe(
          Stream.tap(() => ++pulled === 4 ? Deferred.succeed(fourthPulled, undefined) : Effect.void),
          Stream.concat(Stream.never)
        )
        const run = yield* Effect.fork(producer.sendStream(source))
        yield* Deferred.await(fourthPulled)
        // From its fourth element on, the run's next suspension is its wait for room.
        while ((yield* Fiber.status(run))._tag !== "Suspended") yield* Effect.yieldNow()
        const exit = yield* Fiber.interrupt(run)
        assert.deepStrictEqual(paths(errorOf(exit).unsettled), paths(batch.slice(0, 4)))
        yield* gate.open
        while ((yield* written(new Set())).length < 4) yield* Effect.sleep("5 millis")
        yield* producer.flush
        assert.deepStrictEqual((yield* written(new Set())).sort(), paths(batch.slice(0, 4)))
        assert.strictEqual(pulled, 4)
      }).pipe(
        Effect.provide(producerOver((call) => Effect.zipRight(gate.await, KinesisTest.acceptAll(call)), {
          maxBufferedRecords: 3
        }))
      )
    }))
})

describe("KinesisProducer.sink whose upstream fails", () => {
  it.live("the run fails with the upstream's error alone; the sent elements that end undelivered are logged", () =>
    Effect.gen(function*() {
      const batch = records(5, 5)
      const refused = new Set([batch[2]!.filePath])
      const { logs, result } = yield* capturingLogs(
        Effect.gen(function*() {
          const producer = yield* KinesisProducer
          const error = yield* Effect.flip(
            Stream.fromIterable(batch).pipe(
              Stream.concat(Stream.fail(new UpstreamError({ after: 5 }))),
              Stream.run(producer.sink)
            )
          )
          yield* producer.flush
          return error
        }).pipe(Effect.provide(producerOver(refusing(refused))))
      )
      assert.deepStrictEqual(Either.getOrThrow(result), new UpstreamError({ after: 5 }))
      const warned = logs.filter((l) =>
        l.level === LogLevel.Warning && l.message.includes("stream run that has ended was not delivered")
      )
      assert.deepStrictEqual(warned.map((l) => l.annotations.filePath), [batch[2]!.filePath])
    }))
})
