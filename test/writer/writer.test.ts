import { create, equals } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Layer, Schedule, TestClock } from "effect"
import { Compressor } from "../../src/Compressor.js"
import {
  CompressionError,
  DataFileV1Schema,
  KinesisWriter,
  LargePayloadStore,
  RecordCodec,
  RecordReader
} from "../../src/index.js"
import { distributionBucket } from "../../src/internal/core/partitionKey.js"
import { engineOf } from "../../src/internal/engine.js"
import { KinesisTestRecorder } from "../../src/KinesisTest.js"
import { KinesisTest, RecordGenerator } from "../../src/testing.js"
import { baseOptions, countingStore, writerLayer } from "../support/writerLayers.js"

const records = (n: number, columns = 8) => RecordGenerator.makeDataFiles(n, { columns })
const noDelay = { schedule: Schedule.recurs(3) }

/** The decoded info and data file of every record of every recorded call, with its key. */
const sentRecords = Effect.gen(function*() {
  const recorder = yield* KinesisTestRecorder
  const calls = yield* recorder.calls
  return calls.map((call) =>
    call.request.records.map((r) => {
      const decoded = Either.getOrThrow(RecordCodec.decodeRecordDataSync(r.data))
      return { partitionKey: r.partitionKey, bytes: r.data.length + Buffer.byteLength(r.partitionKey), ...decoded }
    })
  )
})

describe("KinesisWriter.writeBatch: batching within Kinesis limits", () => {
  it.effect("an empty batch succeeds at once with no call", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const result = yield* writer.writeBatch([])
      assert.strictEqual(result.records, 0)
      assert.strictEqual(result.kinesisCalls, 0)
      assert.strictEqual((yield* (yield* KinesisTestRecorder).calls).length, 0)
    }).pipe(Effect.provide(writerLayer())))

  it.effect("1,234 records make 3 calls of 500, 500 and 234", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const result = yield* writer.writeBatch(records(1_234))
      assert.strictEqual(result.kinesisCalls, 3)
      const calls = yield* sentRecords
      assert.deepStrictEqual(calls.map((c) => c.length).sort((a, b) => b - a), [500, 500, 234])
      assert.strictEqual(new Set(calls.flat().map((r) => r.info.recordId)).size, 1_234)
      assert.deepStrictEqual(
        result.recordIds,
        calls.flat().map((r) => r.info.recordId).sort((a, b) =>
          result.recordIds.indexOf(a) - result.recordIds.indexOf(b)
        )
      )
    }).pipe(Effect.provide(writerLayer())))

  it.effect("7 incompressible records of 800 KB make at least 2 calls, each within 5 MiB", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const batch = Array.from(
        { length: 7 },
        (_, i) => RecordGenerator.makeDataFile({ seed: i + 1, serializedBytes: 800_000 })
      )
      const result = yield* writer.writeBatch(batch)
      assert.strictEqual(result.largePayloads, 0)
      assert.isAtLeast(result.kinesisCalls, 2)
      for (const call of yield* sentRecords) {
        assert.isAtMost(call.reduce((n, r) => n + r.bytes, 0), 5 * 1024 * 1024)
      }
    }).pipe(Effect.provide(writerLayer())))

  it.effect("maxRequestBytes bounds every call", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const result = yield* writer.writeBatch(records(300, 40))
      const calls = yield* sentRecords
      assert.strictEqual(calls.length, result.kinesisCalls)
      assert.isAbove(calls.length, 1)
      for (const call of calls) assert.isAtMost(call.reduce((n, r) => n + r.bytes, 0), 64 * 1024)
    }).pipe(
      Effect.provide(
        writerLayer(undefined, { maxRequestBytes: 64 * 1024, readStreamRecordLimit: true }, {
          summary: { maxRecordSizeInKiB: 64 }
        })
      )
    ))

  it.effect("each record gets a fresh record_id, the creation time from Clock and the writer's info", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_764_115_200_123)
      const writer = yield* KinesisWriter
      const batch = records(20)
      const result = yield* writer.writeBatch(batch)
      const sent = (yield* sentRecords).flat()
      for (const r of sent) {
        assert.strictEqual(r.info.creationTime, 1_764_115_200_123n)
        assert.strictEqual(r.info.accountId, baseOptions.accountId)
        assert.strictEqual(r.info.logGroupId, baseOptions.logGroupId)
        assert.strictEqual(r.info.schemaName, baseOptions.schemaName)
        assert.match(r.info.recordId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
        const index = result.recordIds.indexOf(r.info.recordId)
        assert.strictEqual(r.info.filePath, batch[index]!.filePath)
        assert.strictEqual(r.entry._tag, "standard")
        if (r.entry._tag === "standard") assert.isTrue(equals(DataFileV1Schema, r.entry.dataFile, batch[index]!))
      }
      const again = yield* writer.writeBatch(batch)
      assert.isTrue(again.recordIds.every((id) => !result.recordIds.includes(id)))
    }).pipe(Effect.provide(writerLayer())))

  it.effect("partition keys are {logGroupId}-{schemaName}-{bucket}-0 and spread over the buckets", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      yield* writer.writeBatch(records(400))
      const sent = (yield* sentRecords).flat()
      for (const r of sent) {
        assert.strictEqual(r.partitionKey, `lg-schema-${distributionBucket(r.info.filePath, 8)}-0`)
      }
      assert.strictEqual(new Set(sent.map((r) => r.partitionKey)).size, 8)
    }).pipe(Effect.provide(writerLayer(undefined, { distributionFactor: 8 }))))

  it.effect("a distributionFactor below 1 is clamped to 1", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      assert.strictEqual(engineOf(writer)!.config.distributionFactor, 1)
      yield* writer.writeBatch(records(10))
      assert.isTrue((yield* sentRecords).flat().every((r) => r.partitionKey === "lg-schema-0-0"))
    }).pipe(Effect.provide(writerLayer(undefined, { distributionFactor: -3 }))))
})

describe("KinesisWriter.writeBatch: large payloads", () => {
  const threshold = 921_600

  it.effect("records on both sides of the threshold: over it goes to S3, at it stays inline", () =>
    Effect.gen(function*() {
      const memory = yield* LargePayloadStore.makeMemory("bucket")
      const writer = yield* KinesisWriter.pipe(
        Effect.provide(writerLayer(undefined, {}, { store: Layer.succeed(LargePayloadStore, memory.service) }))
      )
      const atThreshold = RecordGenerator.makeDataFile({
        seed: 1,
        serializedBytes: threshold,
        compressiblePadding: true
      })
      const overThreshold = RecordGenerator.makeDataFile({
        seed: 2,
        serializedBytes: threshold + 1,
        compressiblePadding: true
      })
      const result = yield* writer.writeBatch([atThreshold, overThreshold])
      assert.strictEqual(result.largePayloads, 1)
      const objects = yield* memory.objects
      assert.deepStrictEqual([...objects.keys()], [`bucket/lg-schema-test-stream/${result.recordIds[1]}`])
      assert.strictEqual(objects.get(`bucket/lg-schema-test-stream/${result.recordIds[1]}`)!.length > threshold, true)
    }))

  it.effect("the 1 MiB guard: an incompressible record under the threshold that would not fit goes to S3", () =>
    Effect.gen(function*() {
      const memory = yield* LargePayloadStore.makeMemory("bucket")
      const justFits = RecordGenerator.makeDataFile({ seed: 1, serializedBytes: 1_040_000 })
      const tooBig = RecordGenerator.makeDataFile({ seed: 2, serializedBytes: 1_048_500 })
      const compressible = RecordGenerator.makeDataFile({
        seed: 3,
        serializedBytes: 3_000_000,
        compressiblePadding: true
      })
      yield* Effect.gen(function*() {
        const result = yield* (yield* KinesisWriter).writeBatch([justFits, tooBig, compressible])
        assert.strictEqual(result.largePayloads, 1)
        assert.deepStrictEqual([...(yield* memory.objects).keys()], [
          `bucket/lg-schema-test-stream/${result.recordIds[1]}`
        ])
        for (const r of (yield* sentRecords).flat()) assert.isAtMost(r.bytes, 1024 * 1024)
      }).pipe(Effect.provide(
        writerLayer(undefined, { largePayloadThreshold: 4_000_000 }, {
          store: Layer.succeed(LargePayloadStore, memory.service)
        })
      ))
    }))

  it.effect("the stream's MaxRecordSizeInKiB, when read, raises the guard", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      assert.strictEqual(engineOf(writer)!.recordLimitBytes, 10 * 1024 * 1024)
      const result = yield* writer.writeBatch([RecordGenerator.makeDataFile({ seed: 2, serializedBytes: 1_500_000 })])
      assert.strictEqual(result.largePayloads, 0)
    }).pipe(
      Effect.provide(
        writerLayer(undefined, {
          largePayloadThreshold: 4_000_000,
          readStreamRecordLimit: true,
          maxRequestBytes: 10 * 1024 * 1024
        }, {
          summary: { maxRecordSizeInKiB: 10_240 }
        })
      )
    ))

  it.effect("a large record reads back through the store, verified", () =>
    Effect.gen(function*() {
      const memory = yield* LargePayloadStore.makeMemory("bucket")
      const store = Layer.succeed(LargePayloadStore, memory.service)
      const batch = [
        RecordGenerator.makeDataFile({ seed: 5, serializedBytes: 5_000 }),
        RecordGenerator.makeDataFile({ seed: 6, columns: 2 })
      ]
      const calls = yield* Effect.gen(function*() {
        yield* (yield* KinesisWriter).writeBatch(batch)
        return yield* (yield* KinesisTestRecorder).calls
      }).pipe(Effect.provide(writerLayer(undefined, { largePayloadThreshold: 1_000 }, { store })))
      const back = yield* RecordReader.decodeRecords(
        calls.flatMap((c) => c.request.records.map((r) => ({ Data: r.data })))
      ).pipe(
        Effect.provide(store)
      )
      assert.strictEqual(back.length, 2)
      const large = back.filter((r) => r.largePayload !== undefined)
      assert.strictEqual(large.length, 1)
      assert.isTrue(equals(DataFileV1Schema, large[0]!.dataFile, batch[0]!))
      const [object] = (yield* memory.objects).values()
      assert.strictEqual(large[0]!.largePayload!.sizeBytes, BigInt(object!.length))
    }))
})

describe("KinesisWriter.writeBatch: retries", () => {
  it.effect("only failed records are re-sent, with the next attempt's partition key and the same record_id", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const result = yield* writer.writeBatch(records(10), noDelay)
      assert.strictEqual(result.retries, 2)
      assert.strictEqual(result.retriedRecords, 4 + 1)
      const [first, second, third] = yield* sentRecords
      assert.strictEqual(first!.length, 10)
      assert.deepStrictEqual(second!.map((r) => r.info.recordId), [0, 3, 6, 9].map((i) => first![i]!.info.recordId))
      assert.deepStrictEqual(
        second!.map((r) => r.partitionKey),
        [0, 3, 6, 9].map((i) => first![i]!.partitionKey.replace(/-0$/, "-1"))
      )
      assert.deepStrictEqual(third!.map((r) => r.info.recordId), [first![0]!.info.recordId])
      assert.strictEqual(third![0]!.partitionKey, first![0]!.partitionKey.replace(/-0$/, "-2"))
    }).pipe(Effect.provide(writerLayer((call) =>
      call.index === 0
        ? KinesisTest.perRecord(call, (_, i) => i % 3 === 0 ? "ProvisionedThroughputExceededException" : undefined)
        : call.index === 1
        ? KinesisTest.perRecord(call, (_, i) => i === 0 ? "InternalFailure" : undefined)
        : KinesisTest.acceptAll(call)
    ))))

  it.effect("retries stop after maxRetries and the error names every undelivered record with its code", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const batch = records(6)
      const error = yield* Effect.flip(writer.writeBatch(batch, { schedule: Schedule.recurs(2) }))
      assert.strictEqual(error._tag, "WriteBatchError")
      if (error._tag !== "WriteBatchError") return
      assert.strictEqual(error.attempts, 3)
      assert.strictEqual(error.delivered, 4)
      assert.deepStrictEqual(error.undelivered.map((u) => u.index), [1, 4])
      assert.deepStrictEqual(error.undelivered.map((u) => u.record), [batch[1], batch[4]])
      assert.isTrue(error.undelivered.every((u) => u.errorCode === "ProvisionedThroughputExceededException"))
      assert.strictEqual((yield* (yield* KinesisTestRecorder).calls).length, 3)
      assert.include(error.message, "2 of 6 records not delivered")
    }).pipe(Effect.provide(writerLayer((call) =>
      call.index === 0
        ? KinesisTest.perRecord(call, (_, i) => i % 3 === 1 ? "ProvisionedThroughputExceededException" : undefined)
        : KinesisTest.failEach(call, "ProvisionedThroughputExceededException")
    ))))

  it.effect("a non-retryable per-record code is not retried but handed back", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const error = yield* Effect.flip(writer.writeBatch(records(4), noDelay))
      if (error._tag !== "WriteBatchError") return assert.fail(error.message)
      assert.deepStrictEqual(error.undelivered.map((u) => [u.index, u.errorCode]), [[2, "KMSAccessDeniedException"]])
      assert.strictEqual(error.delivered, 3)
      assert.strictEqual(error.attempts, 1)
    }).pipe(Effect.provide(writerLayer((call) =>
      KinesisTest.perRecord(call, (_, i) => i === 2 ? "KMSAccessDeniedException" : undefined)
    ))))

  it.effect("a retryable whole-call failure (HTTP 500) is retried and the batch succeeds", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const result = yield* writer.writeBatch(records(5), noDelay)
      assert.strictEqual(result.kinesisCalls, 2)
      assert.strictEqual(result.retries, 1)
    }).pipe(
      Effect.provide(writerLayer((call) =>
        call.index === 0
          ? KinesisTest.failCall(call, "InternalFailure", { httpStatus: 500, retryable: true })
          : KinesisTest.acceptAll(call)
      ))
    ))

  it.effect("a non-retryable whole-call failure fails fast with the KinesisError as cause and every record named", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const error = yield* Effect.flip(writer.writeBatch(records(700), noDelay))
      if (error._tag !== "WriteBatchError") return assert.fail(error.message)
      assert.strictEqual(error.attempts, 1)
      if (error.cause?._tag !== "KinesisError") return assert.fail(`cause: ${error.cause?._tag}`)
      assert.strictEqual(error.cause.errorName, "AccessDeniedException")
      assert.strictEqual(error.cause.retryable, false)
      assert.strictEqual(error.undelivered.length, 700)
      assert.strictEqual(error.delivered, 0)
      assert.strictEqual((yield* (yield* KinesisTestRecorder).calls).length, 2)
    }).pipe(
      Effect.provide(
        writerLayer((call) =>
          KinesisTest.failCall(call, "AccessDeniedException", { httpStatus: 400, retryable: false })
        )
      )
    ))

  it.effect("S3 is written once per large record across retries", () =>
    Effect.gen(function*() {
      const memory = yield* LargePayloadStore.makeMemory()
      const counter = { writes: 0 }
      const writer = yield* KinesisWriter.pipe(Effect.provide(writerLayer(
        (call) =>
          call.index < 3
            ? KinesisTest.failEach(call, "ProvisionedThroughputExceededException")
            : KinesisTest.acceptAll(call),
        { largePayloadThreshold: 1_000 },
        { store: countingStore(memory, counter) }
      )))
      const batch = [1, 2, 3].map((seed) => RecordGenerator.makeDataFile({ seed, serializedBytes: 2_000 }))
      const result = yield* writer.writeBatch(batch, noDelay)
      assert.strictEqual(result.retries, 3)
      assert.strictEqual(result.largePayloads, 3)
      assert.strictEqual(counter.writes, 3)
      assert.strictEqual((yield* memory.objects).size, 3)
    }))

  it.effect("a transient S3 fault is retried; a permanent one stops the batch before anything is sent, naming the record", () =>
    Effect.gen(function*() {
      const batch = [
        RecordGenerator.makeDataFile({ seed: 1, columns: 2 }),
        RecordGenerator.makeDataFile({ seed: 2, serializedBytes: 5_000 })
      ]
      const transient = { writes: 0 }
      const ok = yield* Effect.flatMap(KinesisWriter, (w) => w.writeBatch(batch)).pipe(
        Effect.provide(writerLayer(undefined, { largePayloadThreshold: 1_000, backoffBase: "1 millis" }, {
          store: countingStore(yield* LargePayloadStore.makeMemory(), transient, {
            count: 2,
            errorName: "SlowDown",
            retryable: true
          })
        })),
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      const result = yield* ok.await
      assert.isTrue(result._tag === "Success" && result.value.largePayloads === 1)
      assert.strictEqual(transient.writes, 3)

      const permanent = { writes: 0 }
      const error = yield* Effect.flatMap(
        KinesisWriter,
        (w) =>
          Effect.flatMap(
            w.writeBatch(batch).pipe(Effect.flip),
            (e) => Effect.map(Effect.flatMap(KinesisTestRecorder, (r) => r.calls), (calls) => ({ e, calls }))
          )
      ).pipe(
        Effect.provide(writerLayer(undefined, { largePayloadThreshold: 1_000 }, {
          store: countingStore(yield* LargePayloadStore.makeMemory(), permanent, {
            count: 99,
            errorName: "AccessDenied",
            retryable: false
          })
        }))
      )
      assert.strictEqual(error.e._tag, "LargePayloadStoreError")
      if (error.e._tag !== "LargePayloadStoreError") return
      assert.strictEqual(error.e.recordIndex, 1)
      assert.strictEqual(error.e.errorName, "AccessDenied")
      assert.strictEqual(permanent.writes, 1)
      assert.strictEqual(error.calls.length, 0)
    }))

  it.effect("an empty file_path is a SerializationError naming the record, before any call", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const batch = [...records(3), create(DataFileV1Schema, { filePath: "" })]
      const error = yield* Effect.flip(writer.writeBatch(batch))
      assert.strictEqual(error._tag, "SerializationError")
      if (error._tag !== "SerializationError") return
      assert.strictEqual(error.recordIndex, 3)
      assert.include(error.message, "file_path")
      assert.include(error.message, "record #3")
      assert.strictEqual((yield* (yield* KinesisTestRecorder).calls).length, 0)
    }).pipe(Effect.provide(writerLayer())))

  it.effect("a chunk that cannot be compressed after earlier chunks were sent: every record not written is named, none lost", () =>
    Effect.gen(function*() {
      let batches = 0
      const failingSecond = Layer.succeed(
        Compressor,
        Compressor.of({
          gzipPacked: (packed, level) =>
            ++batches === 2
              ? Effect.fail(new CompressionError({ reason: "worker died" }))
              : Compressor.mainThread.gzipPacked(packed, level)
        })
      )
      const { calls, error } = yield* Effect.gen(function*() {
        const error = yield* Effect.flip((yield* KinesisWriter).writeBatch(records(1_200), noDelay))
        return { error, calls: yield* (yield* KinesisTestRecorder).calls }
      }).pipe(Effect.provide(writerLayer(
        (call) => KinesisTest.perRecord(call, (_, i) => i < 10 ? "ProvisionedThroughputExceededException" : undefined),
        { maxConcurrentCalls: 1, compressionWorkers: 0 },
        { compressor: failingSecond }
      )))
      if (error._tag !== "WriteBatchError") return assert.fail(error.message)
      assert.strictEqual(error.cause?._tag, "CompressionError")
      const written = calls.reduce((n, c) => n + c.request.records.length, 0) - 10 * calls.length
      assert.strictEqual(error.delivered, written)
      assert.strictEqual(error.delivered + error.undelivered.length, 1_200)
      const codes = new Set(error.undelivered.map((u) => u.errorCode))
      assert.isTrue(codes.has("CompressionError"))
      assert.isTrue(
        codes.has("ProvisionedThroughputExceededException"),
        "the throttled records of the sent chunk are named too"
      )
    }))

  it.effect("the single-attempt building blocks let a caller drive retries", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const batch = yield* writer.prepare(records(4))
      const first = yield* writer.putAttempt(batch.records, 0)
      assert.strictEqual(first.written, 3)
      assert.deepStrictEqual(first.failed.map((f) => [f.record.index, f.errorCode, f.retryable]), [[
        0,
        "InternalFailure",
        true
      ]])
      const second = yield* writer.putAttempt(first.failed.map((f) => f.record), 1)
      assert.strictEqual(second.written, 1)
      const calls = yield* (yield* KinesisTestRecorder).calls
      assert.isTrue(calls[1]!.request.records[0]!.partitionKey.endsWith("-1"))
    }).pipe(Effect.provide(writerLayer((call) =>
      call.index === 0
        ? KinesisTest.perRecord(call, (_, i) => i === 0 ? "InternalFailure" : undefined)
        : KinesisTest.acceptAll(call)
    ))))
})
