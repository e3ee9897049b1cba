/**
 * The typed failures of cygnus-kinesis-writer. Every error is a `Data.TaggedError`, so a
 * caller can handle one kind with `Effect.catchTag`, and carries the facts a caller needs as
 * fields. No error message contains payload bytes.
 *
 * @since 0.1.0
 */
import { Cause, Data } from "effect"
import { NodeInspectSymbol } from "effect/Inspectable"
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
    const said = `cannot serialize ${this.subject}${describeRecord(this.recordIndex, this.filePath)}: ${this.reason}`
    return said + causeSuffix(this.cause, said) + describeLeftBehind(this.leftBehind)
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
    const said = `cannot gzip record${describeRecord(this.recordIndex, undefined)}: ${this.reason}`
    return said + causeSuffix(this.cause, said) + describeLeftBehind(this.leftBehind)
  }
}

/**
 * What went wrong while decoding a record read back from the stream or from S3.
 *
 * - `Gunzip`: the data is not a complete gzip stream (truncated, corrupted, empty).
 * - `Protobuf`: the bytes are not a `DataFileEntryRecord` / `DataFileEntry`.
 * - `MissingField`: a required part is absent (no entry case, no info, no data file).
 * - `UnsupportedVersion`: a standard entry whose version this reader does not know.
 * - `Aggregated`: the record is an aggregate of several records (`DataFileEntryRecordBatch`,
 *   written by a writer with `aggregation` on), read where one record was expected: read it
 *   with `RecordReader.decodeRecordAll` / `RecordCodec.decodeRecordDataAllSync`.
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
  | "Aggregated"
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
  /** The record's index in the event or batch being decoded, when known. */
  readonly recordIndex?: number | undefined
  /** The record's Kinesis sequence number, when known (a Lambda event's `kinesis.sequenceNumber`). */
  readonly sequenceNumber?: string | undefined
  readonly cause?: unknown
}> {
  override get message(): string {
    const where = [
      this.recordIndex === undefined ? undefined : `#${this.recordIndex}`,
      this.sequenceNumber === undefined ? undefined : `sequence number ${this.sequenceNumber}`
    ].filter((p) => p !== undefined)
    const said = `cannot decode record${
      where.length === 0 ? "" : ` ${where.join(", ")}`
    } (${this.reason}): ${this.detail}`
    return said + causeSuffix(this.cause, said)
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
    const said = `large payload ${this.operation} failed for s3://${this.bucket}/${this.key}${
      describeRecord(this.recordIndex, undefined)
    }: ${this.errorName}${status}${this.retryable ? " (retryable)" : ""}`
    return said + causeSuffix(this.cause, said) + describeLeftBehind(this.leftBehind)
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
    const said = `Kinesis ${this.operation} on stream ${this.streamName} failed: ${this.errorName}${status}${
      this.retryable ? " (retryable)" : " (not retryable)"
    }`
    return said + causeSuffix(this.cause, said)
  }
}

/**
 * One record that did not reach the stream, handed back to its caller: the same facts from
 * `writeBatch` (in `WriteBatchError.undelivered`, with its index in the batch) and from the
 * producer (a `RecordUndeliveredError` is one).
 *
 * @since 0.1.0
 */
export interface UndeliveredRecord {
  /** The caller's record, as given. */
  readonly record: DataFileV1
  /** Its index in the batch given to `writeBatch`; `undefined` for a record sent to the producer. */
  readonly index?: number | undefined
  /** The `record_id` it was sent with: if it did land (see `maybeDelivered`), the stream carries this id. */
  readonly recordId: string
  /**
   * The last error code: Kinesis' per-record code, the name of the call's failure, or one of
   * the library's (`Interrupted`, `NotSent`, `DeadlineExceeded`, `AttemptLimit`, `Expired`,
   * `Shutdown`).
   */
  readonly errorCode: string
  /** The last error message, if any. */
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
  /** PutRecords calls that carried it, one in flight when delivery stopped included. */
  readonly attempts: number
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
export class WriteBatchError extends Data.TaggedError("WriteBatchError")<WriteBatchErrorFields> {
  /**
   * Every record that was not delivered, as data. Not enumerable: a printed error (an
   * uncaught rejection, `console.log(error)`, `JSON.stringify`) shows a summary instead of
   * every record (see `toJSON`); read this field for the records themselves.
   */
  declare readonly undelivered: ReadonlyArray<UndeliveredRecord & { readonly index: number }>

  constructor(fields: WriteBatchErrorFields) {
    super(fields)
    Object.defineProperty(this, "undelivered", {
      value: fields.undelivered,
      enumerable: false,
      writable: false,
      configurable: false
    })
  }

  override get message(): string {
    return this.describe(true)
  }

  /**
   * Counts by error code, the first few undelivered records (in the message itself: an
   * uncaught rejection prints the message, and nothing of the error's own printing) unless
   * `withRecords` is false, and the cause.
   */
  private describe(withRecords: boolean): string {
    const summary = [...countByCode(this.undelivered)].map(([code, n]) => `${code} ×${n}`).join(", ")
    const maybe = this.undelivered.filter((r) => r.maybeDelivered).length
    const ambiguous = maybe === 0 ? "" : `, ${maybe} of them possibly delivered`
    const why = this.cause === undefined ? "" : `; last call failure: ${this.cause.message}`
    const first = withRecords ? this.undelivered.slice(0, SHOWN_RECORDS) : []
    const more = this.undelivered.length - first.length
    const records = first.length === 0 ?
      "" :
      `; first undelivered: ${
        first.map((r) =>
          `#${r.index} ${r.recordId} ${r.record.filePath || "(no file_path)"}: ${r.errorCode}${
            r.maybeDelivered ? " (maybe delivered)" : ""
          }`
        ).join(", ")
      }${more > 0 ? `, … and ${more} more (error.undelivered holds them all)` : ""}`
    return `${this.undelivered.length} of ${
      this.undelivered.length + this.delivered
    } records not delivered to stream ${this.streamName} after ${this.attempts} attempt(s)${
      this.interrupted ? " (interrupted)" : ""
    } (${summary}${ambiguous})${records}${why}`
  }

  /**
   * A summary, never the records: counts by error code, the first few undelivered records
   * (index, `record_id`, `file_path`, code), what was delivered, and the cause's message.
   */
  override toJSON(): WriteBatchErrorSummary {
    return {
      _tag: this._tag,
      // The records are listed below.
      message: this.describe(false),
      streamName: this.streamName,
      delivered: this.delivered,
      undelivered: this.undelivered.length,
      maybeDelivered: this.undelivered.filter((r) => r.maybeDelivered).length,
      errorCodes: Object.fromEntries(countByCode(this.undelivered)),
      firstUndelivered: this.undelivered.slice(0, SHOWN_RECORDS).map((r) => ({
        index: r.index,
        recordId: r.recordId,
        filePath: r.record.filePath,
        errorCode: r.errorCode,
        maybeDelivered: r.maybeDelivered
      })),
      attempts: this.attempts,
      interrupted: this.interrupted,
      ...(this.cause === undefined ? {} : { cause: { _tag: this.cause._tag, message: this.cause.message } })
    }
  }

  /** The message: counts by code, the first few undelivered records, the cause. */
  override toString(): string {
    return `${this.name}: ${this.message}`
  }

  /** What `util.inspect` and `console.log` print: `toString()` and the stack's frames. */
  override [NodeInspectSymbol](): string {
    const frames = (this.stack ?? "").split("\n").filter((line) => /^\s+at /.test(line))
    return [this.toString(), ...frames].join("\n")
  }
}

/**
 * The fields of a {@link WriteBatchError}.
 *
 * @since 0.1.0
 */
export interface WriteBatchErrorFields {
  readonly streamName: string
  /** Every record not delivered, with its index in the batch. */
  readonly undelivered: ReadonlyArray<UndeliveredRecord & { readonly index: number }>
  readonly delivered: number
  /** PutRecords attempts made (first try included). */
  readonly attempts: number
  /** True when delivery stopped because the fiber was interrupted. */
  readonly interrupted: boolean
  readonly cause?: KinesisError | CompressionError | SerializationError | undefined
}

/**
 * `WriteBatchError.toJSON()`: what a log or a JSON serializer gets instead of every record.
 *
 * @since 0.1.0
 */
export interface WriteBatchErrorSummary {
  readonly _tag: "WriteBatchError"
  readonly message: string
  readonly streamName: string
  readonly delivered: number
  /** How many records were not delivered. */
  readonly undelivered: number
  readonly maybeDelivered: number
  /** Undelivered records by their last error code. */
  readonly errorCodes: Readonly<Record<string, number>>
  readonly firstUndelivered: ReadonlyArray<{
    readonly index: number
    readonly recordId: string
    readonly filePath: string
    readonly errorCode: string
    readonly maybeDelivered: boolean
  }>
  readonly attempts: number
  readonly interrupted: boolean
  readonly cause?: { readonly _tag: string; readonly message: string }
}

/** How many undelivered records a printed `WriteBatchError` names. */
const SHOWN_RECORDS = 3

const countByCode = (records: ReadonlyArray<UndeliveredRecord>): Map<string, number> => {
  const codes = new Map<string, number>()
  for (const r of records) codes.set(r.errorCode, (codes.get(r.errorCode) ?? 0) + 1)
  return codes
}

/**
 * The metrics endpoint could not be served: the server could not listen on its address (the
 * port is in use, the address is not available) or failed while serving. `code` is the
 * system error code when there is one (`EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES`, …); the
 * platform's error is kept as `cause`.
 *
 * @since 0.1.0
 */
export class MetricsServerError extends Data.TaggedError("MetricsServerError")<{
  readonly host: string
  readonly port: number
  /** The system error code, e.g. `EADDRINUSE`, when the underlying error has one. */
  readonly code?: string | undefined
  readonly cause?: unknown
}> {
  override get message(): string {
    const said = `serving metrics on ${this.host}:${this.port} failed${this.code === undefined ? "" : `: ${this.code}`}`
    return said + causeSuffix(this.cause, said)
  }
}

/**
 * `: <the cause's message>`, when the cause is an error (or has a cause that is) with a message
 * that `said` does not already hold; one line, at most 300 characters. Platform errors (the
 * HTTP server's `ServeError`) often have an empty message of their own and the system error
 * as their cause: the first non-empty message down the chain is used.
 */
const causeSuffix = (cause: unknown, said: string): string => {
  let current = cause
  for (let depth = 0; depth < 4 && typeof current === "object" && current !== null; depth++) {
    const message = "message" in current && typeof current.message === "string" ? current.message.trim() : ""
    if (message !== "") {
      const line = message.split("\n")[0]!
      const short = line.length > 300 ? `${line.slice(0, 299)}…` : line
      return said.includes(short) ? "" : `: ${short}`
    }
    current = "cause" in current ? current.cause : undefined
  }
  return ""
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

/**
 * One record the producer accepted did not reach the stream: it failed for good (a
 * non-retryable code, or its retries ran out), outlived `recordTtl` (`errorCode` `Expired`),
 * or was still unsettled when the producer shut down (`Shutdown`). It carries what
 * `UndeliveredRecord` carries, and how many attempts were made.
 *
 * @since 0.1.0
 */
export class RecordUndeliveredError extends Data.TaggedError("RecordUndeliveredError")<
  UndeliveredRecord & { readonly streamName: string }
> {
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
 * One element of a stream sent to the producer that was not delivered: the record, as given,
 * and the error its send ended with (`RecordUndeliveredError`, a build error, or
 * `ProducerClosedError` for an element refused because the producer closed).
 *
 * @since 0.1.0
 */
export interface UndeliveredElement {
  readonly record: DataFileV1
  readonly error:
    | RecordUndeliveredError
    | ProducerClosedError
    | SerializationError
    | CompressionError
    | LargePayloadStoreError
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
  readonly undelivered: ReadonlyArray<UndeliveredElement>
  /** Elements delivered. */
  readonly delivered: number
}> {
  override get message(): string {
    return `${this.undelivered.length} of ${
      this.undelivered.length + this.delivered
    } records not delivered to stream ${this.streamName} (${summarizeElements(this.undelivered)})`
  }
}

/**
 * `KinesisProducer.sendStream` did not deliver its whole stream. One error for every way a
 * run can end short, with what a caller needs to resend or dead-letter:
 *
 * - `upstream`: the stream's own failure (a typed failure or a defect), when it failed; the
 *   elements it gave before failing were sent and settled, and are counted below.
 * - `undelivered`: every element sent that settled without being delivered, with its error.
 * - `interrupted`: the run was interrupted. It stops at once, without waiting for its sends:
 *   `unsettled` names the elements sent whose outcome was not known yet. They stay with the
 *   producer and settle as any `send` does; one that ends undelivered reaches `onUndelivered`,
 *   or else a log line at Warning names it. The interrupted fiber's exit holds both the
 *   interruption and this error.
 *
 * @example
 * ```ts
 * const published = producer.sendStream(records).pipe(
 *   Effect.catchTag("ProducerStreamError", (e) =>
 *     Effect.logError(e.message, e.undelivered.map((u) => u.record.filePath)))
 * )
 * ```
 *
 * @since 0.1.0
 */
export class ProducerStreamError<E = unknown>
  extends Data.TaggedError("ProducerStreamError")<ProducerStreamErrorFields<unknown>>
{
  /** The stream's own failure, when it failed (`undefined` when it ended, or was only interrupted). */
  declare readonly upstream: Cause.Cause<E> | undefined

  constructor(fields: ProducerStreamErrorFields<E>) {
    super(fields)
  }

  override get message(): string {
    const sent = this.delivered + this.undelivered.length + this.unsettled.length
    const how = this.upstream !== undefined
      ? `the upstream failed after ${sent} element(s) were sent${describeUpstream(this.upstream)}`
      : this.interrupted
      ? `interrupted after ${sent} element(s) were sent`
      : `${sent} element(s) sent`
    const undelivered = this.undelivered.length === 0
      ? ""
      : `; ${this.undelivered.length} not delivered to stream ${this.streamName} (${
        summarizeElements(this.undelivered)
      })`
    const unsettled = this.unsettled.length === 0
      ? ""
      : `; ${this.unsettled.length} not settled yet (each that ends undelivered reaches onUndelivered or the log)`
    return `${how}${undelivered}${unsettled}; ${this.delivered} delivered${this.interrupted ? " (interrupted)" : ""}`
  }
}

/**
 * The fields of a {@link ProducerStreamError}.
 *
 * @since 0.1.0
 */
export interface ProducerStreamErrorFields<E> {
  readonly streamName: string
  /** Elements sent and delivered. */
  readonly delivered: number
  /** Elements sent and settled without being delivered, in the order they settled. */
  readonly undelivered: ReadonlyArray<UndeliveredElement>
  /** When interrupted: elements sent whose outcome was not known yet, in the order they were sent. */
  readonly unsettled: ReadonlyArray<DataFileV1>
  /** The stream's own failure, when it failed. */
  readonly upstream: Cause.Cause<E> | undefined
  /** True when the run was interrupted. */
  readonly interrupted: boolean
}

/** Counts by error code (Kinesis' or the library's) or, for a build error, by its tag. */
const summarizeElements = (elements: ReadonlyArray<UndeliveredElement>): string => {
  const codes = new Map<string, number>()
  for (const { error } of elements) {
    const code = error._tag === "RecordUndeliveredError" ? error.errorCode : error._tag
    codes.set(code, (codes.get(code) ?? 0) + 1)
  }
  return [...codes].map(([code, n]) => `${code} ×${n}`).join(", ")
}

/** `: <message>` of the upstream's failure (the first one, squashed), on one line. */
const describeUpstream = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return causeSuffix(typeof error === "string" ? { message: error } : error, "")
}
