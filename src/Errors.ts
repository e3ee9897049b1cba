/**
 * The typed failures of cygnus-kinesis-writer. Every error is a `Data.TaggedError`, so a
 * caller can handle one kind with `Effect.catchTag`, and carries the facts a caller needs as
 * fields. No error message contains payload bytes.
 *
 * @since 0.1.0
 */
import { Data } from "effect"
import type { DataFileV1 } from "./gen/cygnus/v1/data_file_pb.js"

/**
 * A `DataFileV1` could not be turned into bytes: a field holds a value protobuf cannot carry
 * (an int64 out of range, a non-integer where an integer is due) or a required field is
 * missing (an empty `file_path`).
 *
 * In `writeBatch` it stops the batch before anything is sent; `recordIndex` names the record.
 *
 * @since 0.1.0
 */
export class SerializationError extends Data.TaggedError("SerializationError")<{
  /** What could not be serialized, e.g. `"DataFileV1"` or the field `"file_path"`. */
  readonly subject: string
  /** Why, in words. */
  readonly reason: string
  /** The index of the offending record in the batch, when in a batch. */
  readonly recordIndex?: number | undefined
  /** The `file_path` of the offending record, when it has one. */
  readonly filePath?: string | undefined
  readonly cause?: unknown
}> {
  override get message(): string {
    return `cannot serialize ${this.subject}${describeRecord(this.recordIndex, this.filePath)}: ${this.reason}`
  }
}

/**
 * gzip failed to compress a record (in practice: an invalid compression level or a worker
 * that died).
 *
 * @since 0.1.0
 */
export class CompressionError extends Data.TaggedError("CompressionError")<{
  readonly reason: string
  /** The index of the record in the batch, when in a batch. */
  readonly recordIndex?: number | undefined
  readonly cause?: unknown
}> {
  override get message(): string {
    return `cannot gzip record${describeRecord(this.recordIndex, undefined)}: ${this.reason}`
  }
}

/**
 * What went wrong while decoding a record read back from the stream or from S3.
 *
 * - `Gunzip`: the data is not a complete gzip stream (truncated, corrupted, empty).
 * - `Protobuf`: the bytes are not a `DataFileEntryRecord` / `DataFileEntry`.
 * - `MissingField`: a required part is absent (no entry case, no info, no data file).
 * - `UnsupportedVersion`: a standard entry whose version this reader does not know.
 * - `SizeMismatch` / `ChecksumMismatch`: a large payload's S3 object does not match the
 *   size or sha256 its pointer announced.
 *
 * @since 0.1.0
 */
export type DecodeErrorReason =
  | "Gunzip"
  | "Protobuf"
  | "MissingField"
  | "UnsupportedVersion"
  | "SizeMismatch"
  | "ChecksumMismatch"

/**
 * A record read back could not be decoded or verified. `detail` names what failed.
 *
 * @since 0.1.0
 */
export class DecodeError extends Data.TaggedError("DecodeError")<{
  readonly reason: DecodeErrorReason
  /** What failed, in words (never payload bytes). */
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `cannot decode record (${this.reason}): ${this.detail}`
  }
}

/**
 * A large payload could not be written to or read from its store (S3).
 *
 * `errorName` is the AWS error name (`NoSuchBucket`, `NoSuchKey`, `AccessDenied`, …) or the
 * Node network error code; `retryable` says whether trying again may help (throttling, 5xx,
 * timeouts, network faults). In `writeBatch` it stops the batch before anything is sent;
 * `recordIndex` names the record whose payload failed.
 *
 * @since 0.1.0
 */
export class LargePayloadStoreError extends Data.TaggedError("LargePayloadStoreError")<{
  readonly operation: "write" | "read" | "delete"
  readonly bucket: string
  readonly key: string
  readonly errorName: string
  readonly httpStatus?: number | undefined
  readonly retryable: boolean
  readonly recordIndex?: number | undefined
  readonly cause?: unknown
}> {
  override get message(): string {
    const status = this.httpStatus === undefined ? "" : ` HTTP ${this.httpStatus}`
    return `large payload ${this.operation} failed for s3://${this.bucket}/${this.key}${
      describeRecord(this.recordIndex, undefined)
    }: ${this.errorName}${status}${this.retryable ? " (retryable)" : ""}`
  }
}

/**
 * A call to Kinesis failed as a whole.
 *
 * `errorName` is the AWS error name (`ResourceNotFoundException`,
 * `ProvisionedThroughputExceededException`, `AccessDeniedException`, …) or the Node network
 * error code (`ECONNREFUSED`, …); `retryable` is true for throttling, 5xx, timeouts and
 * network faults. The SDK's error is kept as `cause`.
 *
 * @since 0.1.0
 */
export class KinesisError extends Data.TaggedError("KinesisError")<{
  readonly operation: string
  readonly streamName: string
  readonly errorName: string
  readonly httpStatus?: number | undefined
  readonly retryable: boolean
  readonly cause?: unknown
}> {
  override get message(): string {
    const status = this.httpStatus === undefined ? "" : ` HTTP ${this.httpStatus}`
    return `Kinesis ${this.operation} on stream ${this.streamName} failed: ${this.errorName}${status}${
      this.retryable ? " (retryable)" : " (not retryable)"
    }`
  }
}

/**
 * One record `writeBatch` could not deliver, handed back to the caller.
 *
 * @since 0.1.0
 */
export interface UndeliveredRecord {
  /** The caller's record, as given. */
  readonly record: DataFileV1
  /** Its index in the batch given to `writeBatch`. */
  readonly index: number
  /** The `record_id` it was sent with: if it did land (see `maybeDelivered`), the stream carries this id. */
  readonly recordId: string
  /** The last error code: Kinesis' per-record code, the name of the call's failure, or `Interrupted`. */
  readonly errorCode: string
  /** The last error message Kinesis gave, if any. */
  readonly errorMessage?: string | undefined
  /**
   * True when some attempt's outcome for this record was ambiguous — a call that timed out,
   * lost its connection after sending, answered 5xx, or was interrupted in flight — so the
   * record may be on the stream after all. A consumer de-duplicating on `record_id` is safe
   * either way; a caller that resends it should expect a possible duplicate.
   */
  readonly maybeDelivered: boolean
  /**
   * Its large payload in S3, when it had one. The object is deleted (best effort,
   * `deleted: true`) when the record is certainly not on the stream; it is kept when the
   * record may have been delivered, since a consumer may still need it.
   */
  readonly largePayload?: { readonly bucket: string; readonly key: string; readonly deleted: boolean } | undefined
}

/**
 * Some records did not reach the stream: retries ran out, a call failed in a way retrying
 * cannot fix, a record was refused with a non-retryable code, or the batch was interrupted
 * while delivering (`interrupted`; the fiber's exit then holds both the interruption and
 * this error).
 *
 * Every record that was not delivered is in `undelivered` with its last error code;
 * `delivered` counts the records of the batch that did reach the stream. `cause` is what
 * stopped delivery: the `KinesisError` of a call that failed whole, or the
 * `CompressionError` (or, in principle, `SerializationError`) that left the rest of the
 * batch unbuilt.
 *
 * @since 0.1.0
 */
export class WriteBatchError extends Data.TaggedError("WriteBatchError")<{
  readonly streamName: string
  readonly undelivered: ReadonlyArray<UndeliveredRecord>
  readonly delivered: number
  /** PutRecords attempts made (first try included). */
  readonly attempts: number
  /** True when delivery stopped because the fiber was interrupted. */
  readonly interrupted: boolean
  readonly cause?: KinesisError | CompressionError | SerializationError | undefined
}> {
  override get message(): string {
    const codes = new Map<string, number>()
    for (const r of this.undelivered) codes.set(r.errorCode, (codes.get(r.errorCode) ?? 0) + 1)
    const summary = [...codes].map(([code, n]) => `${code} ×${n}`).join(", ")
    const maybe = this.undelivered.filter((r) => r.maybeDelivered).length
    const ambiguous = maybe === 0 ? "" : `, ${maybe} of them possibly delivered`
    const why = this.cause === undefined ? "" : `; last call failure: ${this.cause.message}`
    return `${this.undelivered.length} of ${
      this.undelivered.length + this.delivered
    } records not delivered to stream ${this.streamName} after ${this.attempts} attempt(s)${
      this.interrupted ? " (interrupted)" : ""
    } (${summary}${ambiguous})${why}`
  }
}

const describeRecord = (index: number | undefined, filePath: string | undefined): string => {
  const parts = [index === undefined ? undefined : `record #${index}`, filePath || undefined].filter((p) =>
    p !== undefined
  )
  return parts.length === 0 ? "" : ` (${parts.join(", ")})`
}

/**
 * One record the producer accepted did not reach the stream: it failed for good (a
 * non-retryable code, or its retries ran out), outlived `recordTtl` (`errorCode` `Expired`),
 * or was still unsettled when the producer shut down (`Shutdown`). It carries what
 * `UndeliveredRecord` carries, and how many attempts were made.
 *
 * @since 0.1.0
 */
export class RecordUndeliveredError extends Data.TaggedError("RecordUndeliveredError")<{
  readonly streamName: string
  /** The caller's record, as given to `send`. */
  readonly record: DataFileV1
  /** The `record_id` it was sent with: if it did land (see `maybeDelivered`), the stream carries this id. */
  readonly recordId: string
  /** Kinesis' per-record code, the name of the call's failure, `Expired` or `Shutdown`. */
  readonly errorCode: string
  readonly errorMessage?: string | undefined
  /** True when a call that carried it had an ambiguous outcome, or was in flight at shutdown. */
  readonly maybeDelivered: boolean
  /** Its large payload in S3, when it had one; deleted (best effort) when the record is certainly not on the stream. */
  readonly largePayload?: { readonly bucket: string; readonly key: string; readonly deleted: boolean } | undefined
  /** PutRecords attempts that carried it. */
  readonly attempts: number
}> {
  override get message(): string {
    const detail = this.errorMessage === undefined ? "" : ` (${this.errorMessage})`
    return `record ${this.recordId}${
      describeRecord(undefined, this.record.filePath)
    } not delivered to stream ${this.streamName} after ${this.attempts} attempt(s): ${this.errorCode}${detail}${
      this.maybeDelivered ? ", possibly delivered" : ""
    }`
  }
}

/**
 * The producer's scope has closed: it accepts no more records.
 *
 * @since 0.1.0
 */
export class ProducerClosedError extends Data.TaggedError("ProducerClosedError")<{
  readonly streamName: string
}> {
  override get message(): string {
    return `the producer for stream ${this.streamName} is closed`
  }
}

/**
 * The producer's sink ended with elements not delivered: each is named with its record and
 * the error its send failed with (`RecordUndeliveredError`, a build error, or
 * `ProducerClosedError` for the element refused when the producer closed, after which the
 * sink stops pulling).
 *
 * @since 0.1.0
 */
export class ProducerSinkError extends Data.TaggedError("ProducerSinkError")<{
  readonly streamName: string
  readonly undelivered: ReadonlyArray<{
    readonly record: DataFileV1
    readonly error:
      | RecordUndeliveredError
      | ProducerClosedError
      | SerializationError
      | CompressionError
      | LargePayloadStoreError
  }>
  /** Elements delivered. */
  readonly delivered: number
}> {
  override get message(): string {
    const codes = new Map<string, number>()
    for (const { error } of this.undelivered) {
      const code = error._tag === "RecordUndeliveredError" ? error.errorCode : error._tag
      codes.set(code, (codes.get(code) ?? 0) + 1)
    }
    const summary = [...codes].map(([code, n]) => `${code} ×${n}`).join(", ")
    return `${this.undelivered.length} of ${
      this.undelivered.length + this.delivered
    } records not delivered to stream ${this.streamName} (${summary})`
  }
}
