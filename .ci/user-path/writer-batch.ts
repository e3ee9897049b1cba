/**
 * The program .ci/user-path.sh bundles into ONE file with esbuild (a Lambda, a container with
 * no node_modules) and runs against the local servers: one batch of 20 records, 3 of them
 * large enough to go through S3, written with the quick start's set-up (clients configured by
 * the environment alone). Batches of 8 records or more are gzipped in the writer's worker
 * threads, so this exercises the worker start inside a bundle.
 *
 * Prints one JSON line: what the write did and how long it took, from the start of the
 * program to the end of the batch.
 */
import { S3Client } from "@aws-sdk/client-s3"
import { create } from "@bufbuild/protobuf"
import { Effect, Layer } from "effect"
import { Registry } from "prom-client"
import {
  DataFileV1Schema,
  FileFormat,
  Kinesis,
  KinesisMetrics,
  KinesisWriter,
  LargePayloadStore
} from "cygnus-kinesis-writer"

const started = performance.now()

const WriterLive = KinesisWriter.layer({
  streamName: "my-kinesis-stream",
  logGroupId: "my-log-group-id",
  schemaName: "my-schema-name",
  accountId: "123456789012",
  distributionFactor: 10,
  largePayloadThreshold: 1024,
  maxRetries: 3
}).pipe(
  Layer.provide(Kinesis.layerClient()), // keep-alive connections, maxAttempts: 1; destroyed with the layer
  Layer.provide(LargePayloadStore.layerS3({ client: new S3Client({ maxAttempts: 1 }), bucket: "my-large-payload-bucket" })),
  Layer.provide(KinesisMetrics.layerPrometheus(new Registry()))
)

const RECORDS = 20
const LARGE = 3

const records = Array.from({ length: RECORDS }, (_, i) => {
  const partition: Record<string, string> = { event_date: "2026-11-26", shard: String(i % 4) }
  // A record over largePayloadThreshold (1 KiB serialized) goes to S3.
  if (i < LARGE) {
    for (let k = 0; k < 40; k++) partition[`extra_${k}`] = `value-${i}-${k}-${"x".repeat(24)}`
  }
  return create(DataFileV1Schema, {
    filePath: `s3://warehouse/analytics/events/data/event_date=2026-11-26/${String(i).padStart(5, "0")}-0-a1b2c3.parquet`,
    fileFormat: FileFormat.PARQUET,
    partition,
    recordCount: BigInt(1_000 + i),
    fileSizeInBytes: BigInt(1_000_000 + i)
  })
})

const result = await Effect.runPromise(
  Effect.gen(function*() {
    const writer = yield* KinesisWriter
    return yield* writer.writeBatch(records)
  }).pipe(Effect.provide(WriterLive))
)
console.log(JSON.stringify({
  records: result.records,
  kinesisCalls: result.kinesisCalls,
  largePayloads: result.largePayloads,
  ms: Math.round(performance.now() - started)
}))
