/**
 * The producer's machinery (not exported from the package): admission under two bounds,
 * one collector that fills PutRecords calls, per-record retries and expiry, and shutdown.
 *
 * - Admission: a record takes one permit of `maxBufferedRecords`, is prepared by the writer
 *   (record id, S3 offload, gzip) on the caller's fiber, then takes its bytes (data plus
 *   the longest key it can have) of `maxBufferedBytes`. Both are released when it settles.
 * - Collection: accepted records wait in `ready`, oldest first. One collector fiber takes a
 *   call slot (`maxConcurrentCalls`), then waits until a call's worth is ready, the oldest
 *   ready record has waited `linger`, or something is urgent (a `flush`, shutdown), and
 *   forks the call.
 * - Settlement: a written record completes its `send` with a receipt; a failed one goes
 *   back to `ready` after its own jittered backoff with its next attempt's key, or, failed
 *   for good (non-retryable, retries exhausted, past `recordTtl`), fails its `send` and goes
 *   to `onUndelivered` once.
 *
 * @internal
 */
import type { Scope } from "effect"
import {
  Cause,
  Clock,
  ConfigError,
  Context,
  Deferred,
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
  send: "KinesisProducer.send",
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
    readonly done: Deferred.Deferred<RecordReceipt, RecordUndeliveredError>
  ) {}
  /** Its bytes in the next call: data plus partition key with its next attempt. */
  get callBytes(): number {
    return this.bytes - this.keySlack
  }
  keySlack = 0
}

/** The largest number of records in one call. */
const MAX_CALL_RECORDS = KinesisLimits.maxRecordsPerCall

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
    const sender = makeSender(config, kinesis, metrics)
    const lingerMillis = Duration.toMillis(options.linger)
    const ttlMillis = Duration.toMillis(options.recordTtl)
    const attemptDigits = String(config.maxRetries).length
    const backoffBase = Duration.toMillis(config.backoffBase)
    const backoffCap = Duration.toMillis(config.backoffCap)

    const recordPermits = yield* Effect.makeSemaphore(options.maxBufferedRecords)
    const bytePermits = yield* Effect.makeSemaphore(options.maxBufferedBytes)
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
          Deferred.unsafeDone(entry.done, exit)
        }
        if (records === 0) return
        if (draining && outstanding.size === 0) drained.unsafeOpen()
        yield* recordPermits.release(records)
        yield* bytePermits.release(bytes)
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
        return restore(
          sender.sendCall(call.map((e) => e.prepared), call.map((e) => e.attempts)).pipe(
            Effect.withSpan(Spans.call, {
              attributes: { [Attributes.streamName]: streamName, [Attributes.records]: call.length }
            })
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
     * Admission: a record permit, the writer's preparation, the record's bytes; or
     * `ProducerClosedError` once the producer is closed (also for a send that was waiting).
     */
    const accept = (record: DataFileV1): Effect.Effect<Entry, PrepareError | ProducerClosedError> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          if (closed) return yield* closedError
          yield* restore(recordPermits.take(1))
          const releaseRecord = recordPermits.release(1)
          if (closed) return yield* Effect.zipRight(releaseRecord, closedError)
          const batch = yield* restore(writer.prepare([record])).pipe(
            Effect.mapError(unindexed),
            Effect.tapErrorCause(() => releaseRecord)
          )
          const prepared = batch.records[0]!
          const bytes = prepared.data.length + Buffer.byteLength(prepared.partitionKeyPrefix) + attemptDigits
          yield* restore(bytePermits.take(bytes)).pipe(Effect.tapErrorCause(() => releaseRecord))
          if (closed) {
            yield* Effect.zipRight(releaseRecord, bytePermits.release(bytes))
            if (prepared.largePayload !== undefined) {
              yield* Effect.ignore(Effect.timeout(store.delete(prepared.largePayload), "10 seconds"))
            }
            return yield* closedError
          }
          const now = yield* Clock.currentTimeMillis
          const entry = new Entry(
            prepared,
            bytes,
            now,
            now + ttlMillis,
            yield* Deferred.make<RecordReceipt, RecordUndeliveredError>()
          )
          outstanding.add(entry)
          bufferedBytes += bytes
          makeReady(entry, now)
          yield* gauges
          return entry
        })
      )

    /** Waits for a record's settlement; at its TTL, expires it if it is not in flight. */
    const settled = (entry: Entry): Effect.Effect<RecordReceipt, RecordUndeliveredError> =>
      Effect.gen(function*() {
        const left = entry.deadline - (yield* Clock.currentTimeMillis)
        const first = yield* Effect.timeoutOption(Deferred.await(entry.done), Math.max(0, left))
        if (Option.isSome(first)) return first.value
        yield* expire(entry)
        return yield* Deferred.await(entry.done)
      })

    const send = Effect.fn(Spans.send)(function*(record: DataFileV1): Effect.fn.Return<RecordReceipt, SendError> {
      yield* Effect.annotateCurrentSpan(Attributes.streamName, streamName)
      return yield* settled(yield* accept(record))
    })

    const flush: Effect.Effect<void> = Effect.suspend(() => {
      const pending = [...outstanding]
      if (pending.length === 0) return Effect.void
      return Effect.acquireUseRelease(
        Effect.sync(() => {
          flushing++
          wake.unsafeOpen()
        }),
        () => Effect.forEach(pending, (e) => Effect.exit(Deferred.await(e.done)), { discard: true }),
        () => Effect.sync(() => flushing--)
      )
    }).pipe(Effect.withSpan(Spans.flush, { attributes: { [Attributes.streamName]: streamName } }))

    type SinkFailure = ProducerSinkError["undelivered"][number]
    const sink: Sink.Sink<void, DataFileV1, DataFileV1, ProducerSinkError> = Sink.unwrapScoped(Effect.gen(function*() {
      const watchers = yield* FiberSet.make()
      const failures: Array<SinkFailure> = []
      let delivered = 0
      const consume = (record: DataFileV1) =>
        Effect.matchEffect(accept(record), {
          onFailure: (error) =>
            Effect.sync(() => {
              failures.push({ record, error })
              return error._tag !== "ProducerClosedError"
            }),
          onSuccess: (entry) =>
            Effect.as(
              FiberSet.run(
                watchers,
                Effect.match(settled(entry), {
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
        // Wakes every send waiting for room: each sees `closed` and fails.
        yield* recordPermits.resize(Number.MAX_SAFE_INTEGER)
        yield* bytePermits.resize(Number.MAX_SAFE_INTEGER)
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
