/**
 * The `KinesisWriter` service: `writeBatch` publishes `DataFileV1` records to a Kinesis
 * stream — payloads built once, large ones offloaded to S3, PutRecords calls within every
 * Kinesis limit, only failed records retried on an exponential, jittered, capped backoff —
 * and either returns a `WriteResult` or names every record it could not deliver.
 *
 * @since 0.1.0
 */
import type { ConfigError } from "effect"
import { Cause, Clock, Config, Context, Effect, Exit, Layer, Option, Schedule, ScheduleDecision, Scope, Stream } from "effect"
import { Compressor } from "../compression/Compressor.js"
import type { KinesisError, WriteBatchError } from "../errors.js"
import type { DataFileV1 } from "../gen/cygnus/v1/data_file_pb.js"
import { Kinesis } from "../services/Kinesis.js"
import { KinesisMetrics } from "../services/KinesisMetrics.js"
import { LargePayloadStore } from "../services/LargePayloadStore.js"
import { backoff } from "./Backoff.js"
import { BatchDelivery } from "./BatchDelivery.js"
import type { AttemptOutcome, DeliveryLedger } from "./Delivery.js"
import { combineOutcomes, deliverAttempt, planAttempt, sendCall } from "./Delivery.js"
import type { PrepareContext, PreparedBatch, PrepareError, PreparedRecord, SerializedBatch } from "./PreparedBatch.js"
import { compressChunk, prepareBatch, serializeBatch } from "./PreparedBatch.js"
import type { KinesisWriterOptions, ResolvedWriterConfig } from "./WriterConfig.js"
import { resolveWriterConfig, writerOptionsConfig, WriterDefaults } from "./WriterConfig.js"

/**
 * What a successful `writeBatch` did.
 *
 * @since 0.1.0
 */
export interface WriteResult {
  /** Records delivered: all of the batch. */
  readonly records: number
  /** The `record_id` of each record, in the order given: the consumer's de-duplication key. */
  readonly recordIds: ReadonlyArray<string>
  /** PutRecords calls made, retries included. */
  readonly kinesisCalls: number
  /** Retry rounds after the first attempt. */
  readonly retries: number
  /** Record sends beyond the first (a record retried twice counts 2). */
  readonly retriedRecords: number
  /** Records offloaded to the large-payload store. */
  readonly largePayloads: number
  /** Bytes of the serialized envelopes before gzip. */
  readonly uncompressedBytes: number
  /** Bytes of Data on the stream, after gzip. */
  readonly compressedBytes: number
}

/**
 * Everything `writeBatch` can fail with. A payload build error (`SerializationError`,
 * `CompressionError`, `LargePayloadStoreError`) stops the batch before anything is sent
 * and names the record; a delivery failure is always a `WriteBatchError` naming every
 * record that did not reach the stream (its `cause` is the `KinesisError` of a call that
 * failed whole, when one did).
 *
 * @since 0.1.0
 */
export type WriteError = PrepareError | WriteBatchError

/**
 * Options of one `writeBatch` call.
 *
 * @since 0.1.0
 */
export interface WriteBatchOptions {
  /**
   * The retry schedule for this call, instead of the writer's backoff. It decides the delay
   * before each retry of the records that failed and when to stop.
   */
  readonly schedule?: Schedule.Schedule<unknown, unknown> | undefined
}

/**
 * The writer. Build it with {@link KinesisWriter.layer} or {@link KinesisWriter.layerConfig}.
 *
 * @example
 * ```ts
 * const result = yield* KinesisWriter.pipe(Effect.flatMap((w) => w.writeBatch(records)))
 * ```
 *
 * @since 0.1.0
 */
export class KinesisWriter extends Context.Tag("cygnus-kinesis-writer/KinesisWriter")<KinesisWriter, {
  /** The validated settings. */
  readonly config: ResolvedWriterConfig
  /** The stream's record limit in bytes (data plus partition key) the writer keeps to. */
  readonly recordLimitBytes: number
  /** The services the writer runs on, for what is built on it (the producer sends, measures and deletes through them). */
  readonly services: Context.Context<Kinesis | KinesisMetrics | LargePayloadStore>
  /** Publishes a batch; see {@link WriteError} for what it names on failure. */
  readonly writeBatch: (
    records: ReadonlyArray<DataFileV1>,
    options?: WriteBatchOptions
  ) => Effect.Effect<WriteResult, WriteError>
  /**
   * The first half of a single attempt, for callers who drive retries themselves: builds a
   * batch's payloads once (record ids, S3 offload, gzip). Pass the records to `putAttempt`
   * as many times as you retry.
   */
  readonly prepare: (records: ReadonlyArray<DataFileV1>) => Effect.Effect<PreparedBatch, PrepareError>
  /**
   * The second half: sends prepared records once with the partition keys of `attempt`
   * (0 first) and returns what was written and what failed, with retryability and whether
   * the outcome was ambiguous. Never fails. A `DeliveryLedger` sized to the batch, when
   * given, is kept up to date as calls start and finish (what was in flight at an
   * interruption).
   */
  readonly putAttempt: (
    records: ReadonlyArray<PreparedRecord>,
    attempt: number,
    ledger?: DeliveryLedger
  ) => Effect.Effect<AttemptOutcome>
}>() {
  /**
   * Builds a writer from options: validates them (a bad value is a `ConfigError` naming the
   * field and value) and, when `readStreamRecordLimit` is set, reads the stream's record
   * limit once. A `Compressor` in the context (e.g. one pool shared by several writers) is
   * used instead of the one `compressionWorkers` asks for.
   *
   * @since 0.1.0
   */
  static readonly make = (
    options: KinesisWriterOptions
  ): Effect.Effect<
    KinesisWriter["Type"],
    ConfigError.ConfigError | KinesisError,
    Kinesis | LargePayloadStore | KinesisMetrics | Scope.Scope
  > =>
    Effect.gen(function*() {
      const config = yield* resolveWriterConfig(options)
      const kinesis = yield* Kinesis
      const store = yield* LargePayloadStore
      const metrics = yield* KinesisMetrics
      const recordLimitBytes = config.readStreamRecordLimit
        ? yield* kinesis.describeStreamSummary(config.streamName, config.streamArn).pipe(
          Effect.map((s) => s.maxRecordSizeInKiB === undefined ? WriterDefaults.recordLimitBytes : s.maxRecordSizeInKiB * 1024)
        )
        : WriterDefaults.recordLimitBytes
      const compressor = yield* Effect.flatMap(
        Effect.serviceOption(Compressor),
        Option.match({ onNone: () => makeCompressor(config.compressionWorkers), onSome: Effect.succeed })
      )
      const services = Context.make(Kinesis, kinesis).pipe(Context.add(KinesisMetrics, metrics), Context.add(LargePayloadStore, store))
      const stream = config.streamName

      const context = Effect.map(Clock.currentTimeMillis, (now): PrepareContext => ({
        config,
        recordLimitBytes,
        store,
        compressor,
        // Whole milliseconds: a test clock may stand between two.
        creationTime: BigInt(Math.floor(now))
      }))

      const prepare = (records: ReadonlyArray<DataFileV1>) =>
        Effect.flatMap(context, (ctx) => prepareBatch(ctx, records)).pipe(
          Effect.tapError(() => metrics.batchWriteFailure(stream)),
          Effect.tap((batch) => metrics.largePayloads(stream, batch.largePayloads))
        )

      const putAttempt = (records: ReadonlyArray<PreparedRecord>, attempt: number, ledger?: DeliveryLedger) =>
        Effect.provide(deliverAttempt(config, records, attempt, ledger), services)

      /**
       * The first attempt as a pipeline: chunks are compressed (off the main thread) while
       * earlier chunks' calls are in flight, and a chunk's payloads are dropped once written.
       */
      const firstAttempt = (batch: SerializedBatch, delivery: BatchDelivery, bytes: ByteCounts) => {
        const outcomes: Array<AttemptOutcome> = []
        return Stream.fromIterable(batch.chunks).pipe(
          Stream.mapEffect(compressChunk),
          Stream.tap((prepared) =>
            Effect.sync(() => {
              for (const r of prepared) {
                bytes.uncompressed += r.uncompressedSize
                bytes.compressed += r.data.length
              }
            })
          ),
          Stream.flatMap((prepared) => Stream.fromIterable(planAttempt(config, prepared, 0))),
          Stream.mapEffect((call) => sendCall(config, call, 0, delivery.ledger), { concurrency: config.maxConcurrentCalls, unordered: true }),
          Stream.runForEach((outcome) => Effect.sync(() => outcomes.push(outcome))),
          // A chunk that could not be built stops the pipeline: every record not written is
          // named with that error (calls it cut short leave theirs maybeDelivered), none lost.
          Effect.catchAll((error) => Effect.sync(() => delivery.fail(error))),
          Effect.zipRight(Effect.sync(() => combineOutcomes(outcomes))),
          Effect.provide(services),
          Effect.withSpan("KinesisWriter.putAttempt", {
            attributes: { "kinesis.stream_name": stream, "kinesis.records": batch.records.length, "kinesis.attempt": 0 }
          })
        )
      }

      const defaultSchedule = backoff({ base: config.backoffBase, cap: config.backoffCap, maxRetries: config.maxRetries })

      const writeBatch = Effect.fn("KinesisWriter.writeBatch")(function*(
        records: ReadonlyArray<DataFileV1>,
        options?: WriteBatchOptions
      ) {
        yield* Effect.annotateCurrentSpan({ "kinesis.stream_name": stream, "kinesis.records": records.length })
        if (records.length === 0) return emptyResult
        const ctx = yield* context
        const batch = yield* serializeBatch(ctx, records).pipe(Effect.tapError(() => metrics.batchWriteFailure(stream)))
        yield* metrics.largePayloads(stream, batch.largePayloads)
        const delivery = new BatchDelivery(batch.records)
        const bytes: ByteCounts = { uncompressed: 0, compressed: 0 }
        const schedule = (options?.schedule ?? defaultSchedule).pipe(
          Schedule.onDecision((_, decision) =>
            ScheduleDecision.isContinue(decision)
              ? Effect.logWarning("retrying records that failed").pipe(
                Effect.annotateLogs({ stream, records: delivery.pending.length, attempt: delivery.attempts })
              )
              : Effect.void
          )
        )
        // Delivery runs interruptibly; whatever ends it, the batch's outcome is built from the
        // ledger, so an interrupted batch still says which records may have been delivered.
        return yield* Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(
            Effect.exit(restore(delivery.run(firstAttempt(batch, delivery, bytes), putAttempt, schedule))),
            (exit) => {
              if (Exit.isFailure(exit)) {
                return Cause.isInterruptedOnly(exit.cause)
                  ? Effect.failCause(Cause.sequential(exit.cause, Cause.fail(delivery.toError(stream, true, new Set()))))
                  : Effect.failCause(exit.cause)
              }
              return restore(finish(batch, delivery, bytes))
            }
          )
        )
        // The batch's scope holds the compressions started in phase 1.
      }, Effect.scoped)

      /** The batch's result, or its error after the objects of records certainly not delivered are deleted. */
      const finish = (
        batch: SerializedBatch,
        delivery: BatchDelivery,
        bytes: ByteCounts
      ): Effect.Effect<WriteResult, WriteBatchError> =>
        Effect.gen(function*() {
          yield* Effect.annotateCurrentSpan({ "kinesis.calls": delivery.calls, "kinesis.attempts": delivery.attempts })
          const undelivered = delivery.undelivered(false)
          if (undelivered.length === 0) {
            return {
              records: batch.records.length,
              recordIds: batch.records.map((r) => r.recordId),
              kinesisCalls: delivery.calls,
              retries: delivery.attempts - 1,
              retriedRecords: delivery.retriedRecords,
              largePayloads: batch.largePayloads,
              uncompressedBytes: bytes.uncompressed,
              compressedBytes: bytes.compressed
            }
          }
          const orphans = undelivered.filter((e) => e.largePayload !== undefined && !delivery.ledger.maybeDelivered(e.index))
          const deleted = new Set<number>()
          yield* Effect.forEach(orphans, (entry) =>
            store.delete(entry.largePayload!).pipe(
              Effect.timeout("10 seconds"),
              Effect.tap(() => deleted.add(entry.index)),
              Effect.tapError((e) =>
                Effect.logWarning("could not delete the large payload of an undelivered record").pipe(
                  Effect.annotateLogs({ stream, key: entry.largePayload!.key, error: String(e) })
                )
              ),
              Effect.ignore
            ), { concurrency: config.maxConcurrentUploads, discard: true })
          return yield* delivery.toError(stream, false, deleted)
        })

      return KinesisWriter.of({ config, recordLimitBytes, services, writeBatch, prepare, putAttempt })
    })

  /**
   * The writer as a layer, from options. Needs `Kinesis`, `LargePayloadStore` and
   * `KinesisMetrics`; fails with a `ConfigError` naming a bad field and its value.
   *
   * @example
   * ```ts
   * const WriterLive = KinesisWriter.layer({
   *   streamName: "my-kinesis-stream",
   *   logGroupId: "my-log-group-id",
   *   schemaName: "my-schema-name",
   *   accountId: "123456789012"
   * }).pipe(
   *   Layer.provide(Kinesis.layer(new KinesisClient({ maxAttempts: 1 }))),
   *   Layer.provide(LargePayloadStore.layerS3({ client: new S3Client({}), bucket: "my-large-payload-bucket" })),
   *   Layer.provide(KinesisMetrics.layerPrometheus(registry))
   * )
   * ```
   *
   * @since 0.1.0
   */
  static readonly layer = (
    options: KinesisWriterOptions
  ): Layer.Layer<KinesisWriter, ConfigError.ConfigError | KinesisError, Kinesis | LargePayloadStore | KinesisMetrics> =>
    Layer.scoped(KinesisWriter, KinesisWriter.make(options))

  /**
   * The writer as a layer, its options read through Effect `Config` (by default from the
   * environment: `KINESIS_STREAM_NAME`, `KINESIS_LOG_GROUP_ID`, `KINESIS_SCHEMA_NAME`,
   * `AWS_ACCOUNT_ID` and the optional settings listed on `writerOptionsConfig`).
   *
   * @since 0.1.0
   */
  static readonly layerConfig = (
    config: Config.Config<KinesisWriterOptions> = writerOptionsConfig
  ): Layer.Layer<KinesisWriter, ConfigError.ConfigError | KinesisError, Kinesis | LargePayloadStore | KinesisMetrics> =>
    Layer.scoped(KinesisWriter, Effect.flatMap(config, KinesisWriter.make))
}

/** The writer's compressor: the calling thread when `workers` is 0, else a lazily started pool. */
const makeCompressor = (workers: number): Effect.Effect<Compressor["Type"], never, Scope.Scope> =>
  workers === 0 ? Effect.succeed(Compressor.mainThread) : Compressor.makeLazyWorkerPool({ workers })

/** Bytes of a batch's envelopes before and after gzip, summed as chunks are compressed. */
interface ByteCounts {
  uncompressed: number
  compressed: number
}

const emptyResult: WriteResult = {
  records: 0,
  recordIds: [],
  kinesisCalls: 0,
  retries: 0,
  retriedRecords: 0,
  largePayloads: 0,
  uncompressedBytes: 0,
  compressedBytes: 0
}
