/**
 * cygnus-kinesis-writer: publish `DataFileV1` manifests to Amazon Kinesis Data Streams with
 * Effect — protobuf + gzip on the wire, large records offloaded to S3 behind a pointer,
 * only failed records retried on an exponential backoff, Prometheus metrics.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { KinesisClient } from "@aws-sdk/client-kinesis"
 * import { S3Client } from "@aws-sdk/client-s3"
 * import { Registry } from "prom-client"
 * import { Kinesis, KinesisMetrics, KinesisWriter, LargePayloadStore } from "cygnus-kinesis-writer"
 *
 * const WriterLive = KinesisWriter.layer({
 *   streamName: "my-kinesis-stream",
 *   logGroupId: "my-log-group-id",
 *   schemaName: "my-schema-name",
 *   accountId: "123456789012"
 * }).pipe(
 *   Layer.provide(Kinesis.layer(new KinesisClient({ maxAttempts: 1 }))),
 *   Layer.provide(LargePayloadStore.layerS3({ client: new S3Client({}), bucket: "my-large-payload-bucket" })),
 *   Layer.provide(KinesisMetrics.layerPrometheus(new Registry()))
 * )
 * ```
 *
 * @since 0.1.0
 */

/** Errors: one tagged class per failure domain. @since 0.1.0 */
export * from "./errors.js"

/** The generated wire contract (`cygnus.v1`): message types, schemas and enums. @since 0.1.0 */
export * from "./gen/cygnus/v1/data_file_pb.js"
/** @since 0.1.0 */
export * from "./gen/cygnus/v1/data_file_entry_pb.js"

/** The codec between `DataFileV1` and Kinesis record bytes. @since 0.1.0 */
export * as RecordCodec from "./codec/RecordCodec.js"

/** The `Kinesis` service and its layers. @since 0.1.0 */
export { Kinesis, type PutRecordsEntry, type PutRecordsRequest, type PutRecordsResultEntry, type StreamSummary } from "./services/Kinesis.js"
/** The `LargePayloadStore` service: S3 and in-memory. @since 0.1.0 */
export {
  LargePayloadStore,
  type MemoryStore,
  type PayloadLocation,
  type S3StoreOptions,
  type ServerSideEncryption
} from "./services/LargePayloadStore.js"
/** The `KinesisMetrics` service: Prometheus, Effect `Metric`, no-op. @since 0.1.0 */
export { EffectMetrics, KinesisMetrics, LATENCY_BUCKETS, MetricHelp, MetricNames, type PutRecordsOutcome } from "./services/KinesisMetrics.js"

/** The writer. @since 0.1.0 */
export { KinesisWriter, type WriteBatchOptions, type WriteError, type WriteResult } from "./writer/KinesisWriter.js"
/** The writer's settings. @since 0.1.0 */
export {
  type KinesisWriterOptions,
  resolveWriterConfig,
  type ResolvedWriterConfig,
  WriterDefaults,
  writerOptionsConfig
} from "./writer/WriterConfig.js"
/** The retry schedule. @since 0.1.0 */
export { backoff } from "./writer/Backoff.js"
/** Partition keys. @since 0.1.0 */
export { distributionBucket, fnv1a32, partitionKey } from "./writer/PartitionKey.js"
/** The single-attempt building blocks. @since 0.1.0 */
export { type AttemptOutcome, type FailedRecord, planCalls, RETRYABLE_RECORD_ERRORS } from "./writer/Delivery.js"
/** @since 0.1.0 */
export type { PreparedBatch, PrepareError, PreparedRecord } from "./writer/PreparedBatch.js"

/** The producer: `send` one record at a time, collected into calls. @since 0.1.0 */
export { KinesisProducer, type KinesisProducerOptions, type RecordReceipt, type SendError } from "./producer/KinesisProducer.js"

/** The reader: Data back to `DataFileInfo` + `DataFileV1`. @since 0.1.0 */
export * as RecordReader from "./reader/RecordReader.js"

/** A scriptable `Kinesis` test double. @since 0.1.0 */
export * as KinesisTest from "./testing/KinesisTest.js"
/** Realistic `DataFileV1` records for tests, demos and benchmarks. @since 0.1.0 */
export * as RecordGenerator from "./testing/RecordGenerator.js"

/** The Prometheus scrape endpoint (`@effect/platform` HttpServer on Node). @since 0.1.0 */
export { MetricsServer, MetricsServerDefaults, type MetricsServerOptions } from "./http/MetricsServer.js"

/** A shard-throttling Kinesis simulator with seeded faults, for tests and benchmarks. @since 0.1.0 */
export * as ShardSimulator from "./testing/ShardSimulator.js"
