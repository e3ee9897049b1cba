/**
 * The writer's machinery: `make` builds the service from validated options and the three
 * services it needs, resolved once. See ARCHITECTURE.md for the data flow of a batch.
 */
import type { ConfigError, Scope } from "effect"
import { Cause, Clock, Duration, Effect, Exit, Option, Stream } from "effect"
import { Compressor } from "../Compressor.js"
import type { WriteBatchError } from "../Errors.js"
import { KinesisError } from "../Errors.js"
import type { DataFileV1 } from "../gen/cygnus/v1/data_file_pb.js"
import type { ShardRange } from "../Kinesis.js"
import { Kinesis } from "../Kinesis.js"
import { KinesisMetrics } from "../KinesisMetrics.js"
import type { KinesisWriter, WriteBatchOptions, WriteResult } from "../KinesisWriter.js"
import { LargePayloadStore } from "../LargePayloadStore.js"
import type { AggregatedBatch } from "./aggregate.js"
import { prepareBatchAggregated, serializeBatchAggregated } from "./aggregate.js"
import { backoff } from "./backoff.js"
import { BatchDelivery } from "./batchDelivery.js"
import type { KinesisWriterOptions, ResolvedWriterConfig } from "./config.js"
import { fitStreamLimits, resolveWriterConfig } from "./config.js"
import type { DeliveryLedger } from "./core/ledger.js"
import { KinesisLimits } from "./core/limits.js"
import type { ShardMap } from "./core/routing.js"
import type { AttemptOutcome, Sender } from "./delivery.js"
import { InvalidResponse, makeSender, slices } from "./delivery.js"
import { registerEngine } from "./engine.js"
import { PackBuffers } from "./envelopePacker.js"
import type { DeleteReport } from "./orphans.js"
import { deleteBestEffort, deleteProgress, locationId } from "./orphans.js"
import type { PrepareContext, PreparedRecord, PrepareError, SerializedBatch } from "./prepare.js"
import { compressChunk, prepareBatch, serializeBatch } from "./prepare.js"
import type { ShardMapSource } from "./shardMapSource.js"
import { makeShardMapSource } from "./shardMapSource.js"
import { Attributes, SpanNames } from "./spans.js"

/** Builds the writer; see `KinesisWriter.make`. */
export const make = (
  options: KinesisWriterOptions
): Effect.Effect<
  KinesisWriter.Service,
  ConfigError.ConfigError | KinesisError,
  Kinesis | LargePayloadStore | KinesisMetrics | Scope.Scope
> =>
  Effect.gen(function*() {
    const settings = yield* resolveWriterConfig(options)
    const kinesis = yield* Kinesis
    const store = yield* LargePayloadStore
    const metrics = yield* KinesisMetrics
    const recordLimitBytes = settings.readStreamRecordLimit
      ? yield* readRecordLimit(kinesis, settings.streamName, settings.streamArn)
      : KinesisLimits.defaultRecordBytes
    // What depends on the record limit: maxRequestBytes (at least the limit; its default
    // follows it) and whether an aggregate fits.
    const config = yield* fitStreamLimits(settings, recordLimitBytes)
    const compressor = yield* Effect.flatMap(
      Effect.serviceOption(Compressor),
      Option.match({ onNone: () => makeCompressor(config.compressionWorkers), onSome: Effect.succeed })
    )
    const sender = makeSender(config, kinesis, metrics, recordLimitBytes)
    const stream = config.streamName
    // Aggregation groups records by the shard they are bound for: the stream's shard map,
    // loaded when the first batch needs it (only with aggregation on).
    const shardMaps = config.aggregation === undefined ? undefined : shardMapsOf(kinesis, config, yield* Effect.scope)
    // Packing buffers the compressor is done with, reused by the next chunks (this writer's batches only).
    const packBuffers = new PackBuffers()

    const context = Effect.map(Clock.currentTimeMillis, (now): PrepareContext => ({
      config,
      recordLimitBytes,
      store,
      compressor,
      // Whole milliseconds: a test clock may stand between two.
      creationTime: BigInt(Math.floor(now)),
      packBuffers
    }))

    const prepare = Effect.fn(SpanNames.prepare)(function*(records: ReadonlyArray<DataFileV1>) {
      yield* Effect.annotateCurrentSpan({ [Attributes.streamName]: stream, [Attributes.records]: records.length })
      const aggregation = config.aggregation
      const batch = yield* Effect.flatMap(
        context,
        (ctx) =>
          aggregation === undefined
            ? prepareBatch(ctx, records)
            : Effect.flatMap(
              shardMapWithin(shardMaps),
              (shards) => prepareBatchAggregated(ctx, records, aggregation, shards)
            )
      ).pipe(
        Effect.tapError(() => metrics.batchWriteFailure(stream))
      )
      yield* metrics.largePayloads(stream, batch.largePayloads)
      return batch
    })

    const sendAgain = sendAgainWith(sender)
    const putAttempt = (records: ReadonlyArray<PreparedRecord>, attempt: number) => sendAgain(records, attempt)
    const attempt = attemptWith(sender)

    const defaultSchedule = backoff({ base: config.backoffBase, cap: config.backoffCap, maxRetries: config.maxRetries })

    const writeBatch = Effect.fn(SpanNames.writeBatch)(function*(
      records: ReadonlyArray<DataFileV1>,
      options?: WriteBatchOptions
    ) {
      yield* Effect.annotateCurrentSpan({ [Attributes.streamName]: stream, [Attributes.records]: records.length })
      const deadline = options?.deadline === undefined ? undefined : yield* decodeDeadline(options.deadline)
      const startedAt = yield* Clock.currentTimeMillis
      if (records.length === 0) return emptyResult
      const ctx = yield* context
      const serialize: Effect.Effect<SerializedBatch | AggregatedBatch, PrepareError, Scope.Scope> =
        config.aggregation === undefined
          ? serializeBatch(ctx, records)
          : serializeBatchAggregated(ctx, records, config.aggregation, yield* shardMapWithin(shardMaps, deadline))
      const batch = yield* serialize.pipe(Effect.tapError(() => metrics.batchWriteFailure(stream)))
      yield* metrics.largePayloads(stream, batch.largePayloads)
      const delivery = new BatchDelivery(batch.entries)
      const bytes: ByteCounts = { uncompressed: 0, compressed: 0, kinesisRecords: 0 }
      // Retries are the writer doing its job: debug, not warning. A batch that ends with
      // records undelivered warns once (in `finish`).
      const onRetry = Effect.suspend(() =>
        Effect.logDebug("retrying records that failed").pipe(
          Effect.annotateLogs({ stream, records: delivery.pending.length, attempt: delivery.attempts })
        )
      )
      const attempts = attempt(batch, delivery, bytes)
      // A receipt from a shard other than an aggregate's refreshes the map (a reshard).
      const observed = shardMaps === undefined
        ? attempts
        : (n: number) => Effect.tap(attempts(n), shardMaps.observe)
      const run = delivery.run(observed, options?.schedule ?? defaultSchedule, onRetry)
      // The deadline counts from the call; what phase 1 took is gone from it.
      const deliver = deadline === undefined ? run : Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const left = Duration.subtract(
          deadline,
          Duration.millis(Math.min(now - startedAt, Duration.toMillis(deadline)))
        )
        const expire = Effect.sync(() => delivery.expire(Duration.format(deadline)))
        return Duration.isZero(left) ? expire : Effect.timeoutTo(run, {
          duration: left,
          onSuccess: () => Effect.void,
          onTimeout: () => expire
        }).pipe(Effect.flatten)
      })
      // Delivery runs interruptibly; whatever ends it, the batch's outcome is built from the
      // ledger, so an interrupted batch still says which records may have been delivered, and
      // the objects of records certainly not on the stream are deleted.
      return yield* Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.exit(restore(deliver)), (exit) => {
          if (Exit.isFailure(exit)) {
            return Cause.isInterruptedOnly(exit.cause)
              ? Effect.flatMap(
                deleteOrphans(
                  store,
                  config,
                  delivery,
                  (deletes) => Effect.ignore(Effect.timeout(deletes, config.requestTimeout))
                ),
                (deleted) =>
                  Effect.failCause(Cause.sequential(exit.cause, Cause.fail(delivery.toError(stream, true, deleted))))
              )
              : Effect.failCause(exit.cause)
          }
          return finish({ store, config }, batch, delivery, bytes, restore)
        })
      )
      // The batch's scope holds the compressions started in phase 1.
    }, Effect.scoped)

    return registerEngine({ writeBatch, prepare, putAttempt }, {
      config,
      recordLimitBytes,
      kinesis,
      store,
      metrics,
      sender,
      prepareContext: context
    })
  })

/** The writer's shard map, for aggregation by predicted shard. */
const shardMapsOf = (kinesis: Kinesis.Service, config: ResolvedWriterConfig, scope: Scope.Scope): ShardMapSource =>
  makeShardMapSource({
    streamName: config.streamName,
    listShards: kinesis.listShards(config.streamName, config.streamArn),
    requestTimeout: config.requestTimeout
  }, scope)

/**
 * The shard map for a batch, if known. The first load is waited for at most half a caller's
 * deadline, so that the rest is left for delivery: past it, the batch groups by partition key,
 * and the load goes on for the next ones.
 */
const shardMapWithin = (
  shardMaps: ShardMapSource | undefined,
  deadline?: Duration.Duration
): Effect.Effect<ShardMap<ShardRange> | undefined> =>
  shardMaps === undefined
    ? Effect.succeed(undefined)
    : deadline === undefined
    ? shardMaps.current
    : Effect.timeoutTo(shardMaps.current, {
      duration: Duration.times(deadline, 0.5),
      onSuccess: (map) => map,
      onTimeout: () => undefined
    })

/** A retry: the records pending, in slices of a call's worth. */
const sendAgainWith =
  (sender: Sender) => (records: ReadonlyArray<PreparedRecord>, attempt: number, ledger?: DeliveryLedger) =>
    Effect.map(sender.sendAttempt(Stream.fromIterable(slices(records)), attempt, ledger), (report) => report.outcome)

/**
 * One attempt of a batch. The first is a pipeline: chunks are compressed (off the main thread)
 * while earlier chunks' calls are in flight, and a chunk's payloads are dropped once written;
 * a chunk that cannot be built stops it, and every record not written is named with that
 * error. A retry sends what is pending.
 */
const attemptWith = (sender: Sender) => {
  const sendAgain = sendAgainWith(sender)
  return (batch: SerializedBatch | AggregatedBatch, delivery: BatchDelivery, bytes: ByteCounts) =>
  (n: number): Effect.Effect<AttemptOutcome> =>
    n > 0
      ? sendAgain(delivery.pending, n, delivery.ledger)
      : sender.sendAttempt(
        ("aggregated" in batch
          ? Stream.fromIterable(batch.chunks).pipe(Stream.mapEffect((chunk) => chunk.prepared))
          : Stream.fromIterable(batch.chunks).pipe(Stream.mapEffect((chunk) => compressChunk(batch, chunk)))).pipe(
            Stream.tap((prepared) =>
              Effect.sync(() => {
                bytes.kinesisRecords += prepared.length
                for (const r of prepared) {
                  bytes.uncompressed += r.uncompressedSize
                  bytes.compressed += r.data.length
                }
              })
            )
          ),
        0,
        delivery.ledger
      ).pipe(
        Effect.map((report) => {
          if (Option.isSome(report.stoppedBy)) delivery.fail(report.stoppedBy.value)
          return report.outcome
        })
      )
}

/** Reads the stream's record limit, checked where it is consumed: a whole number of KiB within Kinesis' range. */
const readRecordLimit = (
  kinesis: Kinesis.Service,
  streamName: string,
  streamArn: string | undefined
): Effect.Effect<number, KinesisError> =>
  Effect.flatMap(
    kinesis.describeStreamSummary(streamName, streamArn),
    ({ maxRecordSizeInKiB: kib }) =>
      kib === undefined
        ? Effect.succeed(KinesisLimits.defaultRecordBytes)
        : Number.isSafeInteger(kib) && kib > 0 && kib * 1024 <= KinesisLimits.maxRequestBytes
        ? Effect.succeed(kib * 1024)
        : Effect.fail(
          new KinesisError({
            operation: "DescribeStreamSummary",
            streamName,
            errorName: InvalidResponse,
            retryable: true,
            cause: new Error(`the Kinesis service answered a MaxRecordSizeInKiB of ${String(kib)}`)
          })
        )
  )

/**
 * Deletes the objects of the records that are certainly not on the stream (not written, not
 * possibly written), through `run` (which bounds or restores it); returns the indexes of the
 * records whose object was deleted, even when `run` is interrupted midway.
 */
const deleteOrphans = (
  store: LargePayloadStore.Service,
  config: ResolvedWriterConfig,
  delivery: BatchDelivery,
  run: (deletes: Effect.Effect<DeleteReport>) => Effect.Effect<unknown>
): Effect.Effect<ReadonlySet<number>> =>
  Effect.suspend(() => {
    const orphans = delivery.undelivered().filter((e) =>
      e.largePayload !== undefined && !delivery.ledger.maybeDelivered(e.index)
    )
    if (orphans.length === 0) return Effect.succeed(new Set<number>())
    const progress = deleteProgress()
    return Effect.zipRight(
      run(deleteBestEffort(store, orphans.map((e) => e.largePayload!), config, progress)),
      Effect.sync(() => {
        const ids = new Set(progress.deleted.map(locationId))
        return new Set(orphans.filter((e) => ids.has(locationId(e.largePayload!))).map((e) => e.index))
      })
    )
  })

/**
 * The batch's result, or its error after the objects of records certainly not delivered are
 * deleted. The deletes can be interrupted: the exit then holds the interruption and the
 * error, which says which objects were deleted.
 */
const finish = (
  parts: { readonly store: LargePayloadStore.Service; readonly config: ResolvedWriterConfig },
  batch: SerializedBatch | AggregatedBatch,
  delivery: BatchDelivery,
  bytes: ByteCounts,
  restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
): Effect.Effect<WriteResult, WriteBatchError> =>
  Effect.gen(function*() {
    const stream = parts.config.streamName
    yield* Effect.annotateCurrentSpan({
      [Attributes.calls]: delivery.calls,
      [Attributes.attempts]: delivery.attempts
    })
    if (delivery.undelivered().length === 0) {
      return {
        records: batch.entries.length,
        recordIds: batch.entries.map((r) => r.recordId),
        kinesisCalls: delivery.calls,
        retries: delivery.attempts - 1,
        retriedRecords: delivery.retriedRecords,
        largePayloads: batch.largePayloads,
        uncompressedBytes: bytes.uncompressed,
        compressedBytes: bytes.compressed,
        kinesisRecords: bytes.kinesisRecords
      }
    }
    let interruption: Cause.Cause<never> | undefined
    const deleted = yield* deleteOrphans(parts.store, parts.config, delivery, (deletes) =>
      Effect.flatMap(Effect.exit(restore(deletes)), (exit) =>
        Effect.sync(() => {
          if (Exit.isFailure(exit)) {
            interruption = exit.cause
          }
        })))
    const error = delivery.toError(stream, false, deleted)
    yield* Effect.logWarning("batch ended with records not delivered").pipe(
      Effect.annotateLogs({
        stream,
        undelivered: error.undelivered.length,
        delivered: error.delivered,
        attempts: error.attempts,
        error: error.message
      })
    )
    return yield* interruption === undefined
      ? Effect.fail(error)
      : Effect.failCause(Cause.sequential(interruption, Cause.fail(error)))
  })

/** A caller's deadline: a finite duration of zero or more; anything else is a defect of the call. */
const decodeDeadline = (input: Duration.DurationInput): Effect.Effect<Duration.Duration> =>
  Option.match(Duration.decodeUnknown(input), {
    onNone: () => Effect.dieMessage(`writeBatch: deadline must be a duration, got ${String(input)}`),
    onSome: (d) =>
      Duration.isFinite(d) && Duration.greaterThanOrEqualTo(d, Duration.zero)
        ? Effect.succeed(d)
        : Effect.dieMessage(`writeBatch: deadline must be a finite duration of zero or more, got ${String(input)}`)
  })

/** The writer's compressor: the calling thread when `workers` is 0, else a lazily started pool. */
const makeCompressor = (workers: number): Effect.Effect<Compressor.Service, never, Scope.Scope> =>
  workers === 0 ? Effect.succeed(Compressor.mainThread) : Compressor.makeLazyWorkerPool({ workers })

/** Bytes of a batch's envelopes before and after gzip and its Kinesis records, summed as chunks are compressed. */
interface ByteCounts {
  uncompressed: number
  compressed: number
  kinesisRecords: number
}

const emptyResult: WriteResult = {
  records: 0,
  recordIds: [],
  kinesisCalls: 0,
  retries: 0,
  retriedRecords: 0,
  largePayloads: 0,
  uncompressedBytes: 0,
  compressedBytes: 0,
  kinesisRecords: 0
}
