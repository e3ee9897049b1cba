/**
 * The producer's collector: prepared records wait in `ready`, oldest first; one collector
 * fiber takes a call slot (`maxConcurrentCalls`), waits until a call's worth is ready, the
 * oldest ready record has waited `linger`, or something is urgent, and forks the call. Paced,
 * a call takes only records whose shard has tokens. A call's outcome goes to the core record
 * by record, and what the core decides goes to settlement.
 */
import { Clock, Effect } from "effect"
import { KinesisLimits } from "../core/limits.js"
import type { Step } from "../core/record.js"
import type { AttemptOutcome } from "../delivery.js"
import type { WriterEngine } from "../engine.js"
import type { Pacer } from "../pacing.js"
import type { PreparedRecord } from "../prepare.js"
import { Attributes, SpanNames } from "../spans.js"
import type { Send } from "./send.js"

const MAX_CALL_RECORDS = KinesisLimits.maxRecordsPerCall
/** How often the gauges of records waiting for their shards' pace are set, at most. */
const REPORT_MILLIS = 500

/** What the collector needs of the other parts. */
export interface CollectorParts {
  readonly engine: WriterEngine
  readonly lingerMillis: number
  readonly pacer: Pacer | undefined
  /** Something is urgent (a flush, shutdown): no lingering. */
  readonly urgent: () => boolean
  /** Carries out the core's steps. */
  readonly apply: (steps: ReadonlyArray<readonly [Send, Step]>) => Effect.Effect<void>
  /** One random number per record of a call's failures, for their retries' jitter. */
  readonly jitter: Effect.Effect<() => number>
  /** Forks a call into the producer's fibers. */
  readonly fork: (effect: Effect.Effect<void>) => Effect.Effect<unknown>
}

/** The collector part. */
export interface Collector {
  /** A record is ready, lingering from `since`. */
  readonly add: (send: Send, since: number) => void
  /** A record leaves `ready` (no-op if it is not there). */
  readonly remove: (send: Send) => void
  /** Something became urgent. */
  readonly hurry: () => void
  /** One round: a call slot, a call's worth or a lingered record, a call forked. */
  readonly collectOne: Effect.Effect<void>
}

/** Builds the collector part. */
export const makeCollector = (parts: CollectorParts): Effect.Effect<Collector> =>
  Effect.gen(function*() {
    const { engine, pacer } = parts
    const { config, sender } = engine
    const clock = yield* Effect.clock
    const attemptDigits = String(config.maxRetries).length
    const callSlots: Effect.Semaphore = yield* Effect.makeSemaphore(config.maxConcurrentCalls)
    /** Waiting for a call, in the order they became ready, with their linger's start. */
    const ready = new Map<Send, number>()
    let readyBytes = 0
    let reportedAt = Number.NEGATIVE_INFINITY
    /** Open while `ready` is not empty. */
    const nonEmpty = yield* Effect.makeLatch(false)
    /** Open while a call's worth is ready, or something is urgent. */
    const wake = yield* Effect.makeLatch(false)

    /** A record's bytes in its next call: data plus the partition key at its longest. */
    const callBytes = (send: Send) =>
      send.prepared!.data.length + Buffer.byteLength(send.prepared!.partitionKeyPrefix) + attemptDigits
    /** The partition key of its next call (before the call starts). */
    const nextKey = (send: Send) => send.prepared!.partitionKeyPrefix + String(send.life!.attempts)
    /** The partition key of the call in flight: its attempt count includes that call. */
    const sentKey = (send: Send) => send.prepared!.partitionKeyPrefix + String(send.life!.attempts - 1)
    const callFull = () => ready.size >= MAX_CALL_RECORDS || readyBytes >= config.maxRequestBytes

    const add = (send: Send, since: number) => {
      if (ready.has(send)) return
      ready.set(send, since)
      readyBytes += callBytes(send)
      nonEmpty.unsafeOpen()
      if (callFull() || parts.urgent()) wake.unsafeOpen()
    }

    const remove = (send: Send) => {
      if (ready.delete(send)) readyBytes -= callBytes(send)
    }

    /**
     * Takes the next call's records from `ready`, oldest first, within the call's limits.
     * Paced, only records whose shard has tokens: the others wait for its refill.
     */
    const takeCall = (now: number) => {
      const call: Array<Send> = []
      const scan = pacer?.scan(now)
      let bytes = 0
      let full = false
      for (const send of ready.keys()) {
        const size = callBytes(send)
        if (call.length === MAX_CALL_RECORDS || (call.length > 0 && bytes + size > config.maxRequestBytes)) {
          full = true
          break
        }
        if (scan !== undefined && !scan.admit(nextKey(send), size)) {
          // Every shard is spent: the rest of the ready records wait for the next round.
          if (scan.saturated()) break
          continue
        }
        call.push(send)
        bytes += size
      }
      for (const send of call) {
        remove(send)
        send.life!.startCall()
      }
      return { call, scan, full }
    }

    /** What a call's outcome means for each of its records. */
    const settleCall = (call: ReadonlyArray<Send>, outcome: AttemptOutcome) =>
      Effect.flatMap(parts.jitter, (random) => {
        const now = clock.unsafeCurrentTimeMillis()
        const steps: Array<readonly [Send, Step]> = []
        const writtenSend = cursorOver(call)
        for (const w of outcome.writtenRecords) {
          const send = writtenSend(w.record)
          if (send !== undefined) steps.push([send, send.life!.written(w.shardId, w.sequenceNumber)])
        }
        const failedSend = cursorOver(call)
        for (const f of outcome.failed) {
          const send = failedSend(f.record)
          if (send !== undefined) steps.push([send, send.life!.failed(f, now, random())])
        }
        return parts.apply(steps)
      })

    const sendAndSettle = (call: ReadonlyArray<Send>, sentAt: number) => {
      // Paced: the receipts are checked against the shards predicted from the keys sent.
      const keys = pacer === undefined ? undefined : new Map(call.map((s) => [s.prepared!, sentKey(s)]))
      return sender.sendCall(call.map((s) => s.prepared!), call.map((s) => s.life!.attempts - 1)).pipe(
        Effect.withSpan(SpanNames.producerCall, {
          attributes: { [Attributes.streamName]: config.streamName, [Attributes.records]: call.length }
        }),
        Effect.tap((outcome) =>
          pacer === undefined ? Effect.void : pacer.observe(outcome, (r) => keys?.get(r), sentAt)
        ),
        // Once the service has answered, the answer is carried out whatever happens.
        Effect.flatMap((outcome) => Effect.uninterruptible(settleCall(call, outcome)))
      )
    }

    const collectOne = Effect.gen(function*() {
      yield* callSlots.take(1)
      while (ready.size === 0) {
        nonEmpty.unsafeClose()
        yield* nonEmpty.await
      }
      const since = ready.values().next().value!
      const wait = since + parts.lingerMillis - (yield* Clock.currentTimeMillis)
      if (wait > 0 && !callFull() && !parts.urgent()) {
        wake.unsafeClose()
        yield* Effect.timeoutOption(wake.await, wait)
      }
      const now = clock.unsafeCurrentTimeMillis()
      // From taking the call's records (now in flight) to forking the call, nothing may stop
      // this fiber: a shutdown would count a call that was never made.
      const { full, scan, sent } = yield* Effect.uninterruptible(
        Effect.suspend(() => {
          const { call, full, scan } = takeCall(now)
          if (!callFull() && !parts.urgent()) wake.unsafeClose()
          const taken = { full, scan, sent: call.length > 0 }
          return call.length === 0
            ? Effect.as(callSlots.release(1), taken)
            : Effect.as(parts.fork(sendAndSettle(call, now).pipe(Effect.ensuring(callSlots.release(1)))), taken)
        })
      )
      if (scan === undefined) return
      // The gauges of records waiting for their shards, at most every REPORT_MILLIS (a pass over what is ready).
      if (now - reportedAt >= REPORT_MILLIS) {
        reportedAt = now
        yield* scan.report(Array.from(ready.keys(), nextKey))
      }
      if (!scan.limited()) return
      // Paced, with nothing sent, every ready record waits for its shard's tokens: until the first refill.
      if (!sent) yield* Effect.sleep(Math.max(1, scan.nextAt() - now))
      // Paced, the call took its shards' tokens: they gather again into one call, not a stream of tiny ones.
      else if (!full) yield* Effect.sleep(pacer!.gapMillis)
    })

    return {
      add,
      remove,
      hurry: () => wake.unsafeOpen(),
      collectOne
    }
  })

/**
 * Finds the sends of a call's records without a map per call: the outcome lists its written
 * records, and its failed ones, each in call order, so a scan goes on from where the last one
 * was found (and goes round, for a record out of that order).
 */
const cursorOver = (call: ReadonlyArray<Send>) => {
  let at = 0
  return (record: PreparedRecord): Send | undefined => {
    for (let n = 0; n < call.length; n++) {
      const i = (at + n) % call.length
      if (call[i]!.prepared === record) {
        at = i + 1
        return call[i]
      }
    }
    return undefined
  }
}
