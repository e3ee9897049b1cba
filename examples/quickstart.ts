import { S3Client } from "@aws-sdk/client-s3"
import { create } from "@bufbuild/protobuf"
import {
  DataFileV1Schema,
  FileFormat,
  Kinesis,
  KinesisMetrics,
  KinesisWriter,
  LargePayloadStore
} from "cygnus-kinesis-writer"
import { Effect, Layer } from "effect"
import { Registry } from "prom-client"

const registry = new Registry()
const WriterLive = KinesisWriter.layer({
  streamName: "my-kinesis-stream",
  logGroupId: "my-log-group-id",
  schemaName: "my-schema-name",
  accountId: "123456789012",
  distributionFactor: 10,
  largePayloadThreshold: 1024,
  maxRetries: 3
}).pipe(
  // A Kinesis client that keeps its connections (HTTP/1.1 keep-alive) and leaves retries to the writer
  // (maxAttempts: 1): the writer retries only the records that failed. Destroyed with the layer.
  Layer.provide(Kinesis.layerClient()),
  Layer.provide(
    LargePayloadStore.layerS3({ client: new S3Client({ maxAttempts: 1 }), bucket: "my-large-payload-bucket" })
  ),
  Layer.provide(KinesisMetrics.layerPrometheus(registry))
)

const records = [
  create(DataFileV1Schema, {
    filePath: "s3://warehouse/analytics/events/data/event_date=2026-11-26/00000-0-a1b2c3.parquet",
    fileFormat: FileFormat.PARQUET,
    partition: { event_date: "2026-11-26" },
    recordCount: 125_000n,
    fileSizeInBytes: 48_213_337n
  })
]

const result = await Effect.runPromise(
  Effect.gen(function*() {
    const writer = yield* KinesisWriter
    return yield* writer.writeBatch(records)
  }).pipe(Effect.provide(WriterLive))
)
console.log(`${result.records} records in ${result.kinesisCalls} call(s)`)
console.log(await registry.metrics())
