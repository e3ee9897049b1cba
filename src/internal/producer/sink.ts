/**
 * The producer's sink: each element is a send that waits only for room (backpressure), not
 * for its outcome; the sink ends when every element it sent has settled, and fails naming
 * every element not delivered — also when its upstream fails, or it is interrupted.
 */
import { Cause, Effect, Exit, Option, Sink } from "effect"
import type { ProducerClosedError } from "../../Errors.js"
import { ProducerSinkError } from "../../Errors.js"
import type { DataFileV1 } from "../../gen/cygnus/v1/data_file_pb.js"
import { Send } from "./send.js"

type SinkFailure = ProducerSinkError["undelivered"][number]

/** What the sink needs of the producer. */
export interface SinkParts {
  readonly streamName: string
  readonly closedError: ProducerClosedError
  readonly isClosed: () => boolean
  readonly offer: (send: Send) => void
  readonly cancel: (send: Send) => void
}

/** The producer's sink. */
export const makeSink = (parts: SinkParts): Sink.Sink<void, DataFileV1, DataFileV1, ProducerSinkError> =>
  Sink.unwrap(Effect.gen(function*() {
    const failures: Array<SinkFailure> = []
    let delivered = 0
    /** Elements whose send has not settled. */
    let unsettled = 0
    /** Open while every element's send has settled. */
    const allSettled = yield* Effect.makeLatch(true)
    /**
     * Sends an element; waits only for it to be admitted (backpressure), not for its outcome,
     * which is counted when it comes. False once the producer is closed.
     */
    const consume = (record: DataFileV1) =>
      Effect.async<boolean>((resume) => {
        if (parts.isClosed()) {
          failures.push({ record, error: parts.closedError })
          return resume(Effect.succeed(false))
        }
        unsettled++
        allSettled.unsafeClose()
        let admitted = false
        const send = new Send(record, (exit) => {
          unsettled--
          if (Exit.isSuccess(exit)) delivered++
          else Option.map(Cause.failureOption(exit.cause), (error) => failures.push({ record, error }))
          if (unsettled === 0) allSettled.unsafeOpen()
          // Refused while waiting for room: the producer closed.
          if (!admitted) resume(Effect.succeed(false))
        })
        send.onAdmitted = () => {
          admitted = true
          resume(Effect.succeed(true))
        }
        parts.offer(send)
        return Effect.sync(() => parts.cancel(send))
      })
    const report = Effect.zipRight(
      allSettled.await,
      Effect.suspend(() =>
        failures.length === 0
          ? Effect.void
          : Effect.fail(new ProducerSinkError({ streamName: parts.streamName, undelivered: failures, delivered }))
      )
    )
    return Sink.forEachWhile(consume).pipe(Sink.mapEffect(() => report))
  }))
