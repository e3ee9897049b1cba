/**
 * The delivery of one batch across attempts: only what failed retryably is sent again, on
 * the retry schedule; what failed for good is set aside; the ledger knows at every moment
 * which records are written, in flight, or possibly written.
 *
 * @since 0.1.0
 */
import type { Schedule } from "effect"
import { Effect } from "effect"
import type { CompressionError, KinesisError, SerializationError, UndeliveredRecord } from "../Errors.js"
import { WriteBatchError } from "../Errors.js"
import type { AttemptOutcome } from "./delivery.js"
import { DeliveryLedger } from "./delivery.js"
import type { BatchEntry, PreparedRecord } from "./prepare.js"

const RetryPending = { _tag: "RetryPending" } as const

interface LastFailure {
  readonly errorCode: string
  readonly errorMessage?: string | undefined
}

/**
 * Mutable state of one batch's delivery; one instance per `writeBatch` call, driven by one fiber.
 *
 * @since 0.1.0
 */
export class BatchDelivery {
  readonly ledger: DeliveryLedger
  /** Records to send on the next retry. */
  pending: ReadonlyArray<PreparedRecord> = []
  attempts = 0
  calls = 0
  retriedRecords = 0
  /** Last failure of each record not (yet) delivered, by batch index. */
  private readonly lastFailure = new Map<number, LastFailure>()
  /** What stopped delivery for good: a call failure retrying cannot fix, or a compression failure. */
  private fatal: KinesisError | CompressionError | SerializationError | undefined
  private lastCallError: KinesisError | undefined

  constructor(readonly entries: ReadonlyArray<BatchEntry>) {
    this.ledger = new DeliveryLedger(entries.length)
  }

  /**
   * Runs the first attempt, then retries what failed retryably until nothing is pending, a
   * failure stops delivery for good, or the schedule stops. Never fails.
   */
  run(
    firstAttempt: Effect.Effect<AttemptOutcome>,
    retry: (records: ReadonlyArray<PreparedRecord>, attempt: number, ledger: DeliveryLedger) => Effect.Effect<AttemptOutcome>,
    schedule: Schedule.Schedule<unknown, unknown>
  ): Effect.Effect<void> {
    const next = Effect.suspend(() => this.attempts === 0 ? firstAttempt : retry(this.pending, this.attempts, this.ledger)).pipe(
      Effect.flatMap((outcome) => {
        this.record(outcome)
        return this.pending.length === 0 ? Effect.void : Effect.fail(RetryPending)
      })
    )
    return next.pipe(Effect.retry(schedule), Effect.ignore)
  }

  /**
   * Delivery cannot go on (a payload could not be built): every record not written and not
   * failed already is marked with the error, and nothing is retried.
   */
  fail(error: CompressionError | SerializationError): void {
    this.fatal = error
    for (const entry of this.entries) {
      if (this.ledger.state[entry.index] !== 2 && !this.lastFailure.has(entry.index)) {
        this.lastFailure.set(entry.index, { errorCode: error._tag, errorMessage: error.message })
      }
    }
  }

  private record(outcome: AttemptOutcome): void {
    if (this.attempts > 0) this.retriedRecords += this.pending.length
    this.attempts++
    this.calls += outcome.calls
    this.lastCallError = outcome.callErrors.at(-1) ?? this.lastCallError
    this.fatal ??= outcome.callErrors.find((e) => !e.retryable)
    const retry: Array<PreparedRecord> = []
    for (const failure of outcome.failed) {
      this.lastFailure.set(failure.record.index, failure)
      if (failure.retryable && this.fatal === undefined) retry.push(failure.record)
    }
    this.pending = retry
  }

  /** Indexes of the records not delivered (for good, or when interrupted not yet), in batch order. */
  undelivered(interrupted: boolean): Array<BatchEntry> {
    return this.entries.filter((e) =>
      this.ledger.state[e.index] !== 2 && (interrupted || this.lastFailure.has(e.index))
    )
  }

  /**
   * The error naming every record not written: those that failed, and — when interrupted —
   * those never sent or in flight. `deleted` lists the indexes whose S3 object was deleted.
   */
  toError(streamName: string, interrupted: boolean, deleted: ReadonlySet<number>): WriteBatchError {
    const undelivered = this.undelivered(interrupted).map((entry): UndeliveredRecord => {
      const failure = this.lastFailure.get(entry.index)
      const inFlight = this.ledger.state[entry.index] === 1
      return {
        record: entry.record,
        index: entry.index,
        recordId: entry.recordId,
        errorCode: failure === undefined || (interrupted && inFlight) ? "Interrupted" : failure.errorCode,
        errorMessage: failure?.errorMessage,
        maybeDelivered: this.ledger.maybeDelivered(entry.index),
        largePayload: entry.largePayload === undefined ? undefined : { ...entry.largePayload, deleted: deleted.has(entry.index) }
      }
    })
    return new WriteBatchError({
      streamName,
      undelivered,
      delivered: this.entries.length - undelivered.length,
      attempts: this.attempts,
      interrupted,
      cause: this.fatal ?? this.lastCallError
    })
  }
}
