/**
 * cygnus-kinesis-writer: publish `DataFileV1` manifests to Amazon Kinesis Data Streams with
 * Effect — protobuf + gzip on the wire, large records offloaded to S3 behind a pointer,
 * only failed records retried on an exponential backoff, metrics for Prometheus or Effect.
 *
 * Other entry points: `cygnus-kinesis-writer/reader` (the consumer side alone),
 * `cygnus-kinesis-writer/testing` (test doubles, record generator, shard simulator),
 * `cygnus-kinesis-writer/prometheus` (Prometheus metrics and the `/metrics` server).
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { S3Client } from "@aws-sdk/client-s3"
 * import { Kinesis, KinesisMetrics, KinesisWriter, LargePayloadStore } from "cygnus-kinesis-writer"
 *
 * const WriterLive = KinesisWriter.layer({
 *   streamName: "my-kinesis-stream",
 *   logGroupId: "my-log-group-id",
 *   schemaName: "my-schema-name",
 *   accountId: "123456789012"
 * }).pipe(
 *   Layer.provide(Kinesis.layerClient()), // keep-alive connections, maxAttempts: 1
 *   Layer.provide(LargePayloadStore.layerS3({ client: new S3Client({ maxAttempts: 1 }), bucket: "my-large-payload-bucket" })),
 *   Layer.provide(KinesisMetrics.layerEffect)
 * )
 * ```
 *
 * @since 0.1.0
 */

/** The writer: `writeBatch`, and the single-attempt building blocks. @since 0.1.0 */
export * from "./KinesisWriter.js"

/** The producer: records sent one at a time, collected into calls, each with its receipt. @since 0.1.0 */
export * from "./KinesisProducer.js"

/** Kinesis Data Streams, narrowed to what the writer needs. @since 0.1.0 */
export * from "./Kinesis.js"

/** Where large payloads go: S3, or memory. @since 0.1.0 */
export * from "./LargePayloadStore.js"

/** The writer's metrics: Prometheus, Effect `Metric`, or none. @since 0.1.0 */
export * from "./KinesisMetrics.js"

/** gzip, on the calling thread or in worker threads. @since 0.1.0 */
export * from "./Compressor.js"

/** The typed errors. @since 0.1.0 */
export * from "./Errors.js"

/** The wire contract: message types, schemas and enums. @since 0.1.0 */
export * from "./Contract.js"

/** The codec between `DataFileV1` and Kinesis record bytes. @since 0.1.0 */
export * as RecordCodec from "./RecordCodec.js"

/** The reader (also alone in `cygnus-kinesis-writer/reader`). @since 0.1.0 */
export * as RecordReader from "./RecordReader.js"
