/**
 * A record's life in the producer, as named states, with its S3 object's fate part of it.
 * Plain code: no effects, no clock, no randomness of its own. The door feeds it events (its
 * preparation ended, a call started, a call's outcome, a retry fell due, the TTL passed,
 * shutdown) and does what each transition returns (settle the send, delete the object,
 * schedule the retry). See ARCHITECTURE.md, "The delivery core".
 */
import type { RetryPolicy } from "./retry.js"
import { retryDelayMillis } from "./retry.js"

/** Where a large payload's object lives. */
export interface ObjectLocation {
  readonly bucket: string
  readonly key: string
}

/** Why a record did not reach the stream: a code and, when known, a message. */
export interface Failure {
  readonly errorCode: string
  readonly errorMessage?: string | undefined
}

/** What a call's answer (or its failure) says of one record it carried. */
export interface CallFailure extends Failure {
  /** Sending it again may succeed. */
  readonly retryable: boolean
  /** The call may have written it anyway (a timeout, a 5xx, a connection lost after sending). */
  readonly ambiguous: boolean
}

/** The error codes the core gives. */
export const ErrorCodes = {
  /** The record outlived its TTL. */
  expired: "Expired",
  /** The producer shut down before the record was delivered. */
  shutdown: "Shutdown"
} as const

/** How a record ended: the one outcome its sender receives. */
export type Settlement<E> =
  | {
    readonly _tag: "Delivered"
    readonly shardId: string
    readonly sequenceNumber: string
    readonly attempts: number
  }
  | {
    readonly _tag: "Undelivered"
    readonly failure: Failure
    readonly attempts: number
    readonly maybeDelivered: boolean
    /** Its object, when it had one: `deleted` when the record is certainly not on the stream and the delete succeeded. */
    readonly object: { readonly location: ObjectLocation; readonly deleted: boolean } | undefined
  }
  /** It could not be prepared (or its send gave up first): never sent, so never on the stream. */
  | { readonly _tag: "Refused"; readonly error: E }

/** Where a record stands. */
export type Phase<E> =
  /** Accepted, waiting for a preparer. */
  | { readonly _tag: "Queued" }
  /** A preparer has it: serializing, compressing, uploading. */
  | { readonly _tag: "Preparing" }
  /** Waiting for a call, lingering from `since`. */
  | { readonly _tag: "Ready"; readonly since: number }
  /** In a call, its `attempt`-th (1 for the first). */
  | { readonly _tag: "InFlight"; readonly attempt: number }
  /** Waiting for its retry, until `until`. */
  | { readonly _tag: "Backoff"; readonly until: number }
  /** Failed for good; its object, certainly not on the stream, is being deleted. */
  | { readonly _tag: "Ending"; readonly failure: Failure }
  | { readonly _tag: "Settled"; readonly settlement: Settlement<E> }

/**
 * What the fate of a record's S3 object is: none; written and not yet carried; kept, because
 * the record is or may be on the stream; being deleted; deleted; left behind (the delete
 * failed: named in the error).
 */
export type ObjectFate =
  | { readonly _tag: "None" }
  | { readonly _tag: "Written"; readonly location: ObjectLocation }
  | { readonly _tag: "Kept"; readonly location: ObjectLocation }
  | { readonly _tag: "Deleting"; readonly location: ObjectLocation }
  | { readonly _tag: "Deleted"; readonly location: ObjectLocation }
  | { readonly _tag: "Left"; readonly location: ObjectLocation }

/** What the door must do after a transition. */
export type Step =
  /** Nothing (the event did not apply to the record's state, or changed only its facts). */
  | { readonly _tag: "None" }
  /** The record is ready for a call. */
  | { readonly _tag: "Ready" }
  /** The record waits for its retry until `until`. */
  | { readonly _tag: "Retry"; readonly until: number }
  /**
   * The record has settled: give its sender `record.settlement`; then delete `delete`, an
   * object the record wrote and no record on the stream points to, when there is one.
   */
  | { readonly _tag: "Settle"; readonly delete?: ObjectLocation | undefined }
  /** Delete this object, then report with `objectDeleted`. */
  | { readonly _tag: "Delete"; readonly location: ObjectLocation }

const none: Step = { _tag: "None" }
const ready: Step = { _tag: "Ready" }
const settle: Step = { _tag: "Settle" }

/** The settings every record of a producer shares. */
export interface RecordRules extends RetryPolicy {
  readonly ttlMillis: number
}

/**
 * One record from its acceptance to its settlement. Every transition checks the state it
 * applies to and returns `None` in any other, so an event that comes late (an outcome after
 * expiry, a due retry after shutdown) changes nothing: a record settles exactly once.
 */
export class RecordLife<E> {
  phase: Phase<E> = { _tag: "Queued" }
  object: ObjectFate = { _tag: "None" }
  /** Calls that carried it, the one in flight included. */
  attempts = 0
  /** Some call that carried it may have written it. */
  maybeDelivered = false
  /** Its TTL passed while it was being prepared or in flight: it is not sent (again). */
  expired = false
  /** Its sender gave up before it was prepared: it is not sent. */
  cancelled = false
  lastFailure: Failure | undefined = undefined
  readonly deadline: number
  /** What a cancelled record is refused with. */
  private cancelledWith: E | undefined = undefined

  constructor(
    readonly rules: RecordRules,
    /** When it was accepted (ms): its TTL and linger count from then. */
    readonly acceptedAt: number
  ) {
    this.deadline = acceptedAt + rules.ttlMillis
  }

  get settled(): boolean {
    return this.phase._tag === "Settled"
  }

  /** It has an outcome, or will once its object is deleted. */
  get ended(): boolean {
    return this.phase._tag === "Settled" || this.phase._tag === "Ending"
  }

  /** The settlement, once settled. */
  get settlement(): Settlement<E> | undefined {
    return this.phase._tag === "Settled" ? this.phase.settlement : undefined
  }

  /** A preparer took it. */
  startPreparing(): Step {
    if (this.phase._tag !== "Queued") return none
    this.phase = { _tag: "Preparing" }
    return none
  }

  /**
   * Its preparation succeeded (with the object it wrote, if any): it lingers from `since`. A
   * record that ended meanwhile (expired, cancelled, shut down) is not sent: its object, which
   * nothing on the stream points to, is deleted.
   */
  prepared(since: number, location: ObjectLocation | undefined): Step {
    if (location !== undefined) this.object = { _tag: "Written", location }
    if (this.phase._tag !== "Preparing" && this.phase._tag !== "Queued") return this.dropObject()
    if (this.cancelled) return this.refuseWith(this.cancelledWith)
    if (this.expired || since >= this.deadline) return this.end(this.expiredFailure())
    this.phase = { _tag: "Ready", since }
    return ready
  }

  /**
   * Its preparation failed with `error`. The preparation's own clean-up deleted any object it
   * wrote (or named it in `error`), so the record ends with nothing to delete.
   */
  refuse(error: E): Step {
    if (this.phase._tag !== "Preparing" && this.phase._tag !== "Queued") return none
    return this.refuseWith(error)
  }

  /**
   * Its sender gave up: a record not yet prepared is not sent (its preparer refuses it, or it
   * ends when its preparation does); one prepared goes on, settling a send no one waits for.
   */
  cancel(refusal: E): Step {
    this.cancelled = true
    this.cancelledWith = refusal
    return none
  }

  /** A call carrying it starts: its next attempt. */
  startCall(): Step {
    if (this.phase._tag !== "Ready") return none
    this.attempts++
    this.phase = { _tag: "InFlight", attempt: this.attempts }
    return none
  }

  /** The call wrote it. */
  written(shardId: string, sequenceNumber: string): Step {
    if (this.phase._tag !== "InFlight") return none
    if (this.object._tag === "Written") this.object = { _tag: "Kept", location: this.object.location }
    this.phase = {
      _tag: "Settled",
      settlement: { _tag: "Delivered", shardId, sequenceNumber, attempts: this.attempts }
    }
    return settle
  }

  /**
   * The call did not write it: retried after its backoff (`u` in [0, 1) draws the jitter),
   * unless it may not be (not retryable, retries spent, its TTL passed).
   */
  failed(failure: CallFailure, now: number, u: number): Step {
    if (this.phase._tag !== "InFlight") return none
    if (failure.ambiguous) this.maybeDelivered = true
    this.lastFailure = { errorCode: failure.errorCode, errorMessage: failure.errorMessage }
    if (this.expired || now >= this.deadline) return this.end(this.expiredFailure())
    if (!failure.retryable || this.attempts > this.rules.maxRetries) return this.end(this.lastFailure)
    const until = now + retryDelayMillis(this.rules, this.attempts, u)
    if (until >= this.deadline && this.rules.ttlMillis > 0) {
      // It would fall due after its TTL: it waits until then, and expires.
      this.phase = { _tag: "Backoff", until: this.deadline }
      return { _tag: "Retry", until: this.deadline }
    }
    this.phase = { _tag: "Backoff", until }
    return { _tag: "Retry", until }
  }

  /** Its retry fell due (or shutdown hurries it): ready again, unless its TTL passed. */
  due(now: number): Step {
    if (this.phase._tag !== "Backoff") return none
    if (now >= this.deadline) return this.end(this.expiredFailure())
    this.phase = { _tag: "Ready", since: now }
    return ready
  }

  /**
   * Its TTL may have passed. Waiting for a call (ready, backing off), it ends `Expired` now;
   * queued, being prepared or in flight, it ends when that work ends (an answer that wrote it
   * still delivers it; a record prepared too late is not sent).
   */
  expire(now: number): Step {
    if (now < this.deadline || this.ended) return none
    switch (this.phase._tag) {
      case "Ready":
      case "Backoff":
        return this.end(this.expiredFailure())
      default:
        this.expired = true
        return none
    }
  }

  /**
   * Shutdown's time is up. In flight, it may have been written; anything else is certainly
   * not on the stream. A record past its TTL ends `Expired`, never `Shutdown`.
   */
  abandon(now: number, message: string): Step {
    if (this.ended) return none
    if (this.phase._tag === "InFlight") this.maybeDelivered = true
    return this.end(
      this.expired || now >= this.deadline
        ? this.expiredFailure()
        : { errorCode: ErrorCodes.shutdown, errorMessage: message }
    )
  }

  /** The delete of its object ended: `ok` when the object is gone. */
  objectDeleted(ok: boolean): Step {
    if (this.object._tag !== "Deleting") return none
    const location = this.object.location
    this.object = ok ? { _tag: "Deleted", location } : { _tag: "Left", location }
    if (this.phase._tag !== "Ending") return none
    this.phase = {
      _tag: "Settled",
      settlement: {
        _tag: "Undelivered",
        failure: this.phase.failure,
        attempts: this.attempts,
        maybeDelivered: false,
        object: { location, deleted: ok }
      }
    }
    return settle
  }

  /** The failure of a record that outlived its TTL, naming its last error. */
  private expiredFailure(): Failure {
    const last = this.lastFailure === undefined ? "" : `; last error ${this.lastFailure.errorCode}`
    return { errorCode: ErrorCodes.expired, errorMessage: `not delivered within its TTL${last}` }
  }

  /**
   * It failed for good. Its object, when it is certainly not on the stream, is deleted
   * before it settles; when the record may be on the stream, the object is kept.
   */
  private end(failure: Failure): Step {
    const object = this.object
    if (object._tag === "Written" && !this.maybeDelivered) {
      this.object = { _tag: "Deleting", location: object.location }
      this.phase = { _tag: "Ending", failure }
      return { _tag: "Delete", location: object.location }
    }
    if (object._tag === "Written") this.object = { _tag: "Kept", location: object.location }
    this.phase = {
      _tag: "Settled",
      settlement: {
        _tag: "Undelivered",
        failure,
        attempts: this.attempts,
        maybeDelivered: this.maybeDelivered,
        object: object._tag === "Written" ? { location: object.location, deleted: false } : undefined
      }
    }
    return settle
  }

  /** It ends refused (or withdrawn: `error` undefined); an object it wrote is deleted. */
  private refuseWith(error: E | undefined): Step {
    this.phase = { _tag: "Settled", settlement: { _tag: "Refused", error: error as E } }
    const dropped = this.dropObject()
    return dropped._tag === "Delete" ? { _tag: "Settle", delete: dropped.location } : settle
  }

  /** An object written for a record that will not be sent: deleted. */
  private dropObject(): Step {
    if (this.object._tag !== "Written") return none
    const location = this.object.location
    this.object = { _tag: "Deleting", location }
    return { _tag: "Delete", location }
  }
}
