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
  /** Large-payload objects of the batch that could not be deleted after it failed. */
  readonly leftBehind?: ReadonlyArray<LeftBehindObject> | undefined
  readonly cause?: unknown
}> {
  override get message(): string {
    return `cannot serialize ${this.subject}${describeRecord(this.recordIndex, this.filePath)}: ${this.reason}${
      describeLeftBehind(this.leftBehind)
    }`
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
  /** Large-payload objects of the batch that could not be deleted after it failed. */
  readonly leftBehind?: ReadonlyArray<LeftBehindObject> | undefined
  readonly cause?: unknown
}> {
  override get message(): string {
    return `cannot gzip record${describeRecord(this.recordIndex, undefined)}: ${this.reason}${
      describeLeftBehind(this.leftBehind)
    }`
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
  /**
   * In `writeBatch`: the large-payload objects of the batch that could not be deleted after
   * it failed (the batch stopped before anything was sent, so they belong to no record on
   * the stream).
   */
  readonly leftBehind?: ReadonlyArray<LeftBehindObject> | undefined
  readonly cause?: unknown
}> {
  override get message(): string {
    const status = this.httpStatus === undefined ? "" : ` HTTP ${this.httpStatus}`
    return `large payload ${this.operation} failed for s3://${this.bucket}/${this.key}${
      describeRecord(this.recordIndex, undefined)
    }: ${this.errorName}${status}${describeCause(this.errorName, this.cause)}${this.retryable ? " (retryable)" : ""}${
      describeLeftBehind(this.leftBehind)
    }`
  }
}

/**
 * A large-payload object left in its store: its delete failed or did not finish.
 *
 * @since 0.1.0
 */
export interface LeftBehindObject {
  readonly bucket: string
  readonly key: string
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
      describeCause(this.errorName, this.cause)
    }${this.retryable ? " (retryable)" : " (not retryable)"}`
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

/** The message of the underlying error (the SDK's reason), when it says more than its name. */
const describeCause = (errorName: string, cause: unknown): string => {
  const message = typeof cause === "object" && cause !== null && "message" in cause ? cause.message : undefined
  return typeof message === "string" && message.length > 0 && message !== errorName
    ? `: ${message.length > 300 ? `${message.slice(0, 300)}…` : message}`
    : ""
}

const describeLeftBehind = (objects: ReadonlyArray<LeftBehindObject> | undefined): string => {
  if (objects === undefined || objects.length === 0) return ""
  const shown = objects.slice(0, 10).map((o) => `s3://${o.bucket}/${o.key}`).join(", ")
  const more = objects.length > 10 ? ` and ${objects.length - 10} more` : ""
  return `; ${objects.length} large payload object(s) could not be deleted: ${shown}${more}`
}

const describeRecord = (index: number | undefined, filePath: string | undefined): string => {
  const parts = [index === undefined ? undefined : `record #${index}`, filePath || undefined].filter((p) =>
    p !== undefined
  )
  return parts.length === 0 ? "" : ` (${parts.join(", ")})`
}
