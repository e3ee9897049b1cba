import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Option, Schedule, Supervisor } from "effect"
import { KinesisWriter, LargePayloadStore, LargePayloadStoreError } from "../../src/index.js"
import { KinesisTestRecorder } from "../../src/KinesisTest.js"
import { KinesisTest, RecordGenerator } from "../../src/testing.js"
import { writerLayer } from "../support/writerLayers.js"

const large = (seed: number) => RecordGenerator.makeDataFile({ seed, serializedBytes: 3_000 })

describe("undelivered records: ambiguity and their S3 objects", () => {
  it.effect("a record refused for good is certainly not delivered: its S3 object is deleted and the error says so", () =>
    Effect.gen(function*() {
      const memory = yield* LargePayloadStore.makeMemory("bucket")
      const error = yield* Effect.flatMap(
        KinesisWriter,
        (w) => Effect.flip(w.writeBatch([large(1), large(2)], { schedule: Schedule.recurs(2) }))
      ).pipe(
        Effect.provide(writerLayer(
          (call) =>
            KinesisTest.perRecord(call, (_, i) => call.index === 0 && i === 1 ? "KMSAccessDeniedException" : undefined),
          { largePayloadThreshold: 2_000 },
          { store: Layer.succeed(LargePayloadStore, memory.service) }
        ))
      )
      if (error._tag !== "WriteBatchError") return assert.fail(error.message)
      assert.strictEqual(error.undelivered.length, 1)
      const [u] = error.undelivered
      assert.strictEqual(u!.maybeDelivered, false)
      assert.strictEqual(u!.largePayload?.deleted, true)
      const objects = yield* memory.objects
      assert.strictEqual(objects.size, 1)
      assert.isFalse(objects.has(`bucket/${u!.largePayload!.key}`))
    }))

  it.effect("a record whose calls failed ambiguously (HTTP 500) may be delivered: its object is kept for consumers", () =>
    Effect.gen(function*() {
      const memory = yield* LargePayloadStore.makeMemory("bucket")
      const error = yield* Effect.flatMap(
        KinesisWriter,
        (w) => Effect.flip(w.writeBatch([large(1), large(2)], { schedule: Schedule.recurs(2) }))
      ).pipe(
        Effect.provide(writerLayer(
          (call) => KinesisTest.failCall(call, "InternalFailure", { httpStatus: 500, retryable: true }),
          { largePayloadThreshold: 2_000 },
          { store: Layer.succeed(LargePayloadStore, memory.service) }
        ))
      )
      if (error._tag !== "WriteBatchError") return assert.fail(error.message)
      assert.strictEqual(error.attempts, 3)
      assert.isTrue(error.undelivered.every((u) => u.maybeDelivered && u.largePayload?.deleted === false))
      assert.strictEqual((yield* memory.objects).size, 2)
      assert.include(error.message, "2 of them possibly delivered")
    }))

  it.effect("a connection never made (ECONNREFUSED) or a 4xx is not ambiguous", () =>
    Effect.gen(function*() {
      for (const [name, status] of [["ECONNREFUSED", undefined], ["ThrottlingException", 400]] as const) {
        const error = yield* Effect.flatMap(KinesisWriter, (w) =>
          Effect.flip(w.writeBatch([large(1)], { schedule: Schedule.recurs(1) }))).pipe(
            Effect.provide(writerLayer((call) =>
              KinesisTest.failCall(call, name, { httpStatus: status, retryable: true }), {
              largePayloadThreshold: 2_000
            }))
          )
        if (error._tag !== "WriteBatchError") {
          return assert.fail(error.message)
        }
        assert.isFalse(error.undelivered[0]!.maybeDelivered, name)
        assert.isTrue(error.undelivered[0]!.largePayload?.deleted, name)
      }
    }))

  it.effect("a payload build that fails deletes the objects it already wrote, and nothing is sent", () =>
    Effect.gen(function*() {
      const memory = yield* LargePayloadStore.makeMemory("bucket")
      let writes = 0
      const thirdWriteFails = LargePayloadStore.of({
        ...memory.service,
        write: (key, bytes) =>
          Effect.suspend(() =>
            ++writes === 3
              ? Effect.fail(
                new LargePayloadStoreError({
                  operation: "write",
                  bucket: "bucket",
                  key,
                  errorName: "AccessDenied",
                  httpStatus: 403,
                  retryable: false
                })
              )
              : memory.service.write(key, bytes)
          )
      })
      const { calls, error } = yield* Effect.gen(function*() {
        const error = yield* Effect.flip((yield* KinesisWriter).writeBatch([large(1), large(2), large(3)]))
        return { error, calls: yield* (yield* KinesisTestRecorder).calls }
      }).pipe(Effect.provide(writerLayer(undefined, { largePayloadThreshold: 2_000, maxConcurrentUploads: 1 }, {
        store: Layer.succeed(LargePayloadStore, thirdWriteFails)
      })))
      assert.strictEqual(error._tag, "LargePayloadStoreError")
      assert.strictEqual(writes, 3)
      assert.strictEqual((yield* memory.objects).size, 0)
      assert.strictEqual(calls.length, 0)
    }))

  it.effect("interrupting a batch mid-delivery: the exit holds the interruption and a WriteBatchError that says which records may have been delivered", () =>
    Effect.gen(function*() {
      const secondCallStarted = yield* Deferred.make<void>()
      const layer = writerLayer((call) =>
        call.index === 0
          ? KinesisTest.acceptAll(call)
          : Effect.zipRight(Deferred.succeed(secondCallStarted, undefined), Effect.never), { maxConcurrentCalls: 1 })
      // Every fiber the batch starts (calls, compression, the pipeline) is tracked while it lives.
      const supervisor = yield* Supervisor.track
      const fiber = yield* Effect.fork(
        Effect.flatMap(KinesisWriter, (w) => w.writeBatch(RecordGenerator.makeDataFiles(1_200, { columns: 2 }))).pipe(
          Effect.provide(layer),
          Effect.supervised(supervisor)
        )
      )
      yield* Deferred.await(secondCallStarted)
      assert.isAbove((yield* supervisor.value).length, 0, "fibers of the batch run before the interruption")
      const exit = yield* Fiber.interrupt(fiber)
      assert.strictEqual((yield* supervisor.value).length, 0, "no fiber of the batch is left running")
      assert.isTrue(Exit.isFailure(exit) && Cause.isInterrupted(exit.cause))
      if (!Exit.isFailure(exit)) return
      const error = Option.getOrThrow(Cause.failureOption(exit.cause))
      if (error._tag !== "WriteBatchError") return assert.fail(error.message)
      assert.isTrue(error.interrupted)
      assert.strictEqual(error.delivered, 500)
      assert.strictEqual(error.undelivered.length, 700)
      const inFlight = error.undelivered.filter((u) => u.maybeDelivered)
      assert.strictEqual(inFlight.length, 500)
      assert.isTrue(inFlight.every((u) => u.errorCode === "Interrupted"))
      assert.deepStrictEqual(inFlight.map((u) => u.index), Array.from({ length: 500 }, (_, i) => 500 + i))
      assert.strictEqual(error.undelivered.filter((u) => !u.maybeDelivered).length, 200)
    }))
})
