/**
 * Kinesis routing, as Kinesis does it: the one copy that the producer's pacing, the shard
 * simulator and the test double route by.
 *
 * - A partition key's hash key is the MD5 of its UTF-8 bytes, read as an unsigned 128-bit
 *   big-endian integer.
 * - The open shard whose hash-key range holds that key takes the record. CreateStream splits
 *   [0, 2^128) evenly: shard i of n starts at `floor(i · 2^128 / n)`.
 *
 * Part of the delivery core: decisions only, no effects; nothing here imports `effect` or
 * the AWS SDK.
 */
import { createHash } from "node:crypto"

/** One past the largest hash key. */
export const HASH_KEY_SPACE = 1n << 128n

/** A shard's hash-key range, inclusive at both ends, and whether it takes records. */
export interface HashKeyRange {
  readonly shardId: string
  readonly startingHashKey: bigint
  readonly endingHashKey: bigint
  /** False for a shard closed by a split or a merge: its range moved to its children. */
  readonly open: boolean
}

/** The hash key of a partition key: its MD5 (over UTF-8) as an unsigned 128-bit big-endian integer. */
export const hashKeyOf = (partitionKey: string): bigint =>
  BigInt(`0x${createHash("md5").update(partitionKey, "utf8").digest("hex")}`)

/** The text Kinesis takes for an explicit hash key: a decimal integer of at most 39 digits, no sign, no leading zero. */
const EXPLICIT_HASH_KEY = /^(0|[1-9][0-9]{0,38})$/

/**
 * The hash key an `ExplicitHashKey` names, or `undefined` when Kinesis would refuse it: not
 * decimal digits, or not in [0, 2^128).
 */
export const parseExplicitHashKey = (text: string): bigint | undefined => {
  if (!EXPLICIT_HASH_KEY.test(text)) return undefined
  const key = BigInt(text)
  return key < HASH_KEY_SPACE ? key : undefined
}

/**
 * The hash key that routes a record: its `ExplicitHashKey` when it has one (which must be
 * valid: see {@link parseExplicitHashKey}), else the MD5 of its partition key.
 */
export const routingHashKey = (record: {
  readonly partitionKey: string
  readonly explicitHashKey?: string | undefined
}): bigint => record.explicitHashKey === undefined ? hashKeyOf(record.partitionKey) : BigInt(record.explicitHashKey)

/**
 * The explicit hash key that sends a record to `shard`, as Kinesis takes it (decimal): the
 * middle of the shard's range. Any key of the range would do while the map holds; the middle
 * is the farthest from both ends, so that a reshard that moves a boundary of the range (and
 * that the map does not show yet) is the least likely to move the record to a neighbour.
 */
export const explicitHashKeyOf = (shard: HashKeyRange): string =>
  (shard.startingHashKey + (shard.endingHashKey - shard.startingHashKey) / 2n).toString()

/** The shard id Kinesis gives shard `index`: `shardId-` and 12 digits. */
export const shardIdOf = (index: number): string => `shardId-${String(index).padStart(12, "0")}`

/** The starting hash keys of `count` shards that split [0, 2^128) evenly: shard i starts at `floor(i · 2^128 / count)`. */
export const evenStartingHashKeys = (count: number): Array<bigint> =>
  Array.from({ length: count }, (_, i) => (BigInt(i) * HASH_KEY_SPACE) / BigInt(count))

/** `count` open shards that split [0, 2^128) evenly, as CreateStream makes them, in hash-key order. */
export const evenShards = (count: number): Array<HashKeyRange> => {
  const starts = evenStartingHashKeys(count)
  return starts.map((start, i) => ({
    shardId: shardIdOf(i),
    startingHashKey: start,
    endingHashKey: (starts[i + 1] ?? HASH_KEY_SPACE) - 1n,
    open: true
  }))
}

/**
 * The index of the last of `starts` (increasing) that is at most `key`, by binary search;
 * 0 when none is (or `starts` is empty).
 */
export const lastStartAtMost = (key: bigint, starts: ReadonlyArray<bigint>): number => {
  let lo = 0
  let hi = starts.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (starts[mid]! <= key) lo = mid
    else hi = mid - 1
  }
  return lo
}

const byStart = (a: HashKeyRange, b: HashKeyRange) =>
  a.startingHashKey < b.startingHashKey ? -1 : a.startingHashKey > b.startingHashKey ? 1 : 0

/** The open shards of a stream in hash-key order, and the shard of a hash key. */
export class ShardMap<S extends HashKeyRange = HashKeyRange> {
  /** The open shards, by starting hash key. */
  readonly shards: ReadonlyArray<S>
  private readonly starts: ReadonlyArray<bigint>
  constructor(ranges: ReadonlyArray<S>) {
    this.shards = ranges.filter((s) => s.open).sort(byStart)
    this.starts = this.shards.map((s) => s.startingHashKey)
  }

  /** The index in {@link shards} of the open shard whose range holds `hashKey`, or -1 if none does (a map with a gap). */
  indexOf(hashKey: bigint): number {
    if (this.shards.length === 0) return -1
    const i = lastStartAtMost(hashKey, this.starts)
    const shard = this.shards[i]!
    return shard.startingHashKey <= hashKey && hashKey <= shard.endingHashKey ? i : -1
  }

  /** The open shard whose range holds `hashKey`, or `undefined` if none does (a map with a gap). */
  shardOf(hashKey: bigint): string | undefined {
    return this.shards[this.indexOf(hashKey)]?.shardId
  }

  /** Whether the open shards cover [0, 2^128) exactly once: no gap, no overlap. */
  get gapless(): boolean {
    let next = 0n
    for (const s of this.shards) {
      if (s.startingHashKey !== next || s.endingHashKey < s.startingHashKey) return false
      next = s.endingHashKey + 1n
    }
    return next === HASH_KEY_SPACE
  }
}
