/**
 * P7 (b)'s stream: one simulated stream (`ShardSimulator`, live clock, Kinesis' limits per
 * shard) served over loopback HTTP in a process of its own, in the AWS JSON 1.1 protocol the
 * SDK client speaks (`POST /`, `X-Amz-Target: Kinesis_20131202.<Operation>`), as
 * bench/fakeKinesis.ts does for P2. It answers:
 *
 * - PutRecords: each record base64-decoded and handed to the simulator, which routes it by the
 *   MD5 of its partition key and refuses what is over its shard's limits
 *   (`ProvisionedThroughputExceededException`, the call still succeeding);
 * - ListShards: the simulator's shard map (`Shards[].HashKeyRange.StartingHashKey` …), one page;
 * - DescribeStreamSummary: the stream active, its open shards, a 1 MiB record limit.
 *
 * Any stream name is this stream. Every producer process sends to it, so the limits are
 * shared as a real stream's are.
 *
 *   fork("bench/p7Stream.ts", { execArgv: ["--import", "tsx"] })
 *
 * Sends `{ kind: "listening", endpoint }`; answers `{ kind: "reset", shards }` with a fresh,
 * empty stream (`{ kind: "reset" }`), and `{ kind: "totals" }` with what the stream received
 * (`{ kind: "totals", totals }`); exits when the parent disconnects.
 */
import { Cause, Effect, Exit, Option } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import type { KinesisError } from "../src/index.js"
import { ShardSimulator } from "../src/testing.js"

const LOOPBACK = "127.0.0.1"
const JSON_11 = "application/x-amz-json-1.1"
const TARGET = "Kinesis_20131202."

type Simulator = Effect.Effect.Success<ReturnType<typeof ShardSimulator.make>>

/** The stream served; replaced by each `reset`. */
let simulator: Simulator = Effect.runSync(ShardSimulator.make({ shards: 1, history: false }))

interface Answer {
  readonly status: number
  readonly body: unknown
}

const failure = (status: number, type: string, message: string): Answer => ({
  status,
  body: { __type: type, message }
})

/** Runs one of the simulator's calls (synchronous: it never sleeps); a `KinesisError` becomes the error answer. */
const run = <A>(effect: Effect.Effect<A, KinesisError>, ok: (a: A) => unknown): Answer => {
  const exit = Effect.runSyncExit(effect)
  if (Exit.isSuccess(exit)) return { status: 200, body: ok(exit.value) }
  const error = Cause.failureOption(exit.cause)
  return Option.isSome(error)
    ? failure(error.value.httpStatus ?? 500, error.value.errorName, error.value.message)
    : failure(500, "InternalFailure", Cause.pretty(exit.cause))
}

interface PutRecordsBody {
  readonly StreamName?: string
  readonly Records?: ReadonlyArray<{ readonly Data?: string; readonly PartitionKey?: string }>
}

const putRecords = (body: PutRecordsBody): Answer => {
  const streamName = body.StreamName ?? "stream"
  const records = (body.Records ?? []).map((r) => ({
    data: Buffer.from(r.Data ?? "", "base64"),
    partitionKey: r.PartitionKey ?? ""
  }))
  return run(simulator.kinesis.putRecords({ streamName, records }), (results) => ({
    FailedRecordCount: results.filter((r) => r._tag === "Failed").length,
    Records: results.map((r) =>
      r._tag === "Written"
        ? { SequenceNumber: r.sequenceNumber, ShardId: r.shardId }
        : { ErrorCode: r.errorCode, ErrorMessage: r.errorMessage }
    ),
    EncryptionType: "NONE"
  }))
}

const listShards = (streamName: string): Answer =>
  run(simulator.kinesis.listShards(streamName), (shards) => ({
    Shards: shards.map((s) => ({
      ShardId: s.shardId,
      HashKeyRange: { StartingHashKey: s.startingHashKey.toString(), EndingHashKey: s.endingHashKey.toString() },
      SequenceNumberRange: { StartingSequenceNumber: "0" }
    }))
  }))

const describeStreamSummary = (streamName: string): Answer =>
  run(simulator.kinesis.describeStreamSummary(streamName), (summary) => ({
    StreamDescriptionSummary: {
      StreamName: summary.streamName,
      StreamARN: `arn:aws:kinesis:us-east-1:123456789012:stream/${summary.streamName}`,
      StreamStatus: summary.status,
      StreamModeDetails: { StreamMode: "PROVISIONED" },
      RetentionPeriodHours: 24,
      StreamCreationTimestamp: 0,
      EnhancedMonitoring: [],
      EncryptionType: "NONE",
      OpenShardCount: summary.openShardCount,
      ...(summary.maxRecordSizeInKiB === undefined ? {} : { MaxRecordSizeInKiB: summary.maxRecordSizeInKiB })
    }
  }))

const answerFor = (operation: string, text: string): Answer => {
  let body: PutRecordsBody & { readonly StreamName?: string }
  try {
    body = JSON.parse(text) as PutRecordsBody
  } catch {
    return failure(400, "SerializationException", "body is not JSON")
  }
  switch (operation) {
    case "PutRecords":
      return putRecords(body)
    case "ListShards":
      return listShards(body.StreamName ?? "stream")
    case "DescribeStreamSummary":
      return describeStreamSummary(body.StreamName ?? "stream")
    default:
      return failure(400, "UnknownOperationException", `not served here: ${operation}`)
  }
}

const server = http.createServer((req, res) => {
  const chunks: Array<Buffer> = []
  req.on("data", (chunk: Buffer) => chunks.push(chunk))
  req.on("end", () => {
    const target = String(req.headers["x-amz-target"] ?? "")
    const answer = req.method === "POST" && target.startsWith(TARGET)
      ? answerFor(target.slice(TARGET.length), Buffer.concat(chunks).toString("utf8"))
      : failure(400, "UnknownOperationException", `not served here: ${req.method} ${target}`)
    const text = JSON.stringify(answer.body)
    res.writeHead(answer.status, { "content-type": JSON_11, "content-length": Buffer.byteLength(text) })
    res.end(text)
  })
})
server.keepAliveTimeout = 60_000

await new Promise<void>((resolve, reject) => {
  server.once("error", reject)
  server.listen(0, LOOPBACK, () => resolve())
})

process.on("message", (message: { readonly kind: string; readonly shards?: number }) => {
  if (message.kind === "reset") {
    simulator = Effect.runSync(ShardSimulator.make({ shards: message.shards ?? 1, history: false }))
    process.send?.({ kind: "reset" })
  } else if (message.kind === "totals") {
    process.send?.({ kind: "totals", totals: Effect.runSync(simulator.state.totals) })
  }
})
process.on("disconnect", () => process.exit(0))
process.send?.({ kind: "listening", endpoint: `http://${LOOPBACK}:${(server.address() as AddressInfo).port}` })
