/**
 * Shard-aware pacing for the producer (`pace`, on by default): the stream's shard map from
 * ListShards, and per shard a pace this producer learns from the stream's answers (both in
 * `core/`), so that many producers share a stream without coordination and throttling is
 * rare instead of retried.
 *
 * - Routing: `core/routing.ts` (the MD5 hash key, the open shard holding it).
 * - Pace: `core/shardRate.ts`, a share of each shard's limits (records and bytes per second)
 *   that records refused for throughput cut and answers raise (additive increase,
 *   multiplicative decrease), over `core/tokenBucket.ts`, which keeps the records sent within
 *   that share in every one-second window.
 * - Order: within one scan of the ready records, a shard that made a record wait makes every
 *   later record of that shard wait too, so the oldest record of a shard is the next to go.
 *   Waiting for a shard's pace is not an attempt: the record has not been sent.
 * - Refresh: the map is loaded when the producer starts and again when a receipt names a
 *   shard other than the predicted one (a split, a merge: the closed shard's range moved to
 *   its children), at most once per `refreshInterval`. One load is bounded by the writer's
 *   `requestTimeout`; a load that fails, times out or finds no open shard is tried again on
 *   a schedule until one succeeds.
 * - Unpaced: while the map is unknown (not loaded yet, every load so far failed) records go
 *   unpaced. The gauge `kinesis_producer_unpaced` is 1 meanwhile, and the first failed load of
 *   such a spell logs one line at Info (the others at Debug).
 * - Per shard, the metrics say the records the shard refused for throughput, the pace it is
 *   held to and the records waiting for it; a shard that closes loses its series.
 */
import { Clock, Duration, Effect, Schedule } from "effect"
import type { KinesisError } from "../Errors.js"
import type { ShardRange } from "../Kinesis.js"
import type { KinesisMetrics } from "../KinesisMetrics.js"
import { WriterDefaults } from "./config.js"
import type { ShardMap } from "./core/routing.js"
import { hashKeyOf } from "./core/routing.js"
import type { RateRules } from "./core/shardRate.js"
import { DefaultPacingLimits, DefaultRateRules, isThrottling, ShardRate } from "./core/shardRate.js"
import type { BucketLimits } from "./core/tokenBucket.js"
import { TokenBucket } from "./core/tokenBucket.js"
import type { AttemptOutcome } from "./delivery.js"
import type { PreparedRecord } from "./prepare.js"
import { loadShardMap } from "./shardMapSource.js"

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
  /** Whether every shard has made a record wait: nothing more can go in this scan. */
  readonly saturated: () => boolean
  /** When the first waiting record's shard will have room for it (`Clock` millis), if any waited. */
  readonly nextAt: () => number
  /**
   * Once the scan is over, given the partition keys of the records still ready: those of each
   * shard that made records wait go to its gauge (0 for a shard that made none wait).
   */
  readonly report: (stillReady: Iterable<string>) => Effect.Effect<void>
}

export interface Pacer {
  readonly state: () => MapState
  /** Starts a scan of the ready records at `now`. */
  readonly scan: (now: number) => Scan
  /** After a token-limited call, the pause before the next one, so that tokens gather into full calls, not a stream of tiny ones. */
  readonly gapMillis: number
  /**
   * After a call sent at `sentAt`: each shard's pace learns what the shard took and refused
   * for throughput; a receipt on a shard other than the one predicted (or no map yet) starts
   * a refresh in the background, at most once per refresh interval.
   */
  readonly observe: (
    outcome: AttemptOutcome,
    keyOf: (record: PreparedRecord) => string | undefined,
    sentAt: number
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
  /** How each shard's pace moves. Default {@link DefaultRateRules}. */
  readonly rateRules?: RateRules | undefined
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
    const paces = shardPaces(stream, limits, options.rateRules ?? DefaultRateRules, options.metrics)
    const routes = new Map<string, string | undefined>()
    let refreshing = false
    let lastRefreshAt = Number.NEGATIVE_INFINITY
    const gapMillis = Math.max(
      1,
      Math.min(Duration.toMillis(options.linger), Math.floor(new TokenBucket(limits, 0).burstMillis / 2))
    )

    const route = (partitionKey: string): string | undefined => {
      if (state._tag === "Unknown") return undefined
      if (routes.has(partitionKey)) return routes.get(partitionKey)
      if (routes.size >= ROUTE_CACHE) routes.clear()
      const shardId = state.map.shardOf(hashKeyOf(partitionKey))
      routes.set(partitionKey, shardId)
      return shardId
    }

    const scan = (now: number): Scan =>
      paces.scan(now, route, state._tag === "Known" ? state.map.shards.length : Number.POSITIVE_INFINITY)

    const unpaced = (value: boolean) => options.metrics?.producerUnpaced(stream, value) ?? Effect.void

    const useMap = (map: ShardMap<ShardRange>) =>
      Effect.suspend(() => {
        const wasUnknown = state._tag === "Unknown"
        state = { _tag: "Known", map }
        announced = false
        routes.clear()
        const gone = paces.keep(new Set(map.shards.map((s) => s.shardId)))
        return Effect.zipRight(
          gone,
          wasUnknown
            ? Effect.zipRight(unpaced(false), Effect.logDebug("the stream's shards are known: records are paced"))
            : Effect.void
        )
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

    const observe = (
      outcome: AttemptOutcome,
      keyOf: (record: PreparedRecord) => string | undefined,
      sentAt: number
    ) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        let surprised = state._tag === "Unknown"
        const answers = paces.answers()
        for (const w of outcome.writtenRecords) {
          const key = keyOf(w.record)
          answers.written(w.shardId, w.record.data.length + (key === undefined ? 0 : Buffer.byteLength(key)))
          if (!surprised && (key === undefined || route(key) !== w.shardId)) surprised = true
        }
        for (const f of outcome.failed) {
          if (!isThrottling(f.errorCode)) continue
          const key = keyOf(f.record)
          const shardId = key === undefined ? undefined : route(key)
          if (shardId !== undefined) answers.throttled(shardId)
        }
        yield* answers.learn(sentAt, now)
        if (surprised) yield* startRefresh(now)
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

/** What one call's answers said of each shard, gathered before the paces learn it. */
export interface Answers {
  /** The shard took a record of `bytes` (data plus key). */
  readonly written: (shardId: string, bytes: number) => void
  /** The shard refused a record for throughput. */
  readonly throttled: (shardId: string) => void
  /** Each shard's pace learns what the call (sent at `sentAt`) met; the metrics say what changed. */
  readonly learn: (sentAt: number, now: number) => Effect.Effect<void>
}

/** Each shard's pace, its metrics, and the scans over them. */
interface ShardPaces {
  readonly scan: (now: number, route: (partitionKey: string) => string | undefined, shards: number) => Scan
  readonly answers: () => Answers
  /** Forgets the shards not in `open` (closed by a split or a merge), and their series. */
  readonly keep: (open: ReadonlySet<string>) => Effect.Effect<void>
}

/** A share moves this much before its gauge is set again (every cut sets it). */
const RATE_GAUGE_STEP = 0.01

const shardPaces = (
  stream: string,
  limits: BucketLimits,
  rules: RateRules,
  metrics: KinesisMetrics.Service | undefined
): ShardPaces => {
  const paces = new Map<string, ShardRate>()
  /** The share each shard's gauge shows. */
  const shown = new Map<string, number>()
  /** The records each shard made wait at the last scan that had any wait. */
  const waitingShown = new Map<string, number>()

  const paceOf = (shardId: string, now: number) => {
    let pace = paces.get(shardId)
    if (pace === undefined) {
      pace = new ShardRate(limits, rules, now)
      paces.set(shardId, pace)
    }
    return pace
  }

  const showRate = (shardId: string, pace: ShardRate, force: boolean): Effect.Effect<void> => {
    const last = shown.get(shardId)
    if (metrics === undefined || (!force && last !== undefined && Math.abs(pace.share - last) < RATE_GAUGE_STEP)) {
      return Effect.void
    }
    shown.set(shardId, pace.share)
    return metrics.shardPacedRate(stream, shardId, pace.recordsPerSecond, pace.bytesPerSecond)
  }

  const scan = (now: number, route: (partitionKey: string) => string | undefined, shards: number): Scan => {
    /** The shards that made a record wait in this scan. */
    const waiting = new Set<string>()
    let nextAt = Number.POSITIVE_INFINITY
    return {
      admit: (partitionKey, bytes) => {
        const shardId = route(partitionKey)
        if (shardId === undefined) return true
        if (waiting.has(shardId)) return false
        const admission = paceOf(shardId, now).offer(bytes, now)
        if (admission._tag === "Admitted") return true
        waiting.add(shardId)
        nextAt = Math.min(nextAt, admission.until)
        return false
      },
      limited: () => waiting.size > 0,
      saturated: () => waiting.size >= shards,
      nextAt: () => nextAt,
      report: (stillReady) =>
        Effect.suspend(() => {
          if (metrics === undefined || (waiting.size === 0 && waitingShown.size === 0)) return Effect.void
          const counts = new Map<string, number>()
          for (const shardId of waiting) counts.set(shardId, 0)
          if (waiting.size > 0) {
            for (const key of stillReady) {
              const shardId = route(key)
              const n = shardId === undefined ? undefined : counts.get(shardId)
              if (n !== undefined) counts.set(shardId!, n + 1)
            }
          }
          const changes: Array<Effect.Effect<void>> = []
          for (const [shardId, records] of counts) {
            if (waitingShown.get(shardId) !== records) changes.push(metrics.shardWaiting(stream, shardId, records))
          }
          for (const shardId of waitingShown.keys()) {
            if (!counts.has(shardId)) changes.push(metrics.shardWaiting(stream, shardId, 0))
          }
          waitingShown.clear()
          for (const [shardId, records] of counts) waitingShown.set(shardId, records)
          return Effect.all(changes, { discard: true })
        })
    }
  }

  const answers = (): Answers => {
    const written = new Map<string, { records: number; bytes: number }>()
    const throttled = new Map<string, number>()
    return {
      written: (shardId, bytes) => {
        const w = written.get(shardId)
        if (w === undefined) written.set(shardId, { records: 1, bytes })
        else {
          w.records++
          w.bytes += bytes
        }
      },
      throttled: (shardId) => throttled.set(shardId, (throttled.get(shardId) ?? 0) + 1),
      learn: (sentAt, now) =>
        Effect.suspend(() => {
          const effects: Array<Effect.Effect<void>> = []
          for (const [shardId, w] of written) {
            const pace = paceOf(shardId, now)
            if (pace.accepted(w.records, w.bytes, now) || !shown.has(shardId)) {
              effects.push(showRate(shardId, pace, false))
            }
          }
          for (const [shardId, records] of throttled) {
            const pace = paceOf(shardId, now)
            if (metrics !== undefined) effects.push(metrics.shardThrottled(stream, shardId, records))
            if (pace.throttled(records, sentAt, now)) effects.push(showRate(shardId, pace, true))
          }
          return effects.length === 0 ? Effect.void : Effect.all(effects, { discard: true })
        })
    }
  }

  const keep = (open: ReadonlySet<string>) =>
    Effect.suspend(() => {
      const gone = [...paces.keys()].filter((shardId) => !open.has(shardId))
      for (const shardId of gone) {
        paces.delete(shardId)
        shown.delete(shardId)
        waitingShown.delete(shardId)
      }
      return gone.length === 0 || metrics === undefined ? Effect.void : metrics.shardsGone(stream, gone)
    })

  return { scan, answers, keep }
}
