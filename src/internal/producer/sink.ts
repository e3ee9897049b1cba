/**
 * The producer's sink: each element is a send that waits only for room (backpressure), not
 * for its outcome; the sink ends when every element it sent has settled, and fails naming
 * every element not delivered. A sink never learns the run's error when its upstream fails,
 * nor can it fail an interrupted run: then it detaches (`StreamSends.detach`), and the
 * elements it sent that end undelivered reach `onUndelivered` or the log. `sendStream`
 * names them in its error.
 */
import { Effect, Sink } from "effect"
import { ProducerSinkError } from "../../Errors.js"
import type { DataFileV1 } from "../../gen/cygnus/v1/data_file_pb.js"
import type { StreamParts } from "./streamSends.js"
import { StreamSends } from "./streamSends.js"

/** The producer's sink. */
export const makeSink = (parts: StreamParts): Sink.Sink<void, DataFileV1, DataFileV1, ProducerSinkError> =>
  Sink.unwrap(Effect.map(StreamSends.make(parts), (sends) => {
    let reported = false
    const report = Effect.zipRight(
      sends.awaitSettled,
      Effect.suspend(() => {
        reported = true
        return sends.undelivered.length === 0
          ? Effect.void
          : Effect.fail(
            new ProducerSinkError({
              streamName: parts.streamName,
              undelivered: [...sends.undelivered],
              delivered: sends.delivered
            })
          )
      })
    )
    return Sink.forEachWhile(sends.send).pipe(
      Sink.mapEffect(() => report),
      Sink.ensuringWith(() => reported ? Effect.void : sends.detach("the producer's sink stopped before its end"))
    )
  }))
