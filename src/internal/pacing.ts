/**
 * Shard-aware pacing for the producer (opt-in, `pace: true`): the stream's shard map from
 * ListShards, the routing of a partition key to its shard as Kinesis does it, and a token
 * bucket per shard, so that the collector puts into a call only records whose shard has room
 * and throttling becomes rare instead of retried.
 *
 * - Routing: the MD5 of the partition key (UTF-8), read as an unsigned 128-bit big-endian
 *   integer, is its hash key; the open shard whose range holds it takes the record.
 * - Buckets: each shard's bucket holds `burst` of a second of its limits (100 records and
 *   104,857 bytes by default) and refills at the rest (900 records/s, 943,718 bytes/s), so
 *   that in any one-second window the producer sends a shard at most its limits (1,000
 *   records, 1 MiB of data plus keys), whatever the window's alignment. A record larger than a
 *   full bucket's bytes goes when the bucket is full and leaves it in debt: nothing waits for
 *   ever, and a record waits at most until its shard's bucket has refilled for it.
 * - Order: within one scan of the ready records, a shard that made a record wait makes every
 *   later record of that shard wait too, so the oldest record of a shard is the next to go.
 * - Refresh: the map is loaded when the producer starts and again when a receipt names a
 *   shard other than the predicted one (a split, a merge: the closed shard's range moved to
 *   its children), at most once per `refreshInterval`. While the map is unknown (not loaded
 *   yet, ListShards failed) records are not paced.
 *
 * @internal
 */
import { Clock, Duration, Effect } from "effect"
import { createHash } from "node:crypto"
import type { KinesisError } from "../Errors.js"
import type { ShardRange } from "../Kinesis.js"
import type { AttemptOutcome } from "./delivery.js"
import { KinesisLimits } from "./limits.js"
import type { PreparedRecord } from "./prepare.js"

const TWO_128 = 1n << 128n

/** The hash key of a partition key: its MD5 (over UTF-8) as an unsigned 128-bit big-endian integer. */
export const hashKeyOf = (partitionKey: string): bigint =>
  BigInt(`0x${createHash("md5").update(partitionKey, "utf8").digest("hex")}`)

/** The shard id Kinesis gives shard `index`: `shardId-` and 12 digits. */
export const shardIdOf = (index: number): string => `shardId-${String(index).padStart(12, "0")}`

/** `count` open shards that split [0, 2^128) evenly, as CreateStream does: shard i starts at `floor(i · 2^128 / count)`. */
export const evenShards = (count: number): Array<ShardRange> => {
  const starts = Array.from({ length: count }, (_, i) => (BigInt(i) * TWO_128) / BigInt(count))
  return starts.map((start, i) => ({
    shardId: shardIdOf(i),
    startingHashKey: start,
    endingHashKey: (starts[i + 1] ?? TWO_128) - 1n,
    open: true
  }))
}

/** The open shards of a stream in hash-key order, and the shard of a hash key. */
export class ShardMap {
  readonly shards: ReadonlyArray<ShardRange>
  constructor(ranges: ReadonlyArray<ShardRange>) {
    this.shards = ranges.filter((s) => s.open).sort((a, b) =>
      a.startingHashKey < b.startingHashKey ? -1 : a.startingHashKey > b.startingHashKey ? 1 : 0
    )
  }
  /** The open shard whose range holds `hashKey`, or `undefined` if none does (a map with a gap). */
  shardOf(hashKey: bigint): string | undefined {
    let lo = 0
    let hi = this.shards.length - 1
    if (hi < 0) return undefined
    // The last shard whose start is at most the key.
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (this.shards[mid]!.startingHashKey <= hashKey) lo = mid
      else hi = mid - 1
    }
    const shard = this.shards[lo]!
    return shard.startingHashKey <= hashKey && hashKey <= shard.endingHashKey ? shard.shardId : undefined
  }
}

/** A shard's write limits and the share of a second its bucket holds. */
export interface PacingLimits {
  readonly recordsPerSecond: number
  readonly bytesPerSecond: number
  /** The bucket's size as a share of a second's limits, in (0, 1); it refills at the rest. */
  readonly burst: number
}

export const DefaultPacingLimits: PacingLimits = {
  recordsPerSecond: KinesisLimits.shardRecordsPerSecond,
  bytesPerSecond: KinesisLimits.shardBytesPerSecond,
  burst: 0.1
}

/** What a bucket says of one record. */
export type Admission =
  /** Its tokens are taken: it goes in this call. */
  | { readonly _tag: "Admitted" }
  /** Its shard has no room for it yet; the bucket will have refilled for it at `until` (`Clock` millis, whole). */
  | { readonly _tag: "Waiting"; readonly until: number }

const admitted: Admission = { _tag: "Admitted" }

/** One shard's token bucket, refilled continuously on the `Clock`; starts full. */
export class TokenBucket {
  private records: number
  private bytes: number
  private readonly recordCapacity: number
  private readonly byteCapacity: number
  /** Refill per millisecond. */
  private readonly recordRate: number
  private readonly byteRate: number
  constructor(limits: PacingLimits, private at: number) {
    this.recordCapacity = Math.max(1, limits.recordsPerSecond * limits.burst)
    this.byteCapacity = Math.max(1, limits.bytesPerSecond * limits.burst)
    this.recordRate = (limits.recordsPerSecond * (1 - limits.burst)) / 1000
    this.byteRate = (limits.bytesPerSecond * (1 - limits.burst)) / 1000
    this.records = this.recordCapacity
    this.bytes = this.byteCapacity
  }

  /** The time an empty bucket takes to fill, in millis. */
  get fillMillis(): number {
    return Math.max(this.recordCapacity / this.recordRate, this.byteCapacity / this.byteRate)
  }

  private refill(now: number) {
    const elapsed = now - this.at
    if (elapsed <= 0) return
    this.at = now
    this.records = Math.min(this.recordCapacity, this.records + elapsed * this.recordRate)
    this.bytes = Math.min(this.byteCapacity, this.bytes + elapsed * this.byteRate)
  }

  /**
   * Takes one record of `bytes` (data plus key) if the bucket has room for it, or says when
   * it will. A record larger than the bucket needs it full, and leaves it in debt.
   */
  offer(bytes: number, now: number): Admission {
    this.refill(now)
    const needBytes = Math.min(bytes, this.byteCapacity)
    if (this.records >= 1 && this.bytes >= needBytes) {
      this.records -= 1
      this.bytes -= bytes
      return admitted
    }
    const wait = Math.max((1 - this.records) / this.recordRate, (needBytes - this.bytes) / this.byteRate, 0)
    return { _tag: "Waiting", until: Math.ceil(now + wait) }
  }
}

/** Where the producer stands on the stream's shards. */
export type MapState =
  /** Not loaded yet, or ListShards failed: records go unpaced. */
  | { readonly _tag: "Unknown" }
  | { readonly _tag: "Known"; readonly map: ShardMap }

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
  /** Loads the shard map now; a failure is logged, and the map stays as it was. */
  readonly refresh: Effect.Effect<void>
}

export interface PacerOptions {
  readonly streamName: string
  readonly listShards: Effect.Effect<ReadonlyArray<ShardRange>, KinesisError>
  /** Runs a refresh in a fiber of the producer. */
  readonly fork: (effect: Effect.Effect<void>) => Effect.Effect<unknown>
  readonly linger: Duration.Duration
  readonly limits?: PacingLimits | undefined
  /** The least time between two refreshes. Default 5 s. */
  readonly refreshInterval?: Duration.DurationInput | undefined
}

/** Routing caches hold at most this many partition keys (there are `distributionFactor × (maxRetries + 1)` per writer). */
const ROUTE_CACHE = 4_096

export const makePacer = (options: PacerOptions): Effect.Effect<Pacer> =>
  Effect.sync(() => {
    const limits = options.limits ?? DefaultPacingLimits
    const refreshMillis = Duration.toMillis(options.refreshInterval ?? Duration.seconds(5))
    let state: MapState = { _tag: "Unknown" }
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

    const refresh: Effect.Effect<void> = Effect.gen(function*() {
      const loaded = yield* Effect.either(options.listShards)
      if (loaded._tag === "Left") {
        return yield* Effect.logWarning("could not list the stream's shards; records go unpaced until it can").pipe(
          Effect.annotateLogs({ stream: options.streamName, error: loaded.left.message })
        )
      }
      const map = new ShardMap(loaded.right)
      if (map.shards.length === 0) {
        state = { _tag: "Unknown" }
        return
      }
      state = { _tag: "Known", map }
      routes.clear()
      const open = new Set(map.shards.map((s) => s.shardId))
      for (const shardId of buckets.keys()) if (!open.has(shardId)) buckets.delete(shardId)
    }).pipe(Effect.ensuring(Effect.sync(() => (refreshing = false))))

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
