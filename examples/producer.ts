import { S3Client } from "@aws-sdk/client-s3"
import { create } from "@bufbuild/protobuf"
import {
  DataFileV1Schema,
  FileFormat,
  Kinesis,
  KinesisMetrics,
  KinesisProducer,
  KinesisWriter,
  LargePayloadStore
} from "cygnus-kinesis-writer"
import { Effect, Layer, Stream } from "effect"
import { Registry } from "prom-client"

const registry = new Registry()
const WriterLive = KinesisWriter.layer({
  streamName: "my-kinesis-stream",
  logGroupId: "my-log-group-id",
  schemaName: "my-schema-name",
  accountId: "123456789012"
}).pipe(
  Layer.provide(Kinesis.layerClient()), // keep-alive connections, maxAttempts: 1; destroyed with the layer
  Layer.provide(
    LargePayloadStore.layerS3({ client: new S3Client({ maxAttempts: 1 }), bucket: "my-large-payload-bucket" })
  ),
  Layer.provide(KinesisMetrics.layerPrometheus(registry))
)

// The producer runs on the writer: its stream, payload building, retry settings and metrics.
const ProducerLive = KinesisProducer.layer({
  linger: "100 millis", // a record waits at most this long for others to fill a call
  maxBufferedRecords: 10_000, // send() waits for room beyond these (backpressure)
  maxBufferedBytes: 64 * 1024 * 1024,
  recordTtl: "30 seconds", // not delivered by then: RecordUndeliveredError, errorCode "Expired"
  shutdownTimeout: "10 seconds", // on scope close, the time left to deliver what is buffered
  onUndelivered: (u) => Effect.logError("dead letter", u.recordId, u.errorCode, u.maybeDelivered),
  pace: true // shard-aware pacing: hold each shard under its limits instead of being throttled
}).pipe(Layer.provide(WriterLive))

const dataFile = (n: number) =>
  create(DataFileV1Schema, {
    filePath: `s3://warehouse/analytics/events/data/event_date=2026-11-26/${n}.parquet`,
    fileFormat: FileFormat.PARQUET,
    partition: { event_date: "2026-11-26" },
    recordCount: 125_000n,
    fileSizeInBytes: 48_213_337n
  })

const program = Effect.gen(function*() {
  const producer = yield* KinesisProducer

  // One record: waits for its own settlement.
  const receipt = yield* producer.send(dataFile(0))
  console.log(`${receipt.recordId} on ${receipt.shardId} at ${receipt.sequenceNumber}, ${receipt.attempts} attempt(s)`)

  // Many fibers at once; each send settles on its own.
  yield* Effect.forEach(
    Array.from({ length: 1_000 }, (_, i) => dataFile(i + 1)),
    (record) =>
      producer.send(record).pipe(
        Effect.catchTag("RecordUndeliveredError", (e) => Effect.logWarning(`not delivered: ${e.message}`))
      ),
    { concurrency: "unbounded", discard: true }
  )

  // Fire and forget, then wait for everything accepted so far, without waiting for linger.
  yield* Effect.forkDaemon(producer.send(dataFile(5_000)))
  yield* producer.flush

  // A stream, with backpressure; fails with ProducerSinkError naming every element not delivered.
  yield* Stream.range(10_000, 10_999).pipe(
    Stream.map(dataFile),
    Stream.run(producer.sink),
    Effect.catchTag(
      "ProducerSinkError",
      (e) => Effect.logError(`${e.undelivered.length} not delivered, ${e.delivered} delivered`)
    )
  )
})

// Leaving Effect.provide closes the producer's scope: what is buffered is delivered within shutdownTimeout.
await Effect.runPromise(program.pipe(Effect.provide(ProducerLive)))
console.log(await registry.metrics())
