/**
 * Sending prepared records: PutRecords calls within Kinesis' limits (500 records,
 * `maxRequestBytes` of data plus keys), several in flight, and what failed, record by record.
 * A call that fails whole fails each of its records with the call's error name; nothing is
 * dropped. A `DeliveryLedger` follows every record as calls start and finish.
 *
 * @since 0.1.0
 */
import { Clock, Duration, Effect } from "effect"
import { KinesisError } from "../errors.js"
import { mayHaveBeenApplied } from "../internal/awsError.js"
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
  /** Whether the call may have written it anyway (a timeout, a 5xx, a connection lost after sending). */
  readonly ambiguous: boolean
}

/**
 * A record an attempt wrote, and where.
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

/**
 * Where each record of a batch stands, by its index in the batch, updated as calls start
 * and finish: what a batch that is interrupted or runs out of retries reports from.
 *
 * @since 0.1.0
 */
export class DeliveryLedger {
  /** 0 not sent (or failed), 1 in a call in flight, 2 written. */
  readonly state: Uint8Array
  /** 1 when some call that carried the record had an ambiguous outcome. */
  readonly ambiguous: Uint8Array
  constructor(size: number) {
    this.state = new Uint8Array(size)
    this.ambiguous = new Uint8Array(size)
  }
  /** Whether the record may be on the stream though not known to be: an ambiguous outcome, or in flight now. */
  maybeDelivered(index: number): boolean {
    return this.ambiguous[index] === 1 || this.state[index] === 1
  }
}

/**
 * Adds up outcomes.
 *
 * @since 0.1.0
 */
export const combineOutcomes = (outcomes: Iterable<AttemptOutcome>): AttemptOutcome => {
  let written = 0
  let calls = 0
  const writtenRecords: Array<WrittenRecord> = []
  const failed: Array<FailedRecord> = []
  const callErrors: Array<KinesisError> = []
  for (const o of outcomes) {
    written += o.written
    calls += o.calls
    for (const w of o.writtenRecords) writtenRecords.push(w)
    for (const f of o.failed) failed.push(f)
    for (const e of o.callErrors) callErrors.push(e)
  }
  return { written, writtenRecords, failed, calls, callErrors }
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
 * The calls that carry `records` on `attempt`: {@link planCalls} with the attempt's keys.
 *
 * @since 0.1.0
 */
export const planAttempt = (
  config: ResolvedWriterConfig,
  records: ReadonlyArray<PreparedRecord>,
  attempt: number
): Array<Array<PreparedRecord>> => {
  const suffixBytes = String(attempt).length
  return planCalls(records, (r) => r.data.length + Buffer.byteLength(r.partitionKeyPrefix) + suffixBytes, config.maxRequestBytes)
}

/**
 * One PutRecords call with the partition keys of `attempt`, or, given one attempt per record
 * (the producer, whose records retry on their own), of each record's own attempt. Never
 * fails: every record comes back written or failed, and the metrics see the call.
 *
 * @since 0.1.0
 */
export const sendCall = (
  config: ResolvedWriterConfig,
  call: ReadonlyArray<PreparedRecord>,
  attempt: number | ReadonlyArray<number>,
  ledger?: DeliveryLedger
): Effect.Effect<AttemptOutcome, never, Kinesis | KinesisMetrics> =>
  Effect.gen(function*() {
    const kinesis = yield* Kinesis
    const metrics = yield* KinesisMetrics
    const suffix = typeof attempt === "number" ? String(attempt) : undefined
    const start = yield* Clock.currentTimeMillis
    if (ledger !== undefined) for (const r of call) ledger.state[r.index] = 1
    const result = yield* Effect.either(kinesis.putRecords({
      streamName: config.streamName,
      streamArn: config.streamArn,
      records: call.map((r, i) => ({ data: r.data, partitionKey: r.partitionKeyPrefix + (suffix ?? String((attempt as ReadonlyArray<number>)[i])) }))
    }).pipe(
      // Interrupting the call on timeout aborts its HTTP request.
      Effect.timeoutFail({
        duration: config.requestTimeout,
        onTimeout: () =>
          new KinesisError({
            operation: "PutRecords",
            streamName: config.streamName,
            errorName: "TimeoutError",
            retryable: true,
            cause: new Error(`no answer within ${Duration.format(config.requestTimeout)}`)
          })
      })
    ))
    const seconds = ((yield* Clock.currentTimeMillis) - start) / 1000
    const failed: Array<FailedRecord> = []
    if (result._tag === "Left") {
      const error = result.left
      const ambiguous = mayHaveBeenApplied(error.errorName, error.httpStatus)
      for (const record of call) {
        failed.push({ record, errorCode: error.errorName, errorMessage: error.message, retryable: error.retryable, ambiguous })
        if (ledger !== undefined) {
          ledger.state[record.index] = 0
          if (ambiguous) ledger.ambiguous[record.index] = 1
        }
      }
      yield* metrics.putRecords({ streamName: config.streamName, seconds, failedRecords: call.length, callFailed: true })
      yield* Effect.logWarning("PutRecords call failed").pipe(
        Effect.annotateLogs({ stream: config.streamName, records: call.length, attempt, error: error.errorName, retryable: error.retryable })
      )
      return { written: 0, writtenRecords: [], failed, calls: 1, callErrors: [error] }
    }
    let written = 0
    const writtenRecords: Array<WrittenRecord> = []
    result.right.forEach((entry, i) => {
      const record = call[i]!
      if (entry._tag === "Written") {
        written++
        writtenRecords.push({ record, shardId: entry.shardId, sequenceNumber: entry.sequenceNumber })
        if (ledger !== undefined) ledger.state[record.index] = 2
      } else {
        failed.push({
          record,
          errorCode: entry.errorCode,
          errorMessage: entry.errorMessage,
          retryable: RETRYABLE_RECORD_ERRORS.has(entry.errorCode),
          ambiguous: false
        })
        if (ledger !== undefined) ledger.state[record.index] = 0
      }
    })
    yield* metrics.putRecords({ streamName: config.streamName, seconds, failedRecords: failed.length, callFailed: false })
    return { written, writtenRecords, failed, calls: 1, callErrors: [] }
  })

/**
 * Sends `records` once, with the partition keys of `attempt` (0 for the first try), at
 * most `maxConcurrentCalls` calls in flight. Never fails.
 *
 * @since 0.1.0
 */
export const deliverAttempt = (
  config: ResolvedWriterConfig,
  records: ReadonlyArray<PreparedRecord>,
  attempt: number,
  ledger?: DeliveryLedger
): Effect.Effect<AttemptOutcome, never, Kinesis | KinesisMetrics> =>
  Effect.forEach(planAttempt(config, records, attempt), (call) => sendCall(config, call, attempt, ledger), {
    concurrency: config.maxConcurrentCalls
  }).pipe(
    Effect.map(combineOutcomes),
    Effect.withSpan("KinesisWriter.putAttempt", {
      attributes: { "kinesis.stream_name": config.streamName, "kinesis.records": records.length, "kinesis.attempt": attempt }
    })
  )
