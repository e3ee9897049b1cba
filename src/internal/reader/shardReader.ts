/**
 * One shard read by one fiber: GetShardIterator, then GetRecords after GetRecords, each
 * answer decoded and handed on (waiting while the consumer is behind) before the next call.
 * At most one call per `MIN_CALL_INTERVAL` (Kinesis allows 5 a second per shard); throttling
 * and transient failures retried on a backoff; an expired iterator re-acquired after the last
 * record read.
 */
import { Duration, Effect, Schedule } from "effect"
import { KinesisError } from "../../Errors.js"
import type { GetRecordsResult, ShardIteratorStart, ShardRange } from "../../Kinesis.js"
import { Kinesis } from "../../Kinesis.js"
import type { LargePayloadStore } from "../../LargePayloadStore.js"
import type { StreamRecord } from "../../StreamReader.js"
import { backoff } from "../backoff.js"
import { withRequestTimeout } from "../timeout.js"
import type { ReadStart } from "./lineage.js"
import { toStreamRecords } from "./records.js"

/** The least time between two GetRecords calls on one shard: Kinesis allows 5 a second. */
export const MIN_CALL_INTERVAL: Duration.DurationInput = "200 millis"

/**
 * Retries of a call that failed retryably (throttling, 5xx, a timeout, a network fault):
 * from 500 ms, doubling, each delay at most 10 s, 12 retries (about a minute and a half).
 */
const readRetry = backoff({ base: "500 millis", cap: "10 seconds", maxRetries: 12 })

/** What one shard's reader needs. */
export interface ShardReadOptions {
  readonly streamName: string
  readonly streamArn: string | undefined
  readonly shard: ShardRange
  readonly start: ReadStart
  readonly follow: boolean
  readonly limit: number | undefined
  readonly idleDelay: Duration.Duration
  readonly requestTimeout: Duration.Duration
  readonly pointerConcurrency: number
  /** Hands a call's records on; waits while the consumer is behind. */
  readonly emit: (records: ReadonlyArray<StreamRecord>) => Effect.Effect<void>
}

/** How a shard's reading ended: closed and read to its end, or (`follow: false`) at its tip. */
export type ShardEnd = "Closed" | "AtTip"

type Outcome = ShardEnd | "Behind"

/** Reads one shard until it ends (or, with `follow: false`, until it is at its tip). */
export const readShard = Effect.fnUntraced(function*(
  options: ShardReadOptions
): Effect.fn.Return<ShardEnd, KinesisError, Kinesis | LargePayloadStore> {
  const kinesis = yield* Kinesis
  const { shard, streamArn, streamName } = options
  const bounded = (operation: string) =>
    withRequestTimeout(options.requestTimeout, (facts) => new KinesisError({ operation, streamName, ...facts }))
  const retried = <A, R>(effect: Effect.Effect<A, KinesisError, R>) =>
    effect.pipe(
      Effect.tapError((error) =>
        error.retryable
          ? Effect.logDebug("Kinesis read failed; retrying").pipe(
            Effect.annotateLogs({ shardId: shard.shardId, error: error.message })
          )
          : Effect.void
      ),
      Effect.retry({ schedule: readRetry, while: (error) => error.retryable })
    )
  const acquire = (start: ShardIteratorStart) =>
    retried(
      kinesis.getShardIterator({ streamName, streamArn, shardId: shard.shardId, start }).pipe(
        bounded("GetShardIterator")
      )
    )

  // Where to re-acquire an expired iterator: after the last record read, or where reading began.
  let resume = options.start.iterator
  let iterator = yield* acquire(resume)
  const call = Effect.suspend(() =>
    kinesis.getRecords({ streamName, streamArn, shardIterator: iterator, limit: options.limit }).pipe(
      bounded("GetRecords")
    )
  )
  const fetch: Effect.Effect<GetRecordsResult, KinesisError> = retried(
    call.pipe(
      Effect.catchIf(
        (error) => error.errorName === "ExpiredIteratorException",
        () =>
          Effect.logDebug("shard iterator expired; acquiring another").pipe(
            Effect.annotateLogs({ shardId: shard.shardId }),
            Effect.zipRight(acquire(resume)),
            Effect.flatMap((fresh) => {
              iterator = fresh
              return call
            })
          )
      )
    )
  )

  const step = Effect.gen(function*() {
    const result = yield* fetch
    const last = result.records.at(-1)
    if (last !== undefined) {
      const elements = yield* toStreamRecords(shard.shardId, result.records, {
        concurrency: options.pointerConcurrency,
        skipThrough: options.start.skipThrough,
        millisBehindLatest: result.millisBehindLatest,
        requestTimeout: options.requestTimeout
      })
      if (elements.length > 0) yield* options.emit(elements)
      resume = { _tag: "AfterSequenceNumber", sequenceNumber: last.sequenceNumber }
    }
    if (result.nextShardIterator === undefined) return "Closed" as const
    iterator = result.nextShardIterator
    return last === undefined && (result.millisBehindLatest ?? 0) === 0 ? "AtTip" as const : "Behind" as const
  })

  // A shard at its tip waits `idleDelay`; one still behind, only the least interval.
  const idle = Duration.max(options.idleDelay, Duration.decode(MIN_CALL_INTERVAL))
  const spacing = Schedule.identity<Outcome>().pipe(
    Schedule.addDelay((outcome) => outcome === "AtTip" && shard.open ? idle : MIN_CALL_INTERVAL)
  )
  const end = yield* Effect.repeat(step, {
    schedule: spacing,
    // A shard listed closed is read to its end even without `follow`: its children come after it.
    until: (outcome) => outcome === "Closed" || (outcome === "AtTip" && !options.follow && shard.open)
  })
  return end === "Closed" ? "Closed" : "AtTip"
})
