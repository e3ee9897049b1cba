/**
 * A shard's token bucket: how the producer's pacing keeps each shard under its write limits
 * (records and bytes per second) in every one-second window, whatever its alignment.
 *
 * Each of the two limits `L` (per second) is one level that refills continuously at
 * `L − C` per second, where `C = floor(L · burst)` is the most a burst may take at once:
 *
 * - a record of cost `s` goes when the level is at least `min(s, L)`; the level is then
 *   `min(level, C) − s`, so whatever goes in the next second adds up to at most `L − s`;
 * - the level is capped at `L`, which it reaches after a second with nothing sent: a record
 *   larger than `C` (larger than `L` even) waits for that quiet, and leaves the bucket in
 *   debt. Nothing waits for ever: a record waits at most until its level has refilled.
 *
 * So any one-second window holds at most `L` (or a single record larger than `L`). Levels
 * are kept in thousandths, so that with whole-millisecond times and whole limits every step
 * is exact.
 *
 * Part of the delivery core: decisions only, no effects; the clock is the caller's, passed
 * in as milliseconds.
 */

/** A shard's write limits and the share of a second a burst may take. */
export interface BucketLimits {
  /** Records per second, a positive whole number. */
  readonly recordsPerSecond: number
  /** Bytes (data plus partition key) per second, a positive whole number. */
  readonly bytesPerSecond: number
  /** The share of a second's limits one burst may take, in (0, 1); the rest refills over the second. */
  readonly burst: number
  /**
   * The share of a second's bytes one burst may take, when it differs from `burst`: a record
   * larger than a burst waits for a quiet spell, so the bytes' burst is kept above the usual
   * record's size. Default `burst`.
   */
  readonly bytesBurst?: number | undefined
}

/** What a bucket says of one record. */
export type Admission =
  /** Its tokens are taken: it goes now. */
  | { readonly _tag: "Admitted" }
  /** Its shard has no room for it yet; the bucket will have refilled for it at `until` (whole millis). */
  | { readonly _tag: "Waiting"; readonly until: number }

const admitted: Admission = { _tag: "Admitted" }

/** One limit of a bucket: a level in thousandths of a unit, refilled at `limit − burst` thousandths per millisecond. */
class Level {
  /** The level, in thousandths; negative while in debt. */
  value: number
  private limit = 0
  private burst = 0
  /** Refill per millisecond, in thousandths. */
  rate = 0
  constructor(private readonly perSecond: number, private readonly burstShare: number) {
    this.scale(1)
    this.value = this.limit
  }

  /** Sets the limit to `share` of its full value (at least 1 a second); the level keeps what it holds, up to the new limit. */
  scale(share: number) {
    const perSecond = Math.max(1, Math.floor(this.perSecond * share))
    // At least one unit a burst (when there is more than one a second), so that a slow pace still sends several records a call.
    const burst = Math.max(Math.min(1, perSecond - 1), Math.floor(perSecond * this.burstShare))
    this.limit = perSecond * 1000
    this.burst = burst * 1000
    this.rate = perSecond - burst
    this.value = Math.min(this.value, this.limit)
  }

  /** Milliseconds for an empty level to reach a full burst. */
  get fillMillis(): number {
    return this.burst / this.rate
  }

  refill(elapsed: number) {
    this.value = Math.min(this.limit, this.value + elapsed * this.rate)
  }

  /** Thousandths the level must hold for a record of `cost`. */
  need(cost: number): number {
    return Math.min(cost * 1000, this.limit)
  }

  /** Milliseconds until the level holds `need`; 0 if it does. */
  waitFor(need: number): number {
    return Math.max(0, (need - this.value) / this.rate)
  }

  take(cost: number) {
    this.value = Math.min(this.value, this.burst) - cost * 1000
  }
}

/** One shard's token bucket on the caller's clock; it starts as after a quiet second. */
export class TokenBucket {
  private readonly records: Level
  private readonly bytes: Level
  constructor(limits: BucketLimits, private at: number) {
    this.records = new Level(limits.recordsPerSecond, limits.burst)
    this.bytes = new Level(limits.bytesPerSecond, limits.bytesBurst ?? limits.burst)
  }

  /**
   * From `now` on, both limits are `share` (in (0, 1]) of the bucket's full limits; what it
   * has refilled until `now` it keeps, up to the new limits.
   */
  scale(share: number, now: number): void {
    this.refill(now)
    this.records.scale(share)
    this.bytes.scale(share)
  }

  /** The time an empty bucket takes to refill a burst of the limit that refills one soonest, in millis. */
  get burstMillis(): number {
    return Math.min(this.records.fillMillis, this.bytes.fillMillis)
  }

  private refill(now: number) {
    const elapsed = now - this.at
    if (elapsed <= 0) return
    this.at = now
    this.records.refill(elapsed)
    this.bytes.refill(elapsed)
  }

  /**
   * Takes one record of `bytes` (data plus key) at `now` (millis) if the bucket has room for
   * it, or says when it will.
   */
  offer(bytes: number, now: number): Admission {
    this.refill(now)
    const wait = Math.max(this.records.waitFor(this.records.need(1)), this.bytes.waitFor(this.bytes.need(bytes)))
    if (wait > 0) return { _tag: "Waiting", until: Math.ceil(Math.max(now, this.at) + wait) }
    this.records.take(1)
    this.bytes.take(bytes)
    return admitted
  }
}
