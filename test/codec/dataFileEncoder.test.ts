import { create, toBinary } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { DataFileEntryRecordSchema, DataFileVersion } from "../../src/gen/cygnus/v1/data_file_entry_pb.js"
import type { DataFileV1 } from "../../src/gen/cygnus/v1/data_file_pb.js"
import { DataFileV1Schema } from "../../src/gen/cygnus/v1/data_file_pb.js"
import { DataFileEncoder } from "../../src/internal/dataFileEncoder.js"
import { RecordGenerator } from "../../src/testing.js"
import { dataFileInfo, dataFileV1 } from "../arbitraries.js"

const INFO = { creationTime: 1_764_000_000_000n, accountId: "123456789012", logGroupId: "lg", schemaName: "orders" }

/** The envelope as a message, through protobuf-es: what the encoder must write byte for byte. */
const envelopeOf = (
  record: DataFileV1,
  info: { creationTime: bigint; accountId: string; logGroupId: string; schemaName: string },
  recordId: string
) =>
  toBinary(
    DataFileEntryRecordSchema,
    create(DataFileEntryRecordSchema, {
      dataFileInfo: { ...info, filePath: record.filePath, recordId },
      dataFileEntry: { entry: { case: "standard", value: { version: DataFileVersion.V1, dataFileV1: record } } }
    })
  )

const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.from(a).equals(Buffer.from(b))

describe("DataFileEncoder", () => {
  it("writes any DataFileV1 byte for byte as toBinary does, records one after another in one buffer", () => {
    // A small buffer: growing it mid-record must not change earlier views... until reset.
    const encoder = new DataFileEncoder(INFO, 64)
    fc.assert(
      fc.property(fc.array(dataFileV1, { minLength: 1, maxLength: 8 }), (records) => {
        encoder.reset()
        const views = records.map((r) => encoder.encode(r))
        records.forEach((r, i) => assert.isTrue(same(views[i], toBinary(DataFileV1Schema, r))))
      }),
      { numRuns: 300 }
    )
  })

  it("writes the generator's records at 5 to 500 columns as toBinary does", () => {
    const encoder = new DataFileEncoder(INFO)
    for (const columns of [0, 5, 50, 500]) {
      encoder.reset()
      for (const r of RecordGenerator.makeDataFiles(50, { columns, seed: columns })) {
        assert.isTrue(same(encoder.encode(r), toBinary(DataFileV1Schema, r)))
      }
    }
  })

  it("writes lengths of two bytes and more, negative int32s and int64s at their limits as toBinary does", () => {
    const encoder = new DataFileEncoder(INFO, 16)
    const record = create(DataFileV1Schema, {
      filePath: "é".repeat(300),
      partition: { ["k".repeat(200)]: "v😀".repeat(100), "": "" },
      recordCount: -(2n ** 63n),
      fileSizeInBytes: 2n ** 63n - 1n,
      columnSizes: { [-1]: -1n, [2 ** 31 - 1]: 2n ** 53n, 0: 0n },
      lowerBounds: { 1: new Uint8Array(300), [-(2 ** 31)]: new Uint8Array(0) },
      keyMetadata: new Uint8Array(20_000),
      splitOffsets: Array.from({ length: 200 }, (_, i) => BigInt(i) * 2n ** 40n - 1n),
      equalityIds: [-1, 0, 2 ** 31 - 1, -(2 ** 31)],
      sortOrderId: 0,
      specId: -7
    })
    assert.isTrue(same(encoder.encode(record), toBinary(DataFileV1Schema, record)))
  })

  it("leaves to toBinary what it does not handle: unknown fields, wrong types, out-of-range values", () => {
    const encoder = new DataFileEncoder(INFO)
    const base = RecordGenerator.makeDataFiles(1, { columns: 5, seed: 1 })[0]!
    const cases: Array<DataFileV1> = [
      { ...base, $unknown: [{ no: 99, wireType: 0, data: new Uint8Array([1]) }] },
      { ...base, recordCount: 5 as unknown as bigint },
      { ...base, fileSizeInBytes: 2n ** 63n },
      { ...base, specId: 1.5 },
      { ...base, content: 2 ** 31 },
      { ...base, columnSizes: { 1: "5" as unknown as bigint } },
      { ...base, columnSizes: { ["x" as unknown as number]: 1n } },
      { ...base, partition: { a: 1 as unknown as string } },
      // Text UTF-8 cannot carry (a lone surrogate): refused there, naming the field.
      { ...base, partition: { a: "v\uD800" } },
      { ...base, filePath: "s3://b/\uDC00" },
      { ...base, equalityIds: [2 ** 31] },
      { ...base, filePath: "" },
      { ...base, $typeName: "other" as "cygnus.v1.DataFileV1" }
    ]
    for (const c of cases) {
      encoder.reset()
      assert.isUndefined(encoder.encode(c))
    }
    // The buffer is as before a record it left: the next one starts where it would have.
    encoder.reset()
    assert.isUndefined(encoder.encode(cases[0]!))
    assert.isTrue(same(encoder.encode(base), toBinary(DataFileV1Schema, base)))
  })

  it("writes each record's envelope, info and all, as toBinary of the whole DataFileEntryRecord does", () => {
    fc.assert(
      fc.property(dataFileInfo, fc.array(dataFileV1, { minLength: 1, maxLength: 6 }), (info, records) => {
        const encoder = new DataFileEncoder(info, 32)
        const encoded = records.map((r) => encoder.encodeEnvelope(r, info.recordId))
        records.forEach((r, i) => {
          assert.isTrue(same(encoded[i]?.envelope, envelopeOf(r, info, info.recordId)))
          assert.isTrue(same(encoded[i]?.dataFile, toBinary(DataFileV1Schema, r)))
        })
        // The envelope around bytes serialized elsewhere (what the encoder leaves to toBinary).
        const wrapped = encoder.wrap(toBinary(DataFileV1Schema, records[0]!), records[0]!.filePath, info.recordId)
        assert.isTrue(same(wrapped.envelope, envelopeOf(records[0]!, info, info.recordId)))
      }),
      { numRuns: 200 }
    )
  })
})
