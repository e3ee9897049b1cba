/**
 * The round trip, end to end: write a batch of realistic `DataFileV1` records to a Kinesis
 * stream (large ones through S3), read every shard back, decode each record and check it
 * against what was written, then print a summary and the Prometheus metrics.
 *
 *   npm run demo                                   # embedded kinesalite + s3rver, 1,000 records
 *   npm run demo -- --records 200 --columns 5
 *   npm run demo -- --producer                     # the KinesisProducer, from 200 fibers, paced
 *   npm run demo -- --endpoint http://localhost:4566          # LocalStack (S3 on the same port)
 *   npm run demo -- --stream my-stream --bucket my-bucket --region eu-west-1   # real AWS
 *
 * With `--producer` the records go one at a time through a `KinesisProducer` (shard-aware
 * pacing on) from `--fibers` concurrent fibers, with a live progress line; the read-back and
 * the verification are the same.
 *
 * Without `--endpoint` or `--stream` the demo starts its own Kinesis and S3 emulators on
 * loopback and stops them on exit (Ctrl-C included). With either, it talks to that endpoint
 * (or to AWS) with the SDK's default credential chain, and creates the stream or the bucket
 * only when it was not given one.
 */
import { KinesisClient } from "@aws-sdk/client-kinesis"
import { S3Client } from "@aws-sdk/client-s3"
import { equals } from "@bufbuild/protobuf"
import { NodeRuntime } from "@effect/platform-node"
import { NodeHttpHandler } from "@smithy/node-http-handler"
import type { Scope } from "effect"
import { Cause, Console, Data, Duration, Effect, Either, Fiber, Layer, Option, Schedule } from "effect"
import { Registry } from "prom-client"
import type { DataFileV1, KinesisWriterOptions, MetricsServerError, RecordReceipt, WriteResult } from "../src/index.js"
import {
  DataFileV1Schema,
  Kinesis,
  KinesisMetrics,
  KinesisProducer,
  KinesisWriter,
  LargePayloadStore,
  RecordReader
} from "../src/index.js"
import { MetricsServer } from "../src/prometheus.js"
import { RecordGenerator } from "../src/testing.js"
import type { LocalAws, StoredRecord } from "../test/support/LocalAws.js"
import {
  createBucket,
  createStream,
  DEFAULT_REGION,
  makeKinesisClient,
  makeS3Client,
  readAllRecords,
  startLocalAws
} from "../test/support/LocalAws.js"

// The AWS SDK's NodeVersionSupportWarning (its releases after January 2027 need Node 22) is
// the SDK's notice to whoever runs it on Node 20: the demo turns it off for itself with the
// switch the SDK reads when a client is built (below, in main), unless the caller set it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true"

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

interface DemoOptions {
  readonly records: number
  readonly columns: number
  /** Kinesis endpoint (LocalStack, …): no embedded servers. */
  readonly endpoint?: string | undefined
  /** S3 endpoint; defaults to `endpoint` (LocalStack serves both on one port). */
  readonly s3Endpoint?: string | undefined
  readonly stream?: string | undefined
  readonly bucket?: string | undefined
  readonly region?: string | undefined
  /** Serve the metrics at `http://127.0.0.1:PORT/metrics` and keep running until Ctrl-C. */
  readonly serveMetrics?: number | undefined
  /** Send through a `KinesisProducer` from `fibers` fibers instead of one `writeBatch`. */
  readonly producer: boolean
  readonly fibers: number
}

/** A bad command line: the message and the usage are printed, the exit code is 1. */
class UsageError extends Data.TaggedError("UsageError")<{ readonly reason: string }> {
  override get message(): string {
    return `${this.reason}\n\n${USAGE}`
  }
}

/** Something outside the library failed: a server would not start, a stream would not create, … */
class DemoError extends Data.TaggedError("DemoError")<{ readonly step: string; readonly cause: unknown }> {
  override get message(): string {
    return `${this.step} failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** What was read back does not match what was written. */
class RoundTripError extends Data.TaggedError("RoundTripError")<{ readonly problems: ReadonlyArray<string> }> {
  override get message(): string {
    const shown = this.problems.slice(0, 20).map((p) => `  - ${p}`).join("\n")
    const more = this.problems.length > 20 ? `\n  … and ${this.problems.length - 20} more` : ""
    return `round trip FAILED, ${this.problems.length} problem(s):\n${shown}${more}`
  }
}

type Setter = (options: Mutable<DemoOptions>, value: string) => Either.Either<void, UsageError>
type Mutable<A> = { -readonly [K in keyof A]: A[K] }

const positiveInt = (flag: string, value: string, max: number) => {
  const n = Number(value)
  return Number.isInteger(n) && n >= 1 && n <= max
    ? Either.right(n)
    : Either.left(
      new UsageError({ reason: `${flag} must be an integer from 1 to ${max}, got ${JSON.stringify(value)}` })
    )
}

/** Every flag takes one value, given as `--flag value` or `--flag=value`. */
const FLAGS: Record<string, { readonly value: string; readonly help: string; readonly set: Setter }> = {
  "--records": {
    value: "N",
    help: "records in the batch (default 1000)",
    set: (o, v) => Either.map(positiveInt("--records", v, 1_000_000), (n) => void (o.records = n))
  },
  "--columns": {
    value: "N",
    help: "columns with statistics per record (default 30)",
    set: (o, v) => Either.map(positiveInt("--columns", v, 10_000), (n) => void (o.columns = n))
  },
  "--endpoint": {
    value: "URL",
    help: "Kinesis endpoint (LocalStack, …); no embedded servers",
    set: (o, v) => Either.right(void (o.endpoint = v))
  },
  "--s3-endpoint": {
    value: "URL",
    help: "S3 endpoint (default: --endpoint when given, else AWS)",
    set: (o, v) => Either.right(void (o.s3Endpoint = v))
  },
  "--stream": {
    value: "NAME",
    help: "an existing stream (not created); without --endpoint: real AWS",
    set: (o, v) => Either.right(void (o.stream = v))
  },
  "--bucket": {
    value: "NAME",
    help: "an existing bucket for large payloads (not created)",
    set: (o, v) => Either.right(void (o.bucket = v))
  },
  "--region": {
    value: "R",
    help: "AWS region (default: the SDK's, or us-east-1 locally)",
    set: (o, v) => Either.right(void (o.region = v))
  },
  "--serve-metrics": {
    value: "PORT",
    help: "serve /metrics on 127.0.0.1:PORT and keep running until Ctrl-C",
    set: (o, v) => Either.map(positiveInt("--serve-metrics", v, 65_535), (n) => void (o.serveMetrics = n))
  },
  "--fibers": {
    value: "N",
    help: "with --producer: fibers sending concurrently (default 200)",
    set: (o, v) => Either.map(positiveInt("--fibers", v, 100_000), (n) => void (o.fibers = n))
  }
}

/** Flags without a value. */
const SWITCHES: Record<string, { readonly help: string; readonly set: (options: Mutable<DemoOptions>) => void }> = {
  "--producer": {
    help: "send one record at a time through a KinesisProducer (paced), from --fibers fibers",
    set: (o) => void (o.producer = true)
  }
}

const USAGE = [
  "usage: npm run demo -- [flags]",
  "",
  ...Object.entries(FLAGS).map(([flag, f]) => `  ${`${flag} ${f.value}`.padEnd(22)} ${f.help}`),
  ...Object.entries(SWITCHES).map(([flag, f]) => `  ${flag.padEnd(22)} ${f.help}`),
  `  ${"--help".padEnd(22)} this text`
].join("\n")

/** The command line, or `None` for `--help`. */
const parseArgs = (argv: ReadonlyArray<string>): Either.Either<Option.Option<DemoOptions>, UsageError> => {
  const options: Mutable<DemoOptions> = { records: 1_000, columns: 30, producer: false, fibers: 200 }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--help" || arg === "-h") return Either.right(Option.none())
    const toggle = SWITCHES[arg]
    if (toggle !== undefined) {
      toggle.set(options)
      continue
    }
    const eq = arg.indexOf("=")
    const name = eq === -1 ? arg : arg.slice(0, eq)
    const flag = FLAGS[name]
    if (flag === undefined) return Either.left(new UsageError({ reason: `unknown argument ${JSON.stringify(arg)}` }))
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1)
    if (value === undefined || value === "") {
      return Either.left(new UsageError({ reason: `${name} needs a value (${flag.value})` }))
    }
    const set = flag.set(options, value)
    if (Either.isLeft(set)) return Either.left(set.left)
  }
  if (options.s3Endpoint !== undefined && options.endpoint === undefined && options.stream === undefined) {
    return Either.left(
      new UsageError({ reason: "--s3-endpoint needs --endpoint or --stream (the embedded servers bring their own S3)" })
    )
  }
  return Either.right(Option.some(options))
}

// ---------------------------------------------------------------------------------------------
// Where the demo writes: embedded servers, an endpoint, or AWS
// ---------------------------------------------------------------------------------------------

interface Target {
  readonly description: string
  readonly kinesis: KinesisClient
  readonly s3: S3Client
  /** Whether the servers are ours, fresh and empty: then anything unexpected on the stream is a failure. */
  readonly embedded: boolean
}

const attempt = <A>(step: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new DemoError({ step, cause }) })

/** Kinesis and S3 servers on loopback, stopped when the scope closes (Ctrl-C included). */
const embeddedServers: Effect.Effect<LocalAws, DemoError, Scope.Scope> = Effect.acquireRelease(
  attempt("starting the embedded Kinesis and S3 servers", () => startLocalAws()),
  (aws) =>
    attempt("stopping the embedded servers", () => aws.stop()).pipe(
      Effect.catchAll((e) => Effect.logWarning(e.message))
    )
)

const scopedClient = <C extends { destroy: () => void }>(make: () => C): Effect.Effect<C, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.sync(make), (client) => Effect.sync(() => client.destroy()))

const acquireTarget = (options: DemoOptions): Effect.Effect<Target, DemoError, Scope.Scope> =>
  Effect.gen(function*() {
    if (options.endpoint === undefined && options.stream === undefined) {
      yield* Console.log("starting embedded Kinesis (kinesalite) and S3 (s3rver) on loopback…")
      const aws = yield* embeddedServers
      const region = options.region ?? aws.region
      return {
        description: `embedded servers (Kinesis ${aws.kinesisEndpoint}, S3 ${aws.s3Endpoint})`,
        kinesis: yield* scopedClient(() => makeKinesisClient(aws.kinesisEndpoint, region)),
        s3: yield* scopedClient(() => makeS3Client(aws.s3Endpoint, region)),
        embedded: true
      }
    }
    // An endpoint (LocalStack) or AWS itself, with the SDK's default credential chain.
    const region = options.region ??
      (options.endpoint === undefined ? undefined : process.env["AWS_REGION"] ?? DEFAULT_REGION)
    const s3Endpoint = options.s3Endpoint ?? options.endpoint
    const common = () => ({
      ...(region === undefined ? {} : { region }),
      // The writer retries itself; the SDK's retries would multiply its schedule.
      maxAttempts: 1,
      // HTTP/1.1: client-kinesis defaults to HTTP/2, which emulators do not all speak.
      requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: 30_000 })
    })
    return {
      description: options.endpoint === undefined
        ? `AWS${region === undefined ? "" : ` (${region})`}`
        : `Kinesis ${options.endpoint}, S3 ${s3Endpoint ?? "AWS"}`,
      kinesis: yield* scopedClient(() =>
        new KinesisClient({ ...common(), ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }) })
      ),
      s3: yield* scopedClient(() =>
        new S3Client({
          ...common(),
          ...(s3Endpoint === undefined ? {} : { endpoint: s3Endpoint, forcePathStyle: true })
        })
      ),
      embedded: false
    }
  })

const uniqueName = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`

// ---------------------------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------------------------

const tty = process.stdout.isTTY === true

/** Reports `done/total`: one line rewritten in place on a terminal, a line per quarter otherwise. */
const progress = (label: string, total: number) => {
  let lastQuarter = 0
  return {
    update: (done: number) =>
      Effect.sync(() => {
        if (tty) {
          process.stdout.write(`\r${label} ${done}/${total}`)
          if (done === total) process.stdout.write("\n")
          return
        }
        const quarter = Math.floor((done * 4) / Math.max(1, total))
        if (quarter > lastQuarter || done === total) {
          lastQuarter = quarter
          process.stdout.write(`${label} ${done}/${total}\n`)
        }
      })
  }
}

// ---------------------------------------------------------------------------------------------
// The records
// ---------------------------------------------------------------------------------------------

const LARGE_PAYLOAD_THRESHOLD = 16 * 1024
const DISTRIBUTION_FACTOR = 16

/** Record `i`: about 3% are made 24–64 KB, over the lowered threshold, so they go to S3. */
const makeRecord = (i: number, columns: number): DataFileV1 => {
  const seed = 1 + i
  if (i % 33 !== 16) return RecordGenerator.makeDataFile({ columns, seed })
  const plainSize = RecordGenerator.serializedSize(RecordGenerator.makeDataFile({ columns, seed }))
  const serializedBytes = Math.max(plainSize + 1_024, 24_000 + ((i * 7_919) % 40_000))
  return RecordGenerator.makeDataFile({ columns, seed, serializedBytes })
}

/** Lets the event loop run (signals included) between chunks of synchronous work. */
const yieldToEventLoop = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** The records, made a chunk at a time so that Ctrl-C is handled promptly even for big runs. */
const makeRecords = (count: number, columns: number): Effect.Effect<Array<DataFileV1>> =>
  Effect.gen(function*() {
    const records: Array<DataFileV1> = []
    const bar = count >= 5_000 ? progress("generating…", count) : undefined
    while (records.length < count) {
      const end = Math.min(count, records.length + 50)
      for (let i = records.length; i < end; i++) records.push(makeRecord(i, columns))
      if (bar !== undefined) yield* bar.update(records.length)
      yield* yieldToEventLoop
    }
    return records
  })

// ---------------------------------------------------------------------------------------------
// The round trip
// ---------------------------------------------------------------------------------------------

interface Verification {
  readonly read: number
  readonly matched: number
  readonly largeReadBack: number
  readonly duplicates: number
  /** Records on a stream we were given that are not from this run. */
  readonly foreign: number
  readonly shards: ReadonlyMap<string, number>
}

const verify = (
  written: ReadonlyArray<DataFileV1>,
  /** What was sent: each record's record_id (by index) and how many went through S3. */
  result: Pick<WriteResult, "recordIds" | "largePayloads">,
  stored: ReadonlyArray<StoredRecord>,
  writerOptions: KinesisWriterOptions,
  strict: boolean
): Effect.Effect<Verification, RoundTripError, LargePayloadStore> =>
  Effect.gen(function*() {
    const indexOf = new Map(result.recordIds.map((id, i) => [id, i]))
    const seen = new Set<number>()
    const problems: Array<string> = []
    const shards = new Map<string, number>()
    let largeReadBack = 0
    let duplicates = 0
    let foreign = 0
    let done = 0
    const bar = progress("verifying…", stored.length)

    yield* Effect.forEach(stored, (s) =>
      Effect.gen(function*() {
        const decoded = yield* Effect.either(RecordReader.decodeRecord(s.data))
        yield* bar.update(++done)
        if (Either.isLeft(decoded)) {
          if (strict) problems.push(`${s.shardId}/${s.sequenceNumber}: ${decoded.left.message}`)
          else foreign++
          return
        }
        const { dataFile, info, largePayload } = decoded.right
        const index = indexOf.get(info.recordId)
        if (index === undefined) {
          if (strict) problems.push(`${s.shardId}/${s.sequenceNumber}: record_id ${info.recordId} was never written`)
          else foreign++
          return
        }
        if (seen.has(index)) {
          // At-least-once delivery: consumers de-duplicate by record_id.
          duplicates++
          return
        }
        seen.add(index)
        shards.set(s.shardId, (shards.get(s.shardId) ?? 0) + 1)
        if (largePayload !== undefined) largeReadBack++
        const expected = written[index]!
        if (!equals(DataFileV1Schema, dataFile, expected)) {
          problems.push(`record #${index} (${info.recordId}): DataFileV1 differs from what was written`)
        }
        const infoProblems = [
          info.filePath === expected.filePath ? undefined : "file_path",
          info.accountId === writerOptions.accountId ? undefined : "account_id",
          info.logGroupId === writerOptions.logGroupId ? undefined : "log_group_id",
          info.schemaName === writerOptions.schemaName ? undefined : "schema_name"
        ].filter((p) => p !== undefined)
        if (infoProblems.length > 0) {
          problems.push(`record #${index} (${info.recordId}): wrong ${infoProblems.join(", ")} in DataFileInfo`)
        }
      }), { concurrency: 16, discard: true })

    const missing = result.recordIds.flatMap((id, i) =>
      seen.has(i) ? [] : [`record #${i} (${id}) was written but not read back`]
    )
    for (const problem of missing) problems.push(problem)
    if (largeReadBack !== result.largePayloads) {
      problems.push(`${largeReadBack} records came back through S3, the writer offloaded ${result.largePayloads}`)
    }
    if (problems.length > 0) return yield* new RoundTripError({ problems })
    return { read: stored.length, matched: seen.size, largeReadBack, duplicates, foreign, shards }
  })

const formatBytes = (n: number) =>
  n >= 1024 * 1024 ? `${(n / (1024 * 1024)).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`

const formatDuration = (d: Duration.Duration) => {
  const ms = Duration.toMillis(d)
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`
}

/** The target, a stream and a bucket (created unless given), and the writer's and the reader's layers. */
const setUp = (options: DemoOptions, registry: Registry) =>
  Effect.gen(function*() {
    const target = yield* acquireTarget(options)
    yield* Console.log(`target: ${target.description}`)

    const stream = options.stream ?? uniqueName("cygnus-demo")
    const bucket = options.bucket ?? uniqueName("cygnus-demo-large")
    if (options.stream === undefined) {
      yield* attempt(`creating stream ${stream}`, () =>
        createStream(target.kinesis, stream, 4, { timeoutMs: 120_000, pollIntervalMs: 250 }))
      yield* Console.log(`created stream ${stream} (4 shards)${target.embedded ? "" : " — it stays after the demo"}`)
    }
    if (options.bucket === undefined) {
      yield* attempt(`creating bucket ${bucket}`, () =>
        createBucket(target.s3, bucket))
      yield* Console.log(`created bucket ${bucket}${target.embedded ? "" : " — it stays after the demo"}`)
    }

    const writerOptions: KinesisWriterOptions = {
      streamName: stream,
      logGroupId: "demo-log-group",
      schemaName: "orders",
      accountId: "123456789012",
      distributionFactor: DISTRIBUTION_FACTOR,
      largePayloadThreshold: LARGE_PAYLOAD_THRESHOLD,
      // Honour the stream's own MaxRecordSizeInKiB where the endpoint reports it (AWS does).
      readStreamRecordLimit: true
    }
    // Composed as in the README.
    const WriterLive = KinesisWriter.layer(writerOptions).pipe(
      Layer.provide(Kinesis.layer(target.kinesis)),
      Layer.provide(LargePayloadStore.layerS3({ client: target.s3, bucket })),
      Layer.provide(KinesisMetrics.layerPrometheus(registry))
    )
    // The reader fetches large payloads from the same bucket.
    const ReaderLive = LargePayloadStore.layerS3({ client: target.s3, bucket })
    return { target, stream, bucket, writerOptions, WriterLive, ReaderLive }
  })

const roundTrip = (options: DemoOptions, registry: Registry) =>
  Effect.gen(function*() {
    const { ReaderLive, WriterLive, bucket, stream, target, writerOptions } = yield* setUp(options, registry)
    return yield* Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const records = yield* makeRecords(options.records, options.columns)
      yield* Console.log(`writing ${records.length} records (${options.columns} columns) to ${stream}…`)
      const [writeTime, result] = yield* Effect.timed(writer.writeBatch(records))
      yield* Console.log(`written in ${formatDuration(writeTime)}; reading back…`)
      const [readTime, stored] = yield* Effect.timed(
        attempt(`reading ${stream} back`, () => readAllRecords(target.kinesis, stream))
      )
      yield* Console.log(`read ${stored.length} records in ${formatDuration(readTime)}`)
      const [verifyTime, checked] = yield* Effect.timed(
        verify(records, result, stored, writerOptions, target.embedded || options.stream === undefined)
      )
      // The record limit the writer works to: the stream's own, where the endpoint reports one.
      const summary = yield* Kinesis.make(target.kinesis).describeStreamSummary(stream, undefined)
      const recordLimit = (summary.maxRecordSizeInKiB ?? 1024) * 1024
      return { result, checked, writeTime, readTime, verifyTime, stream, bucket, recordLimit }
    }).pipe(Effect.provide(Layer.merge(WriterLive, ReaderLive)))
  })

// ---------------------------------------------------------------------------------------------
// The round trip through the producer (--producer)
// ---------------------------------------------------------------------------------------------

/** Counts of the producer run, read by the progress line. */
interface ProducerCounts {
  sent: number
  delivered: number
  failed: number
}

/** The live line: in place on a terminal (10 times a second), else a line a second. */
const producerProgress = (counts: ProducerCounts, total: number, startedAt: number) => {
  const line = () => {
    const seconds = (performance.now() - startedAt) / 1000
    const rate = seconds > 0 ? Math.round(counts.delivered / seconds) : 0
    const buffered = counts.sent - counts.delivered - counts.failed
    return `sent ${counts.sent}/${total}  delivered ${counts.delivered}  buffered ${buffered}  ${rate} records/s${
      counts.failed > 0 ? `  FAILED ${counts.failed}` : ""
    }`
  }
  const print = Effect.sync(() => process.stdout.write(tty ? `\r${line()}\x1b[K` : `${line()}\n`))
  return {
    loop: Effect.repeat(print, Schedule.spaced(tty ? "100 millis" : "1 second")),
    last: Effect.sync(() => process.stdout.write(tty ? `\r${line()}\x1b[K\n` : `${line()}\n`))
  }
}

const producerRoundTrip = (options: DemoOptions, registry: Registry) =>
  Effect.gen(function*() {
    const { ReaderLive, WriterLive, bucket, stream, target, writerOptions } = yield* setUp(options, registry)
    const records = yield* makeRecords(options.records, options.columns)
    // The writer's serialize-and-offload decision: over the threshold goes to S3.
    const expectedLarge = records.filter((r) => RecordGenerator.serializedSize(r) > LARGE_PAYLOAD_THRESHOLD).length
    const ProducerLive = KinesisProducer.layer({ linger: "50 millis", pace: true }).pipe(Layer.provide(WriterLive))
    yield* Console.log(
      `sending ${records.length} records (${options.columns} columns) from ${options.fibers} fibers through the KinesisProducer (paced) to ${stream}…`
    )
    const counts: ProducerCounts = { sent: 0, delivered: 0, failed: 0 }
    const receipts: Array<RecordReceipt | undefined> = records.map(() => undefined)
    const problems: Array<string> = []
    const startedAt = performance.now()
    const bar = producerProgress(counts, records.length, startedAt)
    const sender = (fiber: number) =>
      Effect.gen(function*() {
        const producer = yield* KinesisProducer
        for (let i = fiber; i < records.length; i += options.fibers) {
          counts.sent++
          const outcome = yield* Effect.either(producer.send(records[i]!))
          if (Either.isRight(outcome)) {
            counts.delivered++
            receipts[i] = outcome.right
          } else {
            counts.failed++
            problems.push(`record #${i}: send failed: ${outcome.left.message}`)
          }
        }
      })
    // The producer's scope closes when every sender is done: its shutdown has nothing left to deliver.
    const [sendTime] = yield* Effect.timed(
      Effect.gen(function*() {
        const ticker = yield* Effect.fork(bar.loop)
        yield* Effect.forEach(Array.from({ length: options.fibers }, (_, f) => f), sender, {
          concurrency: "unbounded",
          discard: true
        })
        yield* Fiber.interrupt(ticker)
        yield* bar.last
      }).pipe(Effect.provide(ProducerLive))
    )
    if (problems.length > 0) return yield* new RoundTripError({ problems })
    yield* Console.log(`sent in ${formatDuration(sendTime)}; reading back…`)
    const [readTime, stored] = yield* Effect.timed(
      attempt(`reading ${stream} back`, () => readAllRecords(target.kinesis, stream))
    )
    yield* Console.log(`read ${stored.length} records in ${formatDuration(readTime)}`)
    const delivered = receipts.filter((r) => r !== undefined)
    const [verifyTime, checked] = yield* Effect.timed(
      verify(
        records,
        { recordIds: delivered.map((r) => r.recordId), largePayloads: expectedLarge },
        stored,
        writerOptions,
        target.embedded || options.stream === undefined
      ).pipe(Effect.provide(ReaderLive))
    )
    return { checked, delivered, sendTime, readTime, verifyTime, bucket }
  })

/** The producer's round trip, then its summary and the metrics. */
const runProducerAndReport = (options: DemoOptions, registry: Registry) =>
  Effect.gen(function*() {
    const [elapsed, run] = yield* Effect.timed(Effect.scoped(producerRoundTrip(options, registry)))
    const { checked, delivered } = run
    const shardList = [...checked.shards].sort(([a], [b]) => a.localeCompare(b)).map(([id, n]) => `${id}: ${n}`).join(
      ", "
    )
    const retried = delivered.filter((r) => r.attempts > 1).length
    const seconds = Duration.toMillis(run.sendTime) / 1000
    const lines = [
      "",
      "round trip OK: every record sent through the producer was read back and matches (by record_id)",
      `  records sent         ${delivered.length} from ${options.fibers} fibers, each settled with a receipt`,
      `  records read back    ${checked.matched}${
        checked.duplicates > 0 ? ` (+${checked.duplicates} duplicates)` : ""
      }${checked.foreign > 0 ? ` (+${checked.foreign} other records on the stream, ignored)` : ""}`,
      `  shards hit           ${checked.shards.size} (${shardList})`,
      `  large payloads       ${checked.largeReadBack} via s3://${run.bucket} (threshold ${
        formatBytes(LARGE_PAYLOAD_THRESHOLD)
      })`,
      `  retries              ${retried} records needed more than one attempt`,
      `  send rate            ${Math.round(delivered.length / Math.max(seconds, 0.001))} records/s`,
      `  elapsed              ${formatDuration(elapsed)} (send ${formatDuration(run.sendTime)}, read ${
        formatDuration(run.readTime)
      }, verify ${formatDuration(run.verifyTime)})`,
      "",
      "# Prometheus metrics",
      yield* Effect.promise(() => registry.metrics())
    ]
    yield* Console.log(lines.join("\n"))
  })

/**
 * What runs beside the demo for as long as it runs: with `--serve-metrics PORT`, the
 * `/metrics` endpoint over the writer's registry (Prometheus can scrape it during the write).
 */
const sidecars = (options: DemoOptions, registry: Registry): Layer.Layer<never, MetricsServerError> =>
  options.serveMetrics === undefined
    ? Layer.empty
    : Layer.effectDiscard(Effect.flatMap(MetricsServer, ({ url }) => Console.log(`serving metrics at ${url}`))).pipe(
      // Its message names the address and the system error (EADDRINUSE, …).
      Layer.provide(MetricsServer.layer({ registry, port: options.serveMetrics }))
    )

/** The round trip, then its summary and the metrics. */
const runAndReport = (options: DemoOptions, registry: Registry) =>
  Effect.gen(function*() {
    const [elapsed, run] = yield* Effect.timed(Effect.scoped(roundTrip(options, registry)))
    const { checked, result } = run
    const shardList = [...checked.shards].sort(([a], [b]) => a.localeCompare(b)).map(([id, n]) => `${id}: ${n}`).join(
      ", "
    )
    const ratio = result.uncompressedBytes === 0 ? 0 : (100 * result.compressedBytes) / result.uncompressedBytes
    const lines = [
      "",
      "round trip OK: every record read back matches what was written (by record_id)",
      `  records written      ${result.records}`,
      `  records read back    ${checked.matched}${
        checked.duplicates > 0 ? ` (+${checked.duplicates} duplicates)` : ""
      }${checked.foreign > 0 ? ` (+${checked.foreign} other records on the stream, ignored)` : ""}`,
      `  shards hit           ${checked.shards.size} (${shardList})`,
      `  bytes on the stream  ${formatBytes(result.uncompressedBytes)} before gzip → ${
        formatBytes(result.compressedBytes)
      } after (${ratio.toFixed(1)}%)`,
      `  large payloads       ${result.largePayloads} via s3://${run.bucket} (threshold ${
        formatBytes(LARGE_PAYLOAD_THRESHOLD)
      }, record limit ${formatBytes(run.recordLimit)})`,
      `  Kinesis calls        ${result.kinesisCalls} PutRecords`,
      `  retries              ${result.retries} rounds, ${result.retriedRecords} records resent`,
      `  elapsed              ${formatDuration(elapsed)} (write ${formatDuration(run.writeTime)}, read ${
        formatDuration(run.readTime)
      }, verify ${formatDuration(run.verifyTime)})`,
      "",
      "# Prometheus metrics",
      yield* Effect.promise(() => registry.metrics())
    ]
    yield* Console.log(lines.join("\n"))
  })

const main = Effect.gen(function*() {
  const parsed = yield* parseArgs(process.argv.slice(2))
  if (Option.isNone(parsed)) return yield* Console.log(USAGE)
  const options = parsed.value
  const registry = new Registry()
  yield* Effect.gen(function*() {
    yield* (options.producer ? runProducerAndReport(options, registry) : runAndReport(options, registry))
    if (options.serveMetrics !== undefined) {
      yield* Console.log(`still serving metrics on port ${options.serveMetrics}; Ctrl-C to stop`)
      yield* Effect.never
    }
  }).pipe(Effect.provide(sidecars(options, registry)))
})

/**
 * A failure is one readable line (the usage, for a bad command line) and exit code 1; a
 * defect prints its full cause; Ctrl-C interrupts, which stops the embedded servers.
 */
const reportFailure = <E extends { readonly message: string }>(cause: Cause.Cause<E>) =>
  Cause.isInterruptedOnly(cause)
    ? Effect.void
    : Console.error(Option.match(Cause.failureOption(cause), {
      onNone: () => Cause.pretty(cause),
      onSome: (error) => `demo failed: ${error.message}`
    }))

NodeRuntime.runMain(main.pipe(Effect.tapErrorCause(reportFailure)), { disableErrorReporting: true })
