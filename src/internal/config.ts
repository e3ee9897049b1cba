/**
 * The writer's settings: what a caller gives, the defaults, their validation (a bad value
 * fails the layer with a `ConfigError` naming the field and the value), and the same
 * settings read through Effect `Config`.
 *
 * @internal
 */
import { Config, ConfigError, Duration, Effect, Either, Option } from "effect"
import { availableParallelism } from "node:os"
import type { AggregationOptions, ResolvedAggregation } from "./aggregationConfig.js"
import { resolveAggregation } from "./aggregationConfig.js"
import { DEFAULT_COMPRESSION_LEVEL } from "./codec.js"
import { KinesisLimits } from "./limits.js"
import { longestPartitionKey, partitionKeyLength } from "./partitionKey.js"

/**
 * What a caller sets. Only the first four are required.
 *
 * @since 0.1.0
 */
export interface KinesisWriterOptions {
  /** The stream: 1–128 of `[a-zA-Z0-9_.-]`. */
  readonly streamName: string
  /**
   * Addresses the stream by ARN instead of name (cross-account writes): the ARN of the stream
   * `streamName` names (`arn:aws:kinesis:<region>:<account>:stream/<streamName>`), which
   * errors, S3 keys and metrics name.
   */
  readonly streamArn?: string | undefined
  /** Producer namespace; part of partition keys, S3 keys and every record's info. */
  readonly logGroupId: string
  /** Schema the records belong to; part of partition keys, S3 keys and every record's info. */
  readonly schemaName: string
  /** The producer's AWS account id: 12 digits. */
  readonly accountId: string
  /** How many partition-key buckets records are spread over. Integer, clamped to ≥ 1. Default 4. */
  readonly distributionFactor?: number | undefined
  /** A record whose serialized `DataFileV1` is larger (bytes) goes to S3. Positive integer. Default 921,600 (900 KiB). */
  readonly largePayloadThreshold?: number | undefined
  /** Retries of the records that failed, after the first attempt. Integer ≥ 0. Default 3. */
  readonly maxRetries?: number | undefined
  /** First backoff delay. Default 100 ms. */
  readonly backoffBase?: Duration.DurationInput | undefined
  /** Longest backoff delay. Default 10 s. */
  readonly backoffCap?: Duration.DurationInput | undefined
  /** Bytes (data plus partition keys) per PutRecords call. Default 5 MiB, at most 10 MiB. */
  readonly maxRequestBytes?: number | undefined
  /** Read the stream's `MaxRecordSizeInKiB` with DescribeStreamSummary when the layer is built, instead of assuming 1 MiB. Default false. */
  readonly readStreamRecordLimit?: boolean | undefined
  /** PutRecords calls in flight at once per batch. Default 4. */
  readonly maxConcurrentCalls?: number | undefined
  /** Large-payload uploads in flight at once per batch. Default 8. */
  readonly maxConcurrentUploads?: number | undefined
  /** gzip level, -1 (zlib's default, 6) or 0–9. Default -1. */
  readonly compressionLevel?: number | undefined
  /**
   * Worker threads that gzip off the main thread, started with the first large batch; 0 gzips
   * on the main thread. Default 2 where the machine has more than one core, 0 on one core.
   */
  readonly compressionWorkers?: number | undefined
  /**
   * How long one PutRecords call or one S3 upload may take before it is aborted and counts as
   * a retryable (and ambiguous) timeout. Default 30 s. The SDK's own `requestTimeout` only
   * warns unless its handler is told to throw, so without this a hung connection would hang
   * the batch.
   */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /**
   * Packs the records of a batch that share a partition key into one Kinesis record
   * (`gzip(DataFileEntryRecordBatch)`): fewer, larger records, fewer bytes. Off by default,
   * which keeps one `DataFileEntryRecord` per Kinesis record; turn it on only once every
   * consumer reads aggregates. See {@link AggregationOptions}.
   */
  readonly aggregation?: AggregationOptions | undefined
}

/**
 * The settings after validation and defaults.
 *
 * @since 0.1.0
 */
export interface ResolvedWriterConfig {
  readonly streamName: string
  readonly streamArn: string | undefined
  readonly logGroupId: string
  readonly schemaName: string
  readonly accountId: string
  readonly distributionFactor: number
  readonly largePayloadThreshold: number
  readonly maxRetries: number
  readonly backoffBase: Duration.Duration
  readonly backoffCap: Duration.Duration
  readonly maxRequestBytes: number
  readonly readStreamRecordLimit: boolean
  readonly maxConcurrentCalls: number
  readonly maxConcurrentUploads: number
  readonly compressionLevel: number
  readonly compressionWorkers: number
  readonly requestTimeout: Duration.Duration
  /** `undefined` when aggregation is off. */
  readonly aggregation: ResolvedAggregation | undefined
}

/**
 * The writer's defaults: what an option left out is.
 *
 * @since 0.1.0
 */
export const WriterDefaults = {
  // 16, not 4: on 4 shards, 4 keys per attempt left a shard underused (P3: 86.8% of capacity;
  // 16 gives 98.9%, see BENCHMARKS.md). It costs nothing per record, and a 2-digit bucket.
  distributionFactor: 16,
  largePayloadThreshold: 921_600,
  maxRetries: 3,
  backoffBase: Duration.millis(100),
  backoffCap: Duration.seconds(10),
  maxRequestBytes: KinesisLimits.defaultRequestBytes,
  maxConcurrentCalls: 4,
  maxConcurrentUploads: 8,
  compressionLevel: DEFAULT_COMPRESSION_LEVEL,
  // Two threads where there is more than one core: on the benchmark's 2 cores, 1.64× the hand
  // loop's wall rate at 50 columns against 1.22× with one (the main thread waits less at the
  // end of each batch) and 1.25× with none. None on one core (Lambda below 1,769 MB, small
  // containers): a thread there only competes with the main one, and takes about a second to
  // start (BENCHMARKS.md).
  compressionWorkers: availableParallelism() > 1 ? 2 : 0,
  requestTimeout: Duration.seconds(30)
} as const

const STREAM_NAME = /^[a-zA-Z0-9_.-]{1,128}$/
/** A Kinesis stream's ARN; the stream's name is its last part. */
const STREAM_ARN = /^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream\/([a-zA-Z0-9_.-]{1,128})$/

const DURATION_UNITS: Record<string, Duration.Unit> = {
  ns: "nanos",
  nano: "nanos",
  nanos: "nanos",
  nanosecond: "nanos",
  nanoseconds: "nanos",
  us: "micros",
  "µs": "micros",
  micro: "micros",
  micros: "micros",
  microsecond: "micros",
  microseconds: "micros",
  ms: "millis",
  milli: "millis",
  millis: "millis",
  millisecond: "millis",
  milliseconds: "millis",
  s: "seconds",
  sec: "seconds",
  secs: "seconds",
  second: "seconds",
  seconds: "seconds",
  m: "minutes",
  min: "minutes",
  mins: "minutes",
  minute: "minutes",
  minutes: "minutes",
  h: "hours",
  hour: "hours",
  hours: "hours",
  d: "days",
  day: "days",
  days: "days",
  w: "weeks",
  week: "weeks",
  weeks: "weeks"
}

/**
 * A duration written as a number and a unit: Effect's `"100 millis"`, `"30 seconds"`, and the
 * README's `"100 ms"`, `"10 s"` (with or without the space). A bare number is refused: its
 * unit would be a guess.
 *
 * @internal
 */
export const parseDuration = (text: string): Option.Option<Duration.Duration> => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Zµ]+)\s*$/.exec(text)
  const unit = match === null ? undefined : DURATION_UNITS[match[2]!.toLowerCase()]
  return match === null || unit === undefined ? Option.none() : Duration.decodeUnknown(`${match[1]} ${unit}`)
}
const ACCOUNT_ID = /^\d{12}$/

const invalid = (field: string, requirement: string, value: unknown) =>
  ConfigError.InvalidData([field], `${field} ${requirement}, got ${JSON.stringify(value) ?? String(value)}`)

const check = <A>(
  field: string,
  value: A,
  ok: boolean,
  requirement: string
): Either.Either<A, ConfigError.ConfigError> =>
  ok ? Either.right(value) : Either.left(invalid(field, requirement, value))

const integer = (field: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  check(
    field,
    value,
    Number.isInteger(value) && value >= min && value <= max,
    `must be an integer from ${min} to ${max}`
  )

const duration = (field: string, value: Duration.DurationInput) =>
  Either.flatMap(
    Either.fromOption(
      typeof value === "string" ? parseDuration(value) : Duration.decodeUnknown(value),
      () => invalid(field, "must be a duration (e.g. \"100 ms\", \"30 s\", \"30 seconds\")", value)
    ),
    (d) =>
      Duration.greaterThan(d, Duration.zero) && Duration.isFinite(d)
        ? Either.right(d)
        : Either.left(invalid(field, "must be a positive, finite duration", value))
  )

/**
 * Validates options and fills in defaults. Each bad value is a `ConfigError.InvalidData`
 * whose path is the field and whose message names the value.
 *
 * @internal
 */
export const resolveWriterConfig = (
  options: KinesisWriterOptions
): Effect.Effect<ResolvedWriterConfig, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const d = WriterDefaults
    const streamName = yield* check(
      "streamName",
      options.streamName,
      typeof options.streamName === "string" && STREAM_NAME.test(options.streamName),
      "must be 1–128 characters of [a-zA-Z0-9_.-]"
    )
    const accountId = yield* check(
      "accountId",
      options.accountId,
      typeof options.accountId === "string" && ACCOUNT_ID.test(options.accountId),
      "must be 12 digits"
    )
    const logGroupId = yield* check(
      "logGroupId",
      options.logGroupId,
      typeof options.logGroupId === "string" && options.logGroupId.length > 0,
      "must be a non-empty string"
    )
    const schemaName = yield* check(
      "schemaName",
      options.schemaName,
      typeof options.schemaName === "string" && options.schemaName.length > 0,
      "must be a non-empty string"
    )
    const rawFactor = options.distributionFactor ?? d.distributionFactor
    const distributionFactor = Math.max(
      1,
      yield* check("distributionFactor", rawFactor, Number.isSafeInteger(rawFactor), "must be an integer")
    )
    const largePayloadThreshold = yield* integer(
      "largePayloadThreshold",
      options.largePayloadThreshold ?? d.largePayloadThreshold,
      1
    )
    const maxRetries = yield* integer("maxRetries", options.maxRetries ?? d.maxRetries, 0, 1_000)
    const maxRequestBytes = yield* integer(
      "maxRequestBytes",
      options.maxRequestBytes ?? d.maxRequestBytes,
      1024,
      KinesisLimits.maxRequestBytes
    )
    const maxConcurrentCalls = yield* integer(
      "maxConcurrentCalls",
      options.maxConcurrentCalls ?? d.maxConcurrentCalls,
      1,
      1_000
    )
    const maxConcurrentUploads = yield* integer(
      "maxConcurrentUploads",
      options.maxConcurrentUploads ?? d.maxConcurrentUploads,
      1,
      1_000
    )
    const compressionLevel = yield* integer("compressionLevel", options.compressionLevel ?? d.compressionLevel, -1, 9)
    const compressionWorkers = yield* integer(
      "compressionWorkers",
      options.compressionWorkers ?? d.compressionWorkers,
      0,
      64
    )
    const backoffBase = yield* duration("backoffBase", options.backoffBase ?? d.backoffBase)
    const backoffCap = yield* duration("backoffCap", options.backoffCap ?? d.backoffCap)
    const requestTimeout = yield* duration("requestTimeout", options.requestTimeout ?? d.requestTimeout)
    const aggregation = yield* resolveAggregation(options.aggregation)
    // Kinesis counts a key's characters (code points), not the UTF-16 units of `length`.
    const longest = partitionKeyLength(
      longestPartitionKey({ logGroupId, schemaName, distributionFactor, maxRetries })
    )
    yield* check(
      "logGroupId",
      logGroupId,
      longest <= KinesisLimits.maxPartitionKeyLength,
      `and schemaName make partition keys of up to ${longest} characters (limit ${KinesisLimits.maxPartitionKeyLength}, with distributionFactor ${distributionFactor} and maxRetries ${maxRetries})`
    )
    // Requests go to the ARN's stream while errors, S3 keys and metrics name streamName: they
    // must be the same stream.
    const streamArn = options.streamArn === undefined ? undefined : yield* check(
      "streamArn",
      options.streamArn,
      typeof options.streamArn === "string" && STREAM_ARN.exec(options.streamArn)?.[1] === streamName,
      `must be the ARN of stream ${
        JSON.stringify(streamName)
      } (arn:<partition>:kinesis:<region>:<account>:stream/${streamName})`
    )
    return {
      streamName,
      streamArn,
      logGroupId,
      schemaName,
      accountId,
      distributionFactor,
      largePayloadThreshold,
      maxRetries,
      backoffBase,
      backoffCap,
      maxRequestBytes,
      readStreamRecordLimit: options.readStreamRecordLimit ?? false,
      maxConcurrentCalls,
      maxConcurrentUploads,
      compressionLevel,
      compressionWorkers,
      requestTimeout,
      aggregation
    }
  })

/**
 * Where {@link KinesisWriter.layerConfig} reads each option by default: environment
 * variables.
 *
 * | variable | option |
 * |---|---|
 * | `KINESIS_STREAM_NAME` | streamName |
 * | `KINESIS_STREAM_ARN` | streamArn (optional) |
 * | `KINESIS_LOG_GROUP_ID` | logGroupId |
 * | `KINESIS_SCHEMA_NAME` | schemaName |
 * | `AWS_ACCOUNT_ID` | accountId |
 * | `KINESIS_DISTRIBUTION_FACTOR` | distributionFactor |
 * | `KINESIS_LARGE_PAYLOAD_THRESHOLD` | largePayloadThreshold |
 * | `KINESIS_MAX_RETRIES` | maxRetries |
 * | `KINESIS_BACKOFF_BASE`, `KINESIS_BACKOFF_CAP` | backoffBase, backoffCap (e.g. `100 ms`, `10 s`, `100 millis`) |
 * | `KINESIS_MAX_REQUEST_BYTES` | maxRequestBytes |
 * | `KINESIS_READ_STREAM_RECORD_LIMIT` | readStreamRecordLimit |
 * | `KINESIS_MAX_CONCURRENT_CALLS`, `KINESIS_MAX_CONCURRENT_UPLOADS` | concurrency bounds |
 * | `KINESIS_COMPRESSION_LEVEL` | compressionLevel |
 * | `KINESIS_COMPRESSION_WORKERS` | compressionWorkers |
 * | `KINESIS_REQUEST_TIMEOUT` | requestTimeout (e.g. `30 s`, `30 seconds`) |
 * | `KINESIS_AGGREGATION` | aggregation on (`true`) or off (default) |
 * | `KINESIS_AGGREGATION_MAX_RECORDS`, `KINESIS_AGGREGATION_MAX_BYTES` | aggregation.maxRecords, aggregation.maxBytes |
 *
 * Integers are decimal (`""`, `"0x3"`, `"1e3"` are refused); a value that does not parse is a
 * `ConfigError` naming the variable and the value.
 *
 * @since 0.1.0
 */
export const fromEnv: Config.Config.Wrap<KinesisWriterOptions> = {
  streamName: Config.string("KINESIS_STREAM_NAME"),
  streamArn: optional(envText("KINESIS_STREAM_ARN", "must be a Kinesis stream ARN", (t) => STREAM_ARN.test(t))),
  logGroupId: Config.string("KINESIS_LOG_GROUP_ID"),
  schemaName: Config.string("KINESIS_SCHEMA_NAME"),
  accountId: Config.string("AWS_ACCOUNT_ID"),
  distributionFactor: optional(envInteger("KINESIS_DISTRIBUTION_FACTOR")),
  largePayloadThreshold: optional(envInteger("KINESIS_LARGE_PAYLOAD_THRESHOLD")),
  maxRetries: optional(envInteger("KINESIS_MAX_RETRIES")),
  backoffBase: optional(envDuration("KINESIS_BACKOFF_BASE")),
  backoffCap: optional(envDuration("KINESIS_BACKOFF_CAP")),
  maxRequestBytes: optional(envInteger("KINESIS_MAX_REQUEST_BYTES")),
  readStreamRecordLimit: optional(Config.boolean("KINESIS_READ_STREAM_RECORD_LIMIT")),
  maxConcurrentCalls: optional(envInteger("KINESIS_MAX_CONCURRENT_CALLS")),
  maxConcurrentUploads: optional(envInteger("KINESIS_MAX_CONCURRENT_UPLOADS")),
  compressionLevel: optional(envInteger("KINESIS_COMPRESSION_LEVEL")),
  compressionWorkers: optional(envInteger("KINESIS_COMPRESSION_WORKERS")),
  requestTimeout: optional(envDuration("KINESIS_REQUEST_TIMEOUT")),
  aggregation: Config.all({
    on: Config.withDefault(Config.boolean("KINESIS_AGGREGATION"), false),
    maxRecords: optional(envInteger("KINESIS_AGGREGATION_MAX_RECORDS")),
    maxBytes: optional(envInteger("KINESIS_AGGREGATION_MAX_BYTES"))
  }).pipe(Config.map(({ on, ...options }): AggregationOptions | undefined => on ? options : undefined))
}

/**
 * A variable read as text and parsed by `parse`; text it refuses is a `ConfigError` whose path
 * is the variable and whose message names the variable and the text.
 */
function envParsed<A>(name: string, requirement: string, parse: (text: string) => Option.Option<A>): Config.Config<A> {
  return Config.nested(
    Config.mapOrFail(Config.string(), (text) =>
      Either.fromOption(
        parse(text),
        () => ConfigError.InvalidData([], `${name} ${requirement}, got ${JSON.stringify(text)}`)
      )),
    name
  )
}

/** Text that `ok` accepts, as is. */
function envText(name: string, requirement: string, ok: (text: string) => boolean): Config.Config<string> {
  return envParsed(name, requirement, (text) => ok(text) ? Option.some(text) : Option.none())
}

/**
 * A decimal integer, unlike `Config.integer`, which reads with `Number` and so takes `""` and
 * `" "` for 0 and `"0x3"`, `"0b1"`, `"1e3"` for numbers.
 */
function envInteger(name: string): Config.Config<number> {
  return envParsed(
    name,
    "must be a decimal integer",
    (text) => /^\s*[+-]?\d+\s*$/.test(text) ? Option.some(Number(text.trim())) : Option.none()
  )
}

/** A duration as the README writes it (`100 ms`, `30 s`) or as Effect does (`30 seconds`). */
function envDuration(name: string): Config.Config<Duration.Duration> {
  return envParsed(name, "must be a duration such as \"100 ms\", \"30 s\" or \"30 seconds\"", parseDuration)
}

/** An optional setting: absent is `undefined`, which the defaults fill in. */
export function optional<A>(config: Config.Config<A>): Config.Config<A | undefined> {
  return Config.map(Config.option(config), Option.getOrUndefined)
}
