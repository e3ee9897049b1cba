/**
 * The sends of one run over a stream (the sink's, or `sendStream`'s): each element is a send
 * that waits only for room (backpressure), not for its outcome; outcomes are counted as they
 * come. A run that ends before its sends settle detaches: from then on, an element that ends
 * undelivered and that `onUndelivered` does not receive is logged, so none is lost silently.
 */
import { Cause, Effect, Exit, Option, Runtime } from "effect"
import type { ProducerClosedError, UndeliveredElement } from "../../Errors.js"
import type { DataFileV1 } from "../../gen/cygnus/v1/data_file_pb.js"
import type { SendExit } from "./send.js"
import { Send } from "./send.js"

/** What a run over a stream needs of the producer. */
export interface StreamParts {
  readonly streamName: string
  readonly closedError: ProducerClosedError
  readonly isClosed: () => boolean
  readonly offer: (send: Send) => void
  /** An `onUndelivered` is configured: it receives each record that ends `RecordUndeliveredError`. */
  readonly handlesUndelivered: boolean
}

/** The sends of one run. */
export class StreamSends {
  /** Elements settled without being delivered, in the order they settled. */
  readonly undelivered: Array<UndeliveredElement> = []
  delivered = 0
  /** Delivered elements that took more than one attempt. */
  retriedRecords = 0
  /** Sends not settled, in the order they were sent. */
  private readonly unsettled = new Set<Send>()
  /** Once detached: logs an element that ended undelivered, unless `onUndelivered` receives it. */
  private report: ((element: UndeliveredElement) => void) | undefined = undefined

  private constructor(private readonly parts: StreamParts, private readonly allSettled: Effect.Latch) {}

  static make(parts: StreamParts): Effect.Effect<StreamSends> {
    return Effect.map(Effect.makeLatch(true), (allSettled) => new StreamSends(parts, allSettled))
  }

  /**
   * Sends an element and waits until the producer admits it (backpressure), not for its
   * outcome. False once the producer is closed: the element is refused and counted. An
   * interrupted wait does not withdraw the element: every element taken is sent.
   */
  readonly send = (record: DataFileV1): Effect.Effect<boolean> =>
    Effect.async<boolean>((resume) => {
      if (this.parts.isClosed()) {
        this.failed({ record, error: this.parts.closedError })
        return resume(Effect.succeed(false))
      }
      let admitted = false
      const send = new Send(record, (exit) => {
        this.settled(send, exit)
        // Refused while waiting for room: the producer closed.
        if (!admitted) resume(Effect.succeed(false))
      })
      send.onAdmitted = () => {
        admitted = true
        resume(Effect.succeed(true))
      }
      this.unsettled.add(send)
      this.allSettled.unsafeClose()
      this.parts.offer(send)
    })

  /** Waits until every element sent so far has settled. */
  readonly awaitSettled: Effect.Effect<void> = Effect.suspend(() => this.allSettled.await)

  /** Elements sent whose outcome is not known yet, in the order they were sent. */
  pending(): ReadonlyArray<DataFileV1> {
    return Array.from(this.unsettled, (send) => send.record)
  }

  /**
   * The run ends without waiting for its sends (`why`): one Warning line counts what is not
   * delivered or not settled, and from now on each element that ends undelivered, and that
   * `onUndelivered` does not receive, is logged at Warning in the caller's context (its
   * logger and annotations).
   */
  detach(why: string): Effect.Effect<void> {
    return Effect.flatMap(Effect.runtime<never>(), (runtime) => {
      // A log line does not suspend: it runs to its end where the element settles, and a
      // logger that throws is no concern of the settlement's.
      const runSyncExit = Runtime.runSyncExit(runtime)
      const report = (element: UndeliveredElement) => {
        if (element.error._tag !== "RecordUndeliveredError" || !this.parts.handlesUndelivered) {
          runSyncExit(logUndelivered(this.parts.streamName, element))
        }
      }
      this.report = report
      const pending = this.unsettled.size
      if (pending === 0 && this.undelivered.length === 0) return Effect.void
      return Effect.zipRight(
        Effect.logWarning(`${why}: elements sent are not delivered or not settled yet`).pipe(
          Effect.annotateLogs({
            stream: this.parts.streamName,
            delivered: this.delivered,
            undelivered: this.undelivered.length,
            unsettled: pending
          })
        ),
        Effect.sync(() => this.undelivered.forEach(report))
      )
    })
  }

  private settled(send: Send, exit: SendExit): void {
    this.unsettled.delete(send)
    if (Exit.isSuccess(exit)) {
      this.delivered++
      if (exit.value.attempts > 1) this.retriedRecords++
    } else {
      Option.map(Cause.failureOption(exit.cause), (error) => this.failed({ record: send.record, error }))
    }
    if (this.unsettled.size === 0) this.allSettled.unsafeOpen()
  }

  private failed(element: UndeliveredElement): void {
    this.undelivered.push(element)
    this.report?.(element)
  }
}

const logUndelivered = (streamName: string, { error, record }: UndeliveredElement) =>
  Effect.logWarning("an element sent by a stream run that has ended was not delivered").pipe(
    Effect.annotateLogs({
      stream: streamName,
      filePath: record.filePath,
      ...(error._tag === "RecordUndeliveredError" ? { recordId: error.recordId } : {}),
      error: error.message
    })
  )
