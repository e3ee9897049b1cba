/**
 * The `KinesisWriter` service: `writeBatch` publishes `DataFileV1` records to a Kinesis
 * stream — payloads built once, large ones offloaded to S3, PutRecords calls within every
 * Kinesis limit, only failed records retried on an exponential, jittered, capped backoff —
 * and either returns a `WriteResult` or names every record it could not deliver.
 *
 * @since 0.1.0
 */
import type { ConfigError } from "effect"
import { Clock, Config, Context, Effect, Layer, Schedule } from "effect"
import type { UndeliveredRecord } from "../errors.js"
import { KinesisError, WriteBatchError } from "../errors.js"
import type { DataFileV1 } from "../gen/cygnus/v1/data_file_pb.js"
import { Kinesis } from "../services/Kinesis.js"
import { KinesisMetrics } from "../services/KinesisMetrics.js"
import { LargePayloadStore } from "../services/LargePayloadStore.js"
import { backoff } from "./Backoff.js"
import type { AttemptOutcome, FailedRecord } from "./Delivery.js"
import { deliverAttempt } from "./Delivery.js"
import type { PreparedBatch, PrepareError, PreparedRecord } from "./PreparedBatch.js"
import { prepareBatch } from "./PreparedBatch.js"
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
   * (0 first) and returns what was written and what failed, with retryability. Never fails.
   */
  readonly putAttempt: (records: ReadonlyArray<PreparedRecord>, attempt: number) => Effect.Effect<AttemptOutcome>
}>() {
  /**
   * Builds a writer from options: validates them (a bad value is a `ConfigError` naming the
   * field and value) and, when `readStreamRecordLimit` is set, reads the stream's record
   * limit once.
   *
   * @since 0.1.0
   */
  static readonly make = (
    options: KinesisWriterOptions
  ): Effect.Effect<KinesisWriter["Type"], ConfigError.ConfigError | KinesisError, Kinesis | LargePayloadStore | KinesisMetrics> =>
    Effect.gen(function*() {
      const config = yield* resolveWriterConfig(options)
      const kinesis = yield* Kinesis
      const store = yield* LargePayloadStore
      const metrics = yield* KinesisMetrics
      const recordLimitBytes = config.readStreamRecordLimit
        ? yield* kinesis.describeStreamSummary(config.streamName).pipe(
          Effect.map((s) => s.maxRecordSizeInKiB === undefined ? WriterDefaults.recordLimitBytes : s.maxRecordSizeInKiB * 1024)
        )
        : WriterDefaults.recordLimitBytes
      const services = Context.make(Kinesis, kinesis).pipe(Context.add(KinesisMetrics, metrics))
      const stream = config.streamName

      const prepare = (records: ReadonlyArray<DataFileV1>) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          prepareBatch({ config, recordLimitBytes, store, creationTime: BigInt(now) }, records)).pipe(
            Effect.tapError(() => metrics.batchWriteFailure(stream)),
            Effect.tap((batch) => metrics.largePayloads(stream, batch.largePayloads))
          )

      const putAttempt = (records: ReadonlyArray<PreparedRecord>, attempt: number) =>
        Effect.provide(deliverAttempt(config, records, attempt), services)

      const defaultSchedule = backoff({ base: config.backoffBase, cap: config.backoffCap, maxRetries: config.maxRetries })

      const writeBatch = Effect.fn("KinesisWriter.writeBatch")(function*(
        records: ReadonlyArray<DataFileV1>,
        options?: WriteBatchOptions
      ) {
        yield* Effect.annotateCurrentSpan({ "kinesis.stream_name": stream, "kinesis.records": records.length })
        if (records.length === 0) return emptyResult
        const batch = yield* prepare(records)

        // Delivery state across attempts: only what is still pending is sent again.
        let pending: ReadonlyArray<PreparedRecord> = batch.records
        let lastFailures: ReadonlyArray<FailedRecord> = []
        const givenUp: Array<FailedRecord> = []
        let attempts = 0
        let calls = 0
        let retriedRecords = 0
        let fatal: KinesisError | undefined
        let lastCallError: KinesisError | undefined

        const attempt = Effect.suspend(() => putAttempt(pending, attempts)).pipe(
          Effect.flatMap((outcome) => {
            if (attempts > 0) retriedRecords += pending.length
            attempts++
            calls += outcome.calls
            lastCallError = outcome.callErrors.at(-1) ?? lastCallError
            fatal = outcome.callErrors.find((e) => !e.retryable)
            const retryable: Array<FailedRecord> = []
            for (const f of outcome.failed) (f.retryable && fatal === undefined ? retryable : givenUp).push(f)
            lastFailures = retryable
            pending = retryable.map((f) => f.record)
            return pending.length === 0 ? Effect.void : Effect.fail(RetryPending)
          })
        )
        yield* attempt.pipe(
          Effect.tapError(() =>
            Effect.logWarning("retrying records that failed").pipe(
              Effect.annotateLogs({ stream, records: pending.length, attempt: attempts })
            )
          ),
          Effect.retry(options?.schedule ?? defaultSchedule),
          Effect.ignore
        )
        yield* Effect.annotateCurrentSpan({ "kinesis.calls": calls, "kinesis.attempts": attempts })

        const undeliveredFailures = [...givenUp, ...lastFailures]
        if (undeliveredFailures.length > 0) {
          const undelivered = undeliveredFailures
            .map((f): UndeliveredRecord => ({
              record: f.record.record,
              index: f.record.index,
              recordId: f.record.recordId,
              errorCode: f.errorCode,
              errorMessage: f.errorMessage,
              largePayloadKey: f.record.largePayload?.key
            }))
            .sort((a, b) => a.index - b.index)
          return yield* new WriteBatchError({
            streamName: stream,
            undelivered,
            delivered: records.length - undelivered.length,
            attempts,
            cause: fatal ?? lastCallError
          })
        }
        return {
          records: records.length,
          recordIds: batch.records.map((r) => r.recordId),
          kinesisCalls: calls,
          retries: attempts - 1,
          retriedRecords,
          largePayloads: batch.largePayloads,
          uncompressedBytes: batch.uncompressedBytes,
          compressedBytes: batch.compressedBytes
        } satisfies WriteResult
      })

      return KinesisWriter.of({ config, recordLimitBytes, writeBatch, prepare, putAttempt })
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
    Layer.effect(KinesisWriter, KinesisWriter.make(options))

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
    Layer.effect(KinesisWriter, Effect.flatMap(config, KinesisWriter.make))
}

const RetryPending = { _tag: "RetryPending" } as const

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
