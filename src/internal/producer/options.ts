/**
 * The producer's options: defaults and validation.
 *
 * @internal
 */
import { ConfigError, Duration, Effect, Either, Option } from "effect"
import type { RecordUndeliveredError } from "../../Errors.js"
import type { KinesisProducerOptions } from "../../KinesisProducer.js"

/**
 * The producer's defaults: what an option left out is.
 *
 * @since 0.1.0
 */
export const ProducerDefaults = {
  linger: Duration.millis(100),
  maxBufferedRecords: 10_000,
  maxBufferedBytes: 64 * 1024 * 1024,
  recordTtl: Duration.seconds(30),
  shutdownTimeout: Duration.seconds(10),
  pace: false
} as const

/** The options after validation and defaults. */
export interface ResolvedProducerOptions {
  readonly linger: Duration.Duration
  readonly maxBufferedRecords: number
  readonly maxBufferedBytes: number
  readonly recordTtl: Duration.Duration
  readonly shutdownTimeout: Duration.Duration
  readonly onUndelivered: ((undelivered: RecordUndeliveredError) => Effect.Effect<unknown, unknown>) | undefined
  readonly pace: boolean
}

const invalid = (field: string, requirement: string, value: unknown) =>
  ConfigError.InvalidData([field], `${field} ${requirement}, got ${JSON.stringify(value) ?? String(value)}`)

const durationOf = (
  field: string,
  value: Duration.DurationInput,
  allowZero: boolean
): Either.Either<Duration.Duration, ConfigError.ConfigError> =>
  // Duration clamps a negative input to zero: refuse it here.
  (typeof value === "number" && value < 0) || (typeof value === "string" && value.trimStart().startsWith("-"))
    ? Either.left(invalid(field, "must not be negative", value))
    : Option.match(Duration.decodeUnknown(value), {
      onNone: () => Either.left(invalid(field, "must be a duration", value)),
      onSome: (d) =>
        Duration.isFinite(d) &&
          (allowZero ? Duration.greaterThanOrEqualTo(d, Duration.zero) : Duration.greaterThan(d, Duration.zero))
          ? Either.right(d)
          : Either.left(
            invalid(
              field,
              allowZero ? "must be a finite duration, zero or more" : "must be a positive, finite duration",
              value
            )
          )
    })

const integerFrom = (field: string, value: number, min: number, why: string) =>
  Number.isSafeInteger(value) && value >= min ? Either.right(value) : Either.left(invalid(field, why, value))

/**
 * Validates the options against the writer they run on. Each bad value is a
 * `ConfigError.InvalidData` whose path is the field and whose message names the value.
 */
export const resolveProducerOptions = (
  options: KinesisProducerOptions,
  recordLimitBytes: number
): Effect.Effect<ResolvedProducerOptions, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const d = ProducerDefaults
    const linger = yield* durationOf("linger", options.linger ?? d.linger, false)
    const maxBufferedRecords = yield* integerFrom(
      "maxBufferedRecords",
      options.maxBufferedRecords ?? d.maxBufferedRecords,
      1,
      "must be a positive integer"
    )
    const maxBufferedBytes = yield* integerFrom(
      "maxBufferedBytes",
      options.maxBufferedBytes ?? d.maxBufferedBytes,
      recordLimitBytes,
      `must be an integer of at least the stream's record limit (${recordLimitBytes} bytes)`
    )
    const recordTtl = yield* durationOf("recordTtl", options.recordTtl ?? d.recordTtl, false)
    if (Duration.lessThan(recordTtl, linger)) {
      return yield* Effect.fail(
        invalid("recordTtl", `must be at least linger (${Duration.format(linger)})`, options.recordTtl)
      )
    }
    const shutdownTimeout = yield* durationOf("shutdownTimeout", options.shutdownTimeout ?? d.shutdownTimeout, true)
    if (options.onUndelivered !== undefined && typeof options.onUndelivered !== "function") {
      return yield* Effect.fail(invalid("onUndelivered", "must be a function", typeof options.onUndelivered))
    }
    const pace = options.pace ?? d.pace
    if (typeof pace !== "boolean") return yield* Effect.fail(invalid("pace", "must be a boolean", pace))
    return {
      linger,
      maxBufferedRecords,
      maxBufferedBytes,
      recordTtl,
      shutdownTimeout,
      onUndelivered: options.onUndelivered,
      pace
    }
  })
