/**
 * The `StreamReader`'s options checked, with their defaults: a bad value is a
 * `ConfigError.InvalidData` naming the option, what it must be, and what it was.
 */
import { ConfigError, Duration, Effect, Either } from "effect"
import type { From, StreamOptions, StreamTarget } from "../../StreamReader.js"
import { toPosition } from "./lineage.js"
import type { ResolvedReaderOptions } from "./reader.js"

const DEFAULTS = {
  idleDelay: Duration.seconds(1),
  requestTimeout: Duration.seconds(30),
  maxConcurrentPayloadReads: 8,
  dedupeWindow: 10_000
} as const

const invalid = (field: string, requirement: string, value: unknown) =>
  ConfigError.InvalidData([field], `${field} ${requirement}, got ${describe(value)}`)

const describe = (value: unknown): string =>
  value instanceof Date ? String(value) : JSON.stringify(value) ?? String(value)

const isCount = (value: unknown, max: number): value is number =>
  typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= max

const duration = (field: string, value: Duration.DurationInput | undefined, fallback: Duration.Duration) => {
  if (value === undefined) return Either.right(fallback)
  const decoded = Duration.decodeUnknown(value)
  return decoded._tag === "Some" && Duration.greaterThan(decoded.value, Duration.zero)
    ? Either.right(decoded.value)
    : Either.left(invalid(field, "must be a positive duration", value))
}

/** The stream's name, given or taken from its ARN (`arn:aws:kinesis:<region>:<account>:stream/<name>`). */
const streamNameOf = (options: StreamTarget): Either.Either<string, ConfigError.ConfigError> => {
  if (options.streamName !== undefined) {
    return options.streamName === ""
      ? Either.left(invalid("streamName", "must not be empty", options.streamName))
      : Either.right(options.streamName)
  }
  const name = /^arn:[^:]+:kinesis:[^:]*:[^:]*:stream\/(.+)$/.exec(options.streamArn ?? "")?.[1]
  return name === undefined
    ? Either.left(
      invalid("streamArn", "must be a Kinesis stream ARN (arn:aws:kinesis:…:stream/<name>)", options.streamArn)
    )
    : Either.right(name)
}

const checkFrom = (from: From): Either.Either<From, ConfigError.ConfigError> => {
  if (from === "trim-horizon" || from === "latest") return Either.right(from)
  if (typeof from === "object" && from !== null && "timestamp" in from) {
    return from.timestamp instanceof Date && !Number.isNaN(from.timestamp.getTime())
      ? Either.right(from)
      : Either.left(invalid("from.timestamp", "must be a valid Date", from.timestamp))
  }
  if (typeof from === "object" && from !== null && "positions" in from && from.positions instanceof Map) {
    for (const [shardId, position] of from.positions) {
      const { member, sequenceNumber } = toPosition(position)
      if (!/^\d+$/.test(sequenceNumber)) {
        return Either.left(invalid(`from.positions[${shardId}]`, "must be a sequence number (digits)", position))
      }
      if (member !== undefined && !(Number.isInteger(member) && member >= 0)) {
        return Either.left(invalid(`from.positions[${shardId}].member`, "must be an integer ≥ 0", member))
      }
    }
    return Either.right(from)
  }
  return Either.left(
    invalid("from", "must be \"trim-horizon\", \"latest\", { timestamp: Date } or { positions: Map }", from)
  )
}

/** The options, checked, with their defaults. */
export const resolveOptions = (options: StreamOptions): Effect.Effect<ResolvedReaderOptions, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const streamName = yield* streamNameOf(options)
    const from = yield* checkFrom(options.from)
    if (typeof options.follow !== "boolean") {
      return yield* Effect.fail(invalid("follow", "must be true or false", options.follow))
    }
    const limit = options.maxRecordsPerCall
    if (limit !== undefined && !isCount(limit, 10_000)) {
      return yield* Effect.fail(invalid("maxRecordsPerCall", "must be an integer from 1 to 10000", limit))
    }
    const payloadReads = options.maxConcurrentPayloadReads ?? DEFAULTS.maxConcurrentPayloadReads
    if (!isCount(payloadReads, 1_000)) {
      return yield* Effect.fail(invalid("maxConcurrentPayloadReads", "must be an integer from 1 to 1000", payloadReads))
    }
    const dedupe = options.dedupe
    const dedupeWindow = dedupe === undefined || dedupe === false
      ? undefined
      : dedupe === true
      ? DEFAULTS.dedupeWindow
      : dedupe.window
    if (dedupeWindow !== undefined && !isCount(dedupeWindow, 10_000_000)) {
      return yield* Effect.fail(invalid("dedupe.window", "must be an integer from 1 to 10000000", dedupeWindow))
    }
    return {
      streamName,
      streamArn: options.streamArn,
      from,
      follow: options.follow,
      limit,
      idleDelay: yield* duration("idleDelay", options.idleDelay, DEFAULTS.idleDelay),
      requestTimeout: yield* duration("requestTimeout", options.requestTimeout, DEFAULTS.requestTimeout),
      pointerConcurrency: payloadReads,
      dedupeWindow
    }
  })
