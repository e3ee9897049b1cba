import { create, equals, toBinary } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel } from "effect"
import * as Zlib from "node:zlib"
import {
  DataFileEntryRecordSchema,
  DataFileInfoSchema,
  DataFileV1Schema,
  KinesisWriter,
  LargePayloadStore,
  RecordReader
} from "../../src/index.js"
import { KinesisTestRecorder } from "../../src/KinesisTest.js"
import { RecordGenerator } from "../../src/testing.js"
import { writerLayer } from "../support/writerLayers.js"

/** Writes a batch through the double and returns the Data of every record sent, the store's view and the ids. */
const writeAndCollect = (batch: ReturnType<typeof RecordGenerator.makeDataFiles>, threshold: number) =>
  Effect.gen(function*() {
    const memory = yield* LargePayloadStore.makeMemory("bucket")
    const store = Layer.succeed(LargePayloadStore, memory.service)
    const { calls, result } = yield* Effect.gen(function*() {
      const result = yield* (yield* KinesisWriter).writeBatch(batch)
      return { result, calls: yield* (yield* KinesisTestRecorder).calls }
    }).pipe(Effect.provide(writerLayer(undefined, { largePayloadThreshold: threshold }, { store })))
    return { memory, store, result, data: calls.flatMap((c) => c.request.records.map((r) => r.data)) }
  })

describe("RecordReader", () => {
  it.effect("round trip: every record written reads back equal, large ones through the store", () =>
    Effect.gen(function*() {
      const batch = [
        ...RecordGenerator.makeDataFiles(20, { columns: 6 }),
        RecordGenerator.makeDataFile({ seed: 100, serializedBytes: 6_000 }),
        RecordGenerator.makeDataFile({ seed: 101, serializedBytes: 9_000 })
      ]
      const { data, result, store } = yield* writeAndCollect(batch, 5_000)
      const decoded = yield* RecordReader.decodeRecords(data.map((Data) => ({ Data }))).pipe(Effect.provide(store))
      assert.strictEqual(decoded.length, batch.length)
      for (const record of decoded) {
        const index = result.recordIds.indexOf(record.info.recordId)
        assert.isAtLeast(index, 0)
        assert.isTrue(equals(DataFileV1Schema, record.dataFile, batch[index]!))
        assert.strictEqual(record.largePayload !== undefined, index >= 20)
      }
    }))

  it.effect("a Lambda event (base64 data) decodes the same", () =>
    Effect.gen(function*() {
      const batch = RecordGenerator.makeDataFiles(3)
      const { data, store } = yield* writeAndCollect(batch, 921_600)
      const decoded = yield* RecordReader.decodeLambdaEvent({
        Records: data.map((d) => ({ kinesis: { data: Buffer.from(d).toString("base64") } }))
      }).pipe(Effect.provide(store))
      assert.strictEqual(decoded.length, 3)
    }))

  it.effect("a large payload whose bytes changed fails the sha256 check", () =>
    Effect.gen(function*() {
      const { data, memory } = yield* writeAndCollect([
        RecordGenerator.makeDataFile({ seed: 7, serializedBytes: 6_000 })
      ], 5_000)
      const [key, body] = [...(yield* memory.objects)][0]!
      const tampered = Uint8Array.from(body)
      tampered[tampered.length - 1]! ^= 0xff
      const [bucket, ...rest] = key.split("/")
      yield* memory.service.write(rest.join("/"), tampered)
      assert.strictEqual(bucket, "bucket")
      const error = yield* Effect.flip(RecordReader.decodeRecord(data[0]!)).pipe(
        Effect.provide(Layer.succeed(LargePayloadStore, memory.service))
      )
      assert.strictEqual(error._tag, "DecodeError")
      if (error._tag !== "DecodeError") return
      assert.strictEqual(error.reason, "ChecksumMismatch")
      assert.include(error.message, rest.join("/"))
    }))

  it.effect("a large payload of another size fails the size check", () =>
    Effect.gen(function*() {
      const { data, memory } = yield* writeAndCollect([
        RecordGenerator.makeDataFile({ seed: 8, serializedBytes: 6_000 })
      ], 5_000)
      const [key, body] = [...(yield* memory.objects)][0]!
      yield* memory.service.write(key.split("/").slice(1).join("/"), body.subarray(1))
      const error = yield* Effect.flip(RecordReader.decodeRecord(data[0]!)).pipe(
        Effect.provide(Layer.succeed(LargePayloadStore, memory.service))
      )
      assert.isTrue(error._tag === "DecodeError" && error.reason === "SizeMismatch")
    }))

  it.effect("a missing S3 object is a LargePayloadStoreError naming the key", () =>
    Effect.gen(function*() {
      const { data } = yield* writeAndCollect(
        [RecordGenerator.makeDataFile({ seed: 9, serializedBytes: 6_000 })],
        5_000
      )
      const error = yield* Effect.flip(RecordReader.decodeRecord(data[0]!)).pipe(
        Effect.provide(LargePayloadStore.layerMemory("bucket"))
      )
      assert.strictEqual(error._tag, "LargePayloadStoreError")
      if (error._tag !== "LargePayloadStoreError") return
      assert.strictEqual(error.errorName, "NoSuchKey")
      assert.match(error.key, /^lg-schema-test-stream\/[0-9a-f-]{36}$/)
    }))

  it.effect("truncated gzip and bytes that are not our message are DecodeErrors", () =>
    Effect.gen(function*() {
      const { data, store } = yield* writeAndCollect(RecordGenerator.makeDataFiles(1), 921_600)
      const truncated = yield* Effect.flip(RecordReader.decodeRecord(data[0]!.subarray(0, data[0]!.length - 4))).pipe(
        Effect.provide(store)
      )
      assert.isTrue(truncated._tag === "DecodeError" && truncated.reason === "Gunzip")
      const notOurs = Zlib.gzipSync(toBinary(DataFileInfoSchema, create(DataFileInfoSchema, { filePath: "x" })))
      const other = yield* Effect.flip(RecordReader.decodeRecord(notOurs)).pipe(Effect.provide(store))
      assert.strictEqual(other._tag, "DecodeError")
      const noEntry = Zlib.gzipSync(
        toBinary(DataFileEntryRecordSchema, create(DataFileEntryRecordSchema, { dataFileInfo: {} }))
      )
      const missing = yield* Effect.flip(RecordReader.decodeRecord(noEntry)).pipe(Effect.provide(store))
      assert.isTrue(missing._tag === "DecodeError" && missing.reason === "MissingField")
    }))
})

describe("RecordReader: Lambda events, record by record", () => {
  /** An event of 3 good records, one corrupted, one without data, one whose S3 object is missing, one more good. */
  const mixedEvent = Effect.gen(function*() {
    const { data, store } = yield* writeAndCollect(RecordGenerator.makeDataFiles(4), 921_600)
    const large = yield* writeAndCollect([RecordGenerator.makeDataFile({ seed: 9, serializedBytes: 6_000 })], 5_000)
    const base64 = (d: Uint8Array) => Buffer.from(d).toString("base64")
    const records = [
      { kinesis: { data: base64(data[0]!), sequenceNumber: "100" } },
      { kinesis: { data: base64(data[1]!), sequenceNumber: "101" } },
      { kinesis: { data: base64(data[2]!), sequenceNumber: "102" } },
      { kinesis: { data: base64(data[3]!.subarray(0, 10)), sequenceNumber: "103" } },
      { kinesis: { sequenceNumber: "104" } },
      // Its object is in another store: NoSuchKey here.
      { kinesis: { data: base64(large.data[0]!), sequenceNumber: "105" } },
      { kinesis: { data: base64(data[0]!), sequenceNumber: "106" } }
    ]
    return { event: { Records: records }, store }
  })

  it.effect("decodeLambdaRecords: one result per record, in order, with its index, sequence number and error", () =>
    Effect.gen(function*() {
      const { event, store } = yield* mixedEvent
      const results = yield* RecordReader.decodeLambdaRecords(event).pipe(Effect.provide(store))
      assert.deepStrictEqual(
        results.map((r) => [r._tag, r.index, r.sequenceNumber]),
        [
          ["Decoded", 0, "100"],
          ["Decoded", 1, "101"],
          ["Decoded", 2, "102"],
          ["Failed", 3, "103"],
          ["Failed", 4, "104"],
          ["Failed", 5, "105"],
          ["Decoded", 6, "106"]
        ]
      )
      const errors = results.flatMap((r) => r._tag === "Failed" ? [r.error] : [])
      assert.isTrue(errors[0]!._tag === "DecodeError" && errors[0]!.reason === "Gunzip")
      assert.isTrue(errors[1]!._tag === "DecodeError" && errors[1]!.reason === "MissingField")
      assert.include(errors[1]!.message, "#4, sequence number 104")
      assert.include(errors[1]!.message, "kinesis.data")
      assert.isTrue(errors[2]!._tag === "LargePayloadStoreError" && errors[2]!.errorName === "NoSuchKey")
    }))

  it.effect("decodeLambdaEvent stays all or nothing, and a record without data fails inside the Effect, named", () =>
    Effect.gen(function*() {
      const { event, store } = yield* mixedEvent
      const noData = { Records: [event.Records[0]!, event.Records[4]!] }
      const error = yield* Effect.flip(RecordReader.decodeLambdaEvent(noData)).pipe(Effect.provide(store))
      assert.strictEqual(error._tag, "DecodeError")
      if (error._tag !== "DecodeError") return
      assert.strictEqual(error.recordIndex, 1)
      assert.strictEqual(error.sequenceNumber, "104")
      assert.strictEqual(
        error.message,
        "cannot decode record #1, sequence number 104 (MissingField): the Lambda event record has no kinesis.data"
      )
      const corrupt = yield* Effect.flip(RecordReader.decodeLambdaEvent({ Records: [event.Records[3]!] })).pipe(
        Effect.provide(store)
      )
      assert.include(corrupt.message, "#0, sequence number 103 (Gunzip)")
    }))

  it.effect("processLambdaEvent: batchItemFailures holds the sequence number of each record that failed to decode or to be handled", () =>
    Effect.gen(function*() {
      const { event, store } = yield* mixedEvent
      const handled: Array<string | undefined> = []
      const warnings: Array<string> = []
      const response = yield* RecordReader.processLambdaEvent(
        event,
        (record, { sequenceNumber }) =>
          Effect.suspend(() => {
            handled.push(sequenceNumber)
            if (sequenceNumber === "101") return Effect.fail(new Error("downstream refused"))
            if (sequenceNumber === "102") return Effect.die("handler bug")
            assert.isTrue(record.dataFile.filePath.startsWith("s3://"))
            return Effect.void
          })
      ).pipe(
        Effect.provide(store),
        Effect.provide(Logger.replace(
          Logger.defaultLogger,
          Logger.make(({ logLevel, message }) => {
            if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) warnings.push(String(message))
          })
        ))
      )
      assert.deepStrictEqual(response, {
        batchItemFailures: ["101", "102", "103", "104", "105"].map((itemIdentifier) => ({ itemIdentifier }))
      })
      // In order, each decodable record once.
      assert.deepStrictEqual(handled, ["100", "101", "102", "106"])
      assert.deepStrictEqual(warnings, ["Kinesis records failed; reported in batchItemFailures"])
    }))

  it.effect("processLambdaEvent: an event whose records all succeed reports no failure", () =>
    Effect.gen(function*() {
      const { event, store } = yield* mixedEvent
      const response = yield* RecordReader.processLambdaEvent(
        { Records: event.Records.slice(0, 3) },
        () => Effect.void
      ).pipe(Effect.provide(store))
      assert.deepStrictEqual(response, { batchItemFailures: [] })
    }))
})
