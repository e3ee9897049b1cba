/**
 * `sendStream`: a whole stream sent through the producer, as the sink sends it, but run here,
 * so that the stream's own failure and an interruption are seen: the run's one error names
 * the upstream's cause with every element sent and not delivered.
 */
import { Cause, Effect, Exit, Stream } from "effect"
import { ProducerStreamError } from "../../Errors.js"
import type { DataFileV1 } from "../../gen/cygnus/v1/data_file_pb.js"
import type { SendStreamResult } from "../../KinesisProducer.js"
import { Attributes, SpanNames } from "../spans.js"
import type { StreamParts } from "./streamSends.js"
import { StreamSends } from "./streamSends.js"

/** The producer's `sendStream`. */
export const makeSendStream = (parts: StreamParts) =>
  Effect.fn(SpanNames.producerSendStream)(function*<E, R>(
    stream: Stream.Stream<DataFileV1, E, R>
  ): Effect.fn.Return<SendStreamResult, ProducerStreamError<E>, R> {
    yield* Effect.annotateCurrentSpan(Attributes.streamName, parts.streamName)
    const sends = yield* StreamSends.make(parts)
    const fields = (upstream: Cause.Cause<E> | undefined) => ({
      streamName: parts.streamName,
      delivered: sends.delivered,
      undelivered: [...sends.undelivered],
      upstream
    })
    // Pulling and waiting run interruptibly; an interruption is answered here, without waiting.
    return yield* Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        const pulled = yield* Effect.exit(restore(Stream.runForEachWhile(stream, sends.send)))
        const failed = Exit.isFailure(pulled) ? pulled.cause : undefined
        const upstream = failed === undefined || Cause.isInterruptedOnly(failed) ? undefined : failed
        const settled = failed !== undefined && Cause.isInterrupted(failed)
          ? pulled
          : yield* Effect.exit(restore(sends.awaitSettled))
        yield* Effect.annotateCurrentSpan({
          [Attributes.records]: sends.delivered + sends.undelivered.length + sends.pending().length
        })
        if (Exit.isFailure(settled)) {
          yield* sends.detach("sendStream was interrupted")
          const error = new ProducerStreamError<E>({
            ...fields(upstream),
            unsettled: sends.pending(),
            interrupted: true
          })
          return yield* Effect.failCause(Cause.sequential(interruptionOf(settled.cause), Cause.fail(error)))
        }
        if (upstream === undefined && sends.undelivered.length === 0) {
          return { delivered: sends.delivered, retriedRecords: sends.retriedRecords }
        }
        return yield* new ProducerStreamError<E>({ ...fields(upstream), unsettled: [], interrupted: false })
      })
    )
  })

/** The interruptions of a cause, without its failures (which the error carries as `upstream`). */
const interruptionOf = (cause: Cause.Cause<unknown>): Cause.Cause<never> => {
  let interruption: Cause.Cause<never> = Cause.empty
  for (const fiberId of Cause.interruptors(cause)) {
    interruption = Cause.parallel(interruption, Cause.interrupt(fiberId))
  }
  return interruption
}
