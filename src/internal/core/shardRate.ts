/**
 * A producer's share of one shard, learned from what the stream answers, with no coordination
 * between the producers that share it (additive increase, multiplicative decrease, as TCP and
 * Flink's AsyncSink do it):
 *
 * - The share paces a {@link TokenBucket} at that share of the shard's limits.
 * - Records the shard refused for throughput cut the share once per metering second, to what
 *   this producer actually used over the last second times `1 − throttled − margin` (the
 *   throttled share of its own records there, so a small overshoot costs a small cut and a
 *   newcomer's arrival a large one), never below `minDecrease` of it.
 * - While the shard is what holds records back (records waited for its tokens within the
 *   last second), answers raise the share additively, faster the longer since the last cut
 *   (so a producer left alone on the shard gets it back within seconds), up to the whole shard.
 *
 * Part of the delivery core: decisions only, no effects; the clock is the caller's, passed in
 * as milliseconds.
 */
import { KinesisLimits } from "./limits.js"
import type { Admission, BucketLimits } from "./tokenBucket.js"
import { TokenBucket } from "./tokenBucket.js"

/**
 * A shard's limits as Kinesis sets them. A burst takes a twentieth of a second's records (so
 * 95% of them refill steadily, and a collector that comes round within 50 ms loses none) and
 * a tenth of its bytes (so a record of up to 100 KB never waits for a quiet spell).
 */
export const DefaultPacingLimits: BucketLimits = {
  recordsPerSecond: KinesisLimits.shardRecordsPerSecond,
  bytesPerSecond: KinesisLimits.shardBytesPerSecond,
  burst: 0.05,
  bytesBurst: 0.1
}

/** How a shard's share moves. */
export interface RateRules {
  /** Share of the shard regained per second just after a cut, while the shard holds records back. */
  readonly increasePerSecond: number
  /** How much faster the increase gets per second since the last cut (share per second²). */
  readonly increaseGrowth: number
  /** The fastest increase, share per second. */
  readonly maxIncreasePerSecond: number
  /**
   * How much the increase favours a small share: it is multiplied by
   * `1 − w + 2w(1 − share)`, so a producer at half the shard grows at the base rate, one at
   * a tenth of it nearly `1 + 0.8w` times faster and one near the whole shard `1 − w` times
   * as fast. Producers that share a shard unevenly so converge on even shares.
   */
  readonly headroomWeight: number
  /** Kept below the throttled share at a cut: the cut is to `used × (1 − throttled − margin)`. */
  readonly margin: number
  /** The deepest cut: at least this share of what was used is kept. */
  readonly minDecrease: number
  /** No second cut within this many milliseconds of one (Kinesis meters each second apart). */
  readonly holdMillis: number
  /**
   * Nothing goes to a shard for this many milliseconds after it refused records: its second's
   * capacity is spent, so what would go meanwhile would most likely be refused too.
   */
  readonly pauseMillis: number
  /** The least share a shard is paced to. */
  readonly minShare: number
}

/** The rules the producer uses. */
export const DefaultRateRules: RateRules = {
  increasePerSecond: 0.02,
  increaseGrowth: 0.02,
  maxIncreasePerSecond: 0.25,
  headroomWeight: 1,
  margin: 0.03,
  minDecrease: 0.5,
  holdMillis: 1_000,
  pauseMillis: 100,
  minShare: 0.01
}

/** Slots of the last second's counts, each this many milliseconds. */
const SLOT_MILLIS = 100
const SLOTS = 10

/** Counts over the last second, in slots of 100 ms. */
class LastSecond {
  private readonly records = new Array<number>(SLOTS).fill(0)
  private readonly bytes = new Array<number>(SLOTS).fill(0)
  private readonly throttled = new Array<number>(SLOTS).fill(0)
  /** The slot number (`floor(now / SLOT_MILLIS)`) of the newest slot, once there is one. */
  private newest: number | undefined

  /** Moves the window on to `now`; the index of `now`'s slot, or -1 for a time already out of the window. */
  private advance(now: number): number {
    const slot = Math.floor(now / SLOT_MILLIS)
    if (this.newest === undefined || slot - this.newest >= SLOTS) {
      this.clear(0, SLOTS)
      this.newest = slot
    } else if (slot > this.newest) {
      for (let s = this.newest + 1; s <= slot; s++) this.clear(s % SLOTS, 1)
      this.newest = slot
    } else if (slot <= this.newest - SLOTS) {
      return -1
    }
    return slot % SLOTS
  }

  private clear(from: number, count: number) {
    this.records.fill(0, from, from + count)
    this.bytes.fill(0, from, from + count)
    this.throttled.fill(0, from, from + count)
  }

  add(now: number, records: number, bytes: number, throttled: number) {
    const i = this.advance(now)
    if (i < 0) return
    this.records[i]! += records
    this.bytes[i]! += bytes
    this.throttled[i]! += throttled
  }

  /** The counts of the last second, and the milliseconds they span: from the start of the oldest slot with any. */
  totals(now: number) {
    this.advance(now)
    let records = 0
    let bytes = 0
    let throttled = 0
    let oldest = 0
    for (let age = SLOTS - 1; age >= 0; age--) {
      const i = (((this.newest! - age) % SLOTS) + SLOTS) % SLOTS
      if (oldest === 0 && this.records[i]! + this.throttled[i]! > 0) oldest = age + 1
      records += this.records[i]!
      bytes += this.bytes[i]!
      throttled += this.throttled[i]!
    }
    return { records, bytes, throttled, millis: oldest * SLOT_MILLIS }
  }
}

/** One producer's pace on one shard. */
export class ShardRate {
  /** The share of the shard's limits this producer paces itself to, in (0, 1]. */
  share = 1
  private readonly bucket: TokenBucket
  private readonly recent = new LastSecond()
  private lastCutAt = Number.NEGATIVE_INFINITY
  private lastRaiseAt: number
  private limitedAt = Number.NEGATIVE_INFINITY
  /** Nothing goes before this time (the shard refused records just before). */
  private pausedUntil = Number.NEGATIVE_INFINITY

  constructor(
    private readonly limits: BucketLimits,
    private readonly rules: RateRules,
    now: number
  ) {
    this.bucket = new TokenBucket(limits, now)
    this.lastRaiseAt = now
  }

  /** Records per second this shard is paced to. */
  get recordsPerSecond(): number {
    return this.limits.recordsPerSecond * this.share
  }

  /** Bytes per second this shard is paced to. */
  get bytesPerSecond(): number {
    return this.limits.bytesPerSecond * this.share
  }

  /** Takes one record of `bytes` (data plus key) at `now` if the shard's pace has room for it, or says when it will. */
  offer(bytes: number, now: number): Admission {
    if (now < this.pausedUntil) {
      this.limitedAt = now
      return { _tag: "Waiting", until: this.pausedUntil }
    }
    const admission = this.bucket.offer(bytes, now)
    if (admission._tag === "Waiting") this.limitedAt = now
    return admission
  }

  /**
   * The shard took `records` of `bytes` at `now`. While the shard holds records back, the
   * share grows. Returns whether the share changed.
   */
  accepted(records: number, bytes: number, now: number): boolean {
    this.recent.add(now, records, bytes, 0)
    const elapsed = now - this.lastRaiseAt
    this.lastRaiseAt = Math.max(this.lastRaiseAt, now)
    if (elapsed <= 0 || this.share >= 1 || now - this.limitedAt > SLOT_MILLIS * SLOTS) return false
    const sinceCut = Math.max(0, now - this.lastCutAt) / 1_000
    const perSecond = Math.min(
      this.rules.maxIncreasePerSecond,
      this.rules.increasePerSecond + this.rules.increaseGrowth * sinceCut
    )
    const w = this.rules.headroomWeight
    const favour = 1 - w + 2 * w * (1 - this.share)
    return this.setShare(Math.min(1, this.share + (perSecond * favour * elapsed) / 1_000), now)
  }

  /**
   * The shard refused `records` for throughput, in a call sent at `sentAt`, answered at `now`.
   * Cuts the share unless a cut came in the last `holdMillis`, or after the call was sent.
   * Returns whether the share changed.
   */
  throttled(records: number, sentAt: number, now: number): boolean {
    this.recent.add(now, 0, 0, records)
    if (records > 0) this.pausedUntil = Math.max(this.pausedUntil, now + this.rules.pauseMillis)
    if (records <= 0 || now - this.lastCutAt < this.rules.holdMillis || sentAt < this.lastCutAt) return false
    const { bytes, millis, records: written, throttled } = this.recent.totals(now)
    // What it used while it sent: a producer that began sending a moment ago used what it sent since.
    const seconds = Math.max(SLOT_MILLIS, millis) / 1_000
    const used = Math.max(written / this.limits.recordsPerSecond, bytes / this.limits.bytesPerSecond) / seconds
    const refused = throttled / (written + throttled)
    const keep = Math.max(this.rules.minDecrease, 1 - refused - this.rules.margin)
    this.lastCutAt = now
    return this.setShare(Math.min(this.share, used) * keep, now)
  }

  private setShare(share: number, now: number): boolean {
    const next = Math.min(1, Math.max(this.rules.minShare, share))
    if (next === this.share) return false
    this.share = next
    this.bucket.scale(next, now)
    return true
  }
}

/** The error codes that say a shard (or the account's call rate) refused records for throughput. */
const THROTTLING: ReadonlySet<string> = new Set([
  "ProvisionedThroughputExceededException",
  "LimitExceededException",
  "ThrottlingException"
])

/** Whether a record failed because the stream refused it for throughput. */
export const isThrottling = (errorCode: string): boolean => THROTTLING.has(errorCode)
