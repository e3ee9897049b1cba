/**
 * The `KinesisWriter` service: `writeBatch` publishes `DataFileV1` records to a Kinesis
 * stream — payloads built once, large ones offloaded to S3, PutRecords calls within every
 * Kinesis limit, only failed records retried on an exponential, jittered, capped backoff —
 * and either returns a `WriteResult` or names every record it could not deliver.
 *
 * @since 0.1.0
 */
import type { Config, ConfigError, Duration, Schedule, Scope } from "effect"
import { Context, Effect, Layer } from "effect"
import type { KinesisError, WriteBatchError } from "./Errors.js"
import type { DataFileV1 } from "./gen/cygnus/v1/data_file_pb.js"
import type { KinesisWriterOptions } from "./internal/config.js"
import { fromEnv, unwrapOptions } from "./internal/config.js"
import type { AttemptOutcome } from "./internal/delivery.js"
import type { PreparedBatch, PreparedRecord, PrepareError } from "./internal/prepare.js"
import * as internal from "./internal/writer.js"
import type { Kinesis } from "./Kinesis.js"
import type { KinesisMetrics } from "./KinesisMetrics.js"
import type { LargePayloadStore } from "./LargePayloadStore.js"

export {
  AggregationDefaults,
  type AggregationOptions,
  type DurationOption,
  type KinesisWriterOptions,
  type ResolvedAggregation,
  WriterDefaults
} from "./internal/config.js"
export { KinesisLimits } from "./internal/core/limits.js"
export type { AttemptOutcome, FailedRecord, WrittenRecord } from "./internal/delivery.js"
export type { BatchEntry, PreparedBatch, PreparedRecord, PrepareError } from "./internal/prepare.js"

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
  /**
   * Kinesis records sent on the first attempt. `records` without aggregation (one Kinesis
   * record each); with `aggregation`, fewer: the records that share a partition key travel
   * together.
   */
  readonly kinesisRecords: number
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
  /**
   * How long this call may take before it stops sending, counted from the call (payload
   * building included). When it passes, calls in flight are aborted, nothing more is sent,
   * and the batch fails with a `WriteBatchError` naming every record not written with the
   * error code `DeadlineExceeded` (`maybeDelivered` for those in flight). The objects of
   * records certainly not on the stream are deleted after it, each delete bounded by
   * `requestTimeout`. Without it, only the schedule ends the retries: with one that never
   * stops, interrupt the fiber to end the batch.
   */
  readonly deadline?: Duration.DurationInput | undefined
}

/**
 * The writer. Build it with {@link KinesisWriter.layer} or {@link KinesisWriter.layerConfig};
 * `yield* KinesisWriter` gives its {@link KinesisWriter.Service}.
 *
 * @example
 * ```ts
 * const result = yield* KinesisWriter.pipe(Effect.flatMap((w) => w.writeBatch(records)))
 * ```
 *
 * @since 0.1.0
 */
export class KinesisWriter extends Context.Tag("cygnus-kinesis-writer/KinesisWriter")<
  KinesisWriter,
  KinesisWriter.Service
>() {
  /**
   * Builds a writer from options: validates them (a bad value is a `ConfigError` naming the
   * field and value) and, when `readStreamRecordLimit` is set, reads the stream's record
   * limit once. A `Compressor` in the context (e.g. one pool shared by several writers) is
   * used instead of the one `compressionWorkers` asks for.
   *
   * @since 0.1.0
   */
  static readonly make: (
    options: KinesisWriterOptions
  ) => Effect.Effect<
    KinesisWriter.Service,
    ConfigError.ConfigError | KinesisError,
    Kinesis | LargePayloadStore | KinesisMetrics | Scope.Scope
  > = internal.make

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
    Layer.scoped(KinesisWriter, internal.make(options))

  /**
   * The writer as a layer, each option read through Effect `Config`: the caller says where
   * each comes from. Without an argument the options come from the environment, as
   * {@link KinesisWriter.fromEnv} lists.
   *
   * @example
   * ```ts
   * const WriterLive = KinesisWriter.layerConfig({
   *   ...KinesisWriter.fromEnv,
   *   streamName: Config.string("ORDERS_STREAM"),
   *   maxRetries: Config.succeed(5)
   * })
   * ```
   *
   * @since 0.1.0
   */
  static readonly layerConfig = (
    config: Config.Config.Wrap<KinesisWriterOptions> = fromEnv
  ): Layer.Layer<KinesisWriter, ConfigError.ConfigError | KinesisError, Kinesis | LargePayloadStore | KinesisMetrics> =>
    Layer.scoped(KinesisWriter, Effect.flatMap(unwrapOptions(config), internal.make))

  /**
   * Where {@link KinesisWriter.layerConfig} reads each option by default: `KINESIS_STREAM_NAME`,
   * `KINESIS_LOG_GROUP_ID`, `KINESIS_SCHEMA_NAME`, `AWS_ACCOUNT_ID` (required), and
   * `KINESIS_STREAM_ARN`, `KINESIS_DISTRIBUTION_FACTOR`, `KINESIS_LARGE_PAYLOAD_THRESHOLD`,
   * `KINESIS_MAX_RETRIES`, `KINESIS_BACKOFF_BASE`, `KINESIS_BACKOFF_CAP`,
   * `KINESIS_MAX_REQUEST_BYTES`, `KINESIS_READ_STREAM_RECORD_LIMIT`,
   * `KINESIS_MAX_CONCURRENT_CALLS`, `KINESIS_MAX_CONCURRENT_UPLOADS`,
   * `KINESIS_COMPRESSION_LEVEL`, `KINESIS_COMPRESSION_WORKERS`, `KINESIS_REQUEST_TIMEOUT`,
   * `KINESIS_AGGREGATION` (`true` turns aggregation on), `KINESIS_AGGREGATION_MAX_RECORDS`,
   * `KINESIS_AGGREGATION_MAX_BYTES`, `KINESIS_AGGREGATION_MAX_MEMBER_BYTES`.
   *
   * @since 0.1.0
   */
  static readonly fromEnv: Config.Config.Wrap<KinesisWriterOptions> = fromEnv
}

/**
 * @since 0.1.0
 */
export declare namespace KinesisWriter {
  /**
   * What `yield* KinesisWriter` gives.
   *
   * @since 0.1.0
   */
  export interface Service {
    /** Publishes a batch; see {@link WriteError} for what it names on failure. */
    readonly writeBatch: (
      records: ReadonlyArray<DataFileV1>,
      options?: WriteBatchOptions
    ) => Effect.Effect<WriteResult, WriteError>
    /**
     * The first half of a single attempt, for callers who drive retries themselves: builds a
     * batch's payloads once (record ids, S3 offload, gzip). Pass the records to `putAttempt`
     * as many times as you retry. With `aggregation` on, a prepared record may be an
     * aggregate: its `members` are the logical records it carries, written or failed together.
     */
    readonly prepare: (records: ReadonlyArray<DataFileV1>) => Effect.Effect<PreparedBatch, PrepareError>
    /**
     * The second half: sends prepared records once with the partition keys of `attempt`
     * (0 first) and returns what was written (with shard and sequence number) and what
     * failed, with retryability and whether the outcome was ambiguous. Never fails. A
     * `DeliveryLedger` sized to the batch, when given, is kept up to date as calls start and
     * finish (what was in flight at an interruption).
     */
    readonly putAttempt: (
      records: ReadonlyArray<PreparedRecord>,
      attempt: number
    ) => Effect.Effect<AttemptOutcome>
  }
}
