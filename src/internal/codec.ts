/**
 * The codec between a `DataFileV1` and the bytes of one Kinesis record: pure, no AWS. Its
 * public functions are re-exported by `RecordCodec`.
 *
 * On the stream each record's Data is `gzip(DataFileEntryRecord)`. The writer serializes the
 * `DataFileV1` once and reuses those bytes three ways: for the large-payload size check, inside
 * the stream envelope, and as the S3 object body of a large payload, so no message is encoded
 * twice. The envelope is written around the pre-serialized bytes with protobuf's wire format,
 * which yields exactly what `toBinary` of the whole `DataFileEntryRecord` would.
 *
 * The `*Sync` functions return an `Either` and are what the writer's hot loop calls; the
 * `Effect` functions wrap them for everyone else.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf"
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire"
import { Effect, Either } from "effect"
import * as Zlib from "node:zlib"
import { CompressionError, DecodeError, SerializationError } from "../Errors.js"
import type {
  DataFileEntry,
  DataFileEntryRecord,
  DataFileEntryRecordBatch,
  DataFileInfo,
  LargeDataFileEntry
} from "../gen/cygnus/v1/data_file_entry_pb.js"
import {
  DataFileEntryRecordBatchSchema,
  DataFileEntryRecordSchema,
  DataFileEntrySchema,
  DataFileVersion,
  LargeDataFileEntrySchema,
  StandardDataFileEntrySchema
} from "../gen/cygnus/v1/data_file_entry_pb.js"
import type { DataFileV1 } from "../gen/cygnus/v1/data_file_pb.js"
import { DataFileV1Schema } from "../gen/cygnus/v1/data_file_pb.js"
import { recordProblem } from "./core/records.js"
import { gzip } from "./gzipEngine.js"

/**
 * zlib's default compression level (6). Level 1 is faster and compresses a little less.
 *
 * @since 0.1.0
 */
export const DEFAULT_COMPRESSION_LEVEL = Zlib.constants.Z_DEFAULT_COMPRESSION

/**
 * The largest output `gunzip` produces before refusing the input (a guard against gzip
 * bombs): 256 MiB, far above any record Kinesis or the large-payload store carries.
 *
 * @since 0.1.0
 */
export const MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024

/**
 * Where a record's `DataFileV1` travels: inline on the stream (`standard`, as its serialized
 * bytes) or in S3 (`large`, as a pointer).
 *
 * @since 0.1.0
 */
export type EntryPayload =
  | { readonly _tag: "standard"; readonly dataFileBytes: Uint8Array }
  | { readonly _tag: "large"; readonly pointer: LargeDataFileEntry }

/**
 * A record ready for the stream.
 *
 * @since 0.1.0
 */
export interface EncodedRecord {
  /** Byte length of the serialized `DataFileV1`: what the large-payload threshold is checked against. */
  readonly dataFileSize: number
  /** Byte length of the serialized `DataFileEntryRecord` before gzip. */
  readonly uncompressedSize: number
  /** The Kinesis record's Data: the gzip'd `DataFileEntryRecord`. */
  readonly data: Uint8Array
}

/**
 * A record read back: the info envelope and the entry, which is either the data file itself
 * (`standard`) or the pointer to it in S3 (`large`). The reader resolves `large` entries.
 *
 * @since 0.1.0
 */
export interface DecodedEntryRecord {
  readonly info: DataFileInfo
  readonly entry:
    | { readonly _tag: "standard"; readonly dataFile: DataFileV1 }
    | { readonly _tag: "large"; readonly pointer: LargeDataFileEntry }
}

/**
 * Serializes a `DataFileV1` to protobuf bytes. What is not a record, an empty `file_path`,
 * text with a lone UTF-16 surrogate (which UTF-8 cannot carry), or a value protobuf cannot
 * carry gives a `SerializationError` naming it.
 *
 * @since 0.1.0
 */
export const serializeDataFileSync = (
  dataFile: DataFileV1,
  recordIndex?: number
): Either.Either<Uint8Array, SerializationError> => {
  const problem = recordProblem(dataFile)
  if (problem !== undefined) {
    return Either.left(
      new SerializationError({
        ...problem,
        recordIndex,
        // The path names the record, when it is one a log can print.
        filePath: problem.subject === "file_path" || problem.subject === "record" ? undefined : dataFile.filePath
      })
    )
  }
  try {
    return Either.right(toBinary(DataFileV1Schema, dataFile))
  } catch (cause) {
    return Either.left(
      new SerializationError({
        subject: "DataFileV1",
        reason: errorText(cause),
        recordIndex,
        filePath: dataFile.filePath,
        cause
      })
    )
  }
}

/**
 * The serialized `DataFileEntry` in its `standard` case around already serialized
 * `DataFileV1` bytes: the body of a large payload's S3 object.
 *
 * @since 0.1.0
 */
export const encodeStandardEntry = (dataFileBytes: Uint8Array): Uint8Array =>
  writeStandardEntry(new BinaryWriter().tag(1, WireType.LengthDelimited).fork(), dataFileBytes).join().finish()

/**
 * The fields of a `DataFileInfo`: the generated message, or a plain object of the same
 * fields (the writer's hot path builds no message object per record).
 *
 * @since 0.1.0
 */
export type DataFileInfoFields = Pick<
  DataFileInfo,
  "filePath" | "creationTime" | "accountId" | "recordId" | "logGroupId" | "schemaName"
>

/**
 * The serialized `DataFileEntryRecord` (before gzip) of an info envelope and a payload.
 * Byte for byte what `toBinary(DataFileEntryRecordSchema, …)` gives for the same message.
 *
 * @since 0.1.0
 */
export const encodeEntryRecordSync = (
  info: DataFileInfoFields,
  payload: EntryPayload
): Either.Either<Uint8Array, SerializationError> => {
  try {
    const writer = new BinaryWriter()
    writer.tag(1, WireType.LengthDelimited).fork() // data_file_entry
    if (payload._tag === "standard") {
      writeStandardEntry(writer.tag(1, WireType.LengthDelimited).fork(), payload.dataFileBytes).join()
    } else {
      writer.tag(2, WireType.LengthDelimited).bytes(toBinary(LargeDataFileEntrySchema, payload.pointer))
    }
    writer.join()
    writeInfo(writer.tag(2, WireType.LengthDelimited).fork(), info).join()
    return Either.right(writer.finish())
  } catch (cause) {
    return Either.left(
      new SerializationError({
        subject: "DataFileEntryRecord",
        reason: errorText(cause),
        filePath: info.filePath,
        cause
      })
    )
  }
}

/**
 * gzip of `bytes` as a standard gzip stream any consumer can read.
 *
 * @since 0.1.0
 */
export const gzipSync = (
  bytes: Uint8Array,
  level: number = DEFAULT_COMPRESSION_LEVEL
): Either.Either<Uint8Array, CompressionError> => {
  try {
    return Either.right(gzip(bytes, level))
  } catch (cause) {
    return Either.left(new CompressionError({ reason: errorText(cause), cause }))
  }
}

/**
 * Inverse of {@link gzipSync}. Truncated, corrupted or empty input gives a `DecodeError`
 * with reason `Gunzip`.
 *
 * @since 0.1.0
 */
export const gunzipSync = (bytes: Uint8Array): Either.Either<Uint8Array, DecodeError> => {
  if (bytes.length === 0) {
    return Either.left(new DecodeError({ reason: "Gunzip", detail: "the record data is empty" }))
  }
  try {
    return Either.right(Zlib.gunzipSync(bytes, { maxOutputLength: MAX_DECOMPRESSED_BYTES }))
  } catch (cause) {
    return Either.left(
      new DecodeError({ reason: "Gunzip", detail: `not a complete gzip stream: ${errorText(cause)}`, cause })
    )
  }
}

/**
 * Serializes, wraps and compresses one record: the whole write path of the codec.
 *
 * @since 0.1.0
 */
export const encodeRecordSync = (
  dataFile: DataFileV1,
  info: DataFileInfoFields,
  level: number = DEFAULT_COMPRESSION_LEVEL
): Either.Either<EncodedRecord, SerializationError | CompressionError> =>
  Either.flatMap(
    serializeDataFileSync(dataFile),
    (dataFileBytes) =>
      Either.flatMap(encodeEntryRecordSync(info, { _tag: "standard", dataFileBytes }), (record) =>
        Either.map(gzipSync(record, level), (data) => ({
          dataFileSize: dataFileBytes.length,
          uncompressedSize: record.length,
          data
        })))
  )

/**
 * Parses a serialized `DataFileEntryRecord` (after gunzip) and checks that it is one of ours:
 * an info envelope and exactly one entry case, a standard entry of a known version.
 *
 * @since 0.1.0
 */
export const parseEntryRecordSync = (bytes: Uint8Array): Either.Either<DecodedEntryRecord, DecodeError> => {
  // An aggregate is named as one only when it reads as one: other bytes that happen to start
  // with field 15 get the error a DataFileEntryRecord parse gives.
  const aggregate = isAggregateSync(bytes) ? parseEntryRecordsSync(bytes) : undefined
  if (aggregate !== undefined && Either.isRight(aggregate)) {
    return Either.left(
      new DecodeError({
        reason: "Aggregated",
        detail:
          `the record is an aggregate of ${aggregate.right.length} records (DataFileEntryRecordBatch): read it with decodeRecordAll / decodeRecordDataAllSync`
      })
    )
  }
  return Either.flatMap(parse(DataFileEntryRecordSchema, bytes, "DataFileEntryRecord"), checkEntryRecord)
}

/**
 * The field number of `DataFileEntryRecordBatch.records`, which `DataFileEntryRecord` never
 * uses (it is reserved there).
 *
 * @since 0.1.0
 */
export const AGGREGATE_FIELD = 15

/** The tag byte of `DataFileEntryRecordBatch.records`: field 15, length-delimited. */
const AGGREGATE_TAG = (AGGREGATE_FIELD << 3) | WireType.LengthDelimited

/**
 * Whether serialized bytes (after gunzip) are an aggregate (`DataFileEntryRecordBatch`)
 * rather than one `DataFileEntryRecord`: its first field is 15, which a
 * `DataFileEntryRecord` never has.
 *
 * @since 0.1.0
 */
export const isAggregateSync = (bytes: Uint8Array): boolean => bytes.length > 0 && bytes[0] === AGGREGATE_TAG

/**
 * Parses the logical records of a Kinesis record's Data (after gunzip): the members of an
 * aggregate, in order, or the one record of a record that is not aggregated. Each is checked
 * as {@link parseEntryRecordSync} checks one; an aggregate without records is a
 * `DecodeError` (`MissingField`).
 *
 * @since 0.1.0
 */
export const parseEntryRecordsSync = (bytes: Uint8Array): Either.Either<Array<DecodedEntryRecord>, DecodeError> => {
  if (!isAggregateSync(bytes)) return Either.map(parseEntryRecordSync(bytes), (one) => [one])
  return Either.flatMap(parse(DataFileEntryRecordBatchSchema, bytes, "DataFileEntryRecordBatch"), (batch) => {
    if (batch.records.length === 0) {
      return Either.left(
        new DecodeError({ reason: "MissingField", detail: "DataFileEntryRecordBatch.records is empty" })
      )
    }
    const out: Array<DecodedEntryRecord> = new Array(batch.records.length)
    for (let i = 0; i < out.length; i++) {
      const checked = checkEntryRecord(batch.records[i]!)
      if (Either.isLeft(checked)) {
        const e = checked.left
        return Either.left(
          new DecodeError({
            reason: e.reason,
            detail: `record ${i} of ${out.length} of the aggregate: ${e.detail}`,
            cause: e.cause
          })
        )
      }
      out[i] = checked.right
    }
    return Either.right(out)
  })
}

/**
 * Gunzips and parses a Kinesis record's Data into its logical records: several for an
 * aggregate, one otherwise.
 *
 * @since 0.1.0
 */
export const decodeRecordDataAllSync = (data: Uint8Array): Either.Either<Array<DecodedEntryRecord>, DecodeError> =>
  Either.flatMap(gunzipSync(data), parseEntryRecordsSync)

/**
 * {@link decodeRecordDataAllSync} as an `Effect`.
 *
 * @since 0.1.0
 */
export const decodeRecordDataAll = (data: Uint8Array): Effect.Effect<Array<DecodedEntryRecord>, DecodeError> =>
  Effect.suspend(() => decodeRecordDataAllSync(data))

/**
 * The serialized `DataFileEntryRecordBatch` (before gzip) of already serialized
 * `DataFileEntryRecord`s: each framed as field 15. Byte for byte what `toBinary` of the
 * batch message gives.
 *
 * @since 0.1.0
 */
export const encodeEntryRecordBatch = (envelopes: ReadonlyArray<Uint8Array>): Uint8Array => {
  const writer = new BinaryWriter()
  for (const envelope of envelopes) writer.tag(AGGREGATE_FIELD, WireType.LengthDelimited).bytes(envelope)
  return writer.finish()
}

/**
 * Serializes and gzips several records as one aggregated Kinesis record (what a writer with
 * `aggregation` on sends for records that share a partition key).
 *
 * @since 0.1.0
 */
export const encodeRecordBatchSync = (
  records: ReadonlyArray<{ readonly dataFile: DataFileV1; readonly info: DataFileInfoFields }>,
  level: number = DEFAULT_COMPRESSION_LEVEL
): Either.Either<Omit<EncodedRecord, "dataFileSize">, SerializationError | CompressionError> => {
  const envelopes: Array<Uint8Array> = []
  for (const { dataFile, info } of records) {
    const bytes = serializeDataFileSync(dataFile)
    if (Either.isLeft(bytes)) return Either.left(bytes.left)
    const envelope = encodeEntryRecordSync(info, { _tag: "standard", dataFileBytes: bytes.right })
    if (Either.isLeft(envelope)) return Either.left(envelope.left)
    envelopes.push(envelope.right)
  }
  const batch = encodeEntryRecordBatch(envelopes)
  return Either.map(gzipSync(batch, level), (data) => ({ uncompressedSize: batch.length, data }))
}

/**
 * Builds the `DataFileEntryRecordBatch` message of several records: documents the shape and
 * lets tests compare bytes.
 *
 * @since 0.1.0
 */
export const makeEntryRecordBatch = (records: ReadonlyArray<DataFileEntryRecord>): DataFileEntryRecordBatch =>
  create(DataFileEntryRecordBatchSchema, { records: [...records] })

/** The checks of one parsed `DataFileEntryRecord`: info, entry, a known entry case and version. */
const checkEntryRecord = (record: DataFileEntryRecord): Either.Either<DecodedEntryRecord, DecodeError> => {
  if (record.dataFileInfo === undefined) {
    return Either.left(
      new DecodeError({ reason: "MissingField", detail: "DataFileEntryRecord.data_file_info is not set" })
    )
  }
  if (record.dataFileEntry === undefined) {
    return Either.left(
      new DecodeError({ reason: "MissingField", detail: "DataFileEntryRecord.data_file_entry is not set" })
    )
  }
  const info = record.dataFileInfo
  return Either.map(entryOf(record.dataFileEntry), (entry) => ({ info, entry }))
}

/**
 * Parses the body of a large payload's S3 object: a `DataFileEntry` in its `standard` case.
 *
 * @since 0.1.0
 */
export const parseStandardEntrySync = (bytes: Uint8Array): Either.Either<DataFileV1, DecodeError> =>
  Either.flatMap(
    parse(DataFileEntrySchema, bytes, "DataFileEntry"),
    (entry) =>
      Either.flatMap(entryOf(entry), (decoded) =>
        decoded._tag === "standard"
          ? Either.right(decoded.dataFile)
          : Either.left(
            new DecodeError({
              reason: "MissingField",
              detail: "a large payload object must hold a standard entry, found a large one"
            })
          ))
  )

/**
 * Gunzips and parses a Kinesis record's Data. An aggregate (several records) is a
 * `DecodeError` of reason `Aggregated`: {@link decodeRecordDataAllSync} reads both kinds.
 *
 * @since 0.1.0
 */
export const decodeRecordDataSync = (data: Uint8Array): Either.Either<DecodedEntryRecord, DecodeError> =>
  Either.flatMap(gunzipSync(data), parseEntryRecordSync)

/**
 * Builds the `DataFileEntryRecord` message for a `DataFileV1` and its info, in the
 * `standard` case. The writer does not need it (it writes the same bytes without
 * re-encoding), but it documents the shape and lets tests compare bytes.
 *
 * @since 0.1.0
 */
export const makeEntryRecord = (dataFile: DataFileV1, info: DataFileInfo): DataFileEntryRecord =>
  create(DataFileEntryRecordSchema, {
    dataFileInfo: info,
    dataFileEntry: {
      entry: {
        case: "standard",
        value: create(StandardDataFileEntrySchema, { version: DataFileVersion.V1, dataFileV1: dataFile })
      }
    }
  })

/**
 * Serializes, wraps and gzips a record: {@link encodeRecordSync} as an `Effect`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RecordCodec } from "cygnus-kinesis-writer"
 *
 * const program = Effect.gen(function* () {
 *   const encoded = yield* RecordCodec.encodeRecord(dataFile, info)
 *   const decoded = yield* RecordCodec.decodeRecordData(encoded.data)
 * })
 * ```
 *
 * @since 0.1.0
 */
export const encodeRecord = (
  dataFile: DataFileV1,
  info: DataFileInfoFields,
  level?: number
): Effect.Effect<EncodedRecord, SerializationError | CompressionError> =>
  Effect.suspend(() => encodeRecordSync(dataFile, info, level))

/**
 * Gunzips and parses a Kinesis record's Data: {@link decodeRecordDataSync} as an `Effect`.
 * A `large` entry is returned as its pointer; `RecordReader` fetches and verifies it.
 *
 * @since 0.1.0
 */
export const decodeRecordData = (data: Uint8Array): Effect.Effect<DecodedEntryRecord, DecodeError> =>
  Effect.suspend(() => decodeRecordDataSync(data))

// DataFileInfo as toBinary writes it: fields in number order, proto3 defaults omitted.
const writeInfo = (writer: BinaryWriter, info: DataFileInfoFields): BinaryWriter => {
  if (info.filePath !== "") writer.tag(1, WireType.LengthDelimited).string(info.filePath)
  if (info.creationTime !== 0n) writer.tag(2, WireType.Varint).uint64(info.creationTime)
  if (info.accountId !== "") writer.tag(3, WireType.LengthDelimited).string(info.accountId)
  if (info.recordId !== "") writer.tag(4, WireType.LengthDelimited).string(info.recordId)
  if (info.logGroupId !== "") writer.tag(5, WireType.LengthDelimited).string(info.logGroupId)
  if (info.schemaName !== "") writer.tag(6, WireType.LengthDelimited).string(info.schemaName)
  return writer
}

const writeStandardEntry = (writer: BinaryWriter, dataFileBytes: Uint8Array): BinaryWriter =>
  writer
    .tag(1, WireType.Varint).int32(DataFileVersion.V1)
    .tag(2, WireType.LengthDelimited).bytes(dataFileBytes)

const entryOf = (entry: DataFileEntry): Either.Either<DecodedEntryRecord["entry"], DecodeError> => {
  switch (entry.entry.case) {
    case "standard": {
      const standard = entry.entry.value
      if (standard.version !== DataFileVersion.V1) {
        return Either.left(
          new DecodeError({
            reason: "UnsupportedVersion",
            detail: `standard entry version ${standard.version} is not V1`
          })
        )
      }
      if (standard.dataFileV1 === undefined) {
        return Either.left(
          new DecodeError({ reason: "MissingField", detail: "StandardDataFileEntry.data_file_v1 is not set" })
        )
      }
      return Either.right({ _tag: "standard", dataFile: standard.dataFileV1 })
    }
    case "large":
      return Either.right({ _tag: "large", pointer: entry.entry.value })
    default:
      return Either.left(new DecodeError({ reason: "MissingField", detail: "DataFileEntry has no entry case set" }))
  }
}

const parse = <
  S extends typeof DataFileEntryRecordSchema | typeof DataFileEntrySchema | typeof DataFileEntryRecordBatchSchema
>(
  schema: S,
  bytes: Uint8Array,
  name: string
) => {
  try {
    return Either.right(fromBinary(schema, bytes) as ReturnType<typeof fromBinary<S>>)
  } catch (cause) {
    return Either.left(
      new DecodeError({ reason: "Protobuf", detail: `bytes are not a ${name}: ${errorText(cause)}`, cause })
    )
  }
}

const errorText = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)
