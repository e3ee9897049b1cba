/**
 * One `send`: the caller's record, the core's account of its life, and whom its outcome goes
 * to. A plain object with a callback, not a `Deferred` and a fiber: a send is one
 * `Effect.async` whose callback this is, so a record costs its sender one suspension.
 */
import type { Cause, Fiber } from "effect"
import { Exit } from "effect"
import type { ProducerClosedError } from "../../Errors.js"
import { RecordUndeliveredError } from "../../Errors.js"
import type { DataFileV1 } from "../../gen/cygnus/v1/data_file_pb.js"
import type { RecordReceipt, SendError } from "../../KinesisProducer.js"
import type { RecordLife, Settlement } from "../core/record.js"
import type { PreparedRecord, PrepareError } from "../prepare.js"

/** Why a record was refused before it was sent: its build's cause, or the producer closing. */
export type Refusal = Cause.Cause<PrepareError | ProducerClosedError>

/** What settles a send: its receipt or its error. */
export type SendExit = Exit.Exit<RecordReceipt, SendError>

/** One send, from its call to its settlement. */
export class Send {
  /** Its life since it was admitted; `undefined` while it waits for room. */
  life: RecordLife<Refusal> | undefined = undefined
  /** Its Kinesis record, once prepared. */
  prepared: PreparedRecord | undefined = undefined
  /** The bytes of `maxBufferedBytes` it holds: an estimate until prepared, then what it holds. */
  charged = 0
  /** Called when it is admitted (the sink waits for that, for backpressure). */
  onAdmitted: (() => void) | undefined = undefined
  private done = false
  private watched: Fiber.RuntimeFiber<RecordReceipt, SendError> | undefined = undefined
  private onFiberEnd: (() => void) | undefined = undefined

  constructor(
    readonly record: DataFileV1,
    /** Called once, with its outcome. */
    private readonly listener: (exit: SendExit) => void
  ) {}

  get settled(): boolean {
    return this.done
  }

  /**
   * Runs `onEnd` if `fiber` ends before this settles: the fiber of a send waiting for its
   * outcome ends only when interrupted.
   */
  watch(fiber: Fiber.RuntimeFiber<RecordReceipt, SendError>, onEnd: () => void): void {
    this.watched = fiber
    this.onFiberEnd = onEnd
    fiber.addObserver(onEnd)
  }

  /** Gives its outcome, once; later calls do nothing. */
  settle(exit: SendExit): void {
    if (this.done) return
    this.done = true
    if (this.watched !== undefined) this.watched.removeObserver(this.onFiberEnd!)
    this.listener(exit)
  }
}

/** The exit a settlement gives its send. */
export const exitOf = (streamName: string, send: Send, settlement: Settlement<Refusal>): SendExit => {
  switch (settlement._tag) {
    case "Delivered":
      return Exit.succeed({
        recordId: send.prepared!.recordId,
        shardId: settlement.shardId,
        sequenceNumber: settlement.sequenceNumber,
        attempts: settlement.attempts
      })
    case "Refused":
      return Exit.failCause(settlement.error)
    case "Undelivered":
      return Exit.fail(undeliveredError(streamName, send, settlement))
  }
}

/** The error of a record that ended undelivered: what its sender and `onUndelivered` get. */
export const undeliveredError = (
  streamName: string,
  send: Send,
  settlement: Extract<Settlement<Refusal>, { readonly _tag: "Undelivered" }>
): RecordUndeliveredError =>
  new RecordUndeliveredError({
    streamName,
    record: send.record,
    recordId: send.prepared!.recordId,
    errorCode: settlement.failure.errorCode,
    errorMessage: settlement.failure.errorMessage,
    maybeDelivered: settlement.maybeDelivered,
    largePayload: settlement.object === undefined
      ? undefined
      : { ...settlement.object.location, deleted: settlement.object.deleted },
    attempts: settlement.attempts
  })
