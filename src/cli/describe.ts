/**
 * `cygnus-kinesis describe`: a stream's shards (open and closed, hash ranges), mode,
 * retention and record size limit, and how the writer's partition keys spread over the open
 * shards with a `distributionFactor`.
 */
import { DescribeStreamSummaryCommand } from "@aws-sdk/client-kinesis"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Config, Console, Effect, Layer, Option } from "effect"
import { toKinesisError } from "../internal/awsError.js"
import { WriterDefaults } from "../internal/config.js"
import { bucketKeyPrefix } from "../internal/core/partitionKey.js"
import { hashKeyOf, ShardMap } from "../internal/core/routing.js"
import type { ShardRange } from "../Kinesis.js"
import { Kinesis } from "../Kinesis.js"
import type { AwsOptions } from "./common.js"
import {
  awsOptions,
  describeCommand,
  kinesisLayer,
  makeKinesisClient,
  REQUEST_TIMEOUT_MS,
  streamOption
} from "./common.js"

const options = {
  ...awsOptions,
  stream: streamOption,
  logGroupId: Options.text("log-group-id").pipe(
    Options.withPseudoName("TEXT"),
    Options.withDescription(
      "The writer's logGroupId, first part of its partition keys (default: $KINESIS_LOG_GROUP_ID)"
    ),
    Options.withFallbackConfig(Config.string("KINESIS_LOG_GROUP_ID")),
    Options.optional
  ),
  schemaName: Options.text("schema-name").pipe(
    Options.withPseudoName("TEXT"),
    Options.withDescription("The writer's schemaName (default: $KINESIS_SCHEMA_NAME)"),
    Options.withFallbackConfig(Config.string("KINESIS_SCHEMA_NAME")),
    Options.optional
  ),
  distributionFactor: Options.integer("distribution-factor").pipe(
    Options.withPseudoName("N"),
    Options.withDescription(
      `The writer's distributionFactor (default: $KINESIS_DISTRIBUTION_FACTOR, else ${WriterDefaults.distributionFactor})`
    ),
    Options.withFallbackConfig(Config.integer("KINESIS_DISTRIBUTION_FACTOR")),
    Options.withDefault(WriterDefaults.distributionFactor)
  ),
  json: Options.boolean("json").pipe(Options.withDescription("Print one JSON object instead of text"))
}

/** What DescribeStreamSummary says that `Kinesis.Service`'s summary leaves out. */
const streamFacts = (aws: AwsOptions, streamName: string) =>
  Effect.scoped(Effect.flatMap(makeKinesisClient(aws), (client) =>
    Effect.tryPromise({
      try: (signal) =>
        client.send(new DescribeStreamSummaryCommand({ StreamName: streamName }), { abortSignal: signal }),
      catch: toKinesisError("DescribeStreamSummary", streamName)
    }))).pipe(
      Effect.timeoutFail({
        duration: REQUEST_TIMEOUT_MS,
        onTimeout: () => toKinesisError("DescribeStreamSummary", streamName)(new Error("request timed out"))
      }),
      Effect.map(({ StreamDescriptionSummary: s }) => ({
        status: s?.StreamStatus ?? "UNKNOWN",
        mode: s?.StreamModeDetails?.StreamMode ?? "mode not reported",
        retentionHours: s?.RetentionPeriodHours,
        maxRecordSizeInKiB: s?.MaxRecordSizeInKiB,
        encryption: s?.EncryptionType ?? "NONE"
      }))
    )

/** How many of the writer's first-attempt partition keys land on each open shard. */
export const keySpread = (
  shards: ReadonlyArray<ShardRange>,
  parts: { readonly logGroupId: string; readonly schemaName: string },
  distributionFactor: number
): Map<string, Array<string>> => {
  const map = new ShardMap(shards)
  const spread = new Map<string, Array<string>>(map.shards.map((s) => [s.shardId, []]))
  const buckets = Math.max(1, Math.floor(distributionFactor))
  for (let bucket = 0; bucket < buckets; bucket++) {
    const key = `${bucketKeyPrefix(parts, bucket)}0`
    const shard = map.shardOf(hashKeyOf(key))
    if (shard !== undefined) spread.get(shard)!.push(key)
  }
  return spread
}

const hex = (n: bigint) => n.toString(16).padStart(32, "0")
const share = (s: ShardRange) => Number(((s.endingHashKey - s.startingHashKey + 1n) * 10_000n) >> 128n) / 100

/** The `describe` command. */
export const describe = Command.make("describe", options, (given) =>
  Effect.gen(function*() {
    const kinesis = yield* Kinesis
    const [facts, shards] = yield* Effect.all([
      streamFacts(given, given.stream),
      kinesis.listShards(given.stream)
    ], { concurrency: 2 })
    const logGroupId = Option.getOrElse(given.logGroupId, () => "<logGroupId>")
    const schemaName = Option.getOrElse(given.schemaName, () => "<schemaName>")
    const spread = keySpread(shards, { logGroupId, schemaName }, given.distributionFactor)
    if (given.json) {
      return yield* Console.log(JSON.stringify({
        streamName: given.stream,
        ...facts,
        shards: shards.map((s) => ({
          shardId: s.shardId,
          open: s.open,
          startingHashKey: s.startingHashKey.toString(),
          endingHashKey: s.endingHashKey.toString(),
          partitionKeys: spread.get(s.shardId) ?? []
        })),
        distributionFactor: given.distributionFactor
      }))
    }
    const open = shards.filter((s) => s.open)
    const lines = [
      `stream ${given.stream}  ${facts.status}  ${
        facts.mode === "mode not reported" ? facts.mode : facts.mode.toLowerCase()
      }  retention ${facts.retentionHours === undefined ? "unknown" : `${facts.retentionHours} h`}  record limit ${
        facts.maxRecordSizeInKiB === undefined ? "1024 KiB (not reported)" : `${facts.maxRecordSizeInKiB} KiB`
      }  encryption ${facts.encryption.toLowerCase()}`,
      `shards: ${open.length} open, ${shards.length - open.length} closed`,
      ...shards.map((s) =>
        `  ${s.shardId}  ${s.open ? "open  " : "closed"}  ${hex(s.startingHashKey)}..${hex(s.endingHashKey)}  ${
          share(s).toFixed(2).padStart(6)
        }%${s.open ? `  ${String(spread.get(s.shardId)?.length ?? 0).padStart(3)} key(s)` : ""}`
      ),
      `partition keys ${logGroupId}-${schemaName}-{0..${
        given.distributionFactor - 1
      }}-{attempt}, distributionFactor ${given.distributionFactor}:`,
      ...spreadSummary(spread, given.distributionFactor, open.length)
    ]
    yield* Console.log(lines.join("\n"))
  }).pipe(Effect.provide(Layer.suspend(() => kinesisLayer(given))))).pipe(
    Command.withDescription(describeCommand(
      "Show a stream's shards (open and closed, hash ranges), mode, retention and record size limit, and how the writer's first-attempt partition keys spread over the open shards.",
      "cygnus-kinesis describe --stream orders --log-group-id lg --schema-name orders --distribution-factor 16"
    ))
  )

const spreadSummary = (spread: Map<string, Array<string>>, factor: number, openShards: number): Array<string> => {
  const counts = [...spread.values()].map((keys) => keys.length)
  const idle = counts.filter((n) => n === 0).length
  const most = Math.max(0, ...counts)
  const even = factor / Math.max(1, openShards)
  return [
    `  ${factor} key(s) over ${openShards} open shard(s): ${idle} shard(s) get none, the busiest gets ${most} (${
      even === 0 ? "-" : (most / even).toFixed(2)
    }× an even share)`,
    ...(idle > 0 ? [`  a higher distributionFactor spreads records over more shards`] : [])
  ]
}
