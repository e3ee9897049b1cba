/**
 * The producer's settlement: it carries out what the core decides for each record — a send
 * settled and its room given back, a retry put on the one retry timer, an S3 object deleted
 * (bounded by `requestTimeout`, interruptible, in a fiber of its own) before its record
 * settles — and it runs the retry timer and the reaper that expires records at their TTL.
 */
import { Cause, Clock, Effect, Exit, Random } from "effect"
import { LargePayloadStoreError, type RecordUndeliveredError } from "../../Errors.js"
import type { ResolvedProducerOptions } from "../config.js"
import { DueQueue } from "../core/dueQueue.js"
import type { ObjectLocation, Step } from "../core/record.js"
import { ErrorCodes } from "../core/record.js"
import type { WriterEngine } from "../engine.js"
import { prng } from "../prng.js"
import { withRequestTimeout } from "../timeout.js"
import type { Send } from "./send.js"
import { exitOf, undeliveredError } from "./send.js"

/** The retry timer's finest step: retries due closer together than this are woken together. */
const RETRY_TICK_MILLIS = 10

/** What settlement needs of the other parts. */
export interface SettlementParts {
  readonly engine: WriterEngine
  readonly options: ResolvedProducerOptions
  /** A record became ready for a call, lingering from `since`. */
  readonly ready: (send: Send, since: number) => void
  /** A record left the calls' reach (it settled, or waits for its object's delete). */
  readonly leave: (send: Send) => void
  /** A record settled: its room goes back. */
  readonly release: (send: Send) => void
  /** The bytes held, for the gauge. */
  readonly heldBytes: () => number
  /** Forks an `onUndelivered` handler or a delete, interruptibly, into the fibers shutdown waits for. */
  readonly forkCleanup: (effect: Effect.Effect<void>) => Effect.Effect<unknown>
}

/** The settlement part. */
export interface Settlement {
  /** Records accepted and not settled, in the order they were accepted. */
  readonly outstanding: ReadonlySet<Send>
  /** A record was accepted: it is outstanding until it settles. */
  readonly accepted: (send: Send) => void
  /** Carries out the core's steps for these sends. */
  readonly apply: (steps: ReadonlyArray<readonly [Send, Step]>) => Effect.Effect<void>
  /** Draws one number per record, for the jitter of the retries a call's failures cause. */
  readonly jitter: Effect.Effect<() => number>
  /** Every record waiting for its retry goes at once (shutdown). */
  readonly hurry: () => void
  /** The retry timer: one round. */
  readonly retryDue: Effect.Effect<void>
  /** The reaper: one round. */
  readonly reap: Effect.Effect<void>
  /** Opened when a send settles: wakes a `flush`. */
  readonly settledSome: Effect.Latch
  /** Opened when `outstanding` empties. */
  readonly drained: Effect.Latch
}

/** Builds the settlement part. */
export const makeSettlement = (parts: SettlementParts): Effect.Effect<Settlement> =>
  Effect.gen(function*() {
    const { engine, options } = parts
    const streamName = engine.config.streamName
    const metrics = engine.metrics
    const clock = yield* Effect.clock
    const outstanding = new Set<Send>()
    const backoff = new DueQueue<Send>()
    /** Opened when a record joins `backoff` ahead of those there: wakes the retry timer. */
    const backoffSooner = yield* Effect.makeLatch(false)
    /** Opened when `outstanding` gains an entry: wakes the reaper. */
    const reapable = yield* Effect.makeLatch(false)
    const settledSome = yield* Effect.makeLatch(false)
    const drained = yield* Effect.makeLatch(true)
    let hurrying = false

    const runHandler = handlerRunner(parts)
    const deleteObject = objectDeleter(engine)

    /** Deletes a record's object, then carries out what the core says of its end. */
    const deleteThen = (send: Send, location: ObjectLocation) =>
      parts.forkCleanup(
        Effect.flatMap(deleteObject(location), (ok) =>
          Effect.suspend(() => apply([[send, send.life!.objectDeleted(ok)]])))
      )

    const apply = (steps: ReadonlyArray<readonly [Send, Step]>): Effect.Effect<void> =>
      Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        let settled = 0
        let expired = 0
        let firstDue = backoff.nextDue
        let effects: Array<Effect.Effect<unknown>> | undefined
        const latencies: Array<number> = []
        for (const [send, step] of steps) {
          switch (step._tag) {
            case "None":
              continue
            case "Ready":
              parts.ready(send, send.life!.phase._tag === "Ready" ? send.life!.phase.since : now)
              continue
            case "Retry":
              parts.leave(send)
              backoff.push(send, step.until)
              if (firstDue === undefined || step.until < firstDue) {
                firstDue = step.until
                backoffSooner.unsafeOpen()
              }
              continue
            case "Delete":
              parts.leave(send)
              ;(effects ??= []).push(deleteThen(send, step.location))
              continue
            case "Settle": {
              const settlement = send.life!.settlement!
              parts.leave(send)
              outstanding.delete(send)
              parts.release(send)
              settled++
              latencies.push((now - send.life!.acceptedAt) / 1000)
              if (step.delete !== undefined) {
                ;(effects ??= []).push(deleteThen(send, step.delete))
              }
              if (settlement._tag !== "Undelivered") {
                send.settle(exitOf(streamName, send, settlement))
                continue
              }
              const error = undeliveredError(streamName, send, settlement)
              send.settle(Exit.fail(error))
              if (settlement.failure.errorCode === ErrorCodes.expired) {
                expired++
              }
              if (options.onUndelivered !== undefined) {
                ;(effects ??= []).push(runHandler(error))
              }
            }
          }
        }
        if (settled > 0) {
          settledSome.unsafeOpen()
          if (outstanding.size === 0) {
            drained.unsafeOpen()
          }
          ;(effects ??= []).push(
            metrics.producerBuffered(streamName, outstanding.size, parts.heldBytes()),
            Effect.forEach(latencies, (s) =>
              metrics.recordSettled(streamName, s), { discard: true }),
            metrics.recordsExpired(streamName, expired)
          )
        }
        return effects === undefined ? Effect.void : Effect.all(effects, { discard: true })
      })

    const jitter = Effect.map(Random.nextInt, prng)

    const retryDue = Effect.gen(function*() {
      const now = clock.unsafeCurrentTimeMillis()
      const steps: Array<readonly [Send, Step]> = []
      for (let send = backoff.popDue(hurrying ? Infinity : now); send !== undefined;) {
        steps.push([send, send.life!.due(now)])
        send = backoff.popDue(hurrying ? Infinity : now)
      }
      yield* apply(steps)
      backoffSooner.unsafeClose()
      const next = backoff.nextDue
      if (next === undefined || hurrying) return yield* backoffSooner.await
      // Retries due within a few milliseconds of each other are woken together.
      const wait = Math.max(next - clock.unsafeCurrentTimeMillis(), RETRY_TICK_MILLIS)
      yield* Effect.timeoutOption(backoffSooner.await, wait)
    })

    const reap = reaper(outstanding, reapable, apply)

    return {
      outstanding,
      accepted: (send) => {
        outstanding.add(send)
        drained.unsafeClose()
        reapable.unsafeOpen()
      },
      apply,
      jitter,
      hurry: () => {
        hurrying = true
        backoffSooner.unsafeOpen()
      },
      retryDue,
      reap,
      settledSome,
      drained
    }
  })

/** Runs `onUndelivered` in a fiber of its own (interruptible: shutdown stops one that never ends). */
const handlerRunner = (parts: SettlementParts) => (error: RecordUndeliveredError) =>
  parts.forkCleanup(
    Effect.suspend(() => parts.options.onUndelivered!(error)).pipe(
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause) ?
          Effect.void :
          Effect.logWarning("onUndelivered failed; the producer goes on").pipe(
            Effect.annotateLogs({
              stream: parts.engine.config.streamName,
              recordId: error.recordId,
              cause: Cause.pretty(cause)
            })
          )
      ),
      Effect.asVoid
    )
  )

/** Deletes an object nothing on the stream points to, bounded by `requestTimeout`; `true` when it is gone. */
const objectDeleter = (engine: WriterEngine) => (location: ObjectLocation): Effect.Effect<boolean> =>
  engine.store.delete(location).pipe(
    withRequestTimeout(
      engine.config.requestTimeout,
      (facts) => new LargePayloadStoreError({ operation: "delete", ...location, ...facts })
    ),
    Effect.as(true),
    Effect.catchAll((error) =>
      Effect.as(
        Effect.logDebug("could not delete the large payload of an undelivered record").pipe(
          Effect.annotateLogs({ stream: engine.config.streamName, key: location.key, error: error.message })
        ),
        false
      )
    )
  )

/**
 * One round of the reaper, which expires records at their TTL. Records join `outstanding` in
 * the order they were accepted, which is the order of their deadlines, so only its oldest are
 * looked at.
 */
const reaper = (
  outstanding: ReadonlySet<Send>,
  reapable: Effect.Latch,
  apply: (steps: ReadonlyArray<readonly [Send, Step]>) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    while (outstanding.size === 0) {
      reapable.unsafeClose()
      yield* reapable.await
    }
    const now = yield* Clock.currentTimeMillis
    const steps: Array<readonly [Send, Step]> = []
    let next: number | undefined
    for (const send of outstanding) {
      const life = send.life!
      if (life.deadline > now) {
        next = life.deadline
        break
      }
      steps.push([send, life.expire(now)])
    }
    yield* apply(steps)
    if (next !== undefined) return yield* Effect.sleep(next - now)
    // Every record left is past its deadline and ends with its work: wait for a new one.
    reapable.unsafeClose()
    yield* reapable.await
  })
