import { create, equals, toBinary } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc } from "effect"
import * as Zlib from "node:zlib"
import {
  DataFileEntryRecordSchema,
  DataFileEntrySchema,
  DataFileInfoSchema,
  DataFileVersion,
  LargeDataFileEntrySchema
} from "../../src/gen/cygnus/v1/data_file_entry_pb.js"
import { DataFileV1Schema } from "../../src/gen/cygnus/v1/data_file_pb.js"
import * as RecordCodec from "../../src/internal/codec.js"
import { EnvelopePacker, unpack } from "../../src/internal/envelopePacker.js"
import { makeDataFile, serializedSize } from "../../src/RecordGenerator.js"
import { dataFileInfo, dataFileV1 } from "../arbitraries.js"

const RUNS = { numRuns: 250 }

const info = create(DataFileInfoSchema, {
  filePath: "s3://b/t/data/f.parquet",
  creationTime: 1_764_115_200_000n,
  accountId: "123456789012",
  recordId: "5b1f6f8e-2f0a-4b59-9d1e-7b1c2c4b6a10",
  logGroupId: "lg",
  schemaName: "schema"
})

/** The decoded standard entry of `data`, failing the test on anything else. */
const decodeStandard = (data: Uint8Array) => {
  const decoded = Either.getOrThrow(RecordCodec.decodeRecordDataSync(data))
  if (decoded.entry._tag !== "standard") assert.fail(`expected a standard entry, got ${decoded.entry._tag}`)
  return { info: decoded.info, dataFile: decoded.entry.dataFile }
}

describe("RecordCodec round trip", () => {
  it.prop("decode(encode(x)) equals x field by field, 64-bit integers, bytes and maps included", [
    dataFileV1,
    dataFileInfo
  ], ([dataFile, info]) => {
    const encoded = Either.getOrThrow(RecordCodec.encodeRecordSync(dataFile, info))
    const back = decodeStandard(encoded.data)
    assert.isTrue(equals(DataFileV1Schema, back.dataFile, dataFile))
    assert.isTrue(equals(DataFileInfoSchema, back.info, info))
    // Field by field, so that a failure names the field.
    for (const field of DataFileV1Schema.fields) {
      assert.deepStrictEqual(
        normalize((back.dataFile as any)[field.localName]),
        normalize((dataFile as any)[field.localName]),
        field.name
      )
    }
  }, { fastCheck: RUNS })

  it.prop("the envelope written around pre-serialized bytes is byte-identical to toBinary of the whole message", [
    dataFileV1,
    dataFileInfo
  ], ([dataFile, info]) => {
    const dataFileBytes = Either.getOrThrow(RecordCodec.serializeDataFileSync(dataFile))
    const envelope = Either.getOrThrow(RecordCodec.encodeEntryRecordSync(info, { _tag: "standard", dataFileBytes }))
    assert.deepStrictEqual(envelope, toBinary(DataFileEntryRecordSchema, RecordCodec.makeEntryRecord(dataFile, info)))
  }, { fastCheck: RUNS })

  it.prop("envelopes packed for a batch are byte-identical to toBinary of each whole message", [
    fc.array(fc.tuple(dataFileV1, dataFileInfo), { minLength: 1, maxLength: 5 }),
    dataFileInfo
  ], ([records, batchInfo]) => {
    const packer = new EnvelopePacker(batchInfo)
    const expected = records.map(([dataFile, info]) => {
      const perRecord = { ...batchInfo, filePath: info.filePath, recordId: info.recordId }
      const size = packer.add(toBinary(DataFileV1Schema, dataFile), perRecord.filePath, perRecord.recordId)
      const bytes = toBinary(
        DataFileEntryRecordSchema,
        RecordCodec.makeEntryRecord(dataFile, create(DataFileInfoSchema, perRecord))
      )
      assert.strictEqual(size, bytes.length)
      return bytes
    })
    assert.deepStrictEqual(unpack(packer.take()).map((b) => Uint8Array.from(b)), expected)
    assert.strictEqual(packer.count, 0)
  }, { fastCheck: RUNS })

  it.prop(
    "the serialized size the codec reports is the byte length that goes on the wire",
    [dataFileV1, dataFileInfo],
    ([dataFile, info]) => {
      const encoded = Either.getOrThrow(RecordCodec.encodeRecordSync(dataFile, info))
      assert.strictEqual(encoded.dataFileSize, toBinary(DataFileV1Schema, dataFile).length)
      assert.strictEqual(encoded.uncompressedSize, Zlib.gunzipSync(encoded.data).length)
      assert.strictEqual(
        encoded.uncompressedSize,
        toBinary(DataFileEntryRecordSchema, RecordCodec.makeEntryRecord(dataFile, info)).length
      )
    },
    { fastCheck: RUNS }
  )

  it.prop(
    "a large pointer round-trips and the S3 body is a standard DataFileEntry",
    [dataFileV1, dataFileInfo],
    ([dataFile, info]) => {
      const dataFileBytes = Either.getOrThrow(RecordCodec.serializeDataFileSync(dataFile))
      const body = RecordCodec.encodeStandardEntry(dataFileBytes)
      assert.isTrue(equals(DataFileV1Schema, Either.getOrThrow(RecordCodec.parseStandardEntrySync(body)), dataFile))
      const pointer = create(LargeDataFileEntrySchema, {
        bucket: "bkt",
        key: "lg-s-stream/id",
        sizeBytes: BigInt(body.length),
        sha256: new Uint8Array(32).fill(7)
      })
      const record = Either.getOrThrow(RecordCodec.encodeEntryRecordSync(info, { _tag: "large", pointer }))
      const decoded = Either.getOrThrow(
        RecordCodec.decodeRecordDataSync(Either.getOrThrow(RecordCodec.gzipSync(record)))
      )
      assert.strictEqual(decoded.entry._tag, "large")
      assert.isTrue(equals(LargeDataFileEntrySchema, (decoded.entry as { pointer: typeof pointer }).pointer, pointer))
    },
    { fastCheck: RUNS }
  )

  it.effect("the Effect API encodes and decodes a realistic record", () =>
    Effect.gen(function*() {
      const dataFile = makeDataFile({ columns: 50, seed: 3 })
      const encoded = yield* RecordCodec.encodeRecord(dataFile, info)
      assert.isBelow(encoded.data.length, encoded.uncompressedSize)
      const decoded = yield* RecordCodec.decodeRecordData(encoded.data)
      assert.strictEqual(decoded.entry._tag, "standard")
    }))
})

describe("RecordCodec refuses what it cannot carry", () => {
  it.effect("an empty file_path is a SerializationError naming the field", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(RecordCodec.encodeRecord(create(DataFileV1Schema, {}), info))
      assert.strictEqual(error._tag, "SerializationError")
      assert.include(error.message, "file_path")
    }))

  it.effect("an int64 out of range is a SerializationError naming the record's path", () =>
    Effect.gen(function*() {
      const dataFile = create(DataFileV1Schema, { filePath: "s3://x/y", recordCount: 2n ** 64n })
      const error = yield* Effect.flip(RecordCodec.encodeRecord(dataFile, info))
      assert.strictEqual(error._tag, "SerializationError")
      assert.include(error.message, "s3://x/y")
    }))

  it.effect("an invalid compression level is a CompressionError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(RecordCodec.encodeRecord(makeDataFile(), info, 42))
      assert.strictEqual(error._tag, "CompressionError")
    }))
})

describe("RecordCodec on corrupted input", () => {
  const encoded = Either.getOrThrow(RecordCodec.encodeRecordSync(makeDataFile({ columns: 10, seed: 11 }), info))
  // Bytes 4..9 of a gzip header (mtime, extra flags, OS) and the FTEXT hint bit of its flags
  // byte are not covered by any checksum: flipping them leaves the record intact.
  const unchecked = (index: number, mask: number) => (index >= 4 && index <= 9) || (index === 3 && mask === 1)

  it.prop("a flipped byte gives a DecodeError, or the original record when the byte is not checksummed", [
    fc.nat({ max: encoded.data.length - 1 }),
    fc.integer({ min: 1, max: 255 })
  ], ([index, mask]) => {
    const corrupted = Uint8Array.from(encoded.data)
    corrupted[index] = corrupted[index]! ^ mask
    const result = RecordCodec.decodeRecordDataSync(corrupted)
    if (Either.isLeft(result)) {
      assert.strictEqual(result.left._tag, "DecodeError")
    } else {
      assert.isTrue(unchecked(index, mask), `byte ${index} flipped with ${mask} yet decoded`)
    }
  }, { fastCheck: RUNS })

  it.prop(
    "a truncated record gives a DecodeError with reason Gunzip",
    [fc.nat({ max: encoded.data.length - 1 })],
    ([length]) => {
      const result = RecordCodec.decodeRecordDataSync(encoded.data.subarray(0, length))
      assert.isTrue(Either.isLeft(result))
      assert.strictEqual(Either.getLeft(result).pipe((o) => o._tag === "Some" ? o.value.reason : ""), "Gunzip")
    },
    { fastCheck: RUNS }
  )

  it.prop("random bytes give a DecodeError, never a crash", [fc.uint8Array({ maxLength: 2048 })], ([bytes]) => {
    const result = RecordCodec.decodeRecordDataSync(bytes)
    assert.isTrue(Either.isLeft(result))
  }, { fastCheck: RUNS })

  it.prop(
    "gzip'd bytes that are not our message give a DecodeError",
    [fc.uint8Array({ maxLength: 512 })],
    ([bytes]) => {
      const result = RecordCodec.decodeRecordDataSync(Zlib.gzipSync(bytes))
      assert.isTrue(Either.isLeft(result))
      assert.include(
        ["Protobuf", "MissingField", "UnsupportedVersion"],
        Either.getLeft(result).pipe((o) => o._tag === "Some" ? o.value.reason : "")
      )
    },
    { fastCheck: RUNS }
  )

  it.effect("empty input gives a DecodeError that says so", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(RecordCodec.decodeRecordData(new Uint8Array(0)))
      assert.strictEqual(error.reason, "Gunzip")
      assert.include(error.message, "empty")
    }))

  it.effect("an entry with no case set is a DecodeError with reason MissingField", () =>
    Effect.gen(function*() {
      const bytes = toBinary(
        DataFileEntryRecordSchema,
        create(DataFileEntryRecordSchema, { dataFileInfo: info, dataFileEntry: {} })
      )
      const error = yield* Effect.flip(RecordCodec.decodeRecordData(Zlib.gzipSync(bytes)))
      assert.strictEqual(error.reason, "MissingField")
      assert.include(error.detail, "entry")
    }))

  it.effect("an unknown standard entry version is a DecodeError with reason UnsupportedVersion", () =>
    Effect.gen(function*() {
      const bytes = toBinary(
        DataFileEntrySchema,
        create(DataFileEntrySchema, {
          entry: { case: "standard", value: { version: DataFileVersion.UNSPECIFIED, dataFileV1: makeDataFile() } }
        })
      )
      const result = RecordCodec.parseStandardEntrySync(bytes)
      assert.strictEqual(Either.isLeft(result) && result.left.reason, "UnsupportedVersion")
    }))
})

describe("RecordGenerator", () => {
  it("makes records of exactly the serialized size asked for, on both sides of a threshold", () => {
    for (const size of [921_599, 921_600, 921_601, 2_000, 1_048_577]) {
      assert.strictEqual(serializedSize(makeDataFile({ columns: 10, seed: size, serializedBytes: size })), size)
    }
  })

  it("is deterministic for a seed and makes Iceberg-like records", () => {
    const a = makeDataFile({ columns: 50, seed: 42 })
    assert.isTrue(equals(DataFileV1Schema, a, makeDataFile({ columns: 50, seed: 42 })))
    assert.match(
      a.filePath,
      /^s3:\/\/warehouse-[a-z0-9-]+\/analytics\/\w+\/data\/event_date=\d{4}-\d{2}-\d{2}\/region=[a-z0-9-]+\/.+\.(parquet|avro|orc)$/
    )
    assert.strictEqual(Object.keys(a.columnSizes).length, 50)
    assert.strictEqual(Object.keys(a.lowerBounds).length, 50)
    assert.deepStrictEqual(Object.keys(a.partition).sort(), ["event_date", "region"])
  })
})

const normalize = (value: unknown): unknown =>
  value instanceof Uint8Array ? Array.from(value) : value !== null && typeof value === "object"
    ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]))
    : value
