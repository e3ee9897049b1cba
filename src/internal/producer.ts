/**
 * The producer's machinery (not exported from the package): admission under two bounds,
 * one collector that fills PutRecords calls, per-record retries and expiry, and shutdown.
 *
 * - Admission: a record takes one permit of `maxBufferedRecords` and joins `toPrepare`; a
 *   preparer fiber takes what is waiting there (up to a call's worth) and has the writer
 *   prepare it as one batch (record ids, S3 offload, gzip), then hands each send its
 *   prepared record; a batch that fails is prepared again without the record it names (or
 *   split in halves), so that a bad record fails its own send only. The send then takes its
 *   bytes (data plus the longest key it can have) of `maxBufferedBytes`. Both are released
 *   when it settles.
 * - Collection: accepted records wait in `ready`, oldest first. One collector fiber takes a
 *   call slot (`maxConcurrentCalls`), then waits until a call's worth is ready, the oldest
 *   ready record has waited `linger`, or something is urgent (a `flush`, shutdown), and
 *   forks the call.
 * - Settlement: a written record completes its `send` with a receipt; a failed one goes
 *   back to `ready` after its own jittered backoff with its next attempt's key, or, failed
 *   for good (non-retryable, retries exhausted, past `recordTtl`), fails its `send` and goes
 *   to `onUndelivered` once. One reaper fiber expires records at their `recordTtl` (records
 *   are accepted in deadline order, so it looks at the oldest only).
 *
 * @internal
 */
import type { Scope } from "effect"
import {
  Cause,
  Clock,
  ConfigError,
  Context,
  Duration,
  Effect,
  Either,
  Exit,
  FiberSet,
  Option,
  Random,
  Sink
} from "effect"
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
import type { KinesisProducer, KinesisProducerOptions, RecordReceipt, SendError } from "../KinesisProducer.js"
import type { KinesisWriter } from "../KinesisWriter.js"
import { LargePayloadStore } from "../LargePayloadStore.js"
import type { AttemptOutcome } from "./delivery.js"
import { makeSender } from "./delivery.js"
import { KinesisLimits } from "./limits.js"
import type { Pacer } from "./pacing.js"
import { makePacer } from "./pacing.js"
import type { PreparedRecord, PrepareError } from "./prepare.js"

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

/**
 * The producer's defaults: what an option left out is.
 *
 * @since 0.1.0
 */
export const ProducerDefaults = {
  linger: Duration.millis(100),
  maxBufferedRecords: 10_000,
  maxBufferedBytes: 64 * 1024 * 1024,
  recordTtl: Duration.seconds(30),
  shutdownTimeout: Duration.seconds(10),
  pace: false
} as const

/** The options after validation and defaults. */
export interface ResolvedProducerOptions {
  readonly linger: Duration.Duration
  readonly maxBufferedRecords: number
  readonly maxBufferedBytes: number
  readonly recordTtl: Duration.Duration
  readonly shutdownTimeout: Duration.Duration
  readonly onUndelivered: ((undelivered: RecordUndeliveredError) => Effect.Effect<unknown, unknown>) | undefined
  readonly pace: boolean
}

const invalid = (field: string, requirement: string, value: unknown) =>
  ConfigError.InvalidData([field], `${field} ${requirement}, got ${JSON.stringify(value) ?? String(value)}`)

const durationOf = (
  field: string,
  value: Duration.DurationInput,
  allowZero: boolean
): Either.Either<Duration.Duration, ConfigError.ConfigError> =>
  // Duration clamps a negative input to zero: refuse it here.
  (typeof value === "number" && value < 0) || (typeof value === "string" && value.trimStart().startsWith("-"))
    ? Either.left(invalid(field, "must not be negative", value))
    : Option.match(Duration.decodeUnknown(value), {
      onNone: () => Either.left(invalid(field, "must be a duration", value)),
      onSome: (d) =>
        Duration.isFinite(d) &&
          (allowZero ? Duration.greaterThanOrEqualTo(d, Duration.zero) : Duration.greaterThan(d, Duration.zero))
          ? Either.right(d)
          : Either.left(
            invalid(
              field,
              allowZero ? "must be a finite duration, zero or more" : "must be a positive, finite duration",
              value
            )
          )
    })

const integerFrom = (field: string, value: number, min: number, why: string) =>
  Number.isSafeInteger(value) && value >= min ? Either.right(value) : Either.left(invalid(field, why, value))

/**
 * Validates the options against the writer they run on. Each bad value is a
 * `ConfigError.InvalidData` whose path is the field and whose message names the value.
 */
export const resolveProducerOptions = (
  options: KinesisProducerOptions,
  recordLimitBytes: number
): Effect.Effect<ResolvedProducerOptions, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const d = ProducerDefaults
    const linger = yield* durationOf("linger", options.linger ?? d.linger, false)
    const maxBufferedRecords = yield* integerFrom(
      "maxBufferedRecords",
      options.maxBufferedRecords ?? d.maxBufferedRecords,
      1,
      "must be a positive integer"
    )
    const maxBufferedBytes = yield* integerFrom(
      "maxBufferedBytes",
      options.maxBufferedBytes ?? d.maxBufferedBytes,
      recordLimitBytes,
      `must be an integer of at least the stream's record limit (${recordLimitBytes} bytes)`
    )
    const recordTtl = yield* durationOf("recordTtl", options.recordTtl ?? d.recordTtl, false)
    if (Duration.lessThan(recordTtl, linger)) {
      return yield* Effect.fail(
        invalid("recordTtl", `must be at least linger (${Duration.format(linger)})`, options.recordTtl)
      )
    }
    const shutdownTimeout = yield* durationOf("shutdownTimeout", options.shutdownTimeout ?? d.shutdownTimeout, true)
    if (options.onUndelivered !== undefined && typeof options.onUndelivered !== "function") {
      return yield* Effect.fail(invalid("onUndelivered", "must be a function", typeof options.onUndelivered))
    }
    const pace = options.pace ?? d.pace
    if (typeof pace !== "boolean") return yield* Effect.fail(invalid("pace", "must be a boolean", pace))
    return {
      linger,
      maxBufferedRecords,
      maxBufferedBytes,
      recordTtl,
      shutdownTimeout,
      onUndelivered: options.onUndelivered,
      pace
    }
  })

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

/**
 * A result set once that any number of fibers may wait for: what a `Deferred` does, without
 * its cost per instance (a `Deferred` copies a prototype's properties into each one, and
 * the producer makes two per record).
 */
class OneShot<A, E> {
  private exit: Exit.Exit<A, E> | undefined = undefined
  private waiters: Array<(exit: Exit.Exit<A, E>) => void> | undefined = undefined

  get isDone(): boolean {
    return this.exit !== undefined
  }

  /** Sets the result, once; later calls do nothing. */
  done(exit: Exit.Exit<A, E>): void {
    if (this.exit !== undefined) return
    this.exit = exit
    const waiters = this.waiters
    this.waiters = undefined
    if (waiters !== undefined) { for (const resume of waiters) resume(exit) }
  }

  /** Waits for the result; interrupting the wait leaves the result to the others. */
  await(): Effect.Effect<A, E> {
    if (this.exit !== undefined) return this.exit
    return Effect.async<A, E>((resume) => {
      if (this.exit !== undefined) return resume(this.exit)
      const waiters = this.waiters ??= []
      waiters.push(resume)
      return Effect.sync(() => {
        const i = waiters.indexOf(resume)
        if (i >= 0) waiters.splice(i, 1)
      })
    })
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
    readonly done: OneShot<RecordReceipt, SendError>
  ) {}
  /** Its bytes in the next call: data plus partition key with its next attempt. */
  get callBytes(): number {
    return this.bytes - this.keySlack
  }
  keySlack = 0
}

/** The largest number of records in one call. */
const MAX_CALL_RECORDS = KinesisLimits.maxRecordsPerCall

/** Fibers that prepare records, so that one serializes while another waits for its gzip. */
const PREPARERS = 2

/** A send from its record permit on: its record, and what its send waits for. */
interface Pending {
  readonly record: DataFileV1
  /** The send's outcome; the accepted record's `Entry` settles it. */
  readonly result: OneShot<RecordReceipt, SendError>
  /** Its send was interrupted before the record was accepted: it is withdrawn. */
  cancelled: boolean
  /** Its record is an `Entry` now: the entry settles it. */
  accepted: boolean
}

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
    const ttlMillis = Duration.toMillis(options.recordTtl)
    const attemptDigits = String(config.maxRetries).length
    const backoffBase = Duration.toMillis(config.backoffBase)
    const backoffCap = Duration.toMillis(config.backoffCap)

    const recordPermits = yield* Effect.makeSemaphore(options.maxBufferedRecords)
    const callSlots = yield* Effect.makeSemaphore(config.maxConcurrentCalls)
    // Made before the shutdown finalizer is added, so closed after it has run.
    const fibers = yield* FiberSet.make()
    const handlers = yield* FiberSet.make()
    /** Shard-aware pacing, when asked for: see pacing.ts. */
    const pacer: Pacer | undefined = options.pace
      ? yield* makePacer({
        streamName,
        listShards: kinesis.listShards(streamName, config.streamArn),
        fork: (effect) => FiberSet.run(fibers, effect),
        linger: options.linger
      })
      : undefined
    if (pacer !== undefined) yield* FiberSet.run(fibers, pacer.refresh)

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
    /** Opened when shutdown finds nothing outstanding. */
    const drained = yield* Effect.makeLatch(false)
    /** Records waiting for a preparer, oldest first. */
    let toPrepare: Array<Pending> = []
    /** Open while `toPrepare` is not empty. */
    const preparable = yield* Effect.makeLatch(false)
    /** Opened when `outstanding` gains an entry: wakes the reaper. */
    const reapable = yield* Effect.makeLatch(false)
    /** Opened when buffered bytes are released (or at shutdown): wakes a preparer waiting for room. */
    const room = yield* Effect.makeLatch(false)

    const urgent = () => draining || flushing > 0
    const callFull = () => ready.size >= MAX_CALL_RECORDS || readyBytes >= config.maxRequestBytes

    const closedError = new ProducerClosedError({ streamName })

    const gauges = Effect.suspend(() => metrics.producerBuffered(streamName, outstanding.size, bufferedBytes))

    const makeReady = (entry: Entry, now: number) => {
      entry.phase = { _tag: "Ready", since: now }
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
      Effect.gen(function*() {
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
          entry.done.done(exit)
        }
        if (records === 0) return
        if (draining && outstanding.size === 0) drained.unsafeOpen()
        yield* recordPermits.release(records)
        if (bytes > 0) room.unsafeOpen()
        yield* gauges
        yield* Effect.forEach(latencies, (s) => metrics.recordSettled(streamName, s), { discard: true })
        yield* metrics.recordsExpired(streamName, expired)
        if (options.onUndelivered !== undefined) yield* Effect.forEach(failed, runHandler, { discard: true })
      })

    const runHandler = (error: RecordUndeliveredError) =>
      FiberSet.run(
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
     * Records failed for good: their S3 objects are deleted when they are certainly not on
     * the stream, then they settle. Runs in a fiber of the producer.
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
        return FiberSet.run(
          fibers,
          Effect.forEach(now, ([entry, failure]) => {
            const location = entry.prepared.largePayload
            const deleted = location === undefined || entry.maybeDelivered
              ? Effect.succeed(false)
              : store.delete(location).pipe(
                Effect.timeout("10 seconds"),
                Effect.as(true),
                Effect.tapError((e) =>
                  Effect.logWarning("could not delete the large payload of an undelivered record").pipe(
                    Effect.annotateLogs({ stream: streamName, key: location.key, error: String(e) })
                  )
                ),
                Effect.orElseSucceed(() => false)
              )
            return Effect.map(deleted, (d) => [entry, Exit.fail(undelivered(entry, failure, d))] as const)
          }, { concurrency: config.maxConcurrentUploads }).pipe(Effect.flatMap(settle))
        )
      })

    /** The delay before retry `n` (1 for the first): the writer's backoff, jittered ×0.8–1.2 and capped. */
    const retryDelay = (n: number) =>
      Effect.map(Random.nextRange(0.8, 1.2), (jitter) => Math.min(backoffCap, backoffBase * 2 ** (n - 1) * jitter))

    /** Puts entries back in `ready` after their own backoff, in one fiber. */
    const retryLater = (entries: ReadonlyArray<Entry>, now: number) =>
      Effect.gen(function*() {
        const waits: Array<readonly [Entry, number]> = []
        for (const entry of entries) {
          const until = now + (yield* retryDelay(entry.attempts))
          entry.phase = { _tag: "Backoff", until }
          waits.push([entry, until])
        }
        waits.sort((a, b) => a[1] - b[1])
        yield* FiberSet.run(
          fibers,
          Effect.forEach(waits, ([entry, until]) =>
            Effect.gen(function*() {
              const at = yield* Clock.currentTimeMillis
              if (until > at) yield* Effect.sleep(until - at)
              if (entry.phase._tag !== "Backoff") return
              const woke = yield* Clock.currentTimeMillis
              if (woke >= entry.deadline) yield* failForGood([[entry, expiredFailure(entry)]])
              else makeReady(entry, woke)
            }), { discard: true })
        )
      })

    /** What a call's outcome means for each of its records. */
    const settleCall = (call: ReadonlyArray<Entry>, outcome: AttemptOutcome) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const byRecord = new Map(call.map((e) => [e.prepared, e]))
        const receipts: Array<readonly [Entry, Exit.Exit<RecordReceipt, RecordUndeliveredError>]> = []
        for (const w of outcome.writtenRecords) {
          const entry = byRecord.get(w.record)!
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
        for (const f of outcome.failed) {
          const entry = byRecord.get(f.record)!
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
      const now = yield* Clock.currentTimeMillis
      const { call, expired, full, scan } = takeCall(now)
      if (!callFull() && !urgent()) wake.unsafeClose()
      if (expired.length > 0) yield* failForGood(expired)
      if (call.length === 0) {
        yield* callSlots.release(1)
        // Paced, every ready record waits for its shard's tokens: until the first refill.
        if (scan !== undefined && scan.limited()) yield* Effect.sleep(Math.max(1, scan.nextAt() - now))
        return
      }
      yield* FiberSet.run(fibers, sendAndSettle(call).pipe(Effect.ensuring(callSlots.release(1))))
      // Paced, the call took its shards' tokens: they gather again into one call, not a stream of tiny ones.
      if (scan !== undefined && scan.limited() && !full) yield* Effect.sleep(pacer!.gapMillis)
    })

    yield* FiberSet.run(fibers, Effect.forever(collectOne))

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
     * Expires records at their TTL. Entries join `outstanding` in the order of their
     * deadlines (accepted time plus the same TTL), so only its oldest need looking at: the
     * reaper sleeps until the first deadline not passed.
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

    yield* FiberSet.run(fibers, Effect.forever(reap))

    /**
     * Withdraws a record that will not be accepted (its send was interrupted, or the producer
     * closed): its record permit goes back and its S3 object, if any, is deleted.
     */
    const withdraw = (pending: Pending, prepared: PreparedRecord | undefined) =>
      Effect.zipRight(
        recordPermits.release(1),
        prepared?.largePayload === undefined ? Effect.void : FiberSet.run(
          handlers,
          Effect.ignore(Effect.timeout(store.delete(prepared.largePayload), "10 seconds"))
        )
      ).pipe(Effect.zipRight(Effect.sync(() => pending.result.done(Exit.fail(closedError)))))

    /**
     * Accepts prepared records in order: each takes its bytes of `maxBufferedBytes` (waiting
     * for room) and becomes ready; a withdrawn record is dropped instead.
     */
    const admit = (group: ReadonlyArray<Pending>, prepared: ReadonlyArray<PreparedRecord>) =>
      Effect.gen(function*() {
        for (const record of prepared) {
          const pending = group[record.index]!
          const bytes = record.data.length + Buffer.byteLength(record.partitionKeyPrefix) + attemptDigits
          while (!closed && !pending.cancelled && bufferedBytes + bytes > options.maxBufferedBytes) {
            room.unsafeClose()
            yield* room.await
          }
          if (closed || pending.cancelled) {
            yield* withdraw(pending, record)
            continue
          }
          const now = yield* Clock.currentTimeMillis
          const entry = new Entry(record, bytes, now, now + ttlMillis, pending.result)
          outstanding.add(entry)
          bufferedBytes += bytes
          pending.accepted = true
          makeReady(entry, now)
          reapable.unsafeOpen()
        }
      })

    /** Fails a send whose record could not be prepared; its permit goes back. */
    const refuse = (pending: Pending, exit: Exit.Exit<never, SendError>) =>
      Effect.zipRight(recordPermits.release(1), Effect.sync(() => pending.result.done(exit)))

    /**
     * Prepares a group of records as one batch, then accepts them. A batch that fails is
     * prepared again without the record its error names (that record's send fails with the
     * error), or in halves when no record is named; a record alone gets the failure as it is.
     */
    const prepareGroup = (group: ReadonlyArray<Pending>): Effect.Effect<void> =>
      Effect.flatMap(Effect.exit(writer.prepare(group.map((p) => p.record))), (exit): Effect.Effect<void> => {
        if (Exit.isSuccess(exit)) return admit(group, exit.value.records)
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

    /**
     * Takes what is waiting for preparation, up to a call's worth, and prepares it as one
     * batch. Interrupted (at shutdown), it refuses the records it holds.
     */
    const prepareOne = Effect.gen(function*() {
      while (toPrepare.length === 0) {
        preparable.unsafeClose()
        yield* preparable.await
      }
      const taken = toPrepare.length <= MAX_CALL_RECORDS ? toPrepare : toPrepare.slice(0, MAX_CALL_RECORDS)
      toPrepare = taken === toPrepare ? [] : toPrepare.slice(MAX_CALL_RECORDS)
      const group: Array<Pending> = []
      for (const pending of taken) {
        if (pending.cancelled) yield* withdraw(pending, undefined)
        else group.push(pending)
      }
      if (group.length === 0) return
      yield* prepareGroup(group).pipe(
        Effect.onInterrupt(() =>
          Effect.forEach(group, (p) => p.accepted || p.result.isDone ? Effect.void : withdraw(p, undefined), {
            discard: true
          })
        )
      )
    })

    for (let i = 0; i < PREPARERS; i++) yield* FiberSet.run(fibers, Effect.forever(prepareOne))

    /** Refuses the records waiting for a preparer: the producer is closed. */
    const refusePending = () => {
      const refused = toPrepare
      toPrepare = []
      return Effect.forEach(refused, (p) => withdraw(p, undefined), { discard: true })
    }

    /**
     * Admission, up to the wait: a record permit (waiting for room), then the record waits
     * for a preparer; or `ProducerClosedError` once the producer is closed (also for a send
     * that was waiting for room).
     */
    const enqueue = (record: DataFileV1): Effect.Effect<Pending, ProducerClosedError> =>
      Effect.uninterruptibleMask((restore) =>
        closed ? closedError : Effect.flatMap(restore(recordPermits.take(1)), () => {
          if (closed) return Effect.zipRight(recordPermits.release(1), closedError)
          const pending: Pending = { record, result: new OneShot(), cancelled: false, accepted: false }
          toPrepare.push(pending)
          preparable.unsafeOpen()
          return Effect.succeed(pending)
        })
      )

    /** Waits for a send's outcome; interrupted before its record is accepted, withdraws the record. */
    const outcome = (pending: Pending): Effect.Effect<RecordReceipt, SendError> =>
      Effect.onInterrupt(pending.result.await(), () =>
        Effect.sync(() => {
          pending.cancelled = true
        }))

    // No span per send: at thousands of records a second its cost matched the send's own.
    // Each call has its span (`KinesisProducer.call`, with its record count).
    const send = (record: DataFileV1): Effect.Effect<RecordReceipt, SendError> =>
      Effect.flatMap(enqueue(record), outcome)

    const flush: Effect.Effect<void> = Effect.suspend(() => {
      const pending = [...outstanding]
      if (pending.length === 0) return Effect.void
      return Effect.acquireUseRelease(
        Effect.sync(() => {
          flushing++
          wake.unsafeOpen()
        }),
        () => Effect.forEach(pending, (e) => Effect.exit(e.done.await()), { discard: true }),
        () => Effect.sync(() => flushing--)
      )
    }).pipe(Effect.withSpan(Spans.flush, { attributes: { [Attributes.streamName]: streamName } }))

    type SinkFailure = ProducerSinkError["undelivered"][number]
    const sink: Sink.Sink<void, DataFileV1, DataFileV1, ProducerSinkError> = Sink.unwrapScoped(Effect.gen(function*() {
      const watchers = yield* FiberSet.make()
      const failures: Array<SinkFailure> = []
      let delivered = 0
      const consume = (record: DataFileV1) =>
        Effect.matchEffect(enqueue(record), {
          onFailure: (error) =>
            Effect.sync(() => {
              failures.push({ record, error })
              return false
            }),
          onSuccess: (pending) =>
            Effect.as(
              FiberSet.run(
                watchers,
                Effect.match(pending.result.await(), {
                  onFailure: (error) => failures.push({ record, error }),
                  onSuccess: () => delivered++
                })
              ),
              true
            )
        })
      return Sink.forEachWhile(consume).pipe(
        Sink.mapEffect(() =>
          Effect.zipRight(
            FiberSet.awaitEmpty(watchers),
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
     * Shutdown: refuse new sends (and those waiting for room), deliver what is outstanding
     * within `shutdownTimeout`, then stop every fiber and fail what is left with `Shutdown`.
     */
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        closed = true
        draining = true
        yield* refusePending()
        // Wakes every send waiting for room, and the preparers: each sees `closed` and refuses.
        yield* recordPermits.resize(Number.MAX_SAFE_INTEGER)
        room.unsafeOpen()
        wake.unsafeOpen()
        // Finalizers run uninterruptibly: the waits must be made interruptible for their timeouts to stop them.
        if (outstanding.size > 0) {
          yield* Effect.timeoutOption(Effect.interruptible(drained.await), options.shutdownTimeout)
        }
        yield* FiberSet.clear(fibers)
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
