/**
 * The producer's machinery (not exported from the package): admission under two bounds,
 * one collector that fills PutRecords calls, per-record retries and expiry, and shutdown.
 *
 * - Admission: a send is one suspension of its fiber (`Pending`): its record takes one
 *   permit of `maxBufferedRecords` (or waits in line for one) and joins `toPrepare`, with
 *   no fiber operation of its own. A preparer fiber waits until a call's worth is there,
 *   the oldest has waited half a `linger` (at most 50 ms), or something is urgent, then has
 *   the writer prepare what is there (up to a call's worth) as one batch (record ids, S3
 *   offload, gzip) and hands each send its prepared record; a batch that fails is prepared
 *   again without the record it names (or split in halves), so that a bad record fails its
 *   own send only. The send then takes its bytes (data plus the longest key it can have) of
 *   `maxBufferedBytes`. Both are released when it settles. A record's `recordTtl`
 *   and `linger` count from when it was queued (one admitted past its linger, after a wait
 *   for room, lingers as long as the preparers gather).
 * - Collection: accepted records wait in `ready`, oldest first. One collector fiber takes a
 *   call slot (`maxConcurrentCalls`), then waits until a call's worth is ready, the oldest
 *   ready record has waited `linger`, or something is urgent (a `flush`, shutdown), and
 *   forks the call.
 * - Settlement: a written record completes its `send` with a receipt; a failed one waits in
 *   `backoff` for its own jittered backoff (one timer for all) and goes back to `ready` with
 *   its next attempt's key, or, failed for good (non-retryable, retries exhausted, past
 *   `recordTtl`), fails its `send` and goes to `onUndelivered` once. One reaper fiber
 *   expires records at their `recordTtl`.
 *
 * @internal
 */
import type { Fiber, Scope } from "effect"
import { Cause, Clock, Context, Duration, Effect, Exit, FiberSet, Option, Random, Sink } from "effect"
import {
  CompressionError,
  LargePayloadStoreError,
  ProducerClosedError,
  ProducerSinkError,
  RecordUndeliveredError,
  SerializationError
} from "../Errors.js"
import type { DataFileV1 } from "../gen/cygnus/v1/data_file_pb.js"
import { Kinesis } from "../Kinesis.js"
import { KinesisMetrics } from "../KinesisMetrics.js"
import type { KinesisProducer, RecordReceipt, SendError } from "../KinesisProducer.js"
import type { KinesisWriter } from "../KinesisWriter.js"
import type { PayloadLocation } from "../LargePayloadStore.js"
import { LargePayloadStore } from "../LargePayloadStore.js"
import type { ResolvedProducerOptions } from "./config.js"
import type { AttemptOutcome } from "./delivery.js"
import { makeSender } from "./delivery.js"
import { DueQueue } from "./dueQueue.js"
import { KinesisLimits } from "./limits.js"
import type { Pacer } from "./pacing.js"
import { makePacer } from "./pacing.js"
import type { PreparedRecord, PrepareError } from "./prepare.js"
import { prng } from "./prng.js"

/** Span names of the public operations. */
export const Spans = {
  flush: "KinesisProducer.flush",
  call: "KinesisProducer.call"
} as const

/** Span attribute names. */
export const Attributes = {
  streamName: "kinesis.stream_name",
  records: "kinesis.records"
} as const

interface Failure {
  readonly errorCode: string
  readonly errorMessage: string | undefined
}

/** Where an accepted record stands. */
type Phase =
  /** Waiting in `ready` for a call, since `since` (`Clock` millis). */
  | { readonly _tag: "Ready"; readonly since: number }
  /** In a call in flight. */
  | { readonly _tag: "InFlight" }
  /** Waiting for its retry, until `until`. */
  | { readonly _tag: "Backoff"; readonly until: number }
  /** Failed for good; its settlement (after deleting its S3 object) is under way. */
  | { readonly _tag: "Failing"; readonly failure: Failure }
  | { readonly _tag: "Settled" }

const Phases = {
  inFlight: { _tag: "InFlight" } as Phase,
  settled: { _tag: "Settled" } as Phase
} as const

/** What settles a send: its receipt or its error. */
type SendExit = Exit.Exit<RecordReceipt, SendError>

/**
 * Where a send stands, from its call to its settlement:
 *
 * - `WaitingForRoom`: no record permit yet (`maxBufferedRecords` outstanding); it waits in
 *   line, oldest first;
 * - `Queued`: it holds a permit and waits for a preparer, or is being prepared;
 * - `Cancelled`: its send was interrupted while `Queued`: its preparer withdraws it;
 * - `Accepted`: its record is an `Entry`, which settles it;
 * - `Settled`: its outcome is given (or its send was interrupted while waiting for room).
 */
type SendStage = "WaitingForRoom" | "Queued" | "Cancelled" | "Accepted" | "Settled"

/**
 * One send: its record and whom its outcome goes to. A plain object with a callback, not a
 * `Deferred` and a fiber: a send is one `Effect.async` whose callback this is, so that a
 * record costs its sender a single suspension.
 */
class Pending {
  stage: SendStage = "WaitingForRoom"
  /** When it got its record permit (`Clock` millis): its linger counts from then. */
  queuedAt = 0
  /** Called when it gets its record permit (the sink waits for that, for backpressure). */
  onQueued: (() => void) | undefined = undefined
  /** The fiber of its `send`, watched until it settles, and the observer that watches it. */
  private watched: Fiber.RuntimeFiber<RecordReceipt, SendError> | undefined = undefined
  private onFiberEnd: (() => void) | undefined = undefined
  constructor(
    readonly record: DataFileV1,
    /** Called once, with its outcome. */
    private readonly listener: (exit: SendExit) => void
  ) {}

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
    if (this.stage === "Settled") return
    this.stage = "Settled"
    if (this.watched !== undefined) this.watched.removeObserver(this.onFiberEnd!)
    this.listener(exit)
  }
}

/** One accepted record. */
class Entry {
  phase: Phase = Phases.settled
  /** Calls that carried it (finished or in flight at shutdown). */
  attempts = 0
  /** Some call that carried it had an ambiguous outcome. */
  maybeDelivered = false
  /** Its `recordTtl` passed while it was in flight: not retried. */
  expired = false
  lastFailure: Failure | undefined = undefined
  constructor(
    readonly prepared: PreparedRecord,
    /** What it holds of `maxBufferedBytes`. */
    readonly bytes: number,
    readonly acceptedAt: number,
    readonly deadline: number,
    /** The send it settles. */
    readonly send: Pending
  ) {}
  /** Its bytes in the next call: data plus partition key with its next attempt. */
  get callBytes(): number {
    return this.bytes - this.keySlack
  }
  keySlack = 0
}

/** The largest number of records in one call. */
const MAX_CALL_RECORDS = KinesisLimits.maxRecordsPerCall

/** The retry timer's finest step: retries due closer together than this are woken together. */
const RETRY_TICK_MILLIS = 10

/** Fibers that prepare records, so that one serializes while another waits for its gzip. */
const PREPARERS = 2

/** A build error without the batch index `prepare` gave it: a producer's record is alone in its batch. */
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

/**
 * Builds the producer on a writer; its fibers and its shutdown belong to the scope.
 */
export const makeProducer = (
  writer: KinesisWriter.Service,
  options: ResolvedProducerOptions
): Effect.Effect<KinesisProducer.Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const config = writer.config
    const streamName = config.streamName
    const metrics = Context.get(writer.services, KinesisMetrics)
    const store = Context.get(writer.services, LargePayloadStore)
    const kinesis = Context.get(writer.services, Kinesis)
    const sender = makeSender(config, kinesis, metrics, writer.recordLimitBytes)
    const lingerMillis = Duration.toMillis(options.linger)
    /**
     * How long the oldest record waits for others before a preparer takes what is there (a
     * call's worth goes at once). Preparing a batch has a cost of its own, so records sent one
     * by one are prepared together; its linger counts from when it was queued, so this adds
     * nothing to when its call goes out.
     */
    const gatherMillis = Math.min(lingerMillis / 2, 50)
    /** The bytes a record took of late (a moving average; 0 before the first): what a call's worth of records is. */
    let recordBytesEstimate = 0
    const clock = yield* Effect.clock
    const ttlMillis = Duration.toMillis(options.recordTtl)
    const attemptDigits = String(config.maxRetries).length
    const backoffBase = Duration.toMillis(config.backoffBase)
    const backoffCap = Duration.toMillis(config.backoffCap)

    const callSlots = yield* Effect.makeSemaphore(config.maxConcurrentCalls)
    // Made before the shutdown finalizer is added, so closed after it has run.
    const fibers = yield* FiberSet.make()
    const handlers = yield* FiberSet.make()
    /**
     * Forks into one of the producer's fiber sets, interruptible whatever region it is called
     * from: a fork inherits its parent's mask, and much of the producer's work runs masked (a
     * call's settlement), so a handler, an S3 delete or a ListShards forked from there would
     * otherwise hold the scope's close until it ended on its own.
     */
    const fork = <A, E>(set: FiberSet.FiberSet<unknown, unknown>, effect: Effect.Effect<A, E>) =>
      FiberSet.run(set, Effect.interruptible(effect))
    /** Shard-aware pacing, when asked for: see pacing.ts. */
    const pacer: Pacer | undefined = options.pace
      ? yield* makePacer({
        streamName,
        listShards: kinesis.listShards(streamName, config.streamArn),
        fork: (effect) => fork(fibers, effect),
        linger: options.linger
      })
      : undefined
    if (pacer !== undefined) yield* fork(fibers, pacer.refresh)

    /** Accepted and not settled. */
    const outstanding = new Set<Entry>()
    /** Waiting for a call, in the order they became ready. */
    const ready = new Set<Entry>()
    let readyBytes = 0
    let bufferedBytes = 0
    let closed = false
    let draining = false
    let flushing = 0
    /** Open while `ready` is not empty. */
    const nonEmpty = yield* Effect.makeLatch(false)
    /** Open while a call's worth is ready, or something is urgent. */
    const wake = yield* Effect.makeLatch(false)
    /** Opened when shutdown finds no record permit taken: nothing queued, prepared or outstanding. */
    const drained = yield* Effect.makeLatch(false)
    /** Records waiting for a preparer, oldest first. */
    let toPrepare: Array<Pending> = []
    /** Open while `toPrepare` is not empty. */
    const preparable = yield* Effect.makeLatch(false)
    /** Open while a call's worth waits for a preparer, or something is urgent: a preparer stops gathering. */
    const prepareNow = yield* Effect.makeLatch(false)
    /** Opened when `outstanding` gains an entry: wakes the reaper. */
    const reapable = yield* Effect.makeLatch(false)
    /** Opened when buffered bytes are released (or at shutdown): wakes a preparer waiting for room. */
    const room = yield* Effect.makeLatch(false)
    /** Opened when a send settles: wakes a `flush`. */
    const settledSome = yield* Effect.makeLatch(false)
    /** Groups of sends a preparer has taken and not yet accepted or refused. */
    const inPreparation = new Set<ReadonlyArray<Pending>>()

    /** Gives a send its outcome (a no-op if it has one) and wakes a `flush`. */
    const finish = (pending: Pending, exit: SendExit) => {
      pending.settle(exit)
      settledSome.unsafeOpen()
    }

    const closedError = new ProducerClosedError({ streamName })

    /**
     * Record permits (`maxBufferedRecords`), counted here rather than by a `Semaphore`, so
     * that a send takes one without a fiber operation: a send holds one from `Queued` until
     * it settles (or is withdrawn).
     */
    let permitsTaken = 0
    /** Sends waiting for a record permit, oldest first. */
    const waitingForRoom = new Set<Pending>()

    /** Gives a send its record permit: it joins the records waiting for a preparer. */
    const queue = (pending: Pending) => {
      permitsTaken++
      pending.stage = "Queued"
      pending.queuedAt = clock.unsafeCurrentTimeMillis()
      toPrepare.push(pending)
      preparable.unsafeOpen()
      if (batchFull()) prepareNow.unsafeOpen()
      pending.onQueued?.()
    }

    /** A new send: queued if there is room and no one waits before it, else in line for room. */
    const offer = (pending: Pending) => {
      if (waitingForRoom.size === 0 && permitsTaken < options.maxBufferedRecords) queue(pending)
      else waitingForRoom.add(pending)
    }

    /** Returns record permits; the sends waiting for room take them, oldest first. */
    const releasePermits = (n: number) => {
      permitsTaken -= n
      if (draining && permitsTaken === 0) drained.unsafeOpen()
      for (const pending of waitingForRoom) {
        if (permitsTaken >= options.maxBufferedRecords) break
        waitingForRoom.delete(pending)
        queue(pending)
      }
    }

    /**
     * Its send was interrupted: waiting for room, it leaves the line; queued, its preparer
     * withdraws it; accepted, its record goes on (the entry settles a send no one waits for).
     */
    const cancel = (pending: Pending) => {
      switch (pending.stage) {
        case "WaitingForRoom":
          waitingForRoom.delete(pending)
          finish(pending, Exit.fail(closedError))
          return
        case "Queued":
          pending.stage = "Cancelled"
          return
        default:
          return
      }
    }

    const urgent = () => draining || flushing > 0
    /** A call's worth waits for a preparer: by count, or by the bytes records have taken of late. */
    const batchFull = () =>
      toPrepare.length >= MAX_CALL_RECORDS || toPrepare.length * recordBytesEstimate >= config.maxRequestBytes
    /** Something is urgent: the collector and the preparers stop waiting. */
    const hurry = () => {
      wake.unsafeOpen()
      prepareNow.unsafeOpen()
    }
    const callFull = () => ready.size >= MAX_CALL_RECORDS || readyBytes >= config.maxRequestBytes

    const gauges = Effect.suspend(() => metrics.producerBuffered(streamName, outstanding.size, bufferedBytes))

    /** Puts an entry in `ready`, lingering from `since`. */
    const makeReady = (entry: Entry, since: number) => {
      entry.phase = { _tag: "Ready", since }
      entry.keySlack = attemptDigits - String(entry.attempts).length
      ready.add(entry)
      readyBytes += entry.callBytes
      nonEmpty.unsafeOpen()
      if (callFull() || urgent()) wake.unsafeOpen()
    }

    const leave = (entry: Entry) => {
      if (entry.phase._tag === "Ready") {
        ready.delete(entry)
        readyBytes -= entry.callBytes
      }
    }

    /** Settles entries not settled yet: completes their sends, releases their room. */
    const settle = (settlements: ReadonlyArray<readonly [Entry, Exit.Exit<RecordReceipt, RecordUndeliveredError>]>) =>
      // Whole, once begun: a shutdown that interrupted it half-way would skip `onUndelivered`.
      Effect.uninterruptible(Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        let records = 0
        let bytes = 0
        let expired = 0
        const failed: Array<RecordUndeliveredError> = []
        const latencies: Array<number> = []
        for (const [entry, exit] of settlements) {
          if (entry.phase._tag === "Settled") continue
          leave(entry)
          entry.phase = Phases.settled
          outstanding.delete(entry)
          bufferedBytes -= entry.bytes
          records++
          bytes += entry.bytes
          latencies.push((now - entry.acceptedAt) / 1000)
          if (Exit.isFailure(exit)) {
            const error = Cause.failureOption(exit.cause)
            if (Option.isSome(error)) {
              failed.push(error.value)
              if (error.value.errorCode === "Expired") expired++
            }
          }
          entry.send.settle(exit)
        }
        if (records === 0) return
        settledSome.unsafeOpen()
        releasePermits(records)
        if (bytes > 0) room.unsafeOpen()
        yield* gauges
        yield* Effect.forEach(latencies, (s) => metrics.recordSettled(streamName, s), { discard: true })
        yield* metrics.recordsExpired(streamName, expired)
        if (options.onUndelivered !== undefined) yield* Effect.forEach(failed, runHandler, { discard: true })
      }))

    /**
     * Runs `onUndelivered` in a fiber of its own (interruptible: shutdown stops one that never
     * ends).
     */
    const runHandler = (error: RecordUndeliveredError) =>
      fork(
        handlers,
        Effect.suspend(() => options.onUndelivered!(error)).pipe(
          Effect.catchAllCause((cause) =>
            Cause.isInterruptedOnly(cause) ?
              Effect.void :
              Effect.logWarning("onUndelivered failed; the producer goes on").pipe(
                Effect.annotateLogs({ stream: streamName, recordId: error.recordId, cause: Cause.pretty(cause) })
              )
          )
        )
      )

    const undelivered = (entry: Entry, failure: Failure, deleted: boolean) =>
      new RecordUndeliveredError({
        streamName,
        record: entry.prepared.record,
        recordId: entry.prepared.recordId,
        errorCode: failure.errorCode,
        errorMessage: failure.errorMessage,
        maybeDelivered: entry.maybeDelivered,
        largePayload: entry.prepared.largePayload === undefined
          ? undefined
          : { ...entry.prepared.largePayload, deleted },
        attempts: entry.attempts
      })

    const expiredFailure = (entry: Entry): Failure => ({
      errorCode: "Expired",
      errorMessage: `not delivered within ${Duration.format(options.recordTtl)}` +
        (entry.lastFailure === undefined ? "" : `; last error ${entry.lastFailure.errorCode}`)
    })

    /**
     * Records failed for good settle: at once, or, with an S3 object certainly not on the
     * stream, after deleting it in a fiber of the producer.
     */
    const failForGood = (failures: ReadonlyArray<readonly [Entry, Failure]>) =>
      Effect.suspend(() => {
        const now: Array<readonly [Entry, Failure]> = []
        for (const [entry, failure] of failures) {
          if (entry.phase._tag === "Settled" || entry.phase._tag === "Failing") continue
          leave(entry)
          entry.phase = { _tag: "Failing", failure }
          now.push([entry, failure])
        }
        if (now.length === 0) return Effect.void
        // Only a record with an S3 object certainly not on the stream waits (for its delete),
        // in a fiber of the producer; the others settle at once.
        const settled: Array<readonly [Entry, Exit.Exit<RecordReceipt, RecordUndeliveredError>]> = []
        const deleting: Array<readonly [Entry, Failure, PayloadLocation]> = []
        for (const [entry, failure] of now) {
          const location = entry.prepared.largePayload
          if (location === undefined || entry.maybeDelivered) {
            settled.push([entry, Exit.fail(undelivered(entry, failure, false))])
          } else deleting.push([entry, failure, location])
        }
        const deleteThenSettle = deleting.length === 0 ? Effect.void : fork(
          fibers,
          Effect.forEach(deleting, ([entry, failure, location]) =>
            store.delete(location).pipe(
              Effect.timeout("10 seconds"),
              Effect.as(true),
              Effect.tapError((e) =>
                Effect.logWarning("could not delete the large payload of an undelivered record").pipe(
                  Effect.annotateLogs({ stream: streamName, key: location.key, error: String(e) })
                )
              ),
              Effect.orElseSucceed(() => false),
              Effect.map((deleted) => [entry, Exit.fail(undelivered(entry, failure, deleted))] as const)
            ), { concurrency: config.maxConcurrentUploads }).pipe(Effect.flatMap(settle))
        )
        return settled.length === 0 ? deleteThenSettle : Effect.zipRight(settle(settled), deleteThenSettle)
      })

    /** Entries waiting for their retry, by the time it is due. */
    const backoff = new DueQueue<Entry>()
    /** Opened when an entry joins `backoff` ahead of those there: wakes the retry timer. */
    const backoffSooner = yield* Effect.makeLatch(false)

    /**
     * Puts entries in `backoff`, each until its own backoff ends: the writer's, jittered
     * ×0.8–1.2 and capped. One draw of the `Random` service seeds the jitter of them all, so
     * that a call's failures cost one effect, not one each.
     */
    const retryLater = (entries: ReadonlyArray<Entry>, now: number) =>
      Effect.map(Random.nextInt, (seed) => {
        const random = prng(seed)
        const first = backoff.nextDue
        for (const entry of entries) {
          const until = now + Math.min(backoffCap, backoffBase * 2 ** (entry.attempts - 1) * (0.8 + 0.4 * random()))
          entry.phase = { _tag: "Backoff", until }
          backoff.push(entry, until)
        }
        if (first === undefined || backoff.nextDue! < first) backoffSooner.unsafeOpen()
      })

    /**
     * One round of the retry timer: the entries whose backoff has ended become ready (or
     * fail, past their TTL), then it sleeps until the next one ends: one timer for every
     * record backing off, not a sleeping fiber each.
     */
    const retryDue = Effect.gen(function*() {
      const now = clock.unsafeCurrentTimeMillis()
      let expired: Array<readonly [Entry, Failure]> | undefined
      for (let entry = backoff.popDue(now); entry !== undefined; entry = backoff.popDue(now)) {
        // Expired, or settled at shutdown, while it waited.
        if (entry.phase._tag !== "Backoff") continue
        if (now >= entry.deadline) (expired ??= []).push([entry, expiredFailure(entry)])
        else makeReady(entry, now)
      }
      if (expired !== undefined) yield* failForGood(expired)
      backoffSooner.unsafeClose()
      const next = backoff.nextDue
      if (next === undefined) yield* backoffSooner.await
      // Retries due within a few milliseconds of each other are woken together.
      else {
        yield* Effect.timeoutOption(
          backoffSooner.await,
          Math.max(next - clock.unsafeCurrentTimeMillis(), RETRY_TICK_MILLIS)
        )
      }
    })

    yield* fork(fibers, Effect.forever(retryDue))

    /**
     * Finds the entries of a call's records without a map per call: the outcome lists its
     * written records, and its failed ones, each in call order, so a scan goes on from where
     * the last one was found (and goes round, for a record out of that order).
     */
    const cursorOver = (call: ReadonlyArray<Entry>) => {
      let at = 0
      return (record: PreparedRecord): Entry | undefined => {
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

    /** What a call's outcome means for each of its records. */
    const settleCall = (call: ReadonlyArray<Entry>, outcome: AttemptOutcome) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const receipts: Array<readonly [Entry, Exit.Exit<RecordReceipt, RecordUndeliveredError>]> = []
        const writtenEntry = cursorOver(call)
        for (const w of outcome.writtenRecords) {
          const entry = writtenEntry(w.record)
          if (entry === undefined) continue
          entry.attempts++
          receipts.push([
            entry,
            Exit.succeed({
              recordId: entry.prepared.recordId,
              shardId: w.shardId,
              sequenceNumber: w.sequenceNumber,
              attempts: entry.attempts
            })
          ])
        }
        const retry: Array<Entry> = []
        const failures: Array<readonly [Entry, Failure]> = []
        const failedEntry = cursorOver(call)
        for (const f of outcome.failed) {
          const entry = failedEntry(f.record)
          if (entry === undefined) continue
          entry.attempts++
          if (f.ambiguous) entry.maybeDelivered = true
          entry.lastFailure = { errorCode: f.errorCode, errorMessage: f.errorMessage }
          if (entry.expired || now >= entry.deadline) failures.push([entry, expiredFailure(entry)])
          else if (!f.retryable || entry.attempts > config.maxRetries) failures.push([entry, entry.lastFailure])
          else retry.push(entry)
        }
        // Phases change before anything yields, so that a shutdown sees them all.
        if (retry.length > 0) yield* retryLater(retry, now)
        yield* settle(receipts)
        if (failures.length > 0) yield* failForGood(failures)
      })

    /** The partition key of an entry's next attempt. */
    const nextKey = (entry: Entry) => entry.prepared.partitionKeyPrefix + String(entry.attempts)

    /**
     * Takes the next call's records from `ready`, oldest first; those past their TTL fail
     * instead. Paced, only records whose shard has tokens: the others wait for its refill.
     */
    const takeCall = (now: number) => {
      const call: Array<Entry> = []
      const expired: Array<readonly [Entry, Failure]> = []
      const scan = pacer?.scan(now)
      let bytes = 0
      let full = false
      for (const entry of ready) {
        if (now >= entry.deadline) {
          expired.push([entry, expiredFailure(entry)])
          continue
        }
        const size = entry.callBytes
        if (call.length === MAX_CALL_RECORDS || (call.length > 0 && bytes + size > config.maxRequestBytes)) {
          full = true
          break
        }
        if (scan !== undefined && !scan.admit(nextKey(entry), size)) continue
        call.push(entry)
        bytes += size
      }
      for (const entry of call) {
        leave(entry)
        entry.phase = Phases.inFlight
      }
      return { call, expired, scan, full }
    }

    const sendAndSettle = (call: ReadonlyArray<Entry>) =>
      Effect.uninterruptibleMask((restore) => {
        // Paced: the receipts are checked against the shards predicted from the keys sent.
        const keys = pacer === undefined ? undefined : new Map(call.map((e) => [e.prepared, nextKey(e)]))
        // The buffered gauges move once per call and per settlement, not per record.
        return Effect.zipRight(
          gauges,
          restore(
            sender.sendCall(call.map((e) => e.prepared), call.map((e) => e.attempts)).pipe(
              Effect.withSpan(Spans.call, {
                attributes: { [Attributes.streamName]: streamName, [Attributes.records]: call.length }
              })
            )
          )
        ).pipe(
          Effect.tap((outcome) => pacer === undefined ? Effect.void : pacer.observe(outcome, (r) => keys?.get(r))),
          Effect.flatMap((outcome) => settleCall(call, outcome))
        )
      })

    /** One round of the collector: a call slot, a call's worth or a lingered record, a call forked. */
    const collectOne = Effect.gen(function*() {
      yield* callSlots.take(1)
      while (ready.size === 0) {
        nonEmpty.unsafeClose()
        yield* nonEmpty.await
      }
      const oldest = ready.values().next().value!
      const since = oldest.phase._tag === "Ready" ? oldest.phase.since : 0
      const wait = since + lingerMillis - (yield* Clock.currentTimeMillis)
      if (wait > 0 && !callFull() && !urgent()) {
        wake.unsafeClose()
        yield* Effect.timeoutOption(wake.await, wait)
      }
      const now = clock.unsafeCurrentTimeMillis()
      // From taking the call's records (now `InFlight`) to forking the call, nothing may stop
      // this fiber: a shutdown would report records never sent as maybe delivered.
      const { expired, full, scan, sent } = yield* Effect.uninterruptible(
        Effect.suspend(() => {
          const { call, expired, full, scan } = takeCall(now)
          if (!callFull() && !urgent()) wake.unsafeClose()
          const taken = { expired, full, scan, sent: call.length > 0 }
          return call.length === 0
            ? Effect.as(callSlots.release(1), taken)
            : Effect.as(
              fork(fibers, sendAndSettle(call).pipe(Effect.ensuring(callSlots.release(1)))),
              taken
            )
        })
      )
      if (expired.length > 0) yield* failForGood(expired)
      if (scan === undefined || !scan.limited()) return
      // Paced, with nothing sent, every ready record waits for its shard's tokens: until the first refill.
      if (!sent) yield* Effect.sleep(Math.max(1, scan.nextAt() - now))
      // Paced, the call took its shards' tokens: they gather again into one call, not a stream of tiny ones.
      else if (!full) yield* Effect.sleep(pacer!.gapMillis)
    })

    yield* fork(fibers, Effect.forever(collectOne))

    /** Its TTL passed: a record not in a call fails now; one in flight fails if that call fails. */
    const expire = (entry: Entry) =>
      Effect.suspend(() => {
        switch (entry.phase._tag) {
          case "Ready":
          case "Backoff":
            return failForGood([[entry, expiredFailure(entry)]])
          case "InFlight":
            entry.expired = true
            return Effect.void
          default:
            return Effect.void
        }
      })

    /**
     * Expires records at their TTL. Entries join `outstanding` in about the order of their
     * deadlines (queued time plus the same TTL; two preparers may admit out of that order by
     * the time a batch took to prepare or to find room), so only its oldest are looked at:
     * the reaper sleeps until the first deadline not passed, and a record admitted out of
     * order may expire that much late. Calls and the retry timer check each deadline too.
     */
    const reap = Effect.gen(function*() {
      while (outstanding.size === 0) {
        reapable.unsafeClose()
        yield* reapable.await
      }
      const now = yield* Clock.currentTimeMillis
      const due: Array<Entry> = []
      let next: number | undefined
      for (const entry of outstanding) {
        if (entry.deadline > now) {
          next = entry.deadline
          break
        }
        if (!entry.expired) due.push(entry)
      }
      for (const entry of due) yield* expire(entry)
      if (next !== undefined) return yield* Effect.sleep(next - now)
      // Every entry left is past its deadline and settling: wait for a new one.
      reapable.unsafeClose()
      yield* reapable.await
    })

    yield* fork(fibers, Effect.forever(reap))

    /**
     * Withdraws a record that will not be accepted (its send was interrupted, or the producer
     * closed): its record permit goes back, its send fails closed and its S3 object, if any,
     * is deleted.
     */
    const withdraw = (pending: Pending, prepared: PreparedRecord | undefined): Effect.Effect<void> => {
      releasePermits(1)
      finish(pending, Exit.fail(closedError))
      return prepared?.largePayload === undefined ? Effect.void : fork(
        handlers,
        Effect.ignore(Effect.timeout(store.delete(prepared.largePayload), "10 seconds"))
      )
    }

    /**
     * Accepts prepared records in order, from `from`: each takes its bytes of
     * `maxBufferedBytes` and becomes ready; a withdrawn record (its send was interrupted) is
     * dropped instead. Runs as one synchronous loop, and waits only when a record finds no
     * room, to go on from it. A record's TTL and linger count from when it was queued; one
     * admitted past its linger lingers as long as the preparers gather.
     */
    const admit = (
      group: ReadonlyArray<Pending>,
      prepared: ReadonlyArray<PreparedRecord>,
      from: number
    ): Effect.Effect<void> =>
      Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        let withdrawn: Array<Effect.Effect<void>> | undefined
        for (let i = from; i < prepared.length; i++) {
          const record = prepared[i]!
          const pending = group[record.index]!
          if (pending.stage !== "Queued") {
            ;(withdrawn ??= []).push(withdraw(pending, record))
            continue
          }
          const bytes = record.data.length + Buffer.byteLength(record.partitionKeyPrefix) + attemptDigits
          if (bufferedBytes + bytes > options.maxBufferedBytes) {
            room.unsafeClose()
            const rest = Effect.zipRight(room.await, Effect.suspend(() => admit(group, prepared, i)))
            return withdrawn === undefined ? rest : Effect.zipRight(Effect.all(withdrawn, { discard: true }), rest)
          }
          const entry = new Entry(record, bytes, pending.queuedAt, pending.queuedAt + ttlMillis, pending)
          outstanding.add(entry)
          bufferedBytes += bytes
          recordBytesEstimate = recordBytesEstimate === 0
            ? bytes
            : recordBytesEstimate + (bytes - recordBytesEstimate) / 16
          pending.stage = "Accepted"
          // Its linger counts from when it was queued; one already past it (it waited for room)
          // lingers as long as the preparers gather, so as not to go out in a call of its own.
          makeReady(entry, now - pending.queuedAt < lingerMillis ? pending.queuedAt : now - gatherMillis)
        }
        reapable.unsafeOpen()
        return withdrawn === undefined ? Effect.void : Effect.all(withdrawn, { discard: true })
      })

    /** Fails a send whose record could not be prepared; its permit goes back. */
    const refuse = (pending: Pending, exit: Exit.Exit<never, SendError>) =>
      Effect.sync(() => {
        releasePermits(1)
        finish(pending, exit)
      })

    /**
     * Prepares a group of records as one batch, then accepts them. A batch that fails is
     * prepared again without the record its error names (that record's send fails with the
     * error), or in halves when no record is named; a record alone gets the failure as it is.
     */
    const prepareGroup = (group: ReadonlyArray<Pending>): Effect.Effect<void> =>
      Effect.flatMap(Effect.exit(writer.prepare(group.map((p) => p.record))), (exit): Effect.Effect<void> => {
        if (Exit.isSuccess(exit)) return admit(group, exit.value.records, 0)
        if (Cause.isInterruptedOnly(exit.cause)) return Effect.interrupt
        if (group.length === 1) return refuse(group[0]!, Exit.failCause(Cause.map(exit.cause, unindexed)))
        const error = Cause.failureOption(exit.cause)
        const bad = Option.isSome(error) ? error.value.recordIndex : undefined
        if (Option.isSome(error) && bad !== undefined && bad >= 0 && bad < group.length) {
          // Those before it serialized; those after it are unknown: two batches.
          return Effect.all([
            refuse(group[bad]!, Exit.fail(unindexed(error.value))),
            bad > 0 ? prepareGroup(group.slice(0, bad)) : Effect.void,
            bad + 1 < group.length ? prepareGroup(group.slice(bad + 1)) : Effect.void
          ], { discard: true })
        }
        const half = group.length >> 1
        return Effect.zipRight(prepareGroup(group.slice(0, half)), prepareGroup(group.slice(half)))
      })

    /** Withdraws the sends of a group that are neither accepted nor settled. */
    const withdrawUnaccepted = (group: ReadonlyArray<Pending>) =>
      Effect.suspend(() => {
        const withdrawn: Array<Effect.Effect<void>> = []
        for (const p of group) {
          if (p.stage === "Queued" || p.stage === "Cancelled") withdrawn.push(withdraw(p, undefined))
        }
        return Effect.all(withdrawn, { discard: true })
      })

    /**
     * Takes what is waiting for preparation, up to a call's worth, and prepares it as one
     * batch: once a call's worth waits, the oldest has waited `gatherMillis`, or something is
     * urgent. Interrupted (at shutdown), it refuses the records it holds.
     */
    const prepareOne = Effect.gen(function*() {
      for (;;) {
        if (toPrepare.length === 0) {
          preparable.unsafeClose()
          yield* preparable.await
          continue
        }
        // Nothing known of the records' size yet: no gathering, since a call might be full already.
        if (recordBytesEstimate === 0 || batchFull() || urgent()) break
        const wait = toPrepare[0]!.queuedAt + gatherMillis - clock.unsafeCurrentTimeMillis()
        if (wait <= 0) break
        prepareNow.unsafeClose()
        yield* Effect.timeoutOption(prepareNow.await, wait)
      }
      const taken = toPrepare.length <= MAX_CALL_RECORDS ? toPrepare : toPrepare.slice(0, MAX_CALL_RECORDS)
      toPrepare = taken === toPrepare ? [] : toPrepare.slice(MAX_CALL_RECORDS)
      // In the same step as leaving `toPrepare`: a `flush` waits for them, and a shutdown that
      // interrupts this fiber before its handler below is in place still finds them.
      inPreparation.add(taken)
      yield* Effect.ensuring(
        Effect.suspend(() => {
          const group: Array<Pending> = []
          const cancelled: Array<Effect.Effect<void>> = []
          for (const pending of taken) {
            if (pending.stage === "Cancelled") cancelled.push(withdraw(pending, undefined))
            else group.push(pending)
          }
          return Effect.zipRight(
            Effect.all(cancelled, { discard: true }),
            group.length === 0 ? Effect.void : prepareGroup(group)
          )
        }).pipe(Effect.onInterrupt(() => withdrawUnaccepted(taken))),
        Effect.sync(() => inPreparation.delete(taken))
      )
    })

    for (let i = 0; i < PREPARERS; i++) yield* fork(fibers, Effect.forever(prepareOne))

    /** Refuses the sends waiting for room: the producer is closed, and they were never accepted. */
    const refuseWaiting = () => {
      const waiting = [...waitingForRoom]
      waitingForRoom.clear()
      for (const pending of waiting) finish(pending, Exit.fail(closedError))
    }

    /** Refuses the records still waiting for a preparer: shutdown's time is up. */
    const refuseUnprepared = () => {
      const refused = toPrepare
      toPrepare = []
      return withdrawUnaccepted(refused)
    }

    // No span per send: at thousands of records a second its cost matched the send's own.
    // Each call has its span (`KinesisProducer.call`, with its record count).
    /**
     * A send is one suspension of its fiber: it takes a record permit or waits in line for
     * one, and its record goes to a preparer, without a fiber operation; the entry its
     * record becomes settles it. Its interruption is seen when its fiber ends (a fiber
     * observer, much cheaper per send than an interruption handler): a record not accepted
     * by then is withdrawn.
     */
    const send = (record: DataFileV1): Effect.Effect<RecordReceipt, SendError> =>
      Effect.withFiberRuntime<RecordReceipt, SendError>((fiber) =>
        Effect.async<RecordReceipt, SendError>((resume) => {
          if (closed) return resume(Exit.fail(closedError))
          const pending = new Pending(record, resume)
          // (Closures made per send are passed inline: a named one costs a `name` definition in some builds.)
          pending.watch(fiber, () => cancel(pending))
          offer(pending)
        })
      )

    /** Waits until every send of `sends`, from `from`, has settled. */
    const awaitSettled = (sends: ReadonlyArray<Pending>, from: number): Effect.Effect<void> =>
      Effect.suspend(() => {
        let i = from
        while (i < sends.length && sends[i]!.stage === "Settled") i++
        if (i === sends.length) return Effect.void
        settledSome.unsafeClose()
        return Effect.zipRight(settledSome.await, awaitSettled(sends, i))
      })

    /** The sends holding a record permit: queued, being prepared, or accepted. */
    const unsettled = (): Array<Pending> => {
      const sends: Array<Pending> = []
      for (const entry of outstanding) sends.push(entry.send)
      for (const pending of toPrepare) sends.push(pending)
      for (const group of inPreparation) {
        for (const pending of group) if (pending.stage === "Queued") sends.push(pending)
      }
      return sends
    }

    const flush: Effect.Effect<void> = Effect.suspend(() => {
      const sends = unsettled()
      if (sends.length === 0) return Effect.void
      return Effect.acquireUseRelease(
        Effect.sync(() => {
          flushing++
          hurry()
        }),
        () => awaitSettled(sends, 0),
        () => Effect.sync(() => flushing--)
      )
    }).pipe(Effect.withSpan(Spans.flush, { attributes: { [Attributes.streamName]: streamName } }))

    type SinkFailure = ProducerSinkError["undelivered"][number]
    const sink: Sink.Sink<void, DataFileV1, DataFileV1, ProducerSinkError> = Sink.unwrap(Effect.gen(function*() {
      const failures: Array<SinkFailure> = []
      let delivered = 0
      /** Elements whose send has not settled. */
      let unsettled = 0
      /** Open while every element's send has settled. */
      const allSettled = yield* Effect.makeLatch(true)
      /**
       * Sends an element; waits only for its record permit (backpressure), not for its
       * outcome, which is counted when it comes. False once the producer is closed.
       */
      const consume = (record: DataFileV1) =>
        Effect.async<boolean>((resume) => {
          if (closed) {
            failures.push({ record, error: closedError })
            return resume(Effect.succeed(false))
          }
          unsettled++
          allSettled.unsafeClose()
          let admitted = false
          const pending = new Pending(record, (exit) => {
            unsettled--
            if (Exit.isSuccess(exit)) delivered++
            else Option.map(Cause.failureOption(exit.cause), (error) => failures.push({ record, error }))
            if (unsettled === 0) allSettled.unsafeOpen()
            // Refused while waiting for room: the producer closed.
            if (!admitted) resume(Effect.succeed(false))
          })
          pending.onQueued = () => {
            admitted = true
            resume(Effect.succeed(true))
          }
          offer(pending)
          return Effect.sync(() => cancel(pending))
        })
      return Sink.forEachWhile(consume).pipe(
        Sink.mapEffect(() =>
          Effect.zipRight(
            allSettled.await,
            Effect.suspend(() =>
              failures.length === 0
                ? Effect.void
                : Effect.fail(new ProducerSinkError({ streamName, undelivered: failures, delivered }))
            )
          )
        )
      )
    }))

    /**
     * Shutdown: refuse new sends (and those waiting for room), deliver what holds a permit
     * (queued, being prepared, outstanding) within `shutdownTimeout`, then stop every fiber:
     * a record not prepared by then fails closed, one accepted fails with `Shutdown`.
     */
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        closed = true
        draining = true
        refuseWaiting()
        hurry()
        // Finalizers run uninterruptibly: the waits must be made interruptible for their timeouts to stop them.
        if (permitsTaken > 0) {
          yield* Effect.timeoutOption(Effect.interruptible(drained.await), options.shutdownTimeout)
        }
        // Preparers interrupted here refuse the records they hold.
        yield* FiberSet.clear(fibers)
        yield* refuseUnprepared()
        for (const group of inPreparation) yield* withdrawUnaccepted(group)
        const left = [...outstanding].map((entry) => {
          const failure: Failure = entry.phase._tag === "Failing" ? entry.phase.failure : {
            errorCode: "Shutdown",
            errorMessage: `still unsettled ${Duration.format(options.shutdownTimeout)} after the producer closed`
          }
          if (entry.phase._tag === "InFlight") {
            entry.maybeDelivered = true
          }
          return [entry, Exit.fail(undelivered(entry, failure, false))] as const
        })
        if (left.length > 0) {
          yield* Effect.logWarning("producer closed with records not delivered").pipe(
            Effect.annotateLogs({ stream: streamName, records: left.length })
          )
        }
        yield* settle(left)
        // Handlers get at least a second, also when there was no time to drain.
        yield* Effect.timeoutOption(
          Effect.interruptible(FiberSet.awaitEmpty(handlers)),
          Duration.max(options.shutdownTimeout, Duration.seconds(1))
        )
      })
    )

    return { streamName, send, flush, sink }
  })
