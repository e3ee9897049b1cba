/**
 * The classes of defect that lived in the seams between the writer's and the producer's
 * delivery, each proved closed through the public API (each of these failed before the
 * delivery core).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Logger, LogLevel, Scope, Stream } from "effect"
import type { KinesisProducerOptions, KinesisWriterOptions } from "../../src/index.js"
import { KinesisProducer, KinesisWriter, LargePayloadStore, LargePayloadStoreError } from "../../src/index.js"
import type { PutRecordsScript } from "../../src/KinesisTest.js"
import { KinesisTest, RecordGenerator } from "../../src/testing.js"
import { writerLayer } from "../support/writerLayers.js"

const quiet = Logger.withMinimumLogLevel(LogLevel.None)

const small = (n: number, seed = 1, filePath?: string) =>
  Array.from({ length: n }, (_, i) => {
    const record = RecordGenerator.makeDataFile({ seed: seed * 1_000 + i, columns: 3 })
    if (filePath !== undefined) record.filePath = filePath
    return record
  })

/** Records whose payload goes to the store (over a 1 KB threshold). */
const large = (n: number, seed = 7) =>
  Array.from({ length: n }, (_, i) => RecordGenerator.makeDataFile({ seed: seed * 1_000 + i, serializedBytes: 4_000 }))

const producerOver = (
  store: Layer.Layer<LargePayloadStore>,
  options: KinesisProducerOptions = {},
  writer: Partial<KinesisWriterOptions> = {},
  script: PutRecordsScript = KinesisTest.acceptAll
) =>
  KinesisProducer.layer({ linger: "5 millis", ...options }).pipe(
    Layer.provideMerge(
      writerLayer(script, { compressionWorkers: 0, largePayloadThreshold: 1_000, ...writer }, { store })
    )
  )

/** A store over memory whose writes and deletes a test can slow down, fail or hang. */
const scriptedStore = (behaviour: {
  readonly write?: (key: string) => Effect.Effect<void, LargePayloadStoreError> | undefined
  readonly delete?: () => Effect.Effect<void, LargePayloadStoreError> | undefined
}) =>
  Effect.map(LargePayloadStore.makeMemory(), (memory) => ({
    memory,
    counts: { writes: 0, deletes: 0 },
    layer(this: { counts: { writes: number; deletes: number } }) {
      const counts = this.counts
      return Layer.succeed(
        LargePayloadStore,
        LargePayloadStore.of({
          ...memory.service,
          write: (key, bytes) =>
            Effect.suspend(() => {
              counts.writes++
              const before = behaviour.write?.(key)
              return before === undefined
                ? memory.service.write(key, bytes)
                : Effect.zipRight(before, memory.service.write(key, bytes))
            }),
          delete: (location) =>
            Effect.suspend(() => {
              counts.deletes++
              return behaviour.delete?.() ?? memory.service.delete(location)
            })
        })
      )
    }
  }))

describe("the producer over a writer with aggregation on", () => {
  it.live("every send settles once, room comes back, flush and the sink complete", () =>
    Effect.gen(function*() {
      const layer = producerOver(LargePayloadStore.layerMemory(), { maxBufferedRecords: 20 }, {
        aggregation: {}
      })
      yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        // Twenty sends that share a partition key (one file path).
        const receipts = yield* Effect.forEach(small(20, 1, "s3://b/same.parquet"), producer.send, {
          concurrency: "unbounded"
        })
        assert.strictEqual(new Set(receipts.map((r) => r.recordId)).size, 20)
        // The next hundred get room as the first settle.
        const more = yield* Effect.forEach(small(100, 2), producer.send, { concurrency: "unbounded" })
        assert.strictEqual(more.length, 100)
        yield* producer.flush
        yield* Stream.fromIterable(small(30, 3)).pipe(Stream.run(producer.sink))
      }).pipe(Effect.provide(layer))
    }))
})

describe("S3 calls are bounded by requestTimeout in every path", () => {
  it.live("writeBatch whose build fails after uploads, with a delete that never answers, ends", () =>
    Effect.gen(function*() {
      let writes = 0
      const store = yield* scriptedStore({
        write: () =>
          ++writes === 3
            ? Effect.fail(
              new LargePayloadStoreError({
                operation: "write",
                bucket: "memory",
                key: "k",
                errorName: "AccessDenied",
                httpStatus: 403,
                retryable: false
              })
            )
            : undefined,
        delete: () => Effect.never
      })
      const exit = yield* Effect.gen(function*() {
        const writer = yield* KinesisWriter
        return yield* Effect.exit(writer.writeBatch(large(6)))
      }).pipe(
        Effect.provide(
          writerLayer(KinesisTest.acceptAll, {
            compressionWorkers: 0,
            largePayloadThreshold: 1_000,
            maxConcurrentUploads: 1,
            requestTimeout: "200 millis"
          }, { store: store.layer() })
        )
      )
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
      assert.strictEqual(error?._tag === "Some" ? error.value._tag : undefined, "LargePayloadStoreError")
      // The objects its clean-up could not delete are named.
      if (error?._tag === "Some" && error.value._tag === "LargePayloadStoreError") {
        assert.strictEqual(error.value.leftBehind?.length, 2)
      }
    }).pipe(quiet))

  it.live("a producer whose S3 deletes never answer still closes", () =>
    Effect.gen(function*() {
      const store = yield* scriptedStore({ delete: () => Effect.never })
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        producerOver(
          store.layer(),
          { shutdownTimeout: "100 millis" },
          { requestTimeout: "200 millis", maxRetries: 0 },
          (call) => KinesisTest.failCall(call, "ValidationException", { httpStatus: 400, retryable: false })
        ),
        scope
      )
      const producer = yield* Effect.provide(KinesisProducer, context)
      const errors = yield* Effect.forEach(large(3), (r) => Effect.flip(producer.send(r)), { concurrency: "unbounded" })
      for (const e of errors) {
        assert.strictEqual(e._tag, "RecordUndeliveredError")
        if (e._tag === "RecordUndeliveredError") assert.isFalse(e.largePayload!.deleted)
      }
      yield* Scope.close(scope, Exit.void)
    }).pipe(quiet))
})

describe("a record's fate depends on its own work", () => {
  it.live("uploads slower than recordTtl do not expire records that need no upload", () =>
    Effect.gen(function*() {
      const store = yield* scriptedStore({ write: () => Effect.sleep("1500 millis") })
      yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        const slow = yield* Effect.fork(Effect.forEach(large(2), producer.send, { concurrency: "unbounded" }))
        const receipts = yield* Effect.forEach(small(60), producer.send, { concurrency: "unbounded" })
        assert.strictEqual(receipts.length, 60)
        for (const r of receipts) assert.strictEqual(r.attempts, 1)
        yield* Fiber.interrupt(slow)
      }).pipe(Effect.provide(producerOver(store.layer(), { recordTtl: "1 second" })))
    }).pipe(quiet))

  it.live("an S3 outage does not multiply uploads: each record's payload is tried by its own retries only", () =>
    Effect.gen(function*() {
      const store = yield* scriptedStore({
        write: () =>
          Effect.fail(
            new LargePayloadStoreError({
              operation: "write",
              bucket: "memory",
              key: "k",
              errorName: "ServiceUnavailable",
              httpStatus: 503,
              retryable: true
            })
          )
      })
      const errors = yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        return yield* Effect.forEach(large(10), (r) => Effect.flip(producer.send(r)), { concurrency: "unbounded" })
      }).pipe(Effect.provide(producerOver(store.layer(), {}, { maxRetries: 2, backoffBase: "1 millis" })))
      for (const e of errors) assert.strictEqual(e._tag, "LargePayloadStoreError")
      // Ten records, three tries each (maxRetries 2).
      assert.strictEqual(store.counts.writes, 30)
    }).pipe(quiet))
})

describe("every object written is pointed to by a record that may be on the stream, or deleted", () => {
  it.live("records refused by Kinesis leave no object; delivered ones keep theirs", () =>
    Effect.gen(function*() {
      const store = yield* scriptedStore({})
      let call = 0
      const layer = producerOver(store.layer(), {}, { maxRetries: 0 }, (c) =>
        // Every other call is refused whole, for good.
        ++call % 2 === 0
          ? KinesisTest.failCall(c, "ValidationException", { httpStatus: 400, retryable: false })
          : KinesisTest.acceptAll(c))
      const exits = yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        const exits: Array<Exit.Exit<unknown, unknown>> = []
        for (const record of large(6)) exits.push(yield* Effect.exit(producer.send(record)))
        return exits
      }).pipe(Effect.provide(layer))
      const delivered = exits.filter(Exit.isSuccess).length
      assert.isAbove(delivered, 0)
      assert.isBelow(delivered, 6)
      assert.strictEqual((yield* store.memory.objects).size, delivered)
    }).pipe(quiet))

  it.live("closing the producer while records are prepared or waiting leaves no object without a record", () =>
    Effect.gen(function*() {
      for (let moment = 0; moment < 10; moment++) {
        const store = yield* scriptedStore({ write: () => Effect.sleep(`${moment * 3} millis`) })
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(
          producerOver(store.layer(), { shutdownTimeout: "0 millis", linger: "50 millis" }),
          scope
        )
        const producer = yield* Effect.provide(KinesisProducer, context)
        const sends = yield* Effect.forEach(large(5, moment), (r) => Effect.fork(Effect.exit(producer.send(r))))
        yield* Effect.sleep(`${moment * 4} millis`)
        yield* Scope.close(scope, Exit.void)
        const exits = yield* Effect.forEach(sends, Fiber.join)
        const delivered = exits.filter(Exit.isSuccess).length
        // Only delivered records (none may be in doubt here: the double answers at once) keep an object.
        const maybe = exits.filter((e) =>
          Exit.isFailure(e) && Cause.failureOption(e.cause).pipe((o) =>
            o._tag === "Some" && o.value._tag === "RecordUndeliveredError" && o.value.maybeDelivered
          )
        ).length
        const objects = (yield* store.memory.objects).size
        assert.isAtLeast(objects, delivered)
        assert.isAtMost(objects, delivered + maybe, `moment ${moment}: an object without a record`)
      }
    }).pipe(quiet))
})

describe("maxBufferedBytes bounds the memory held for records", () => {
  it.live("a sink of offloaded 200 KB records pulls no more than the bound holds", () =>
    Effect.gen(function*() {
      let pulled = 0
      let settledMax = 0
      const gate = yield* Effect.makeLatch(false)
      const layer = producerOver(LargePayloadStore.layerMemory(), { maxBufferedBytes: 1024 * 1024 }, {}, (call) =>
        Effect.zipRight(gate.await, KinesisTest.acceptAll(call)))
      yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        const source = Stream.range(1, 40).pipe(
          Stream.map((i) =>
            RecordGenerator.makeDataFile({ seed: 900 + i, serializedBytes: 200_000 })
          ),
          Stream.tap(() =>
            Effect.sync(() => pulled++)
          )
        )
        const run = yield* Effect.fork(Stream.run(source, producer.sink))
        yield* Effect.sleep("300 millis")
        settledMax = pulled
        yield* gate.open
        yield* Fiber.join(run)
      }).pipe(Effect.provide(layer))
      // Each record holds ~400 KB (its serialized bytes and as much again charged for its Data
      // until compressed, then its payload until uploaded): the sink stops pulling at the bound.
      assert.isAtMost(settledMax, 4)
      assert.strictEqual(pulled, 40)
    }).pipe(quiet))
})

describe("no internal fiber ends while the producer is open", () => {
  it.live("a store write that ends with an interruption-only cause fails that send; later sends are prepared", () =>
    Effect.gen(function*() {
      let writes = 0
      const store = yield* scriptedStore({ write: () => (++writes <= 2 ? Effect.interrupt : undefined) })
      yield* Effect.gen(function*() {
        const producer = yield* KinesisProducer
        for (let i = 0; i < 3; i++) yield* Effect.exit(producer.send(large(1, 50 + i)[0]!))
        const receipts = yield* Effect.forEach(small(10, 9), producer.send, { concurrency: "unbounded" })
        assert.strictEqual(receipts.length, 10)
        const last = yield* producer.send(large(1, 99)[0]!)
        assert.strictEqual(last.attempts, 1)
      }).pipe(Effect.provide(producerOver(store.layer(), {}, { maxRetries: 0 })))
    }).pipe(quiet))
})

describe("shutdown", () => {
  it.live("records waiting in backoff at shutdown go out at once", () =>
    Effect.gen(function*() {
      let calls = 0
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        producerOver(
          LargePayloadStore.layerMemory(),
          { shutdownTimeout: "30 seconds" },
          { backoffBase: "1 hour", backoffCap: "1 hour" },
          (call) =>
            ++calls === 1
              ? KinesisTest.failEach(call, "ProvisionedThroughputExceededException")
              : KinesisTest.acceptAll(call)
        ),
        scope
      )
      const producer = yield* Effect.provide(KinesisProducer, context)
      const send = yield* Effect.fork(producer.send(small(1, 40)[0]!))
      while (calls === 0) yield* Effect.sleep("5 millis")
      yield* Scope.close(scope, Exit.void)
      const receipt = yield* Fiber.join(send)
      assert.strictEqual(receipt.attempts, 2)
    }).pipe(quiet))

  it.live("a record past its TTL at shutdown ends Expired, never Shutdown", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        producerOver(
          LargePayloadStore.layerMemory(),
          { shutdownTimeout: "300 millis", recordTtl: "50 millis", linger: "1 millis" },
          {},
          () => Effect.never
        ),
        scope
      )
      const producer = yield* Effect.provide(KinesisProducer, context)
      const send = yield* Effect.fork(Effect.flip(producer.send(small(1, 41)[0]!)))
      yield* Effect.sleep("200 millis")
      yield* Scope.close(scope, Exit.void)
      const error = yield* Fiber.join(send)
      assert.strictEqual(error._tag, "RecordUndeliveredError")
      if (error._tag === "RecordUndeliveredError") {
        assert.strictEqual(error.errorCode, "Expired")
        assert.isTrue(error.maybeDelivered)
        assert.strictEqual(error.attempts, 1)
      }
    }).pipe(quiet))
})
