import { create } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import type { Duration } from "effect"
import {
  Clock,
  Config,
  ConfigProvider,
  Deferred,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Option,
  Ref,
  Scope,
  Stream,
  TestClock,
  TestServices
} from "effect"
import { Registry } from "prom-client"
import type { KinesisProducerOptions, KinesisWriterOptions } from "../../src/index.js"
import { DataFileV1Schema, KinesisMetrics, KinesisProducer, LargePayloadStore, RecordCodec } from "../../src/index.js"
import type { PutRecordsScript } from "../../src/KinesisTest.js"
import { KinesisTestRecorder } from "../../src/KinesisTest.js"
import { KinesisTest, RecordGenerator } from "../../src/testing.js"
import { countingStore, writerLayer } from "../support/writerLayers.js"

const records = (n: number, seed = 1) =>
  Array.from({ length: n }, (_, i) => RecordGenerator.makeDataFile({ seed: seed * 1_000 + i, columns: 4 }))

/** A producer over the scripted double; the double's recorder stays in the context. */
const producerLayer = (
  script: PutRecordsScript = KinesisTest.acceptAll,
  options: KinesisProducerOptions = {},
  writer: Partial<KinesisWriterOptions> = {},
  extra: Parameters<typeof writerLayer>[2] = {}
) =>
  // Unpaced unless a test says otherwise: these tests are about collection, calls and
  // settlement, which pacing (test/producer/pacing.test.ts, test/producer/sharing.test.ts) only delays.
  KinesisProducer.layer({ pace: false, ...options }).pipe(
    Layer.provideMerge(writerLayer(script, { compressionWorkers: 0, ...writer }, extra))
  )

/** Every recorded call's records: key and decoded info. */
const sent = Effect.gen(function*() {
  const calls = yield* (yield* KinesisTestRecorder).calls
  return calls.map((call) =>
    call.request.records.map((r) => ({
      partitionKey: r.partitionKey,
      recordId: Either.getOrThrow(RecordCodec.decodeRecordDataSync(r.data)).info.recordId
    }))
  )
})

const quiet = Logger.withMinimumLogLevel(LogLevel.None)

/** Lets forked sends run (prepare, accept) without moving the TestClock: a short live sleep. */
const tick = TestServices.provideLive(Effect.sleep("20 millis"))

/** Moves the TestClock in steps until the fiber is done. */
const driveUntilDone = <A, E>(fiber: Fiber.Fiber<A, E>, step: Duration.DurationInput = "100 millis", steps = 200) =>
  Effect.gen(function*() {
    for (let i = 0; i < steps && Option.isNone(yield* Fiber.poll(fiber)); i++) {
      yield* tick
      yield* TestClock.adjust(step)
    }
    return yield* Fiber.join(fiber)
  })

describe("KinesisProducer: collection", () => {
  it.effect("a lone send settles only after linger, in one call, with a receipt", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const fiber = yield* Effect.fork(producer.send(records(1)[0]!))
      yield* TestClock.adjust("99 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
      assert.strictEqual((yield* sent).length, 0)
      yield* TestClock.adjust("1 millis")
      const receipt = yield* Fiber.join(fiber)
      const calls = yield* sent
      assert.deepStrictEqual(calls.map((c) => c.length), [1])
      assert.strictEqual(receipt.recordId, calls[0]![0]!.recordId)
      assert.strictEqual(receipt.attempts, 1)
      assert.match(receipt.shardId, /^shardId-/)
      assert.strictEqual(receipt.sequenceNumber, "0-0")
    }).pipe(Effect.provide(producerLayer())))

  it.effect("500 records go out in one call at once, without waiting for linger; the 501st waits", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const batch = records(501)
      const receipts = yield* Effect.forEach(batch.slice(0, 500), producer.send, { concurrency: "unbounded" })
      assert.strictEqual(receipts.length, 500)
      assert.deepStrictEqual((yield* sent).map((c) => c.length), [500])
      const last = yield* Effect.fork(producer.send(batch[500]!))
      yield* tick
      assert.isTrue(Option.isNone(yield* Fiber.poll(last)))
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(last)
      assert.deepStrictEqual((yield* sent).map((c) => c.length), [500, 1])
    }).pipe(Effect.provide(producerLayer(undefined, { linger: "100 millis" }))))

  it.effect("a call is also full at maxRequestBytes", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const batch = Array.from({ length: 4 }, (_, i) =>
        RecordGenerator.makeDataFile({ seed: 50 + i, serializedBytes: 20_000 }))
      const fiber = yield* Effect.fork(Effect.forEach(batch, producer.send, { concurrency: "unbounded" }))
      const recorder = yield* KinesisTestRecorder
      // Calls go while a call's worth is ready; the last record lingers (however long preparing takes).
      for (let turn = 0; turn < 500 && (yield* recorder.calls).length < 3; turn++) {
        yield* tick
      }
      yield* tick
      assert.strictEqual((yield* recorder.calls).length, 3)
      yield* TestClock.adjust("1 hour")
      yield* Fiber.join(fiber)
      const calls = yield* (yield* KinesisTestRecorder).calls
      assert.strictEqual(calls.length, 4)
      for (const call of calls) {
        assert.isAtMost(
          call.request.records.reduce((n, r) =>
            n + r.data.length + r.partitionKey.length, 0),
          32 * 1024
        )
      }
    }).pipe(
      Effect.provide(
        producerLayer(undefined, { linger: "1 hour", recordTtl: "2 hours" }, {
          maxRequestBytes: 32 * 1024,
          readStreamRecordLimit: true
        }, { summary: { maxRecordSizeInKiB: 32 } })
      )
    ))

  it.effect("flush settles every record accepted before it without waiting for linger", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const fibers = yield* Effect.forEach(records(3), (r) => Effect.fork(producer.send(r)))
      yield* tick
      yield* producer.flush
      yield* tick
      for (const f of fibers) assert.isTrue(Option.isSome(yield* Fiber.poll(f)))
      assert.deepStrictEqual((yield* sent).map((c) => c.length), [3])
    }).pipe(Effect.provide(producerLayer(undefined, { linger: "1 hour", recordTtl: "2 hours" }))))
})

/** Sends one record and lets it settle: the producer then knows how large records are, and gathers. */
const warmUp = (producer: KinesisProducer.Service) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(producer.send(records(1, 99)[0]!))
    yield* tick
    yield* producer.flush
    yield* Fiber.join(fiber)
  })

describe("KinesisProducer: gathering for preparation", () => {
  it.effect("records sent one by one are prepared as one batch, and their call still goes out at the first one's linger", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      yield* warmUp(producer)
      const t0 = yield* Clock.currentTimeMillis
      const fibers: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
      for (const record of records(3)) {
        fibers.push(yield* Effect.fork(producer.send(record)))
        yield* tick
        yield* TestClock.adjust("10 millis")
      }
      // t0 + 30: the preparers gather until the first has waited half the linger (t0 + 50).
      yield* TestClock.adjust("20 millis")
      yield* tick
      yield* TestClock.adjust("49 millis")
      yield* tick
      assert.deepStrictEqual((yield* sent).map((c) => c.length), [1])
      yield* TestClock.adjust("1 millis")
      for (const f of fibers) yield* Fiber.join(f)
      const calls = yield* (yield* KinesisTestRecorder).calls
      assert.deepStrictEqual(calls.map((c) => c.request.records.length), [1, 3])
      const prepared = calls[1]!.request.records.map((r) =>
        Either.getOrThrow(RecordCodec.decodeRecordDataSync(r.data)).info.creationTime
      )
      assert.deepStrictEqual(prepared, [t0 + 50, t0 + 50, t0 + 50].map(BigInt))
    }).pipe(Effect.provide(producerLayer(undefined, { linger: "100 millis" }))))

  it.effect("flush also settles records still waiting for a preparer", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      yield* warmUp(producer)
      const fibers = yield* Effect.forEach(records(3), (r) => Effect.fork(producer.send(r)))
      yield* tick
      yield* producer.flush
      for (const f of fibers) assert.isTrue(Option.isSome(yield* Fiber.poll(f)))
      assert.deepStrictEqual((yield* sent).map((c) => c.length), [1, 3])
    }).pipe(Effect.provide(producerLayer(undefined, { linger: "1 hour", recordTtl: "2 hours" }))))
})

describe("KinesisProducer: backpressure", () => {
  it.effect("a send waits while maxBufferedRecords are outstanding, then proceeds when room appears", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const layer = producerLayer(
        (call) =>
          call.index === 0
            ? Effect.zipRight(Deferred.await(gate), KinesisTest.acceptAll(call))
            : KinesisTest.acceptAll(call),
        {
          maxBufferedRecords: 2,
          linger: "10 millis"
        }
      )
      yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        const fibers = yield* Effect.forEach(records(3), (r) => Effect.fork(producer.send(r)))
        yield* TestClock.adjust("10 millis")
        // The first two are in a call that hangs; the third has no room.
        assert.deepStrictEqual((yield* sent).map((c) => c.length), [2])
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual((yield* sent).map((c) => c.length), [2])
        assert.isTrue(Option.isNone(yield* Fiber.poll(fibers[2]!)))
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(fibers[0]!)
        yield* TestClock.adjust("10 millis")
        yield* Fiber.join(fibers[2]!)
        assert.deepStrictEqual((yield* sent).map((c) => c.length), [2, 1])
      }).pipe(Effect.provide(layer))
    }))

  it.effect("maxBufferedBytes bounds the bytes outstanding too", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const layer = producerLayer(
        (call) =>
          call.index === 0
            ? Effect.zipRight(Deferred.await(gate), KinesisTest.acceptAll(call))
            : KinesisTest.acceptAll(call),
        { maxBufferedBytes: 2 * 1024 * 1024, linger: "10 millis" }
      )
      yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        // Incompressible records of 400 KB hold about 800 KB each (serialized, and compressed):
        // two fit in 2 MiB, the third waits.
        const batch = Array.from({ length: 3 }, (_, i) =>
          RecordGenerator.makeDataFile({ seed: 70 + i, serializedBytes: 400_000 }))
        const fibers = yield* Effect.forEach(batch, (r) =>
          Effect.fork(producer.send(r)))
        // Preparing 400 KB records takes real time (gzip runs in time slices between event-loop
        // turns): let the test clock move until the first call has gone out.
        for (let turn = 0; turn < 500 && (yield* sent).length === 0; turn++) {
          yield* TestClock.adjust("10 millis")
          yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
        }
        assert.deepStrictEqual((yield* sent).map((c) => c.length), [2])
        assert.isTrue(Option.isNone(yield* Fiber.poll(fibers[2]!)))
        yield* Deferred.succeed(gate, undefined)
        for (let turn = 0; turn < 500 && Option.isNone(yield* Fiber.poll(fibers[2]!)); turn++) {
          yield* TestClock.adjust("10 millis")
          yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
        }
        yield* Effect.forEach(fibers, Fiber.join)
        assert.deepStrictEqual((yield* sent).map((c) => c.length), [2, 1])
      }).pipe(Effect.provide(layer))
    }))
})

describe("KinesisProducer: retries and expiry", () => {
  it.effect("a failed record rejoins a later call with its next attempt's key and the same record_id, beside a fresh record", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const [a, b, c] = records(3)
      const first = yield* Effect.fork(Effect.all([producer.send(a!), producer.send(b!)], { concurrency: "unbounded" }))
      yield* TestClock.adjust("5 seconds") // call 0: a refused, b written; a waits ~100 ms, then lingers 5 s
      yield* TestClock.adjust("1 second")
      const third = yield* Effect.fork(producer.send(c!))
      yield* TestClock.adjust("5 seconds") // call 1: a (attempt 1) and c (attempt 0)
      const [ra, rb] = yield* Fiber.join(first)
      const rc = yield* Fiber.join(third)
      const [call0, call1] = yield* sent
      assert.strictEqual(call0!.length, 2)
      assert.deepStrictEqual(call1!.map((r) => r.recordId), [ra.recordId, rc.recordId])
      assert.strictEqual(call0![0]!.recordId, ra.recordId)
      assert.strictEqual(call1![0]!.partitionKey, call0![0]!.partitionKey.replace(/-0$/, "-1"))
      assert.isTrue(call1![1]!.partitionKey.endsWith("-0"))
      assert.deepStrictEqual([ra.attempts, rb.attempts, rc.attempts], [2, 1, 1])
    }).pipe(Effect.provide(producerLayer(
      (call) =>
        call.index === 0
          ? KinesisTest.perRecord(call, (_, i) => i === 0 ? "ProvisionedThroughputExceededException" : undefined)
          : KinesisTest.acceptAll(call),
      { linger: "5 seconds", recordTtl: "1 minute" }
    ))))

  it.effect("a large record is uploaded once across retries", () =>
    Effect.gen(function*() {
      const memory = yield* LargePayloadStore.makeMemory()
      const counter = { writes: 0 }
      const receipt = yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        const fiber = yield* Effect.fork(
          producer.send(RecordGenerator.makeDataFile({ seed: 3, serializedBytes: 3_000 }))
        )
        for (let i = 0; i < 20; i++) yield* TestClock.adjust("1 second")
        return yield* Fiber.join(fiber)
      }).pipe(Effect.provide(producerLayer(
        (call) => call.index < 3 ? KinesisTest.failEach(call, "InternalFailure") : KinesisTest.acceptAll(call),
        {},
        { largePayloadThreshold: 1_000 },
        { store: countingStore(memory, counter) }
      )))
      assert.strictEqual(receipt.attempts, 4)
      assert.strictEqual(counter.writes, 1)
    }))

  it.effect("retries run out: the send fails naming the last code, and onUndelivered gets it once", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<Array<string>>([])
      const error = yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        const fiber = yield* Effect.fork(Effect.flip(producer.send(records(1)[0]!)))
        for (let i = 0; i < 20; i++) yield* TestClock.adjust("1 second")
        return yield* Fiber.join(fiber)
      }).pipe(
        Effect.provide(producerLayer((call) => KinesisTest.failEach(call, "ProvisionedThroughputExceededException"), {
          onUndelivered: (u) => Ref.update(seen, (s) => [...s, `${u.recordId}:${u.errorCode}`])
        }, { maxRetries: 2 })),
        quiet
      )
      if (error._tag !== "RecordUndeliveredError") return assert.fail(error.message)
      assert.strictEqual(error.errorCode, "ProvisionedThroughputExceededException")
      assert.strictEqual(error.attempts, 3)
      assert.isFalse(error.maybeDelivered)
      assert.deepStrictEqual(yield* Ref.get(seen), [`${error.recordId}:ProvisionedThroughputExceededException`])
      assert.include(error.message, "after 3 attempt(s)")
    }))

  it.effect("a non-retryable code fails the send at once", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const fiber = yield* Effect.fork(Effect.flip(producer.send(records(1)[0]!)))
      yield* TestClock.adjust("100 millis")
      const error = yield* Fiber.join(fiber)
      assert.isTrue(
        error._tag === "RecordUndeliveredError" && error.errorCode === "KMSAccessDeniedException" &&
          error.attempts === 1
      )
    }).pipe(Effect.provide(producerLayer((call) => KinesisTest.failEach(call, "KMSAccessDeniedException"))), quiet))

  it.effect("a record not delivered within recordTtl fails with Expired, and onUndelivered gets it once", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<Array<string>>([])
      const error = yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        const fiber = yield* Effect.fork(Effect.flip(producer.send(records(1)[0]!)))
        yield* TestClock.adjust("999 millis")
        assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
        yield* TestClock.adjust("1 millis")
        const error = yield* Fiber.join(fiber)
        yield* TestClock.adjust("10 seconds")
        return error
      }).pipe(
        Effect.provide(producerLayer((call) => KinesisTest.failEach(call, "ProvisionedThroughputExceededException"), {
          linger: "10 millis",
          recordTtl: "1 second",
          onUndelivered: (u) => Ref.update(seen, (s) => [...s, u.errorCode])
        }, { maxRetries: 1_000 })),
        quiet
      )
      if (error._tag !== "RecordUndeliveredError") return assert.fail(error.message)
      assert.strictEqual(error.errorCode, "Expired")
      assert.include(error.errorMessage, "ProvisionedThroughputExceededException")
      assert.isAbove(error.attempts, 2)
      assert.deepStrictEqual(yield* Ref.get(seen), ["Expired"])
    }))
})

describe("KinesisProducer: bad input", () => {
  it.effect("a record with an empty file_path fails its own send only", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const batch = [...records(3), create(DataFileV1Schema, { filePath: "" })]
      const fiber = yield* Effect.fork(
        Effect.forEach(batch, (r) => Effect.either(producer.send(r)), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("100 millis")
      const results = yield* Fiber.join(fiber)
      assert.deepStrictEqual(results.map((r) => r._tag), ["Right", "Right", "Right", "Left"])
      const bad = results[3]!
      assert.isTrue(Either.isLeft(bad) && bad.left._tag === "SerializationError" && bad.left.recordIndex === undefined)
      assert.deepStrictEqual((yield* sent).map((c) => c.length), [3])
    }).pipe(Effect.provide(producerLayer())))

  it.effect("S3 refusing a record's payload fails that send with the LargePayloadStoreError; the others go on", () =>
    Effect.gen(function*() {
      const memory = yield* LargePayloadStore.makeMemory()
      const layer = producerLayer(undefined, {}, { largePayloadThreshold: 1_000 }, {
        store: countingStore(memory, { writes: 0 }, { count: 99, errorName: "AccessDenied", retryable: false })
      })
      yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        const batch = [...records(2), RecordGenerator.makeDataFile({ seed: 9, serializedBytes: 3_000 })]
        const fiber = yield* Effect.fork(
          Effect.forEach(batch, (r) => Effect.either(producer.send(r)), { concurrency: "unbounded" })
        )
        yield* TestClock.adjust("100 millis")
        const results = yield* Fiber.join(fiber)
        assert.deepStrictEqual(results.map((r) => r._tag), ["Right", "Right", "Left"])
        const bad = results[2]!
        assert.isTrue(
          Either.isLeft(bad) && bad.left._tag === "LargePayloadStoreError" && bad.left.errorName === "AccessDenied"
        )
      }).pipe(Effect.provide(layer))
    }))

  it.effect("an onUndelivered that fails or dies is logged and the producer goes on", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const fiber = yield* Effect.fork(
        Effect.forEach(records(4), (r) => Effect.either(producer.send(r)), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("100 millis")
      const results = yield* Fiber.join(fiber)
      assert.deepStrictEqual(results.map((r) => r._tag), ["Left", "Right", "Left", "Right"])
      const again = yield* Effect.fork(producer.send(records(1, 7)[0]!))
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(again)
    }).pipe(
      Effect.provide(producerLayer(
        (call) =>
          KinesisTest.perRecord(
            call,
            (_, i) => call.index === 0 && i % 2 === 0 ? "KMSAccessDeniedException" : undefined
          ),
        { onUndelivered: (u) => u.recordId < "8" ? Effect.fail("nope") : Effect.die("boom") }
      )),
      quiet
    ))

  it.effect("an onUndelivered that never ends does not hold the scope: closing it stops the handler", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        producerLayer((call) => KinesisTest.failEach(call, "KMSAccessDeniedException"), {
          shutdownTimeout: 0,
          onUndelivered: () => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)
        }),
        scope
      )
      const producer = yield* Effect.provide(KinesisProducer, context)
      const sent = yield* Effect.fork(Effect.flip(producer.send(records(1)[0]!)))
      yield* TestClock.adjust("100 millis")
      assert.strictEqual((yield* Fiber.join(sent))._tag, "RecordUndeliveredError")
      yield* Deferred.await(started)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      // Handlers get at least a second at shutdown; then they are interrupted.
      yield* tick
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
    }).pipe(quiet))

  it.effect("an S3 delete that never ends does not hold the scope: its record fails with deleted false", () =>
    Effect.gen(function*() {
      const memory = yield* LargePayloadStore.makeMemory()
      const hanging = Layer.succeed(
        LargePayloadStore,
        LargePayloadStore.of({ ...memory.service, delete: () => Effect.never })
      )
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        producerLayer((call) => KinesisTest.failEach(call, "KMSAccessDeniedException"), { shutdownTimeout: 0 }, {
          largePayloadThreshold: 1_000
        }, { store: hanging }),
        scope
      )
      const producer = yield* Effect.provide(KinesisProducer, context)
      const sent = yield* Effect.fork(
        Effect.flip(producer.send(RecordGenerator.makeDataFile({ seed: 3, serializedBytes: 3_000 })))
      )
      yield* TestClock.adjust("100 millis")
      yield* tick
      // Its delete has begun (and the 10 s it may take have not passed): closing does not wait for it.
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* tick
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      const error = yield* Fiber.join(sent)
      assert.isTrue(
        error._tag === "RecordUndeliveredError" && error.errorCode === "KMSAccessDeniedException" &&
          error.largePayload?.deleted === false
      )
    }).pipe(quiet))

  const invalid = (options: KinesisProducerOptions) =>
    Effect.flip(Effect.scoped(Layer.build(producerLayer(undefined, options))))

  it.effect("options are validated when the layer is built: a ConfigError names the field and the value", () =>
    Effect.gen(function*() {
      const cases: Array<[KinesisProducerOptions, string, string]> = [
        [{ linger: 0 }, "linger", "0"],
        [{ linger: "-5 millis" }, "linger", "-5 millis"],
        [{ maxBufferedRecords: 0 }, "maxBufferedRecords", "0"],
        [{ maxBufferedRecords: 2.5 }, "maxBufferedRecords", "2.5"],
        [{ maxBufferedBytes: 0 }, "maxBufferedBytes", "0"],
        [{ maxBufferedBytes: 1_000_000 }, "maxBufferedBytes", "1000000"],
        [{ recordTtl: "50 millis", linger: "100 millis" }, "recordTtl", "50 millis"],
        [{ shutdownTimeout: "-1 seconds" }, "shutdownTimeout", "-1 seconds"]
      ]
      for (const [options, field, value] of cases) {
        const error = yield* invalid(options)
        assert.strictEqual(error._tag, "ConfigError")
        if (error._tag !== "ConfigError" || error._op !== "InvalidData") {
          return assert.fail(`not InvalidData for ${field}`)
        }
        assert.deepStrictEqual(error.path, [field])
        assert.include(error.message, field)
        assert.include(error.message, value)
      }
    }))

  it.effect("layerConfig reads the same options through Config, and validates them", () =>
    Effect.gen(function*() {
      const layer = (env: Record<string, string>) =>
        KinesisProducer.layerConfig({
          linger: Config.duration("LINGER"),
          maxBufferedRecords: Config.integer("MAX_RECORDS").pipe(Config.withDefault(10_000))
        }).pipe(
          Layer.provideMerge(writerLayer(undefined, { compressionWorkers: 0 })),
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))
        )
      const fiber = yield* Effect.fork(
        Effect.flatMap(KinesisProducer, (p) => p.send(records(1)[0]!)).pipe(
          Effect.provide(layer({ LINGER: "250 millis" }))
        )
      )
      yield* TestClock.adjust("249 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      const error = yield* Effect.flip(Effect.scoped(Layer.build(layer({ LINGER: "250 millis", MAX_RECORDS: "-1" }))))
      assert.include(error.message, "maxBufferedRecords")
    }))
})

describe("KinesisProducer: sink", () => {
  it.effect("the sink sends every element and completes when all have settled", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const fiber = yield* Effect.fork(Stream.fromIterable(records(120)).pipe(Stream.run(producer.sink)))
      yield* driveUntilDone(fiber)
      assert.strictEqual((yield* sent).flat().length, 120)
    }).pipe(Effect.provide(producerLayer(undefined, { maxBufferedRecords: 50 }))))

  it.effect("the sink fails naming every element not delivered, with its error", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer
      const batch = records(5)
      const bad = create(DataFileV1Schema, { filePath: "" })
      const fiber = yield* Effect.fork(
        Effect.flip(Stream.fromIterable([...batch, bad]).pipe(Stream.run(producer.sink)))
      )
      yield* TestClock.adjust("100 millis")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "ProducerSinkError")
      assert.strictEqual(error.delivered, 4)
      const named = new Map(error.undelivered.map((u) => [u.record, u.error._tag]))
      assert.deepStrictEqual(
        named,
        new Map<unknown, string>([[batch[1], "RecordUndeliveredError"], [bad, "SerializationError"]])
      )
      assert.include(error.message, "2 of 6 records not delivered")
    }).pipe(
      Effect.provide(
        producerLayer((call) => KinesisTest.perRecord(call, (_, i) => i === 1 ? "KMSAccessDeniedException" : undefined))
      ),
      quiet
    ))
})

describe("KinesisProducer: shutdown", () => {
  it.effect("closing the scope delivers what is buffered at once (also records still waiting for a preparer); a send after close fails with ProducerClosedError", () =>
    Effect.gen(function*() {
      // Warmed up, the producer knows how large records are and gathers them before preparing.
      for (const warm of [false, true]) {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(
          producerLayer(undefined, { linger: "1 hour", recordTtl: "2 hours" }),
          scope
        )
        const producer = yield* Effect.provide(KinesisProducer, context)
        if (warm) yield* warmUp(producer)
        const fibers = yield* Effect.forEach(records(3), (r) => Effect.fork(producer.send(r)))
        yield* tick
        yield* Scope.close(scope, Exit.void)
        for (const f of fibers) assert.isTrue(Exit.isSuccess(yield* Fiber.await(f)))
        const error = yield* Effect.flip(producer.send(records(1, 5)[0]!))
        assert.strictEqual(error._tag, "ProducerClosedError")
        const calls = yield* Effect.provide(KinesisTestRecorder, context).pipe(Effect.flatMap((r) => r.calls))
        assert.deepStrictEqual(calls.map((c) => c.request.records.length), warm ? [1, 3] : [3])
      }
    }))

  it.effect("what is not settled within shutdownTimeout fails with Shutdown (maybeDelivered when in flight); a send waiting for room fails closed", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const seen = yield* Ref.make(0)
      const layer = producerLayer((call) => call.index === 0 ? Effect.never : KinesisTest.acceptAll(call), {
        linger: "10 millis",
        maxBufferedRecords: 3,
        shutdownTimeout: "1 second",
        onUndelivered: () => Ref.update(seen, (n) => n + 1)
      }, { maxConcurrentCalls: 1 })
      const context = yield* Layer.buildWithScope(layer, scope)
      const producer = yield* Effect.provide(KinesisProducer, context)
      const batch = records(4)
      const inFlight = yield* Effect.forEach(batch.slice(0, 2), (r) => Effect.fork(Effect.flip(producer.send(r))))
      yield* tick
      yield* TestClock.adjust("10 millis")
      // The first call hangs and holds the only call slot: the third record waits in the buffer, the fourth for room.
      const buffered = yield* Effect.fork(Effect.flip(producer.send(batch[2]!)))
      const waiting = yield* Effect.fork(Effect.flip(producer.send(batch[3]!)))
      yield* tick
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(
        (yield* Effect.provide(KinesisTestRecorder, context).pipe(Effect.flatMap((r) => r.calls))).length,
        1
      )
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* tick
      const refused = yield* Fiber.join(waiting)
      assert.strictEqual(refused._tag, "ProducerClosedError")
      yield* TestClock.adjust("999 millis")
      yield* tick
      assert.isTrue(Option.isNone(yield* Fiber.poll(closing)))
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(closing)
      for (const f of inFlight) {
        const e = yield* Fiber.join(f)
        assert.isTrue(
          e._tag === "RecordUndeliveredError" && e.errorCode === "Shutdown" && e.maybeDelivered && e.attempts === 1
        )
      }
      const e = yield* Fiber.join(buffered)
      assert.isTrue(e._tag === "RecordUndeliveredError" && e.errorCode === "Shutdown" && !e.maybeDelivered)
      assert.strictEqual(yield* Ref.get(seen), 3)
    }).pipe(quiet))
})

describe("KinesisProducer: metrics", () => {
  it.effect("buffered gauges go back to 0, each settlement is timed, expired records are counted", () =>
    Effect.gen(function*() {
      const registry = new Registry()
      yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        const fiber = yield* Effect.fork(
          Effect.forEach(records(5), (r) => Effect.either(producer.send(r)), { concurrency: "unbounded" })
        )
        for (let i = 0; i < 5; i++) yield* TestClock.adjust("1 second")
        yield* Fiber.join(fiber)
      }).pipe(
        Effect.provide(producerLayer(
          (call) =>
            KinesisTest.perRecord(call, (_, i) => i === 0 ? "ProvisionedThroughputExceededException" : undefined),
          { recordTtl: "1 second" },
          { maxRetries: 100 },
          { metrics: KinesisMetrics.layerPrometheus(registry) }
        )),
        quiet
      )
      const text = yield* Effect.promise(() => registry.metrics())
      assert.include(text, `kinesis_producer_buffered_records{stream_name="test-stream"} 0`)
      assert.include(text, `kinesis_producer_buffered_bytes{stream_name="test-stream"} 0`)
      assert.include(text, `kinesis_record_delivery_seconds_count{stream_name="test-stream"} 5`)
      assert.include(text, `kinesis_records_expired_total{stream_name="test-stream"} 1`)
      assert.match(text, /kinesis_write_attempts_total\{stream_name="test-stream"\} \d+/)
    }))
})
