/**
 * P7's load and its figures, shared by the producers of one process (p7Fairness.ts) and the
 * producer processes (p7Producer.ts): one producer's offer over the window, what became of
 * each send, and the arithmetic of the table (goodput, Jain's index, max-min fair shares,
 * percentiles).
 *
 * The offer: a ticker issues `rate` offers a second over the window, on a queue; a fixed set
 * of sender fibers (as many as the producer is offered in {@link SENDER_SECONDS}) take them,
 * one each, and await the `send` to its settlement. When every sender is waiting (for room in
 * the producer's buffer, or for a receipt), the offers due pile up on the queue: the callers
 * are held back, as a service's request handlers are. An offer still on the queue when the
 * window ends was never made.
 */
import type { Layer, Scope } from "effect"
import { Cause, Effect, Exit, Fiber, Layer as L, Queue } from "effect"
import type { DataFileV1, KinesisProducerOptions } from "../src/index.js"
import { Kinesis, KinesisMetrics, KinesisProducer, KinesisWriter, LargePayloadStore } from "../src/index.js"
import { RecordGenerator } from "../src/testing.js"
import { WRITER_BASE } from "./common.js"

/** Each producer has as many sender fibers as it is offered records in this many seconds. */
export const SENDER_SECONDS = 5
/** Columns of the records offered. */
export const P7_COLUMNS = 5
/** How often the ticker issues the offers due. */
const TICK_MS = 5
/** Records each producer sends before the window. */
const WARM_UP = 20
/** Distinct records each producer cycles through. */
const POOL = 1_000
const THROTTLED = "ProvisionedThroughputExceededException"

/** One producer's offer. */
export interface OfferPlan {
  /** Records per second this producer is offered. */
  readonly rate: number
  /** Seed of its records. */
  readonly seed: number
}

/** When the offer runs, the same for every producer of a run. */
export interface OfferWindow {
  /** Epoch milliseconds the window opens: a whole second, so that the stream's one-second windows fall inside it. */
  readonly startAt: number
  readonly windowMs: number
  /** The longest wait, after the window, for the sends still open; then the producer is closed. */
  readonly drainMs: number
}

/** What became of one producer's offer. */
export interface ProducerFigures {
  readonly rate: number
  readonly senders: number
  /** Offers due in the window: rate × window. */
  readonly due: number
  /** Sends started within the window; the rest of `due` was held back (every sender busy). */
  readonly offered: number
  /** Sends that ended with a receipt. */
  readonly delivered: number
  /** Receipts that came within the window. */
  readonly deliveredInWindow: number
  /** Sends that ended with a `RecordUndeliveredError`, by its error code. */
  readonly undelivered: Readonly<Record<string, number>>
  /**
   * Of those, the ones throttling failed for good: their last error was
   * `ProvisionedThroughputExceededException` (retries spent), or they expired after it.
   */
  readonly failedByThrottling: number
  /** Sends that ended with another error (a build error, the producer closed). */
  readonly refused: number
  /** Sends still open when the drain ended (the producer's shutdown settled them after). */
  readonly unsettled: number
  /** Send to receipt, of every delivered record, in milliseconds. */
  readonly latenciesMs: ReadonlyArray<number>
}

/** A producer over a writer of its own (default settings) over `kinesis`, the in-memory store and no-op metrics. */
export const producerStack = (
  kinesis: Layer.Layer<Kinesis>,
  options: KinesisProducerOptions
): Layer.Layer<KinesisProducer, unknown> =>
  KinesisProducer.layer(options).pipe(
    L.provide(KinesisWriter.layer({ ...WRITER_BASE })),
    L.provide(kinesis),
    L.provide(LargePayloadStore.layerMemory()),
    L.provide(KinesisMetrics.layerNoop)
  )

/** `Kinesis` over an endpoint on loopback: the SDK client, dummy credentials. */
export const loopbackKinesis = (endpoint: string): Layer.Layer<Kinesis> =>
  Kinesis.layerClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "bench", secretAccessKey: "bench" }
  })

/** Whether an undelivered record's last error was throttling. */
const byThrottling = (errorCode: string, errorMessage: string | undefined): boolean =>
  errorCode === THROTTLED || (errorCode === "Expired" && errorMessage?.includes(THROTTLED) === true)

/** The records a producer is offered, from its seed. */
export const recordPool = (seed: number): ReadonlyArray<DataFileV1> =>
  RecordGenerator.makeDataFiles(POOL, { columns: P7_COLUMNS, seed })

/**
 * Readies `plan`'s offer to `producer` (see the top of this file): a few records sent through
 * it and settled, then its sender fibers, in the scope, wait for offers. The effect it gives
 * runs the offer in a window: it waits for the window, offers, and waits for the sends, at
 * most `drainMs` after the window. It fails only on a defect of a sender.
 */
export const makeOffer = (
  producer: KinesisProducer.Service,
  plan: OfferPlan
): Effect.Effect<(window: OfferWindow) => Effect.Effect<ProducerFigures>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const pool = recordPool(plan.seed)
    // Through the whole path before the window: the compression workers started, the JIT warm,
    // the shard map loaded when pacing; the stream's totals are read after it.
    yield* Effect.forEach(pool.slice(0, WARM_UP), (record) => Effect.either(producer.send(record)), {
      concurrency: "unbounded",
      discard: true
    })
    const senders = Math.max(1, Math.ceil(plan.rate * SENDER_SECONDS))
    const slots = yield* Queue.unbounded<number>()
    const undelivered: Record<string, number> = {}
    const latenciesMs: Array<number> = []
    const n = { offered: 0, delivered: 0, deliveredInWindow: 0, failedByThrottling: 0, refused: 0, open: 0 }
    let end = Number.POSITIVE_INFINITY
    const send = (k: number) =>
      Effect.suspend(() => {
        n.offered++
        n.open++
        const start = performance.now()
        return Effect.map(Effect.either(producer.send(pool[k % pool.length]!)), (result) => {
          n.open--
          if (result._tag === "Right") {
            n.delivered++
            latenciesMs.push(performance.now() - start)
            if (Date.now() < end) n.deliveredInWindow++
          } else if (result.left._tag === "RecordUndeliveredError") {
            const { errorCode, errorMessage } = result.left
            undelivered[errorCode] = (undelivered[errorCode] ?? 0) + 1
            if (byThrottling(errorCode, errorMessage)) n.failedByThrottling++
          } else {
            n.refused++
          }
        })
      })
    // Takes offers until the queue is shut down (at the window's end); one taken after the end is not made.
    const sender = Effect.gen(function*() {
      for (;;) {
        const k = yield* Queue.take(slots)
        if (Date.now() >= end) return
        yield* send(k)
      }
    })
    const fibers = yield* Effect.forEach(Array.from({ length: senders }), () => Effect.forkScoped(sender))
    return (window: OfferWindow) =>
      Effect.gen(function*() {
        end = window.startAt + window.windowMs
        const due = Math.round((plan.rate * window.windowMs) / 1000)
        yield* Effect.sleep(Math.max(0, window.startAt - Date.now()))
        for (let issued = 0;;) {
          const now = Date.now()
          const target = Math.min(due, Math.floor(((now - window.startAt) * plan.rate) / 1000))
          if (target > issued) {
            yield* Queue.offerAll(slots, Array.from({ length: target - issued }, (_, i) => issued + i))
            issued = target
          }
          if (now >= end) break
          yield* Effect.sleep(TICK_MS)
        }
        yield* Queue.shutdown(slots)
        // A sender ends interrupted once it goes back to the queue (or as it finds the window
        // over): the drain is over when the last send has settled.
        const drained = yield* Effect.timeout(
          Effect.forEach(fibers, (fiber) =>
            Effect.flatMap(fiber.await, (exit) =>
              Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)
                ? Effect.failCause(exit.cause)
                : Effect.void)),
          window.drainMs
        ).pipe(Effect.option)
        const unsettled = drained._tag === "None" ? n.open : 0
        yield* Fiber.interruptAll(fibers)
        return {
          rate: plan.rate,
          senders,
          due,
          offered: n.offered,
          delivered: n.delivered,
          deliveredInWindow: n.deliveredInWindow,
          undelivered,
          failedByThrottling: n.failedByThrottling,
          refused: n.refused,
          unsettled,
          latenciesMs
        }
      })
  })

// ---------------------------------------------------------------------------------------------
// The arithmetic of the tables
// ---------------------------------------------------------------------------------------------

/** Jain's fairness index of `xs`: (Σx)² / (n·Σx²), 1 when all are equal, 1/n when one has everything. */
export const jain = (xs: ReadonlyArray<number>): number => {
  const sum = xs.reduce((a, x) => a + x, 0)
  const squares = xs.reduce((a, x) => a + x * x, 0)
  return squares === 0 ? 1 : (sum * sum) / (xs.length * squares)
}

/**
 * Max-min fair shares of `capacity` among demands: each gets what it asks, up to an even
 * split of what the smaller demands left.
 */
export const fairShares = (demands: ReadonlyArray<number>, capacity: number): Array<number> => {
  const shares = demands.map(() => 0)
  const order = demands.map((d, i) => [d, i] as const).sort((a, b) => a[0] - b[0])
  let left = capacity
  order.forEach(([demand, i], k) => {
    const share = Math.min(demand, left / (order.length - k))
    shares[i] = share
    left -= share
  })
  return shares
}

/** The `p`-th percentile (nearest rank) of `sorted`. */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
