/**
 * A user's program over the four entry points, never run: `tsconfig.dts.json` compiles it,
 * beside the examples that import the package by its name, against the built package
 * (`dist/`, reached through package.json "exports"), with `skipLibCheck` off, so a declaration
 * that `stripInternal` removed while a public one still names it fails here as it would in a
 * user's project. (`tsconfig.json` compiles it against `src/` as well, through its `paths`.)
 * The examples build the writer and the producer; this names what they do not.
 */
import { create } from "@bufbuild/protobuf"
import { DataFileV1Schema, KinesisLimits, KinesisWriter, MetricNames, WriteBatchError } from "cygnus-kinesis-writer"
import type { DataFileV1 } from "cygnus-kinesis-writer"
import type { MetricsServerError } from "cygnus-kinesis-writer/prometheus"
import { MetricsServer, PrometheusMetrics } from "cygnus-kinesis-writer/prometheus"
import type { DecodeError, LargePayloadStoreError } from "cygnus-kinesis-writer/reader"
import { LargePayloadStore, RecordReader, StreamReader } from "cygnus-kinesis-writer/reader"
import { KinesisTest, LambdaEvent, RecordGenerator, ShardSimulator } from "cygnus-kinesis-writer/testing"
import { Effect, Layer, Stream } from "effect"
import { Registry } from "prom-client"

const record: DataFileV1 = create(DataFileV1Schema, { filePath: "s3://b/k.parquet" })

/** A batch through the writer, on a simulated stream; a batch that fails is told apart by its class. */
export const written = KinesisWriter.pipe(
  Effect.flatMap((writer) => writer.writeBatch([record])),
  Effect.catchIf((error) => error instanceof WriteBatchError, (error) => Effect.succeed(error.message)),
  Effect.provide(
    KinesisWriter.layer({ streamName: "s", logGroupId: "lg", schemaName: "orders", accountId: "123456789012" })
  ),
  Effect.provide(ShardSimulator.layer({ shards: 2, seed: 1 })),
  Effect.provide(Layer.merge(LargePayloadStore.layerMemory(), PrometheusMetrics.layer(new Registry())))
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

/** The testing entry's Lambda events, and the Prometheus entry's metrics server. */
export const event = LambdaEvent.fromDataFiles(RecordGenerator.makeDataFiles(2, { seed: 7 }))
export const server: Layer.Layer<MetricsServer, MetricsServerError> = MetricsServer.layer({
  registry: new Registry(),
  port: 0
})
