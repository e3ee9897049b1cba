/**
 * The one options module: the settings of the writer, its aggregation and the producer, their
 * defaults, and their validation, through the decisions of `core/options.ts` (one duration
 * grammar, one wording of errors). A bad value fails with a `ConfigError.InvalidData` whose
 * path is the option (or the environment variable it was read from) and whose message is one
 * line naming it and the value; the same settings can be read through Effect `Config`.
 */
import { Config, ConfigError, Duration, Effect, Either, Option } from "effect"
import type { KinesisProducerOptions } from "../KinesisProducer.js"
import type {
  AggregationSettings,
  Checked,
  DurationText,
  ProducerSettings,
  Refusal,
  WriterSettings
} from "./core/options.js"
import * as core from "./core/options.js"
import { longestPartitionKey } from "./core/partitionKey.js"

/**
 * A duration option, in the one grammar every option takes: a `Duration`, a number of
 * milliseconds, or text of a number and a unit, with or without a space (`"100 ms"`,
 * `"100 millis"`, `"30 s"`, `"10 seconds"`, `"2m"`; units `ns`, `us`, `ms`, `s`, `m`, `h`, `d`,
 * `w` and Effect's `nanos` … `weeks`). NaN, negative and infinite durations are refused.
 *
 * @since 0.1.0
 */
export type DurationOption = Duration.DurationInput | DurationText

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
  /** First backoff delay: a duration (`"100 ms"`, `"100 millis"`, `100`, `Duration.millis(100)`). Default 100 ms. */
  readonly backoffBase?: DurationOption | undefined
  /** Longest backoff delay. Default 10 s. */
  readonly backoffCap?: DurationOption | undefined
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
  readonly requestTimeout?: DurationOption | undefined
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
export type ResolvedWriterConfig = WriterSettings<Duration.Duration>

/**
 * The writer's defaults: what an option left out is. `maxRequestBytes` is 5 MiB, or the
 * stream's record limit when `readStreamRecordLimit` finds a larger one.
 *
 * @since 0.1.0
 */
export const WriterDefaults = {
  ...core.writerDefaults,
  backoffBase: Duration.millis(core.writerDefaults.backoffBase),
  backoffCap: Duration.millis(core.writerDefaults.backoffCap),
  requestTimeout: Duration.millis(core.writerDefaults.requestTimeout)
} as const

/**
 * Packing the records of a batch that share a partition key into one Kinesis record
 * (`gzip(DataFileEntryRecordBatch)`). Off unless given: consumers must read aggregates
 * (`RecordReader.decodeRecordAll`, or any of the reader's batch functions) before a
 * producer turns it on.
 *
 * @since 0.1.0
 */
export interface AggregationOptions {
  /** Logical records in one aggregate, at most. Integer ≥ 2. Default 500. */
  readonly maxRecords?: number | undefined
  /**
   * Bytes of one aggregate before gzip, at most (a single record larger than this travels
   * alone). Its gzip'd size plus the partition key must fit the stream's record limit.
   * Default 262,144 (256 KiB).
   */
  readonly maxBytes?: number | undefined
  /**
   * Only records whose serialized `DataFileV1` is smaller than this many bytes are aggregated;
   * a larger one travels alone, as without aggregation, where gzip of its own costs less CPU
   * than its share of an aggregate's and the aggregate would save few bytes. Positive integer.
   * Default 1,536 (measured: see `AggregationDefaults`).
   */
  readonly maxMemberBytes?: number | undefined
}

/**
 * The aggregation settings after validation and defaults.
 *
 * @since 0.1.0
 */
export type ResolvedAggregation = AggregationSettings

/**
 * The aggregation defaults (why these: `aggregationDefaults` in `core/options.ts`).
 *
 * @since 0.1.0
 */
export const AggregationDefaults = core.aggregationDefaults

/**
 * The producer's defaults: what an option left out is.
 *
 * @since 0.1.0
 */
export const ProducerDefaults = {
  ...core.producerDefaults,
  linger: Duration.millis(core.producerDefaults.linger),
  recordTtl: Duration.millis(core.producerDefaults.recordTtl),
  shutdownTimeout: Duration.millis(core.producerDefaults.shutdownTimeout)
} as const

/** The producer's options after validation and defaults. */
export type ResolvedProducerOptions = ProducerSettings<
  Duration.Duration,
  NonNullable<KinesisProducerOptions["onUndelivered"]>
>

// ---------------------------------------------------------------------------------------------
// From the core's decisions to Effect's values

/**
 * A duration option as the core reads it: a `Duration` as its milliseconds (`Infinity` for
 * `Duration.infinity`), anything else as given, to be parsed there.
 */
const plainDuration = (input: unknown): unknown => Duration.isDuration(input) ? Duration.toMillis(input) : input

const toDuration = (millis: number): Duration.Duration => Duration.millis(millis)

/**
 * Effect prints a `ConfigError` as `(Invalid data at <path>: "<message>")`; ours say the path
 * in their message already, and print as that one line. The copy keeps everything else of the
 * original (its tag, `_op`, `path`, `message`).
 */
const printedAs = (error: ConfigError.ConfigError, line: string): ConfigError.ConfigError =>
  Object.create(Object.getPrototypeOf(error), {
    ...Object.getOwnPropertyDescriptors(error),
    toString: { value: () => line, enumerable: false }
  })

/** A refusal of the core as a `ConfigError.InvalidData`, printed as its message. */
export const toConfigError = (refusal: Refusal): ConfigError.ConfigError =>
  printedAs(ConfigError.InvalidData([...refusal.path], refusal.message), refusal.message)

/**
 * A `ConfigError` (from a `Config`, or several joined by "and" / "or") whose every part prints
 * as one line naming its path: ours as their message, Effect's own as `<path>: <message>`
 * unless the message names the path already.
 */
export const readableConfigError = (error: ConfigError.ConfigError): ConfigError.ConfigError => {
  switch (error._op) {
    case "And":
      return ConfigError.And(readableConfigError(error.left), readableConfigError(error.right))
    case "Or":
      return ConfigError.Or(readableConfigError(error.left), readableConfigError(error.right))
    default: {
      const at = error.path.join(".")
      return printedAs(error, at === "" || error.message.includes(at) ? error.message : `${at}: ${error.message}`)
    }
  }
}

const fromChecked = <A>(checked: Checked<A>): Either.Either<A, ConfigError.ConfigError> =>
  checked.ok ? Either.right(checked.value) : Either.left(toConfigError(checked))

/**
 * `Config.unwrap` of a caller's options, its errors made readable: what `layerConfig`s read
 * their options with.
 *
 * @internal
 */
export const unwrapOptions = <A>(config: Config.Config.Wrap<A>): Effect.Effect<A, ConfigError.ConfigError> =>
  Effect.mapError(Config.unwrap(config), readableConfigError)

/**
 * Validates the writer's options and fills in defaults; `maxRequestBytes` is settled by
 * {@link fitStreamLimits} once the stream's record limit is known.
 *
 * @internal
 */
export const resolveWriterConfig = (
  options: KinesisWriterOptions
): Either.Either<WriterSettings<Duration.Duration, number | undefined>, ConfigError.ConfigError> =>
  fromChecked(core.resolveWriter({
    ...options,
    backoffBase: plainDuration(options.backoffBase),
    backoffCap: plainDuration(options.backoffCap),
    requestTimeout: plainDuration(options.requestTimeout)
  }, toDuration))

/**
 * The writer's settings against the stream's record limit (data plus partition key):
 * `maxRequestBytes` given must be at least the limit, and left out follows it; an aggregate
 * must fit a record.
 *
 * @internal
 */
export const fitStreamLimits = (
  settings: WriterSettings<Duration.Duration, number | undefined>,
  recordLimitBytes: number
): Either.Either<ResolvedWriterConfig, ConfigError.ConfigError> =>
  fromChecked(core.fitStream(settings, recordLimitBytes, Buffer.byteLength(longestPartitionKey(settings))))

/**
 * Validates the producer's options against the stream's record limit of the writer it runs
 * on, and fills in defaults.
 *
 * @internal
 */
export const resolveProducerOptions = (
  options: KinesisProducerOptions,
  recordLimitBytes: number
): Either.Either<ResolvedProducerOptions, ConfigError.ConfigError> =>
  fromChecked(core.resolveProducer(
    {
      ...options,
      linger: plainDuration(options.linger),
      recordTtl: plainDuration(options.recordTtl),
      shutdownTimeout: plainDuration(options.shutdownTimeout)
    },
    recordLimitBytes,
    toDuration
  ))

// ---------------------------------------------------------------------------------------------
// The environment

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
 * | `KINESIS_AGGREGATION_MAX_MEMBER_BYTES` | aggregation.maxMemberBytes |
 *
 * Each value is checked as the option is, and refused naming the variable and the value.
 * Integers are decimal (`""`, `"0x3"`, `"1e3"` are refused); durations take the options' one
 * grammar in text (`"100 ms"`, `"30 s"`, `"10 seconds"`).
 *
 * @since 0.1.0
 */
export const fromEnv: Config.Config.Wrap<KinesisWriterOptions> = {
  streamName: envText("KINESIS_STREAM_NAME", core.writerChecks.streamName),
  streamArn: optional(envText("KINESIS_STREAM_ARN", core.writerChecks.streamArn)),
  logGroupId: envText("KINESIS_LOG_GROUP_ID", core.writerChecks.logGroupId),
  schemaName: envText("KINESIS_SCHEMA_NAME", core.writerChecks.schemaName),
  accountId: envText("AWS_ACCOUNT_ID", core.writerChecks.accountId),
  distributionFactor: optional(envInteger("KINESIS_DISTRIBUTION_FACTOR", core.writerChecks.distributionFactor)),
  largePayloadThreshold: optional(
    envInteger("KINESIS_LARGE_PAYLOAD_THRESHOLD", core.writerChecks.largePayloadThreshold)
  ),
  maxRetries: optional(envInteger("KINESIS_MAX_RETRIES", core.writerChecks.maxRetries)),
  backoffBase: optional(envDuration("KINESIS_BACKOFF_BASE")),
  backoffCap: optional(envDuration("KINESIS_BACKOFF_CAP")),
  maxRequestBytes: optional(envInteger("KINESIS_MAX_REQUEST_BYTES", core.writerChecks.maxRequestBytes)),
  readStreamRecordLimit: optional(Config.boolean("KINESIS_READ_STREAM_RECORD_LIMIT")),
  maxConcurrentCalls: optional(envInteger("KINESIS_MAX_CONCURRENT_CALLS", core.writerChecks.maxConcurrentCalls)),
  maxConcurrentUploads: optional(envInteger("KINESIS_MAX_CONCURRENT_UPLOADS", core.writerChecks.maxConcurrentUploads)),
  compressionLevel: optional(envInteger("KINESIS_COMPRESSION_LEVEL", core.writerChecks.compressionLevel)),
  compressionWorkers: optional(envInteger("KINESIS_COMPRESSION_WORKERS", core.writerChecks.compressionWorkers)),
  requestTimeout: optional(envDuration("KINESIS_REQUEST_TIMEOUT")),
  aggregation: Config.all({
    on: Config.withDefault(Config.boolean("KINESIS_AGGREGATION"), false),
    maxRecords: optional(envInteger("KINESIS_AGGREGATION_MAX_RECORDS", core.aggregationChecks.maxRecords)),
    maxBytes: optional(envInteger("KINESIS_AGGREGATION_MAX_BYTES", core.aggregationChecks.maxBytes)),
    maxMemberBytes: optional(
      envInteger("KINESIS_AGGREGATION_MAX_MEMBER_BYTES", core.aggregationChecks.maxMemberBytes)
    )
  }).pipe(Config.map(({ on, ...options }): AggregationOptions | undefined => on ? options : undefined))
}

/**
 * A variable read as text and checked by `check`, given the variable's name: a value it
 * refuses is a `ConfigError` whose path is the variable and whose message names it.
 */
function envChecked<A>(name: string, check: (name: string, text: string) => Checked<A>): Config.Config<A> {
  return Config.mapOrFail(Config.string(name), (text) => {
    const checked = check(name, text)
    // The Config prefixes the variable to the path: the refusal's own path is dropped.
    return checked.ok ? Either.right(checked.value) : Either.left(ConfigError.InvalidData([], checked.message))
  })
}

/** Text, checked as the option it is read for. */
function envText(name: string, check: (name: string, value: unknown) => Checked<string>): Config.Config<string> {
  return envChecked(name, check)
}

/**
 * A decimal integer, unlike `Config.integer`, which reads with `Number` and so takes `""` and
 * `" "` for 0 and `"0x3"`, `"0b1"`, `"1e3"` for numbers; then checked as the option it is
 * read for.
 */
function envInteger(name: string, check: (name: string, value: unknown) => Checked<number>): Config.Config<number> {
  return envChecked(name, (at, text) => {
    const n = core.parseDecimalInteger(text)
    return n === undefined ? core.refuse(at, "must be a decimal integer", text) : check(at, n)
  })
}

/** A duration in the options' one grammar (`100 ms`, `30 s`, `10 seconds`). */
function envDuration(name: string): Config.Config<Duration.Duration> {
  return envChecked(name, (at, text) => {
    const checked = core.checkDuration(at, text)
    return checked.ok ? core.accept(Duration.millis(checked.value)) : checked
  })
}

/** An optional setting: absent is `undefined`, which the defaults fill in. */
export function optional<A>(config: Config.Config<A>): Config.Config<A | undefined> {
  return Config.map(Config.option(config), Option.getOrUndefined)
}
