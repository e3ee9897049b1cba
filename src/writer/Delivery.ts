/**
 * One delivery attempt: the pending records split into PutRecords calls within Kinesis'
 * limits (500 records, `maxRequestBytes` of data plus keys), several calls in flight, and
 * what failed, record by record. A call that fails whole fails each of its records with the
 * call's error name; nothing is dropped.
 *
 * @since 0.1.0
 */
import { Clock, Effect } from "effect"
import type { KinesisError } from "../errors.js"
import { Kinesis } from "../services/Kinesis.js"
import { KinesisMetrics } from "../services/KinesisMetrics.js"
import type { PreparedRecord } from "./PreparedBatch.js"
import type { ResolvedWriterConfig } from "./WriterConfig.js"
import { WriterDefaults } from "./WriterConfig.js"

/**
 * Per-record error codes worth sending again (DESIGN §2).
 *
 * @since 0.1.0
 */
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
}

/**
 * What one attempt did.
 *
 * @since 0.1.0
 */
export interface AttemptOutcome {
  /** Records written, in no particular order. */
  readonly written: ReadonlyArray<PreparedRecord>
  readonly failed: ReadonlyArray<FailedRecord>
  /** PutRecords calls made. */
  readonly calls: number
  /** The errors of calls that failed whole. */
  readonly callErrors: ReadonlyArray<KinesisError>
}

/**
 * Splits records into PutRecords calls: at most 500 records and `maxRequestBytes` bytes of
 * data plus partition keys each, in order.
 *
 * @since 0.1.0
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
    if (current.length > 0 && (current.length === WriterDefaults.maxRecordsPerCall || bytes + size > maxRequestBytes)) {
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

/**
 * Sends `records` once, with the partition keys of `attempt` (0 for the first try). Never
 * fails: every record comes back written or failed.
 *
 * @since 0.1.0
 */
export const deliverAttempt = (
  config: ResolvedWriterConfig,
  records: ReadonlyArray<PreparedRecord>,
  attempt: number
): Effect.Effect<AttemptOutcome, never, Kinesis | KinesisMetrics> =>
  Effect.gen(function*() {
    const kinesis = yield* Kinesis
    const metrics = yield* KinesisMetrics
    const suffix = String(attempt)
    const keyOf = (r: PreparedRecord) => r.partitionKeyPrefix + suffix
    const calls = planCalls(records, (r) => r.data.length + Buffer.byteLength(keyOf(r)), config.maxRequestBytes)
    const written: Array<PreparedRecord> = []
    const failed: Array<FailedRecord> = []
    const callErrors: Array<KinesisError> = []
    yield* Effect.forEach(calls, (call) =>
      Effect.gen(function*() {
        const start = yield* Clock.currentTimeMillis
        const result = yield* Effect.either(kinesis.putRecords({
          streamName: config.streamName,
          streamArn: config.streamArn,
          records: call.map((r) => ({ data: r.data, partitionKey: keyOf(r) }))
        }))
        const seconds = ((yield* Clock.currentTimeMillis) - start) / 1000
        if (result._tag === "Left") {
          const error = result.left
          callErrors.push(error)
          for (const record of call) {
            failed.push({ record, errorCode: error.errorName, errorMessage: error.message, retryable: error.retryable })
          }
          yield* metrics.putRecords({ streamName: config.streamName, seconds, failedRecords: call.length, callFailed: true })
          yield* Effect.logWarning("PutRecords call failed").pipe(
            Effect.annotateLogs({ stream: config.streamName, records: call.length, attempt, error: error.errorName, retryable: error.retryable })
          )
          return
        }
        let failedInCall = 0
        result.right.forEach((entry, i) => {
          const record = call[i]!
          if (entry._tag === "Written") {
            written.push(record)
          } else {
            failedInCall++
            failed.push({
              record,
              errorCode: entry.errorCode,
              errorMessage: entry.errorMessage,
              retryable: RETRYABLE_RECORD_ERRORS.has(entry.errorCode)
            })
          }
        })
        yield* metrics.putRecords({ streamName: config.streamName, seconds, failedRecords: failedInCall, callFailed: false })
      }), { concurrency: config.maxConcurrentCalls, discard: true })
    return { written, failed, calls: calls.length, callErrors }
  }).pipe(Effect.withSpan("KinesisWriter.putAttempt", {
    attributes: { "kinesis.stream_name": config.streamName, "kinesis.records": records.length, "kinesis.attempt": attempt }
  }))
