/**
 * The delivery of one prepared batch across attempts: only what failed retryably is sent
 * again, on the retry schedule; what failed for good is set aside; the ledger knows at
 * every moment which records are written, in flight, or possibly written.
 *
 * @since 0.1.0
 */
import type { Schedule } from "effect"
import { Effect } from "effect"
import type { KinesisError, UndeliveredRecord } from "../errors.js"
import { WriteBatchError } from "../errors.js"
import type { AttemptOutcome, FailedRecord } from "./Delivery.js"
import { DeliveryLedger } from "./Delivery.js"
import type { PreparedRecord } from "./PreparedBatch.js"

const RetryPending = { _tag: "RetryPending" } as const

/**
 * Mutable state of one batch's delivery; one instance per `writeBatch` call, driven by one fiber.
 *
 * @since 0.1.0
 */
export class BatchDelivery {
  readonly ledger: DeliveryLedger
  /** Records to send on the next attempt. */
  pending: ReadonlyArray<PreparedRecord>
  attempts = 0
  calls = 0
  retriedRecords = 0
  /** Last failure of each record not (yet) delivered, by batch index. */
  private readonly lastFailure = new Map<number, FailedRecord>()
  /** The first call failure that retrying cannot fix; stops delivery. */
  private fatal: KinesisError | undefined
  private lastCallError: KinesisError | undefined

  constructor(readonly records: ReadonlyArray<PreparedRecord>) {
    this.ledger = new DeliveryLedger(records.length)
    this.pending = records
  }

  /** Attempts until nothing is pending, a call fails for good, or the schedule stops. Never fails. */
  run(
    putAttempt: (records: ReadonlyArray<PreparedRecord>, attempt: number, ledger: DeliveryLedger) => Effect.Effect<AttemptOutcome>,
    schedule: Schedule.Schedule<unknown, unknown>
  ): Effect.Effect<void> {
    const attempt = Effect.suspend(() => putAttempt(this.pending, this.attempts, this.ledger)).pipe(
      Effect.flatMap((outcome) => {
        this.record(outcome)
        return this.pending.length === 0 ? Effect.void : Effect.fail(RetryPending)
      })
    )
    return attempt.pipe(Effect.retry(schedule), Effect.ignore)
  }

  private record(outcome: AttemptOutcome): void {
    if (this.attempts > 0) this.retriedRecords += this.pending.length
    this.attempts++
    this.calls += outcome.calls
    this.lastCallError = outcome.callErrors.at(-1) ?? this.lastCallError
    this.fatal = outcome.callErrors.find((e) => !e.retryable)
    for (const written of outcome.written) this.lastFailure.delete(written.index)
    const retry: Array<PreparedRecord> = []
    for (const failure of outcome.failed) {
      this.lastFailure.set(failure.record.index, failure)
      if (failure.retryable && this.fatal === undefined) retry.push(failure.record)
    }
    this.pending = retry
  }

  /** The last failure of every record not delivered, in batch order. */
  undeliveredFailures(): Array<FailedRecord> {
    return [...this.lastFailure.values()].sort((a, b) => a.record.index - b.record.index)
  }

  /**
   * The error naming every record not written: those that failed, and — when interrupted —
   * those never sent or in flight. `deleted` lists the indexes whose S3 object was deleted.
   */
  toError(streamName: string, interrupted: boolean, deleted: ReadonlyArray<number>): WriteBatchError {
    const removed = new Set(deleted)
    const undelivered: Array<UndeliveredRecord> = []
    for (const record of this.records) {
      if (this.ledger.state[record.index] === 2) continue
      const failure = this.lastFailure.get(record.index)
      if (failure === undefined && !interrupted) continue
      undelivered.push({
        record: record.record,
        index: record.index,
        recordId: record.recordId,
        errorCode: failure === undefined || (interrupted && this.ledger.state[record.index] === 1) ? "Interrupted" : failure.errorCode,
        errorMessage: failure?.errorMessage,
        maybeDelivered: this.ledger.maybeDelivered(record.index),
        largePayload: record.largePayload === undefined
          ? undefined
          : { ...record.largePayload, deleted: removed.has(record.index) }
      })
    }
    return new WriteBatchError({
      streamName,
      undelivered,
      delivered: this.records.length - undelivered.length,
      attempts: this.attempts,
      interrupted,
      cause: this.fatal ?? this.lastCallError
    })
  }
}
