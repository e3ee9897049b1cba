/**
 * A user's program over the four entry points, never run: `tsconfig.dts.json` compiles it
 * against the built package (`dist/`, reached by the package's own name through `exports`),
 * with `skipLibCheck` off, so a declaration that `stripInternal` removed while a public one
 * still names it fails here as it would in a user's project. (`tsconfig.json` compiles it
 * against `src/` as well, through its `paths`.)
 */
import { create } from "@bufbuild/protobuf"
import {
  DataFileV1Schema,
  FileFormat,
  Kinesis,
  KinesisLimits,
  KinesisMetrics,
  KinesisProducer,
  KinesisWriter,
  LargePayloadStore,
  MetricNames,
  WriteBatchError
} from "cygnus-kinesis-writer"
import type { DataFileV1, RecordReceipt, UndeliveredRecord, WriteResult } from "cygnus-kinesis-writer"
import type { MetricsServerError } from "cygnus-kinesis-writer/prometheus"
import { MetricsServer, PrometheusMetrics } from "cygnus-kinesis-writer/prometheus"
import { RecordReader, StreamReader } from "cygnus-kinesis-writer/reader"
import type { DecodeError, LargePayloadStoreError } from "cygnus-kinesis-writer/reader"
import { KinesisTest, LambdaEvent, LocalAws, RecordGenerator, ShardSimulator } from "cygnus-kinesis-writer/testing"
import { Effect, Layer, Stream } from "effect"
import { Registry } from "prom-client"

const registry = new Registry()

const WriterLive = KinesisWriter.layer({
  streamName: "my-kinesis-stream",
  logGroupId: "my-log-group-id",
  schemaName: "my-schema-name",
  accountId: "123456789012"
}).pipe(
  Layer.provide(Kinesis.layerClient()),
  Layer.provide(LargePayloadStore.layerMemory()),
  Layer.provide(Layer.merge(KinesisMetrics.layerPrometheus(registry), PrometheusMetrics.layer(registry)))
)

const record: DataFileV1 = create(DataFileV1Schema, { filePath: "s3://b/k.parquet", fileFormat: FileFormat.PARQUET })

/** A batch through the writer; what did not arrive, named record by record. */
export const written: Effect.Effect<WriteResult | ReadonlyArray<UndeliveredRecord>, unknown> = KinesisWriter.pipe(
  Effect.flatMap((writer) => writer.writeBatch([record])),
  Effect.catchIf(
    (error): error is WriteBatchError => error instanceof WriteBatchError,
    (error) => Effect.succeed(error.undelivered)
  ),
  Effect.provide(WriterLive)
)

/** A record through the producer. */
export const sent: Effect.Effect<RecordReceipt, unknown> = KinesisProducer.pipe(
  Effect.flatMap((producer) => producer.send(record)),
  Effect.provide(KinesisProducer.layer()),
  Effect.provide(WriterLive),
  Effect.scoped
)

/** Numbers and names a user reads. */
export const limits: { readonly records: number; readonly metric: string } = {
  records: KinesisLimits.maxRecordsPerCall,
  metric: MetricNames.writeAttempts
}

/** The reader: one record decoded, and the stream read. */
export const decoded: Effect.Effect<string, DecodeError | LargePayloadStoreError> = RecordReader.decodeRecord(
  new Uint8Array()
).pipe(
  Effect.map((one) => one.dataFile.filePath),
  Effect.provide(LargePayloadStore.layerMemory())
)
export const tail = StreamReader.stream({ streamName: "s", from: "trim-horizon", follow: false }).pipe(
  Stream.take(1),
  Stream.provideLayer(Layer.merge(KinesisTest.layer(), LargePayloadStore.layerMemory()))
)

/** The testing entry: a simulated stream, local servers, a Lambda event. */
export const simulated = Layer.merge(ShardSimulator.layer({ shards: 2, seed: 1 }), LocalAws.layer())
export const event = LambdaEvent.fromDataFiles(RecordGenerator.makeDataFiles(2, { seed: 7 }))

/** The Prometheus entry: the metrics server. */
export const server: Layer.Layer<MetricsServer, MetricsServerError> = MetricsServer.layer({ registry, port: 0 })
