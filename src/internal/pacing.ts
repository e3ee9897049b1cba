/**
 * Shard-aware pacing for the producer (opt-in, `pace: true`): the stream's shard map from
 * ListShards, and a token bucket per shard (both in `core/`), so that the collector puts
 * into a call only records whose shard has room and throttling becomes rare instead of
 * retried.
 *
 * - Routing and buckets: `core/routing.ts` (the MD5 hash key, the open shard holding it) and
 *   `core/tokenBucket.ts` (each shard's records and bytes per second, in any one-second
 *   window). The defaults leave a burst a tenth of a second's limits.
 * - Order: within one scan of the ready records, a shard that made a record wait makes every
 *   later record of that shard wait too, so the oldest record of a shard is the next to go.
 * - Refresh: the map is loaded when the producer starts and again when a receipt names a
 *   shard other than the predicted one (a split, a merge: the closed shard's range moved to
 *   its children), at most once per `refreshInterval`. One load is bounded by the writer's
 *   `requestTimeout`; a load that fails, times out or finds no open shard is tried again on
 *   a schedule until one succeeds.
 * - Unpaced: while the map is unknown (not loaded yet, every load so far failed) records go
 *   unpaced. The gauge `kinesis_producer_unpaced` is 1 meanwhile, and the first failed load of
 *   such a spell logs one line at Info (the others at Debug).
 *
 * @internal
 */
import { Clock, Duration, Effect, Schedule } from "effect"
import type { KinesisError } from "../Errors.js"
import type { ShardRange } from "../Kinesis.js"
import type { KinesisMetrics } from "../KinesisMetrics.js"
import { WriterDefaults } from "./config.js"
import { KinesisLimits } from "./core/limits.js"
import type { ShardMap } from "./core/routing.js"
import { hashKeyOf } from "./core/routing.js"
import type { BucketLimits } from "./core/tokenBucket.js"
import { TokenBucket } from "./core/tokenBucket.js"
import type { AttemptOutcome } from "./delivery.js"
import type { PreparedRecord } from "./prepare.js"
import { loadShardMap } from "./shardMapSource.js"

/** A shard's limits as Kinesis sets them, a tenth of a second's worth per burst. */
export const DefaultPacingLimits: BucketLimits = {
  recordsPerSecond: KinesisLimits.shardRecordsPerSecond,
  bytesPerSecond: KinesisLimits.shardBytesPerSecond,
  burst: 0.1
}

/** Where the producer stands on the stream's shards. */
export type MapState =
  /** Not loaded yet, or every load so far failed: records go unpaced. */
  | { readonly _tag: "Unknown" }
  | { readonly _tag: "Known"; readonly map: ShardMap<ShardRange> }

/** One pass of the collector over the ready records. */
export interface Scan {
  /** Whether the record with this partition key and size may go in the call now (its tokens are then taken). */
  readonly admit: (partitionKey: string, bytes: number) => boolean
  /** Whether some record was made to wait for its shard's tokens. */
  readonly limited: () => boolean
  /** When the first waiting record's shard will have room for it (`Clock` millis), if any waited. */
  readonly nextAt: () => number
}

export interface Pacer {
  readonly state: () => MapState
  /** Starts a scan of the ready records at `now`. */
  readonly scan: (now: number) => Scan
  /** After a token-limited call, the pause before the next one, so that tokens gather into full calls, not a stream of tiny ones. */
  readonly gapMillis: number
  /**
   * After a call: a receipt on a shard other than the one predicted (or no map yet) starts a
   * refresh in the background, at most once per refresh interval.
   */
  readonly observe: (
    outcome: AttemptOutcome,
    keyOf: (record: PreparedRecord) => string | undefined
  ) => Effect.Effect<void>
  /**
   * Loads the shard map now. A load that fails or does not answer within `requestTimeout` is
   * tried again on the retry schedule until one succeeds; meanwhile the map stays as it was.
   * Never fails; runs until loaded (fork it).
   */
  readonly refresh: Effect.Effect<void>
}

export interface PacerOptions {
  readonly streamName: string
  /** One load of the stream's shards (every page): bounded here by `requestTimeout`. */
  readonly listShards: Effect.Effect<ReadonlyArray<ShardRange>, KinesisError>
  /** Runs a refresh in a fiber of the producer. */
  readonly fork: (effect: Effect.Effect<void>) => Effect.Effect<unknown>
  readonly linger: Duration.Duration
  /** The bound of one load of the map (the writer's `requestTimeout`). Default: the writer's default, 30 s. */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /** Where `kinesis_producer_unpaced` goes. Without it, only the log line says that records go unpaced. */
  readonly metrics?: KinesisMetrics.Service | undefined
  readonly limits?: BucketLimits | undefined
  /** The least time between two refreshes on a surprise. Default 5 s. */
  readonly refreshInterval?: Duration.DurationInput | undefined
  /** When a failed load is tried again. Default: 1 s doubling, jittered, at most 30 s apart, for ever. */
  readonly retrySchedule?: Schedule.Schedule<unknown, KinesisError> | undefined
}

/** Routing caches hold at most this many partition keys (there are `distributionFactor × (maxRetries + 1)` per writer). */
const ROUTE_CACHE = 4_096

/** The default schedule of a failed load of the map. */
export const loadRetrySchedule: Schedule.Schedule<unknown, KinesisError> = Schedule.exponential("1 second").pipe(
  Schedule.jittered,
  Schedule.union(Schedule.spaced("30 seconds"))
)

export const makePacer = (options: PacerOptions): Effect.Effect<Pacer> =>
  Effect.sync(() => {
    const limits = options.limits ?? DefaultPacingLimits
    const refreshMillis = Duration.toMillis(options.refreshInterval ?? Duration.seconds(5))
    const timeout = Duration.decode(options.requestTimeout ?? WriterDefaults.requestTimeout)
    const stream = options.streamName
    let state: MapState = { _tag: "Unknown" }
    /** Whether this spell of going unpaced has been logged. */
    let announced = false
    const buckets = new Map<string, TokenBucket>()
    const routes = new Map<string, string | undefined>()
    let refreshing = false
    let lastRefreshAt = Number.NEGATIVE_INFINITY
    const gapMillis = Math.max(
      1,
      Math.min(Duration.toMillis(options.linger), Math.floor(new TokenBucket(limits, 0).fillMillis))
    )

    const route = (partitionKey: string): string | undefined => {
      if (state._tag === "Unknown") return undefined
      if (routes.has(partitionKey)) return routes.get(partitionKey)
      if (routes.size >= ROUTE_CACHE) routes.clear()
      const shardId = state.map.shardOf(hashKeyOf(partitionKey))
      routes.set(partitionKey, shardId)
      return shardId
    }

    const bucketOf = (shardId: string, now: number) => {
      let bucket = buckets.get(shardId)
      if (bucket === undefined) {
        bucket = new TokenBucket(limits, now)
        buckets.set(shardId, bucket)
      }
      return bucket
    }

    const scan = (now: number): Scan => {
      const waiting = new Set<string>()
      let nextAt = Number.POSITIVE_INFINITY
      return {
        admit: (partitionKey, bytes) => {
          const shardId = route(partitionKey)
          if (shardId === undefined) return true
          if (waiting.has(shardId)) return false
          const admission = bucketOf(shardId, now).offer(bytes, now)
          if (admission._tag === "Admitted") return true
          waiting.add(shardId)
          nextAt = Math.min(nextAt, admission.until)
          return false
        },
        limited: () => waiting.size > 0,
        nextAt: () => nextAt
      }
    }

    const unpaced = (value: boolean) => options.metrics?.producerUnpaced(stream, value) ?? Effect.void

    const useMap = (map: ShardMap<ShardRange>) =>
      Effect.suspend(() => {
        const wasUnknown = state._tag === "Unknown"
        state = { _tag: "Known", map }
        announced = false
        routes.clear()
        const open = new Set(map.shards.map((s) => s.shardId))
        for (const shardId of buckets.keys()) if (!open.has(shardId)) buckets.delete(shardId)
        return wasUnknown
          ? Effect.zipRight(unpaced(false), Effect.logDebug("the stream's shards are known: records are paced"))
          : Effect.void
      })

    /** A load that failed: the one log line of a spell unpaced at Info, every other at Debug. */
    const loadFailed = (error: KinesisError) =>
      Effect.suspend(() => {
        const first = state._tag === "Unknown" && !announced
        announced ||= first
        return (first
          ? Effect.logInfo("could not list the stream's shards: records go unpaced until it can")
          : Effect.logDebug("could not list the stream's shards; trying again")).pipe(
            Effect.annotateLogs({ stream, error: error.message })
          )
      })

    const loadOnce = loadShardMap({ streamName: stream, listShards: options.listShards, requestTimeout: timeout }).pipe(
      Effect.tapError(loadFailed)
    )

    const refresh: Effect.Effect<void> = Effect.suspend(() => state._tag === "Unknown" ? unpaced(true) : Effect.void)
      .pipe(
        Effect.zipRight(Effect.retry(loadOnce, options.retrySchedule ?? loadRetrySchedule)),
        Effect.flatMap(useMap),
        Effect.catchAll(() => Effect.void),
        // Interrupted, the producer is closing: it sends nothing more, paced or not.
        Effect.onInterrupt(() => unpaced(false)),
        Effect.ensuring(Effect.sync(() => (refreshing = false)))
      )

    const startRefresh = (now: number) =>
      Effect.suspend(() => {
        if (refreshing || now - lastRefreshAt < refreshMillis) return Effect.void
        refreshing = true
        lastRefreshAt = now
        return options.fork(refresh)
      })

    const observe = (outcome: AttemptOutcome, keyOf: (record: PreparedRecord) => string | undefined) =>
      Effect.gen(function*() {
        let surprised = state._tag === "Unknown"
        for (const w of outcome.writtenRecords) {
          if (surprised) break
          const key = keyOf(w.record)
          const predicted = key === undefined ? undefined : route(key)
          if (predicted !== w.shardId) surprised = true
        }
        if (surprised) yield* startRefresh(yield* Clock.currentTimeMillis)
      })

    return {
      state: () => state,
      scan,
      gapMillis,
      observe,
      refresh: Effect.suspend(() => {
        refreshing = true
        return Effect.flatMap(Clock.currentTimeMillis, (now) => {
          lastRefreshAt = now
          return refresh
        })
      })
    }
  })
