/**
 * Sending prepared records: PutRecords calls within Kinesis' limits (500 records,
 * `maxRequestBytes` of data plus keys), several in flight, and what happened to each record.
 * A call that fails whole fails each of its records with the call's error name; nothing is
 * dropped. A `DeliveryLedger`, when given, follows every record as calls start and finish.
 */
import { Clock, Effect, Option, Stream } from "effect"
import { KinesisError } from "../Errors.js"
import type { Kinesis, PutRecordsResultEntry } from "../Kinesis.js"
import type { KinesisMetrics } from "../KinesisMetrics.js"
import { mayHaveBeenApplied } from "./awsError.js"
import type { ResolvedWriterConfig } from "./config.js"
import type { DeliveryLedger } from "./core/ledger.js"
import { KinesisLimits } from "./core/limits.js"
import { fitsPartitionKey, partitionKeyLength } from "./core/partitionKey.js"
import { putPayloadUnits } from "./core/payloadUnits.js"
import { EventLoopSlice } from "./eventLoop.js"
import type { PreparedRecord } from "./prepare.js"
import { Attributes, SpanNames } from "./spans.js"
import { withRequestTimeout } from "./timeout.js"

/** Per-record error codes worth sending again. */
export const RETRYABLE_RECORD_ERRORS: ReadonlySet<string> = new Set([
  "ProvisionedThroughputExceededException",
  "InternalFailure",
  "KMSThrottlingException"
])

/**
 * A record an attempt did not deliver.
 *
 * @since 0.1.0
 */
export interface FailedRecord {
  readonly record: PreparedRecord
  readonly errorCode: string
  readonly errorMessage?: string | undefined
  /** Whether sending it again may succeed. */
  readonly retryable: boolean
  /** Whether the call may have written it anyway (a timeout, a 5xx, a connection lost after sending). */
  readonly ambiguous: boolean
}

/**
 * A record an attempt delivered, where Kinesis put it.
 *
 * @since 0.1.0
 */
export interface WrittenRecord {
  readonly record: PreparedRecord
  readonly shardId: string
  readonly sequenceNumber: string
}

/**
 * What one attempt (or one call) did.
 *
 * @since 0.1.0
 */
export interface AttemptOutcome {
  /** Records written. */
  readonly written: number
  /** The records written, with their shard and sequence number. */
  readonly writtenRecords: ReadonlyArray<WrittenRecord>
  readonly failed: ReadonlyArray<FailedRecord>
  /** PutRecords calls made. */
  readonly calls: number
  /** The errors of calls that failed whole. */
  readonly callErrors: ReadonlyArray<KinesisError>
}

/** The outcome of nothing sent. */
export const emptyOutcome: AttemptOutcome = { written: 0, writtenRecords: [], failed: [], calls: 0, callErrors: [] }

/** Adds outcomes up. */
export const combineOutcomes = (outcomes: Iterable<AttemptOutcome>): AttemptOutcome => {
  const writtenRecords: Array<WrittenRecord> = []
  const failed: Array<FailedRecord> = []
  const callErrors: Array<KinesisError> = []
  let calls = 0
  for (const o of outcomes) {
    calls += o.calls
    for (const w of o.writtenRecords) writtenRecords.push(w)
    for (const f of o.failed) failed.push(f)
    for (const e of o.callErrors) callErrors.push(e)
  }
  return { written: writtenRecords.length, writtenRecords, failed, calls, callErrors }
}

/**
 * What an attempt did, and what stopped it early: the failure of its records' source (a
 * chunk that could not be compressed). The calls made before it stopped are in `outcome`.
 */
export interface AttemptReport<E> {
  readonly outcome: AttemptOutcome
  readonly stoppedBy: Option.Option<E>
}

/**
 * Splits records into PutRecords calls: at most 500 records and `maxRequestBytes` bytes of
 * data plus partition keys each, in order. No record is larger than a call may be: the writer
 * refuses a `maxRequestBytes` below the stream's record limit, and `fitAttempt` a record over it.
 */
export const planCalls = <A>(
  records: ReadonlyArray<A>,
  bytesOf: (record: A) => number,
  maxRequestBytes: number
): Array<Array<A>> => {
  const calls: Array<Array<A>> = []
  let current: Array<A> = []
  let bytes = 0
  for (const record of records) {
    const size = bytesOf(record)
    if (current.length > 0 && (current.length === KinesisLimits.maxRecordsPerCall || bytes + size > maxRequestBytes)) {
      calls.push(current)
      current = []
      bytes = 0
    }
    current.push(record)
    bytes += size
  }
  if (current.length > 0) calls.push(current)
  return calls
}

/** The calls that carry `records` on `attempt`: {@link planCalls} with the attempt's keys. */
export const planAttempt = (
  config: ResolvedWriterConfig,
  records: ReadonlyArray<PreparedRecord>,
  attempt: number
): Array<Array<PreparedRecord>> => {
  const suffixBytes = String(attempt).length
  return planCalls(
    records,
    (r) => r.data.length + Buffer.byteLength(r.partitionKeyPrefix) + suffixBytes,
    config.maxRequestBytes
  )
}

/**
 * The records that can be sent on `attempt` and those that cannot: a record whose partition
 * key would exceed 256 characters, or whose data plus key would exceed the stream's record
 * limit, once the attempt's suffix is added. The suffix grows a digit at attempts 10, 100, …,
 * whatever schedule asks for them, so the limits are checked here, with the suffix actually
 * sent, and a record that no longer fits is failed with `AttemptLimit` (not retryable) rather
 * than sent over a limit, which would make Kinesis refuse its whole call.
 */
export const fitAttempt = (
  records: ReadonlyArray<PreparedRecord>,
  attempt: number,
  recordLimitBytes: number
): { readonly fit: Array<PreparedRecord>; readonly refused: Array<FailedRecord> } => {
  const suffix = String(attempt)
  const fit: Array<PreparedRecord> = []
  const refused: Array<FailedRecord> = []
  for (const record of records) {
    const key = record.partitionKeyPrefix + suffix
    const bytes = record.data.length + Buffer.byteLength(key, "utf8")
    if (!fitsPartitionKey(key)) {
      refused.push({
        record,
        errorCode: AttemptLimit,
        errorMessage: `attempt ${attempt} would send a partition key of ${
          partitionKeyLength(key)
        } characters (limit ${KinesisLimits.maxPartitionKeyLength})`,
        retryable: false,
        ambiguous: false
      })
    } else if (bytes > recordLimitBytes) {
      refused.push({
        record,
        errorCode: AttemptLimit,
        errorMessage:
          `attempt ${attempt} would send ${bytes} bytes of data and partition key (record limit ${recordLimitBytes})`,
        retryable: false,
        ambiguous: false
      })
    } else {
      fit.push(record)
    }
  }
  return { fit, refused }
}

/** The error code of a record that no attempt can carry any more within Kinesis' limits. */
export const AttemptLimit = "AttemptLimit"

/** The error name of a call whose answer does not give one well-formed result per record. */
export const InvalidResponse = "InvalidResponse"

/**
 * A `Kinesis` service's answer checked where it is consumed: exactly one result per record.
 * Any other answer (shorter, longer, not an array) fails the call as a retryable
 * `InvalidResponse`; with no HTTP status, it is ambiguous, since the call may have written
 * its records: none of them is counted written.
 */
const checkAnswer = (streamName: string, records: number) =>
(
  answer: ReadonlyArray<PutRecordsResultEntry>
): Effect.Effect<ReadonlyArray<PutRecordsResultEntry>, KinesisError> =>
  Array.isArray(answer) && answer.length === records
    ? Effect.succeed(answer)
    : Effect.fail(
      new KinesisError({
        operation: "PutRecords",
        streamName,
        errorName: InvalidResponse,
        retryable: true,
        cause: new Error(
          `the Kinesis service answered ${
            Array.isArray(answer) ? `${answer.length} results` : "no result array"
          } for ${records} records`
        )
      })
    )

const isWritten = (
  entry: PutRecordsResultEntry | undefined
): entry is Extract<PutRecordsResultEntry, { _tag: "Written" }> =>
  entry?._tag === "Written" && typeof entry.shardId === "string" && typeof entry.sequenceNumber === "string"

const isRefused = (
  entry: PutRecordsResultEntry | undefined
): entry is Extract<PutRecordsResultEntry, { _tag: "Failed" }> =>
  entry?._tag === "Failed" && typeof entry.errorCode === "string"

/** Records in slices of a full call's worth, so that no step of an attempt handles a whole large batch at once. */
export const slices = <A>(records: ReadonlyArray<A>): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let start = 0; start < records.length; start += KinesisLimits.maxRecordsPerCall) {
    out.push(records.slice(start, start + KinesisLimits.maxRecordsPerCall))
  }
  return out
}

/** Sends attempts: one writer's settings and services, resolved once. */
export interface Sender {
  /**
   * One PutRecords call with the partition keys of `attempt`, or, given one attempt per
   * record (the producer, whose records retry on their own), of each record's own attempt.
   * Never fails.
   */
  readonly sendCall: (
    call: ReadonlyArray<PreparedRecord>,
    attempt: number | ReadonlyArray<number>,
    ledger?: DeliveryLedger
  ) => Effect.Effect<AttemptOutcome>
  /**
   * One attempt: the records as they come (the chunks of a first attempt as they are
   * compressed, or the records pending a retry), in calls within the limits, at most
   * `maxConcurrentCalls` in flight. Never fails: a failure of the source stops the attempt
   * and is reported beside the outcome of the calls already made.
   */
  readonly sendAttempt: <E>(
    records: Stream.Stream<ReadonlyArray<PreparedRecord>, E>,
    attempt: number,
    ledger?: DeliveryLedger
  ) => Effect.Effect<AttemptReport<E>>
}

/** The sender of a writer. */
export const makeSender = (
  config: ResolvedWriterConfig,
  kinesis: Kinesis.Service,
  metrics: KinesisMetrics.Service,
  /** The stream's record limit (data plus partition key), as the writer knows it. */
  recordLimitBytes: number
): Sender => {
  const stream = config.streamName
  const putRecords = withRequestTimeout(
    config.requestTimeout,
    (facts) => new KinesisError({ operation: "PutRecords", streamName: stream, ...facts })
  )

  const sendCall = (
    call: ReadonlyArray<PreparedRecord>,
    attempt: number | ReadonlyArray<number>,
    ledger?: DeliveryLedger
  ) =>
    // Only the call itself can be interrupted: once the service has answered, the answer is
    // recorded in the ledger whatever happens, so a record the service confirmed is never
    // reported as not delivered.
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        const suffix = typeof attempt === "number" ? String(attempt) : undefined
        const start = yield* Clock.currentTimeMillis
        if (ledger !== undefined) { for (const r of call) ledger.sendingRecord(r) }
        const entries = call.map((r, i) => ({
          data: r.data,
          partitionKey: r.partitionKeyPrefix + (suffix ?? String((attempt as ReadonlyArray<number>)[i])),
          explicitHashKey: r.explicitHashKey
        }))
        const result = yield* Effect.either(putRecords(
          restore(kinesis.putRecords({ streamName: stream, streamArn: config.streamArn, records: entries }))
            .pipe(Effect.flatMap(checkAnswer(stream, call.length)))
        ))
        const seconds = ((yield* Clock.currentTimeMillis) - start) / 1000
        if (result._tag === "Left") {
          const error = result.left
          const ambiguous = mayHaveBeenApplied(error.errorName, error.httpStatus)
          const failed = call.map((record): FailedRecord => {
            ledger?.failedRecord(record, ambiguous)
            return {
              record,
              errorCode: error.errorName,
              errorMessage: error.message,
              retryable: error.retryable,
              ambiguous
            }
          })
          yield* metrics.putRecords({ streamName: stream, seconds, failedRecords: call.length, callFailed: true })
          yield* Effect.logDebug("PutRecords call failed").pipe(
            Effect.annotateLogs({
              stream,
              records: call.length,
              attempt,
              error: error.errorName,
              retryable: error.retryable
            })
          )
          return { written: 0, writtenRecords: [], failed, calls: 1, callErrors: [error] }
        }
        const writtenRecords: Array<WrittenRecord> = []
        const failed: Array<FailedRecord> = []
        let units = 0
        result.right.forEach((entry, i) => {
          const record = call[i]!
          if (isWritten(entry)) {
            writtenRecords.push({ record, shardId: entry.shardId, sequenceNumber: entry.sequenceNumber })
            units += putPayloadUnits(record.data.length + Buffer.byteLength(entries[i]!.partitionKey, "utf8"))
            ledger?.writtenRecord(record)
          } else if (isRefused(entry)) {
            failed.push({
              record,
              errorCode: entry.errorCode,
              errorMessage: entry.errorMessage,
              retryable: RETRYABLE_RECORD_ERRORS.has(entry.errorCode),
              ambiguous: false
            })
            ledger?.failedRecord(record, false)
          } else {
            // A result that says neither: the call may have written the record.
            failed.push({
              record,
              errorCode: InvalidResponse,
              errorMessage: "the Kinesis service answered a result that is neither written nor failed",
              retryable: true,
              ambiguous: true
            })
            ledger?.failedRecord(record, true)
          }
        })
        yield* metrics.putRecords({ streamName: stream, seconds, failedRecords: failed.length, callFailed: false })
        yield* metrics.putPayloadUnits(stream, units)
        return { written: writtenRecords.length, writtenRecords, failed, calls: 1, callErrors: [] }
      })
    )

  const sendAttempt = <E>(
    records: Stream.Stream<ReadonlyArray<PreparedRecord>, E>,
    attempt: number,
    ledger?: DeliveryLedger
  ): Effect.Effect<AttemptReport<E>> =>
    Effect.suspend(() => {
      const outcomes: Array<AttemptOutcome> = []
      const slice = new EventLoopSlice()
      return records.pipe(
        Stream.flatMap((chunk) => {
          const { fit, refused } = fitAttempt(chunk, attempt, recordLimitBytes)
          if (refused.length > 0) {
            for (const f of refused) ledger?.failedRecord(f.record, false)
            outcomes.push({ ...emptyOutcome, failed: refused })
          }
          return Stream.fromIterable(planAttempt(config, fit, attempt))
        }),
        // Calls let the event loop turn once their slice is spent: a service that answers
        // synchronously (a test double, the shard simulator) never holds it for long.
        Stream.mapEffect((call) =>
          slice.spent()
            ? Effect.zipRight(slice.yield, sendCall(call, attempt, ledger))
            : sendCall(call, attempt, ledger), {
          concurrency: config.maxConcurrentCalls,
          unordered: true
        }),
        Stream.runForEach((outcome) => Effect.sync(() => outcomes.push(outcome))),
        Effect.match({
          onFailure: (error) => ({ outcome: combineOutcomes(outcomes), stoppedBy: Option.some(error) }),
          onSuccess: () => ({ outcome: combineOutcomes(outcomes), stoppedBy: Option.none<E>() })
        }),
        Effect.withSpan(SpanNames.putAttempt, {
          attributes: { [Attributes.streamName]: stream, [Attributes.attempt]: attempt }
        })
      )
    })

  return { sendCall, sendAttempt }
}
