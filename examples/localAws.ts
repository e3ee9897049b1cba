import { KinesisMetrics, KinesisWriter } from "cygnus-kinesis-writer"
import { LocalAws, RecordGenerator } from "cygnus-kinesis-writer/testing"
import { Effect, Layer } from "effect"

// kinesalite and s3rver on free loopback ports, with the stream and bucket made; closed with the layer.
const LocalLive = LocalAws.layer({ streams: [{ name: "orders", shards: 2 }], buckets: ["orders-payloads"] })

const WriterLive = KinesisWriter.layer({
  streamName: "orders",
  logGroupId: "lg",
  schemaName: "orders",
  accountId: "123456789012"
}).pipe(
  Layer.provide(Layer.merge(LocalAws.layerKinesis, LocalAws.layerStore("orders-payloads"))),
  Layer.provide(KinesisMetrics.layerNoop),
  Layer.provideMerge(LocalLive) // keeps LocalAws itself in reach: endpoints, client configs, createStream
)

export const main = Effect.gen(function*() {
  const local = yield* LocalAws
  const writer = yield* KinesisWriter
  const result = yield* writer.writeBatch(RecordGenerator.makeDataFiles(100))
  yield* Effect.log(`${result.records} records written to kinesalite at ${local.kinesisEndpoint}`)
  return result
}).pipe(Effect.provide(WriterLive))

// In a script: Effect.runPromise(main). In a test: it.live("…", () => main).
