/**
 * The decisions about settings, without effects: one duration grammar, the checks of every
 * option of the writer, its aggregation and the producer, and the words of their errors.
 * Values arrive as `unknown` (a caller's JavaScript, or text from the environment) and leave
 * as plain numbers, strings and booleans (durations in milliseconds), or as a refusal naming
 * the setting and the value. `../config.ts` turns refusals into `ConfigError`s and
 * milliseconds into `Duration`s.
 */
import { availableParallelism } from "node:os"
import { gzipBound } from "./gzipBound.js"
import { KinesisLimits } from "./limits.js"
import { longestPartitionKey, partitionKeyLength } from "./partitionKey.js"

/** A setting checked: its value, or why it is refused. */
export type Checked<A> =
  | { readonly ok: true; readonly value: A }
  | {
    readonly ok: false
    /** The option (`["aggregation", "maxBytes"]`) or the environment variable refused. */
    readonly path: ReadonlyArray<string>
    /** One line naming the setting, what it must be, and the value given. */
    readonly message: string
  }

/** A value that passed. */
export const accept = <A>(value: A): Checked<A> => ({ ok: true, value })

/**
 * A value as an error message shows it: `NaN`, `Infinity` and `-0` as JavaScript writes
 * them (JSON would say `null` and `0`), text in quotes, anything else as JSON when it has one.
 */
export const show = (value: unknown): string => {
  switch (typeof value) {
    case "number":
      return Object.is(value, -0) ? "-0" : String(value)
    case "bigint":
      return `${value}n`
    case "string":
      return JSON.stringify(value)
    case "undefined":
    case "boolean":
    case "symbol":
      return String(value)
    case "function":
      return "a function"
  }
  if (Array.isArray(value)) return `[${value.map(show).join(", ")}]`
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/** The refusal of `value` for the setting at `path`: `"<path> <requirement>, got <value>"`. */
export const refuse = (
  path: string | ReadonlyArray<string>,
  requirement: string,
  value: unknown
): Checked<never> => {
  const at = typeof path === "string" ? [path] : path
  return { ok: false, path: at, message: `${at.join(".")} ${requirement}, got ${show(value)}` }
}

// ---------------------------------------------------------------------------------------------
// Durations

/** The units of the duration grammar, by their length in milliseconds. */
const UNITS = [
  [1e-6, ["ns", "nano", "nanos", "nanosecond", "nanoseconds"]],
  [1e-3, ["us", "µs", "micro", "micros", "microsecond", "microseconds"]],
  [1, ["ms", "milli", "millis", "millisecond", "milliseconds"]],
  [1_000, ["s", "sec", "secs", "second", "seconds"]],
  [60_000, ["m", "min", "mins", "minute", "minutes"]],
  [3_600_000, ["h", "hour", "hours"]],
  [86_400_000, ["d", "day", "days"]],
  [604_800_000, ["w", "week", "weeks"]]
] as const

/** A unit of the duration grammar. */
export type DurationUnit = typeof UNITS[number][1][number]

/** A duration in text, as the grammar takes it: `"100 ms"`, `"30s"`, `"10 seconds"`. */
export type DurationText = `${number} ${DurationUnit}` | `${number}${DurationUnit}`

const UNIT_MILLIS: ReadonlyMap<string, number> = new Map(
  UNITS.flatMap(([millis, names]) => names.map((name) => [name, millis] as const))
)

const DURATION_TEXT = /^\s*([+-]?)(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Zµ]+)\s*$/

/**
 * The milliseconds of a duration in the one grammar every option takes:
 *
 * - text, a number and a unit, with or without a space: `"100 ms"`, `"30 s"`, `"10 seconds"`,
 *   `"100 millis"`, `"2m"`, `"1.5 hours"` (units `ns`, `us`, `ms`, `s`, `m`, `h`, `d`, `w` and
 *   Effect's `nanos` … `weeks`, singular or plural). A bare number in text is refused: its
 *   unit would be a guess;
 * - a number: milliseconds;
 * - a bigint: nanoseconds; `[seconds, nanoseconds]`: as Effect's `Duration.decode` reads them.
 *
 * (`Duration` values are read by the caller, which hands their milliseconds.) `NaN`, negative
 * and infinite values are refused, each with its own reason.
 */
export const parseDuration = (
  input: unknown
):
  | { readonly ok: true; readonly millis: number }
  | { readonly ok: false; readonly reason: "not a duration" | "NaN" | "negative" | "infinite" } =>
{
  let millis: number
  let negative = false
  if (typeof input === "number") {
    millis = input
  } else if (typeof input === "bigint") {
    negative = input < 0n
    millis = Number(input) / 1e6
  } else if (
    Array.isArray(input) && input.length === 2 && typeof input[0] === "number" && typeof input[1] === "number"
  ) {
    negative = input[0] < 0 || input[1] < 0
    millis = input[0] * 1_000 + input[1] / 1e6
  } else if (typeof input === "string") {
    const match = DURATION_TEXT.exec(input)
    const unit = match === null ? undefined : UNIT_MILLIS.get(match[3]!) ?? UNIT_MILLIS.get(match[3]!.toLowerCase())
    if (match === null || unit === undefined) return { ok: false, reason: "not a duration" }
    negative = match[1] === "-"
    millis = Number(match[2]) * unit
  } else {
    return { ok: false, reason: "not a duration" }
  }
  if (Number.isNaN(millis)) return { ok: false, reason: "NaN" }
  if (negative || millis < 0) return { ok: false, reason: "negative" }
  if (!Number.isFinite(millis)) return { ok: false, reason: "infinite" }
  return { ok: true, millis }
}

/** What every duration option's refusal says the grammar is. */
export const DURATION_FORMS = "a duration such as \"100 ms\", \"30 s\", \"10 seconds\" or a number of milliseconds"

/**
 * A duration setting: its milliseconds, or a refusal naming it and the value. Zero is
 * refused unless `zero` says it is allowed.
 */
export const checkDuration = (
  path: string | ReadonlyArray<string>,
  input: unknown,
  zero: "zero allowed" | "positive" = "positive"
): Checked<number> => {
  const parsed = parseDuration(input)
  if (parsed.ok) {
    return parsed.millis > 0 || zero === "zero allowed"
      ? accept(parsed.millis)
      : refuse(path, "must be a positive duration", input)
  }
  switch (parsed.reason) {
    case "not a duration":
    case "NaN":
      return refuse(path, `must be ${DURATION_FORMS}`, input)
    case "negative":
      return refuse(path, "must not be negative", input)
    case "infinite":
      return refuse(path, "must be a finite duration", input)
  }
}

// ---------------------------------------------------------------------------------------------
// Numbers, text, flags

/** An integer from `min` to `max`. */
export const checkInteger = (
  path: string | ReadonlyArray<string>,
  value: unknown,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
  requirement = `must be an integer from ${min} to ${max}`
): Checked<number> =>
  typeof value === "number" && Number.isInteger(value) && value >= min && value <= max
    ? accept(value)
    : refuse(path, requirement, value)

/** `true` or `false`. */
export const checkBoolean = (path: string | ReadonlyArray<string>, value: unknown): Checked<boolean> =>
  typeof value === "boolean" ? accept(value) : refuse(path, "must be true or false", value)

/** Whether `text` is well-formed UTF-16: no lone surrogate, which UTF-8 cannot carry. */
export const isWellFormed = (text: string): boolean =>
  (text as unknown as { readonly isWellFormed: () => boolean }).isWellFormed()

/** Text that `ok` accepts; text with a lone surrogate is refused as such. */
export const checkText = (
  path: string | ReadonlyArray<string>,
  value: unknown,
  ok: (text: string) => boolean,
  requirement: string
): Checked<string> =>
  typeof value !== "string" || !ok(value)
    ? refuse(path, requirement, value)
    : isWellFormed(value)
    ? accept(value)
    : refuse(path, "must be well-formed text (it holds a lone UTF-16 surrogate)", value)

/**
 * A decimal integer written in text: `Number` alone would take `""` for 0 and `"0x3"`,
 * `"1e3"` for numbers.
 */
export const parseDecimalInteger = (text: string): number | undefined =>
  /^\s*[+-]?\d+\s*$/.test(text) ? Number(text.trim()) : undefined

// ---------------------------------------------------------------------------------------------
// The writer

const STREAM_NAME = /^[a-zA-Z0-9_.-]{1,128}$/
/** A Kinesis stream's ARN; the stream's name is its last part. */
export const STREAM_ARN = /^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream\/([a-zA-Z0-9_.-]{1,128})$/
const ACCOUNT_ID = /^\d{12}$/
const NON_EMPTY = "must be a non-empty string"

/**
 * The writer's defaults, durations in milliseconds (`WriterDefaults` in `../config.ts` holds
 * them as `Duration`s).
 */
export const writerDefaults = {
  // 16, not 4: on 4 shards, 4 keys per attempt left a shard underused (P3: 86.8% of capacity;
  // 16 gives 98.9%, see BENCHMARKS.md). It costs nothing per record, and a 2-digit bucket.
  distributionFactor: 16,
  largePayloadThreshold: 921_600,
  maxRetries: 3,
  backoffBase: 100,
  backoffCap: 10_000,
  maxRequestBytes: KinesisLimits.defaultRequestBytes,
  maxConcurrentCalls: 4,
  maxConcurrentUploads: 8,
  /** zlib's default (level 6). */
  compressionLevel: -1,
  // Two threads where there is more than one core: on the benchmark's 2 cores, 1.64× the hand
  // loop's wall rate at 50 columns against 1.22× with one (the main thread waits less at the
  // end of each batch) and 1.25× with none. None on one core (Lambda below 1,769 MB, small
  // containers): a thread there only competes with the main one, and takes about a second to
  // start (BENCHMARKS.md).
  compressionWorkers: availableParallelism() > 1 ? 2 : 0,
  requestTimeout: 30_000
} as const

/**
 * The checks of the writer's settings one by one, each given the name to report: the option
 * (`maxRetries`) or the variable it was read from (`KINESIS_MAX_RETRIES`).
 */
export const writerChecks = {
  streamName: (path: string, v: unknown) =>
    checkText(path, v, (t) => STREAM_NAME.test(t), "must be 1–128 characters of [a-zA-Z0-9_.-]"),
  streamArn: (path: string, v: unknown) =>
    checkText(path, v, (t) => STREAM_ARN.test(t), "must be a Kinesis stream ARN"),
  logGroupId: (path: string, v: unknown) => checkText(path, v, (t) => t.length > 0, NON_EMPTY),
  schemaName: (path: string, v: unknown) => checkText(path, v, (t) => t.length > 0, NON_EMPTY),
  accountId: (path: string, v: unknown) => checkText(path, v, (t) => ACCOUNT_ID.test(t), "must be 12 digits"),
  distributionFactor: (path: string, v: unknown) =>
    checkInteger(path, v, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, "must be an integer"),
  largePayloadThreshold: (path: string, v: unknown) => checkInteger(path, v, 1),
  maxRetries: (path: string, v: unknown) => checkInteger(path, v, 0, 1_000),
  backoffBase: (path: string, v: unknown) => checkDuration(path, v),
  backoffCap: (path: string, v: unknown) => checkDuration(path, v),
  maxRequestBytes: (path: string, v: unknown) => checkInteger(path, v, 1024, KinesisLimits.maxRequestBytes),
  readStreamRecordLimit: checkBoolean,
  maxConcurrentCalls: (path: string, v: unknown) => checkInteger(path, v, 1, 1_000),
  maxConcurrentUploads: (path: string, v: unknown) => checkInteger(path, v, 1, 1_000),
  compressionLevel: (path: string, v: unknown) => checkInteger(path, v, -1, 9),
  compressionWorkers: (path: string, v: unknown) => checkInteger(path, v, 0, 64),
  requestTimeout: (path: string, v: unknown) => checkDuration(path, v)
} as const

/** What a caller gives the writer, unchecked. */
export type WriterInput = { readonly [K in keyof typeof writerChecks | "aggregation"]?: unknown }

/**
 * The writer's settings after checks and defaults, durations as `D`. `RequestBytes` is
 * `number | undefined` until the stream's record limit is known (see {@link fitStream}).
 */
export interface WriterSettings<D, RequestBytes = number> {
  readonly streamName: string
  readonly streamArn: string | undefined
  readonly logGroupId: string
  readonly schemaName: string
  readonly accountId: string
  readonly distributionFactor: number
  readonly largePayloadThreshold: number
  readonly maxRetries: number
  readonly backoffBase: D
  readonly backoffCap: D
  /** Bytes (data plus partition keys) of one PutRecords call; at least the stream's record limit. */
  readonly maxRequestBytes: RequestBytes
  readonly readStreamRecordLimit: boolean
  readonly maxConcurrentCalls: number
  readonly maxConcurrentUploads: number
  readonly compressionLevel: number
  readonly compressionWorkers: number
  readonly requestTimeout: D
  /** `undefined` when aggregation is off. */
  readonly aggregation: AggregationSettings | undefined
}

/** A refusal. */
export type Refusal = Extract<Checked<never>, { readonly ok: false }>

/** A check inside {@link checks}: `yield*` it for its value; a refusal ends the checks. */
function* take<A>(checked: Checked<A>): Generator<Refusal, A, unknown> {
  if (checked.ok) return checked.value
  // `checks` never resumes a generator that yielded a refusal.
  return (yield checked) as never
}

/** Runs checks in order (a generator of {@link take}s); the first refusal stops them. */
const checks = <A>(body: () => Generator<Refusal, A, unknown>): Checked<A> => {
  const step = body().next()
  return step.done === true ? accept(step.value) : step.value
}

/**
 * Checks the writer's options and fills in defaults; `duration` makes a duration of
 * milliseconds. `maxRequestBytes` stays `undefined` when not given: its default depends on
 * the stream's record limit, known later.
 */
export const resolveWriter = <D>(
  options: WriterInput,
  duration: (millis: number) => D
): Checked<WriterSettings<D, number | undefined>> =>
  checks(function*() {
    const d = writerDefaults
    const c = writerChecks
    const streamName = yield* take(c.streamName("streamName", options.streamName))
    const accountId = yield* take(c.accountId("accountId", options.accountId))
    const logGroupId = yield* take(c.logGroupId("logGroupId", options.logGroupId))
    const schemaName = yield* take(c.schemaName("schemaName", options.schemaName))
    const distributionFactor = Math.max(
      1,
      yield* take(c.distributionFactor("distributionFactor", options.distributionFactor ?? d.distributionFactor))
    )
    const largePayloadThreshold = yield* take(
      c.largePayloadThreshold("largePayloadThreshold", options.largePayloadThreshold ?? d.largePayloadThreshold)
    )
    const maxRetries = yield* take(c.maxRetries("maxRetries", options.maxRetries ?? d.maxRetries))
    const maxRequestBytes = options.maxRequestBytes === undefined
      ? undefined
      : yield* take(c.maxRequestBytes("maxRequestBytes", options.maxRequestBytes))
    const maxConcurrentCalls = yield* take(
      c.maxConcurrentCalls("maxConcurrentCalls", options.maxConcurrentCalls ?? d.maxConcurrentCalls)
    )
    const maxConcurrentUploads = yield* take(
      c.maxConcurrentUploads("maxConcurrentUploads", options.maxConcurrentUploads ?? d.maxConcurrentUploads)
    )
    const compressionLevel = yield* take(
      c.compressionLevel("compressionLevel", options.compressionLevel ?? d.compressionLevel)
    )
    const compressionWorkers = yield* take(
      c.compressionWorkers("compressionWorkers", options.compressionWorkers ?? d.compressionWorkers)
    )
    const backoffBase = yield* take(c.backoffBase("backoffBase", options.backoffBase ?? d.backoffBase))
    const backoffCap = yield* take(c.backoffCap("backoffCap", options.backoffCap ?? d.backoffCap))
    const requestTimeout = yield* take(c.requestTimeout("requestTimeout", options.requestTimeout ?? d.requestTimeout))
    const readStreamRecordLimit = yield* take(
      c.readStreamRecordLimit("readStreamRecordLimit", options.readStreamRecordLimit ?? false)
    )
    const aggregation = yield* take(resolveAggregation(options.aggregation))
    // Kinesis counts a key's characters (code points), not the UTF-16 units of `length`.
    const longest = partitionKeyLength(longestPartitionKey({ logGroupId, schemaName, distributionFactor, maxRetries }))
    if (longest > KinesisLimits.maxPartitionKeyLength) {
      yield* take(refuse(
        "logGroupId",
        `and schemaName make partition keys of up to ${longest} characters (limit ${KinesisLimits.maxPartitionKeyLength}, with distributionFactor ${distributionFactor} and maxRetries ${maxRetries})`,
        logGroupId
      ))
    }
    // Requests go to the ARN's stream while errors, S3 keys and metrics name streamName: they
    // must be the same stream.
    const streamArn = options.streamArn === undefined ? undefined : yield* take(
      checkText(
        "streamArn",
        options.streamArn,
        (t) => STREAM_ARN.exec(t)?.[1] === streamName,
        `must be the ARN of stream ${
          JSON.stringify(streamName)
        } (arn:<partition>:kinesis:<region>:<account>:stream/${streamName})`
      )
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
      backoffBase: duration(backoffBase),
      backoffCap: duration(backoffCap),
      maxRequestBytes,
      readStreamRecordLimit,
      maxConcurrentCalls,
      maxConcurrentUploads,
      compressionLevel,
      compressionWorkers,
      requestTimeout: duration(requestTimeout),
      aggregation
    }
  })

/**
 * The writer's settings against the stream's record limit (data plus partition key), once it
 * is known:
 *
 * - `maxRequestBytes` given must hold the largest record, or that record could never be sent
 *   within it; left out, it is 5 MiB, or the record limit when the stream allows larger
 *   records (at most Kinesis' 10 MiB per call);
 * - an aggregate of `aggregation.maxBytes`, gzip'd, must fit a record.
 */
export const fitStream = <D>(
  settings: WriterSettings<D, number | undefined>,
  recordLimitBytes: number,
  longestKeyBytes: number
): Checked<WriterSettings<D>> =>
  checks(function*() {
    const maxRequestBytes = settings.maxRequestBytes === undefined
      ? Math.min(KinesisLimits.maxRequestBytes, Math.max(writerDefaults.maxRequestBytes, recordLimitBytes))
      : yield* take(
        checkInteger(
          "maxRequestBytes",
          settings.maxRequestBytes,
          recordLimitBytes,
          KinesisLimits.maxRequestBytes,
          `must be at least the stream's record limit (${recordLimitBytes} bytes, data plus partition key), so that every record fits a call, and at most ${KinesisLimits.maxRequestBytes}`
        )
      )
    yield* take(checkAggregationFits(settings.aggregation, recordLimitBytes, longestKeyBytes))
    return { ...settings, maxRequestBytes }
  })

// ---------------------------------------------------------------------------------------------
// Aggregation

/**
 * The aggregation defaults, from measurement (BENCHMARKS.md, "Aggregation"): bytes of Data
 * per record for 4,000 records over 4 partition keys, by `maxBytes` (no record bound):
 *
 * | columns | 4 KiB | 16 KiB | 64 KiB | 256 KiB | ~1 MB | not aggregated |
 * |---|---|---|---|---|---|---|
 * | 5  | 350 | 292 | 272 | 265 | 264 | 537 |
 * | 20 | 910 | 743 | 691 | 674 | 670 | 1,065 |
 * | 50 | 2,041 | 1,675 | 1,555 | 1,515 | 1,506 | 2,058 |
 *
 * 256 KiB is within 0.6% of the largest aggregate's bytes (64 KiB: within 3%), and gzip's
 * time per record has flattened well before it; a larger aggregate only makes a retried
 * unit and a consumer's fan-out bigger. It compresses to ~90–190 KB: a throttled aggregate
 * re-sends about a tenth of a shard's second. 500 records bounds how many logical records
 * one throttled Kinesis record takes with it; at 5 columns (~740 B a record before gzip)
 * `maxBytes` binds first (~350 records), whose ~90 KB gzip'd take 4 PUT payload units: 0.011
 * a record, against 1 for a record alone.
 *
 * `maxMemberBytes`, where aggregating stops paying in CPU (bench P6, "crossover": records per
 * CPU-second of the whole process, 2 compression workers, against the plain writer): an
 * aggregate's gzip saves each record's own stream set-up but runs a 32 KiB window over the
 * whole aggregate, where a record alone gets a window its size. Aggregating every record was
 * ~15% cheaper than plain at 1.3 KB a record (20 columns), even at ~1.55 KB (25), ~10% dearer
 * at 1.8 KB (30) and 40-70% dearer from 2.9 KB (50 columns) up. Below 1.5 KiB, then.
 */
export const aggregationDefaults = {
  maxRecords: 500,
  maxBytes: 256 * 1024,
  maxMemberBytes: 1536
} as const

const MAX_AGGREGATE_RECORDS = 100_000
const MIN_AGGREGATE_BYTES = 1024

/** The aggregation settings after checks and defaults. */
export interface AggregationSettings {
  readonly maxRecords: number
  readonly maxBytes: number
  readonly maxMemberBytes: number
}

/** The checks of the aggregation's settings one by one, each given the name to report. */
export const aggregationChecks = {
  maxRecords: (path: string | ReadonlyArray<string>, v: unknown) =>
    checkInteger(
      path,
      v,
      2,
      MAX_AGGREGATE_RECORDS,
      `must be an integer from 2 to ${MAX_AGGREGATE_RECORDS} (an aggregate of one record is no aggregate)`
    ),
  maxBytes: (path: string | ReadonlyArray<string>, v: unknown) =>
    checkInteger(
      path,
      v,
      MIN_AGGREGATE_BYTES,
      Number.MAX_SAFE_INTEGER,
      `must be an integer of at least ${MIN_AGGREGATE_BYTES}`
    ),
  maxMemberBytes: (path: string | ReadonlyArray<string>, v: unknown) =>
    checkInteger(path, v, 1, Number.MAX_SAFE_INTEGER, "must be a positive integer (bytes of a serialized record)")
} as const

/** Checks the `aggregation` option: `undefined` is off. */
export const resolveAggregation = (options: unknown): Checked<AggregationSettings | undefined> => {
  if (options === undefined) return accept(undefined)
  if (typeof options !== "object" || options === null) {
    return refuse("aggregation", "must be an object ({} for the defaults) or undefined", options)
  }
  const given = options as {
    readonly maxRecords?: unknown
    readonly maxBytes?: unknown
    readonly maxMemberBytes?: unknown
  }
  const maxRecords = aggregationChecks.maxRecords(
    ["aggregation", "maxRecords"],
    given.maxRecords ?? aggregationDefaults.maxRecords
  )
  if (!maxRecords.ok) return maxRecords
  const maxBytes = aggregationChecks.maxBytes(
    ["aggregation", "maxBytes"],
    given.maxBytes ?? aggregationDefaults.maxBytes
  )
  if (!maxBytes.ok) return maxBytes
  const maxMemberBytes = aggregationChecks.maxMemberBytes(
    ["aggregation", "maxMemberBytes"],
    given.maxMemberBytes ?? aggregationDefaults.maxMemberBytes
  )
  if (!maxMemberBytes.ok) return maxMemberBytes
  return accept({ maxRecords: maxRecords.value, maxBytes: maxBytes.value, maxMemberBytes: maxMemberBytes.value })
}

/**
 * Refuses an `aggregation.maxBytes` whose aggregate could be too large for the stream once
 * gzip'd (incompressible records: gzip's worst case), with the longest partition key the
 * writer uses.
 */
export const checkAggregationFits = (
  aggregation: AggregationSettings | undefined,
  recordLimitBytes: number,
  longestKeyBytes: number
): Checked<void> => {
  if (aggregation === undefined) return accept(undefined)
  const worst = gzipBound(aggregation.maxBytes) + longestKeyBytes
  if (worst <= recordLimitBytes) return accept(undefined)
  let largest = recordLimitBytes - longestKeyBytes
  while (largest > 0 && gzipBound(largest) + longestKeyBytes > recordLimitBytes) largest--
  return {
    ok: false,
    path: ["aggregation", "maxBytes"],
    message:
      `aggregation.maxBytes ${aggregation.maxBytes} cannot work: an aggregate of that size may take ${worst} bytes once gzip'd with its partition key, over the stream's record limit of ${recordLimitBytes} bytes (largest maxBytes that fits: ${largest})`
  }
}

// ---------------------------------------------------------------------------------------------
// The producer

/** The producer's defaults, durations in milliseconds. */
export const producerDefaults = {
  linger: 100,
  maxBufferedRecords: 10_000,
  maxBufferedBytes: 64 * 1024 * 1024,
  recordTtl: 30_000,
  shutdownTimeout: 10_000,
  pace: true
} as const

/** What a caller gives the producer, unchecked. */
export type ProducerInput = {
  readonly [K in keyof typeof producerDefaults | "onUndelivered"]?: unknown
}

/** The producer's settings after checks and defaults, durations as `D`, the handler as `H`. */
export interface ProducerSettings<D, H> {
  readonly linger: D
  readonly maxBufferedRecords: number
  readonly maxBufferedBytes: number
  readonly recordTtl: D
  readonly shutdownTimeout: D
  readonly onUndelivered: H | undefined
  readonly pace: boolean
}

/** Checks the producer's options against the stream's record limit of the writer it runs on. */
export const resolveProducer = <D, H>(
  options: ProducerInput,
  recordLimitBytes: number,
  duration: (millis: number) => D
): Checked<ProducerSettings<D, H>> =>
  checks(function*() {
    const d = producerDefaults
    const linger = yield* take(checkDuration("linger", options.linger ?? d.linger))
    const maxBufferedRecords = yield* take(
      checkInteger(
        "maxBufferedRecords",
        options.maxBufferedRecords ?? d.maxBufferedRecords,
        1,
        Number.MAX_SAFE_INTEGER,
        "must be a positive integer"
      )
    )
    const maxBufferedBytes = yield* take(
      checkInteger(
        "maxBufferedBytes",
        options.maxBufferedBytes ?? d.maxBufferedBytes,
        recordLimitBytes,
        Number.MAX_SAFE_INTEGER,
        `must be an integer of at least the stream's record limit (${recordLimitBytes} bytes)`
      )
    )
    const recordTtl = yield* take(checkDuration("recordTtl", options.recordTtl ?? d.recordTtl))
    if (recordTtl < linger) {
      yield* take(refuse("recordTtl", `must be at least linger (${linger} ms)`, options.recordTtl ?? recordTtl))
    }
    const shutdownTimeout = yield* take(
      checkDuration("shutdownTimeout", options.shutdownTimeout ?? d.shutdownTimeout, "zero allowed")
    )
    if (options.onUndelivered !== undefined && typeof options.onUndelivered !== "function") {
      yield* take(refuse("onUndelivered", "must be a function", options.onUndelivered))
    }
    const pace = yield* take(checkBoolean("pace", options.pace ?? d.pace))
    return {
      linger: duration(linger),
      maxBufferedRecords,
      maxBufferedBytes,
      recordTtl: duration(recordTtl),
      shutdownTimeout: duration(shutdownTimeout),
      onUndelivered: options.onUndelivered as H | undefined,
      pace
    }
  })
