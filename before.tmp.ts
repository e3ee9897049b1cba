import { ConfigProvider, Effect, Layer } from "effect"
import { NodeRuntime } from "@effect/platform-node"
import { KinesisMetrics, KinesisWriter, LargePayloadStore, KinesisProducer } from "./src/index.js"
import { KinesisTest } from "./src/testing.js"
const deps = Layer.mergeAll(KinesisTest.layer(), LargePayloadStore.layerMemory(), KinesisMetrics.layerNoop)
const env = new Map([["KINESIS_STREAM_NAME","s"],["KINESIS_LOG_GROUP_ID","lg"],["KINESIS_SCHEMA_NAME","sc"],["AWS_ACCOUNT_ID", "1234"]])
const which = process.argv[2]
const W = KinesisWriter.layer({streamName:"s",logGroupId:"l",schemaName:"s",accountId:"123456789012"}).pipe(Layer.provide(deps))
const layer = which === "env" ? KinesisWriter.layerConfig().pipe(Layer.provide(deps)) :
  which === "linger" ? KinesisProducer.layer({ linger: "100 ms" }).pipe(Layer.provideMerge(W)) :
  KinesisProducer.layer({ linger: NaN }).pipe(Layer.provideMerge(W))
const prog = Effect.scoped(Layer.build(layer)).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(env)))
if (process.argv[3] === "main") NodeRuntime.runMain(prog)
else Effect.runPromise(prog)
