/**
 * The delivery of one batch across attempts: only what failed retryably is sent again, on
 * the retry schedule; what failed for good is set aside; the ledger knows at every moment
 * which records are written, in flight, or possibly written.
 */
import { Effect, Schedule, ScheduleDecision } from "effect"
import type { CompressionError, KinesisError, SerializationError, UndeliveredRecord } from "../Errors.js"
import { WriteBatchError } from "../Errors.js"
import { DeliveryLedger } from "./core/ledger.js"
import type { AttemptOutcome } from "./delivery.js"
import { yieldToEventLoop } from "./eventLoop.js"
import type { BatchEntry, PreparedRecord } from "./prepare.js"

/** The error code of a record still undelivered when the caller's deadline passed. */
export const DeadlineExceeded = "DeadlineExceeded"

interface LastFailure {
  readonly errorCode: string
  readonly errorMessage?: string | undefined
}

/** What stops delivery for good: a call failure retrying cannot fix, or a payload that could not be built. */
type Fatal = KinesisError | CompressionError | SerializationError

/**
 * Mutable state of one batch's delivery; one instance per `writeBatch` call, driven by one fiber.
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
  private fatal: Fatal | undefined
  private lastCallError: KinesisError | undefined

  constructor(readonly entries: ReadonlyArray<BatchEntry>) {
    this.ledger = new DeliveryLedger(entries.length)
  }

  /**
   * Runs `attempt(n)` (0 first, then the retries of what is pending) and records each outcome,
   * until nothing is pending or the schedule stops; `onRetry` runs before each retry's delay.
   * An attempt counts from the moment it starts, so an interrupted one is counted. Each retry
   * first yields to the event loop (a macrotask), so that whatever the schedule (even one with
   * no delay, for ever) and however synchronously the service answers, timers run and the
   * batch can be interrupted. Never fails.
   */
  run(
    attempt: (n: number) => Effect.Effect<AttemptOutcome>,
    schedule: Schedule.Schedule<unknown, unknown>,
    onRetry: Effect.Effect<void>
  ): Effect.Effect<void> {
    const step = Effect.suspend(() => {
      const n = this.attempts++
      const run = Effect.map(attempt(n), (outcome) => this.record(n, outcome))
      return n === 0 ? run : Effect.zipRight(yieldToEventLoop, run)
    })
    const retries = schedule.pipe(
      Schedule.check(() => this.pending.length > 0),
      Schedule.onDecision((_, decision) => ScheduleDecision.isContinue(decision) ? onRetry : Effect.void)
    )
    return Effect.asVoid(Effect.repeat(step, retries))
  }

  /**
   * Delivery cannot go on (a payload could not be built): every record not written and not
   * failed already is marked with the error, and nothing is retried.
   */
  fail(error: CompressionError | SerializationError): void {
    this.fatal = error
    this.pending = []
    for (const entry of this.entries) {
      if (!this.ledger.isWritten(entry.index) && !this.lastFailure.has(entry.index)) {
        this.lastFailure.set(entry.index, { errorCode: error._tag, errorMessage: error.message })
      }
    }
  }

  /**
   * The deadline passed: delivery stopped, its calls in flight aborted. Every record not
   * written is named with `DeadlineExceeded`; one that was in flight may have been written.
   */
  expire(deadline: string): void {
    this.pending = []
    for (const entry of this.entries) {
      if (this.ledger.isWritten(entry.index)) continue
      const previous = this.lastFailure.get(entry.index)
      if (this.ledger.isInFlight(entry.index)) this.ledger.failed(entry.index, true)
      this.lastFailure.set(entry.index, {
        errorCode: DeadlineExceeded,
        errorMessage: `not delivered within the deadline of ${deadline}${
          previous === undefined ? "" : ` (last failure: ${previous.errorCode})`
        }`
      })
    }
  }

  private record(attempt: number, outcome: AttemptOutcome): void {
    // Logical records: an aggregate retried counts each of its members.
    if (attempt > 0) { for (const r of this.pending) this.retriedRecords += r.members?.length ?? 1 }
    this.calls += outcome.calls
    this.lastCallError = outcome.callErrors.at(-1) ?? this.lastCallError
    this.fatal ??= outcome.callErrors.find((e) => !e.retryable)
    const retry: Array<PreparedRecord> = []
    for (const failure of outcome.failed) {
      const members = failure.record.members
      if (members === undefined) this.lastFailure.set(failure.record.index, failure)
      else for (const m of members) this.lastFailure.set(m.index, failure)
      if (failure.retryable && this.fatal === undefined) retry.push(failure.record)
    }
    this.pending = retry
  }

  /**
   * The records not delivered, in batch order: every record the ledger does not know written,
   * whatever the attempts reported, so that no record is counted delivered without a result
   * that says so.
   */
  undelivered(): Array<BatchEntry> {
    return this.entries.filter((e) => !this.ledger.isWritten(e.index))
  }

  /**
   * The error naming every record not written: those that failed, and — when interrupted —
   * those never sent or in flight. `deleted` lists the indexes whose S3 object was deleted.
   */
  toError(streamName: string, interrupted: boolean, deleted: ReadonlySet<number>): WriteBatchError {
    const undelivered = this.undelivered().map((entry): UndeliveredRecord & { readonly index: number } => {
      const failure = this.lastFailure.get(entry.index)
      const inFlight = this.ledger.isInFlight(entry.index)
      return {
        record: entry.record,
        index: entry.index,
        recordId: entry.recordId,
        errorCode: interrupted && inFlight
          ? "Interrupted"
          : failure?.errorCode ?? (interrupted ? "Interrupted" : "NotSent"),
        errorMessage: failure?.errorMessage,
        maybeDelivered: this.ledger.maybeDelivered(entry.index),
        largePayload: entry.largePayload === undefined
          ? undefined
          : { ...entry.largePayload, deleted: deleted.has(entry.index) },
        attempts: this.ledger.attempts(entry.index)
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
