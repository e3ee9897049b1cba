/**
 * The consumer side: a Kinesis record's Data back to its `DataFileInfo` and
 * `DataFileV1`, fetching a large payload from the `LargePayloadStore` and verifying its size
 * and sha256. For a Lambda handler, a KCL worker, or a test reading a stream back.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"
import { DecodeError } from "./Errors.js"
import type { LargePayloadStoreError } from "./Errors.js"
import type { DataFileInfo, LargeDataFileEntry } from "./gen/cygnus/v1/data_file_entry_pb.js"
import type { DataFileV1 } from "./gen/cygnus/v1/data_file_pb.js"
import { decodeRecordDataSync, parseStandardEntrySync } from "./internal/codec.js"
import { Attributes, SpanNames } from "./internal/spans.js"
import { LargePayloadStore } from "./LargePayloadStore.js"

/**
 * A record read back.
 *
 * @since 0.1.0
 */
export interface DecodedRecord {
  readonly info: DataFileInfo
  readonly dataFile: DataFileV1
  /** The pointer the record carried, when its data file was fetched from S3. */
  readonly largePayload?: LargeDataFileEntry | undefined
}

/**
 * What reading a record can fail with: a `DecodeError` (not gzip, not our message, a missing
 * part, a large payload whose size or sha256 does not match) or a `LargePayloadStoreError`
 * (the S3 object is missing or unreadable).
 *
 * @since 0.1.0
 */
export type ReadError = DecodeError | LargePayloadStoreError

/**
 * Decodes one Kinesis record's Data.
 *
 * @example
 * ```ts
 * const { info, dataFile } = yield* RecordReader.decodeRecord(record.Data)
 * ```
 *
 * @since 0.1.0
 */
export const decodeRecord = Effect.fn(SpanNames.decodeRecord)(function*(
  data: Uint8Array
): Effect.fn.Return<DecodedRecord, ReadError, LargePayloadStore> {
  const decoded = yield* decodeRecordDataSync(data)
  if (decoded.entry._tag === "standard") {
    return { info: decoded.info, dataFile: decoded.entry.dataFile } satisfies DecodedRecord
  }
  const pointer = decoded.entry.pointer
  yield* Effect.annotateCurrentSpan({ [Attributes.bucket]: pointer.bucket, [Attributes.key]: pointer.key })
  const store = yield* LargePayloadStore
  const body = yield* store.read({ bucket: pointer.bucket, key: pointer.key })
  yield* verify(pointer, body)
  const dataFile = yield* parseStandardEntrySync(body)
  return { info: decoded.info, dataFile, largePayload: pointer } satisfies DecodedRecord
})

/**
 * Decodes the records of a `GetRecords` answer (or anything with a `Data` field), in order,
 * fetching large payloads a few at a time. The first record that fails to decode fails the
 * whole call; its error names what failed.
 *
 * @since 0.1.0
 */
export const decodeRecords = (
  records: ReadonlyArray<{ readonly Data?: Uint8Array | undefined }>,
  options: { readonly concurrency?: number | undefined } = {}
): Effect.Effect<Array<DecodedRecord>, ReadError, LargePayloadStore> =>
  Effect.forEach(records, (r) => decodeRecord(r.Data ?? new Uint8Array(0)), { concurrency: options.concurrency ?? 8 })

/**
 * The Kinesis part of a Lambda event record: `data` is base64.
 *
 * @since 0.1.0
 */
export interface LambdaKinesisEventRecord {
  readonly kinesis: { readonly data: string }
}

/**
 * Decodes the records of a Lambda Kinesis event (`event.Records`), in order.
 *
 * @since 0.1.0
 */
export const decodeLambdaEvent = (
  event: { readonly Records: ReadonlyArray<LambdaKinesisEventRecord> },
  options: { readonly concurrency?: number | undefined } = {}
): Effect.Effect<Array<DecodedRecord>, ReadError, LargePayloadStore> =>
  decodeRecords(event.Records.map((r) => ({ Data: Buffer.from(r.kinesis.data, "base64") })), options)

const verify = (pointer: LargeDataFileEntry, body: Uint8Array): Effect.Effect<void, DecodeError> => {
  const where = `s3://${pointer.bucket}/${pointer.key}`
  if (BigInt(body.length) !== pointer.sizeBytes) {
    return Effect.fail(
      new DecodeError({
        reason: "SizeMismatch",
        detail: `${where} is ${body.length} bytes, the record announced ${pointer.sizeBytes}`
      })
    )
  }
  const digest = createHash("sha256").update(body).digest()
  return digest.length === pointer.sha256.length && timingSafeEqual(digest, pointer.sha256)
    ? Effect.void
    : Effect.fail(
      new DecodeError({ reason: "ChecksumMismatch", detail: `${where} does not match the sha256 the record announced` })
    )
}
