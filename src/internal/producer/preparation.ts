/**
 * The producer's preparation: records wait in a queue until a preparer takes them, as one
 * batch, once a call's worth is queued (by count, or by the bytes records have taken of
 * late), the oldest has waited half a `linger` (at most 50 ms), or something is urgent. Each
 * record is prepared on its own account (`prepareEach`): a record refused fails its own send
 * only, and the uploads of large payloads run apart from the preparer, so that records that
 * need no upload never wait for them.
 */
import { Cause, Effect } from "effect"
import { CompressionError, LargePayloadStoreError, SerializationError } from "../../Errors.js"
import { KinesisLimits } from "../core/limits.js"
import type { WriterEngine } from "../engine.js"
import type { PreparedRecord, PrepareError } from "../prepare.js"
import { prepareEach } from "../prepare.js"
import type { Refusal, Send } from "./send.js"

const MAX_CALL_RECORDS = KinesisLimits.maxRecordsPerCall

/** What preparation needs of the other parts. */
export interface PreparationParts {
  readonly engine: WriterEngine
  readonly lingerMillis: number
  /** Something is urgent (a flush, shutdown): no gathering. */
  readonly urgent: () => boolean
  /** A record was prepared, holding `heldBytes` of memory. */
  readonly prepared: (send: Send, record: PreparedRecord, heldBytes: number) => Effect.Effect<void>
  /** A record could not be prepared (or its sender gave up before it was). */
  readonly refused: (send: Send, cause: Refusal) => Effect.Effect<void>
  /** What a record whose sender gave up is refused with. */
  readonly cancelledCause: Refusal
  /** Runs a group's uploads apart from the preparer. */
  readonly forkUploads: (uploads: Effect.Effect<void>) => Effect.Effect<unknown>
}

/** The preparation part. */
export interface Preparation {
  /** A record was admitted: it waits for a preparer. */
  readonly enqueue: (send: Send) => void
  /** Something became urgent: preparers stop gathering. */
  readonly hurry: () => void
  /** One preparer's round: gather, then prepare what is there as one batch. */
  readonly prepareOne: Effect.Effect<void>
  /** Takes the records no preparer has taken yet (shutdown). */
  readonly takeQueued: () => ReadonlyArray<Send>
}

/** Builds the preparation part. */
export const makePreparation = (parts: PreparationParts): Effect.Effect<Preparation> =>
  Effect.gen(function*() {
    const { engine } = parts
    const clock = yield* Effect.clock
    /** How long the oldest queued record waits for others before a preparer takes what is there. */
    const gatherMillis = Math.min(parts.lingerMillis / 2, 50)
    /** The call bytes a record took of late (a moving average; 0 before the first). */
    let recordBytesEstimate = 0
    let queue: Array<Send> = []
    /** Open while the queue is not empty. */
    const preparable = yield* Effect.makeLatch(false)
    /** Open while a call's worth is queued, or something is urgent: a preparer stops gathering. */
    const prepareNow = yield* Effect.makeLatch(false)

    const batchFull = () =>
      queue.length >= MAX_CALL_RECORDS || queue.length * recordBytesEstimate >= engine.config.maxRequestBytes

    const enqueue = (send: Send) => {
      queue.push(send)
      preparable.unsafeOpen()
      if (batchFull()) prepareNow.unsafeOpen()
    }

    const prepareGroup = (group: ReadonlyArray<Send>) =>
      Effect.flatMap(engine.prepareContext, (context) =>
        prepareEach(context, group.map((s) => s.record), {
          prepared: (index, record, heldBytes) => {
            const bytes = record.data.length + record.partitionKeyPrefix.length
            recordBytesEstimate = recordBytesEstimate === 0
              ? bytes
              : recordBytesEstimate + (bytes - recordBytesEstimate) / 16
            return parts.prepared(group[index]!, record, heldBytes)
          },
          refused: (index, cause) => parts.refused(group[index]!, Cause.map(cause, unindexed))
        }))

    const prepareOne = Effect.gen(function*() {
      for (;;) {
        if (queue.length === 0) {
          preparable.unsafeClose()
          yield* preparable.await
          continue
        }
        // Nothing known of the records' size yet: no gathering, since a call might be full already.
        if (recordBytesEstimate === 0 || batchFull() || parts.urgent()) break
        const queuedAt = queue[0]!.life!.acceptedAt
        const wait = queuedAt + gatherMillis - clock.unsafeCurrentTimeMillis()
        if (wait <= 0) break
        prepareNow.unsafeClose()
        yield* Effect.timeoutOption(prepareNow.await, wait)
      }
      const taken = queue.length <= MAX_CALL_RECORDS ? queue : queue.slice(0, MAX_CALL_RECORDS)
      queue = taken === queue ? [] : queue.slice(MAX_CALL_RECORDS)
      // Records whose sender gave up while they were queued are not prepared.
      const group: Array<Send> = []
      const cancelled: Array<Send> = []
      for (const send of taken) {
        if (send.life!.cancelled) cancelled.push(send)
        else if (send.life!.phase._tag === "Queued") {
          send.life!.startPreparing()
          group.push(send)
        }
      }
      yield* Effect.forEach(cancelled, (send) => parts.refused(send, parts.cancelledCause), { discard: true })
      if (group.length === 0) return
      const uploads = yield* prepareGroup(group)
      yield* parts.forkUploads(uploads)
    })

    return {
      enqueue,
      hurry: () => prepareNow.unsafeOpen(),
      prepareOne,
      takeQueued: () => {
        const taken = queue
        queue = []
        return taken
      }
    }
  })

/** A build error without the batch index `prepare` gave it: a producer's record stands alone. */
const unindexed = (e: PrepareError): PrepareError => {
  switch (e._tag) {
    case "SerializationError":
      return new SerializationError({ ...e, recordIndex: undefined, cause: e.cause })
    case "CompressionError":
      return new CompressionError({ ...e, recordIndex: undefined, cause: e.cause })
    case "LargePayloadStoreError":
      return new LargePayloadStoreError({ ...e, recordIndex: undefined, cause: e.cause })
  }
}
