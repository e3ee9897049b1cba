/**
 * The producer: a door over the delivery core. Each record's life is a `RecordLife` (the
 * core decides); the parts run it, each owning its state behind a few methods:
 *
 * - admission (`Holdings`): records and bytes held under two bounds, a line waiting for room;
 * - preparation: gathering, then each record prepared on its own account;
 * - collection: linger and calls;
 * - settlement: the core's steps carried out, the retry timer, the reaper;
 * - shutdown, here: refuse new sends, deliver what is held within `shutdownTimeout`, then end
 *   every record still held and wait, bounded, for deletes and handlers.
 */
import type { Scope } from "effect"
import { Cause, Duration, Effect, Exit, FiberSet } from "effect"
import { ProducerClosedError } from "../../Errors.js"
import type { DataFileV1 } from "../../gen/cygnus/v1/data_file_pb.js"
import type { KinesisProducer, RecordReceipt, SendError } from "../../KinesisProducer.js"
import type { ResolvedProducerOptions } from "../config.js"
import { Holdings } from "../core/holdings.js"
import type { Step } from "../core/record.js"
import { RecordLife } from "../core/record.js"
import { admissionCharge } from "../core/recordSize.js"
import type { WriterEngine } from "../engine.js"
import type { Pacer } from "../pacing.js"
import { makePacer } from "../pacing.js"
import { Attributes, SpanNames } from "../spans.js"
import type { Collector } from "./collector.js"
import { makeCollector } from "./collector.js"
import { makePreparation } from "./preparation.js"
import { Send } from "./send.js"
import type { Refusal } from "./send.js"
import { makeSendStream } from "./sendStream.js"
import type { Settlement } from "./settlement.js"
import { makeSettlement } from "./settlement.js"
import { makeSink } from "./sink.js"
import type { StreamParts } from "./streamSends.js"

/** Fibers that prepare records, so that one serializes while another waits for its gzip. */
const PREPARERS = 2

/** Builds the producer on a writer's engine; its fibers and its shutdown belong to the scope. */
export const makeProducer = (
  engine: WriterEngine,
  options: ResolvedProducerOptions
): Effect.Effect<KinesisProducer.Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { config } = engine
    const streamName = config.streamName
    const lingerMillis = Duration.toMillis(options.linger)
    const gatherMillis = Math.min(lingerMillis / 2, 50)
    const clock = yield* Effect.clock
    const rules = rulesOf(engine, options)
    const closedError = new ProducerClosedError({ streamName })
    const closedCause: Refusal = Cause.fail(closedError)
    // Made before the shutdown finalizer is added, so closed after it has run.
    const fibers = yield* FiberSet.make()
    const cleanup = yield* FiberSet.make()
    /**
     * Forks into one of the producer's fiber sets, interruptible whatever region it is called
     * from: a fork inherits its parent's mask, and settlements run masked.
     */
    const forkInto = (set: FiberSet.FiberSet<unknown, unknown>) => (effect: Effect.Effect<unknown>) =>
      FiberSet.run(set, Effect.interruptible(effect))
    const fork = forkInto(fibers)
    let closed = false
    let draining = false
    let flushing = 0
    const urgent = () => draining || flushing > 0

    const pacer = options.pace ? yield* pacerOf(engine, options, fork) : undefined

    const holdings = new Holdings<Send>(options.maxBufferedRecords, options.maxBufferedBytes)
    /** Admits what `holdings` lets in: each becomes a queued record. */
    const admit = (admitted: ReadonlyArray<{ readonly arrival: Send; readonly charged: number }>) => {
      for (const { arrival, charged } of admitted) accept(arrival, charged)
    }
    const accept = (send: Send, charged: number) => {
      send.charged = charged
      send.life = new RecordLife<Refusal>(rules, clock.unsafeCurrentTimeMillis())
      settlement.accepted(send)
      preparation.enqueue(send)
      send.onAdmitted?.()
    }

    const settlement: Settlement = yield* makeSettlement({
      engine,
      options,
      ready: (send, since): void => collector.add(send, since),
      leave: (send): void => collector.remove(send),
      release: (send) => admit(holdings.release(1, send.charged)),
      heldBytes: () => holdings.heldBytes,
      forkCleanup: forkInto(cleanup)
    })
    const apply = settlement.apply

    const preparation = yield* makePreparation({
      engine,
      lingerMillis,
      urgent,
      prepared: (send, record, heldBytes) => {
        if (send.life!.ended) return apply([[send, send.life!.prepared(0, record.largePayload)]])
        send.prepared = record
        const charged = send.charged
        send.charged = heldBytes
        admit(holdings.measured(charged, heldBytes))
        const now = clock.unsafeCurrentTimeMillis()
        const queuedAt = send.life!.acceptedAt
        // Its linger counts from when it was queued; one already past it (it waited for room)
        // lingers as long as the preparers gather, so as not to go out in a call of its own.
        const since = now - queuedAt < lingerMillis ? queuedAt : now - gatherMillis
        return apply([[send, send.life!.prepared(since, record.largePayload)]])
      },
      refused: (send, cause) => apply([[send, send.life!.refuse(closed ? closedCause : cause)]]),
      cancelledCause: closedCause,
      forkUploads: fork
    })

    const collector: Collector = yield* makeCollector({
      engine,
      lingerMillis,
      pacer,
      urgent,
      apply,
      jitter: settlement.jitter,
      fork
    })

    const hurry = () => {
      collector.hurry()
      preparation.hurry()
    }

    for (let i = 0; i < PREPARERS; i++) yield* fork(Effect.forever(preparation.prepareOne))
    yield* fork(Effect.forever(collector.collectOne))
    yield* fork(Effect.forever(settlement.retryDue))
    yield* fork(Effect.forever(settlement.reap))

    /** A new send: admitted if there is room and no one waits before it, else in line. */
    const offer = (send: Send) => {
      const charge = admissionCharge(send.record)
      if (holdings.arrive(send, charge)) accept(send, charge)
    }

    /** Its sender gave up: in line, it leaves; not yet prepared, it is not sent. */
    const cancel = (send: Send) => {
      if (holdings.leave(send)) return send.settle(Exit.failCause(closedCause))
      send.life?.cancel(closedCause)
    }

    // No span per send: at thousands of records a second its cost matched the send's own.
    const send = (record: DataFileV1): Effect.Effect<RecordReceipt, SendError> =>
      Effect.withFiberRuntime<RecordReceipt, SendError>((fiber) =>
        Effect.async<RecordReceipt, SendError>((resume) => {
          if (closed) return resume(Exit.failCause(closedCause))
          const pending = new Send(record, resume)
          pending.watch(fiber, () => cancel(pending))
          offer(pending)
        })
      )

    const flush: Effect.Effect<void> = Effect.suspend(() => {
      const sends = [...settlement.outstanding]
      if (sends.length === 0) return Effect.void
      return Effect.acquireUseRelease(
        Effect.sync(() => {
          flushing++
          hurry()
        }),
        () => awaitSettled(settlement.settledSome, sends, 0),
        () => Effect.sync(() => flushing--)
      )
    }).pipe(Effect.withSpan(SpanNames.producerFlush, { attributes: { [Attributes.streamName]: streamName } }))

    const handlesUndelivered = options.onUndelivered !== undefined
    const streams: StreamParts = { streamName, closedError, isClosed: () => closed, offer, handlesUndelivered }

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true
        draining = true
        for (const waiting of holdings.clearLine()) waiting.settle(Exit.failCause(closedCause))
        settlement.hurry()
        hurry()
        return shutdown({ settlement, fibers, cleanup, closedCause, shutdownTimeout: options.shutdownTimeout })
      })
    )

    return { streamName, send, flush, sink: makeSink(streams), sendStream: makeSendStream(streams) }
  })

/** What every record of this producer shares: its TTL and retry policy. */
const rulesOf = (engine: WriterEngine, options: ResolvedProducerOptions) => ({
  ttlMillis: Duration.toMillis(options.recordTtl),
  baseMillis: Duration.toMillis(engine.config.backoffBase),
  capMillis: Duration.toMillis(engine.config.backoffCap),
  maxRetries: engine.config.maxRetries
})

/** Shard-aware pacing, its map loading in a fiber of the producer. */
const pacerOf = (
  engine: WriterEngine,
  options: ResolvedProducerOptions,
  fork: (effect: Effect.Effect<unknown>) => Effect.Effect<unknown>
): Effect.Effect<Pacer> =>
  Effect.tap(
    makePacer({
      streamName: engine.config.streamName,
      listShards: engine.kinesis.listShards(engine.config.streamName, engine.config.streamArn),
      fork,
      linger: options.linger,
      requestTimeout: engine.config.requestTimeout,
      metrics: engine.metrics
    }),
    (pacer) => fork(pacer.refresh)
  )

/** Waits until every send of `sends`, from `from`, has settled. */
const awaitSettled = (settledSome: Effect.Latch, sends: ReadonlyArray<Send>, from: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    let i = from
    while (i < sends.length && sends[i]!.settled) i++
    if (i === sends.length) return Effect.void
    settledSome.unsafeClose()
    return Effect.zipRight(settledSome.await, awaitSettled(settledSome, sends, i))
  })

/**
 * Shutdown, once new sends are refused and everything is hurried: deliver what is held within
 * `shutdownTimeout`, stop every fiber, end every record still held, and wait, bounded, for
 * deletes and handlers.
 */
const shutdown = (parts: {
  readonly settlement: Settlement
  readonly fibers: FiberSet.FiberSet<unknown, unknown>
  readonly cleanup: FiberSet.FiberSet<unknown, unknown>
  readonly closedCause: Refusal
  readonly shutdownTimeout: Duration.Duration
}) =>
  Effect.gen(function*() {
    const { cleanup, settlement, shutdownTimeout } = parts
    // Finalizers run uninterruptibly: the waits must be interruptible for their timeouts to stop them.
    yield* Effect.timeoutOption(Effect.interruptible(settlement.drained.await), shutdownTimeout)
    yield* FiberSet.clear(parts.fibers)
    yield* shutdownEnd(settlement.outstanding, parts.closedCause, Duration.format(shutdownTimeout), settlement.apply)
    // Deletes and handlers get at least a second, also when there was no time to drain.
    yield* Effect.timeoutOption(
      Effect.interruptible(FiberSet.awaitEmpty(cleanup)),
      Duration.max(shutdownTimeout, Duration.seconds(1))
    )
    yield* FiberSet.clear(cleanup)
    // A delete cut short leaves its object: the record settles naming it.
    yield* settlement.apply([...settlement.outstanding].map((s) => [s, s.life!.objectDeleted(false)] as const))
  })

/**
 * Shutdown's time is up: a record not prepared yet is refused (the producer closed); any
 * other ends `Shutdown` (`maybeDelivered` when in flight) or `Expired`, past its TTL.
 */
const shutdownEnd = (
  outstanding: ReadonlySet<Send>,
  closedCause: Refusal,
  shutdownTimeout: string,
  apply: (steps: ReadonlyArray<readonly [Send, Step]>) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
    const steps: Array<readonly [Send, Step]> = []
    let abandoned = 0
    for (const send of outstanding) {
      const life = send.life!
      if (life.phase._tag === "Queued" || life.phase._tag === "Preparing") {
        steps.push([send, life.refuse(closedCause)])
      } else if (!life.ended) {
        abandoned++
        steps.push([send, life.abandon(now, `still unsettled ${shutdownTimeout} after the producer closed`)])
      }
    }
    if (abandoned > 0) {
      yield* Effect.logWarning("producer closed with records not delivered").pipe(
        Effect.annotateLogs({ records: abandoned })
      )
    }
    yield* apply(steps)
  })
