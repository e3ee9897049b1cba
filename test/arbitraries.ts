import { create } from "@bufbuild/protobuf"
import { FastCheck as fc } from "effect"
import type { DataFileInfo } from "../src/gen/cygnus/v1/data_file_entry_pb.js"
import { DataFileInfoSchema } from "../src/gen/cygnus/v1/data_file_entry_pb.js"
import type { DataFileV1 } from "../src/gen/cygnus/v1/data_file_pb.js"
import { DataFileV1Schema, FileContent, FileFormat } from "../src/gen/cygnus/v1/data_file_pb.js"

const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })
const uint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })
const intMap = <A>(value: fc.Arbitrary<A>) =>
  fc.array(fc.tuple(int32, value), { maxLength: 12 }).map((entries) => Object.fromEntries(entries) as Record<number, A>)

/** Any `DataFileV1` protobuf can carry, with a non-empty path (the one field the writer requires). */
export const dataFileV1: fc.Arbitrary<DataFileV1> = fc.record({
  content: fc.constantFrom(FileContent.DATA, FileContent.POSITION_DELETES, FileContent.EQUALITY_DELETES),
  filePath: fc.string({ minLength: 1, maxLength: 200, unit: "grapheme" }),
  fileFormat: fc.constantFrom(FileFormat.UNSPECIFIED, FileFormat.PARQUET, FileFormat.AVRO, FileFormat.ORC),
  partition: fc.dictionary(
    fc.string({ maxLength: 20, unit: "grapheme" }),
    fc.string({ maxLength: 40, unit: "grapheme" }),
    {
      maxKeys: 6
    }
  ),
  recordCount: int64,
  fileSizeInBytes: int64,
  columnSizes: intMap(int64),
  valueCounts: intMap(int64),
  nullValueCounts: intMap(int64),
  nanValueCounts: intMap(int64),
  lowerBounds: intMap(fc.uint8Array({ maxLength: 32 })),
  upperBounds: intMap(fc.uint8Array({ maxLength: 32 })),
  keyMetadata: fc.uint8Array({ maxLength: 64 }),
  splitOffsets: fc.array(int64, { maxLength: 10 }),
  equalityIds: fc.array(int32, { maxLength: 10 }),
  sortOrderId: fc.option(int32, { nil: undefined }),
  specId: int32
}).map(({ sortOrderId, ...fields }) =>
  create(DataFileV1Schema, sortOrderId === undefined ? fields : { ...fields, sortOrderId })
)

/** Any `DataFileInfo`. */
export const dataFileInfo: fc.Arbitrary<DataFileInfo> = fc.record({
  filePath: fc.string({ maxLength: 200, unit: "grapheme" }),
  creationTime: uint64,
  accountId: fc.stringMatching(/^\d{12}$/),
  recordId: fc.uuid(),
  logGroupId: fc.string({ maxLength: 40 }),
  schemaName: fc.string({ maxLength: 40 })
}).map((fields) => create(DataFileInfoSchema, fields))
