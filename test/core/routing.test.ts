/**
 * Kinesis routing in the delivery core (`src/internal/core/routing.ts`): over random shard
 * maps (splits, closed parents, any order) every hash key lands on exactly one open shard,
 * and over random partition keys the pacer's map, the shard simulator and the test double
 * route alike.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import type { HashKeyRange } from "../../src/internal/core/routing.js"
import { evenShards, HASH_KEY_SPACE, hashKeyOf, shardIdOf, ShardMap } from "../../src/internal/core/routing.js"
import * as KinesisTest from "../../src/KinesisTest.js"
import * as ShardSimulator from "../../src/ShardSimulator.js"

const RUNS = { numRuns: 1_000, seed: 19 }

const hashKey = fc.bigInt({ min: 0n, max: HASH_KEY_SPACE - 1n })

/**
 * A stream's shards after resharding: the open ones split [0, 2^128) at random points (some
 * drawn near the ends and next to each other), closed parents overlap them, in any order.
 */
const reshardedMap = fc.record({
  cuts: fc.uniqueArray(fc.oneof(hashKey, fc.bigInt({ min: 1n, max: 16n })), { maxLength: 30 }),
  closed: fc.array(fc.tuple(hashKey, hashKey), { maxLength: 5 }),
  order: fc.array(fc.nat(), { maxLength: 40 })
}).map(({ closed, cuts, order }): Array<HashKeyRange> => {
  const starts = [0n, ...cuts.filter((c) => c > 0n).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))]
  const open = starts.map((start, i) => ({
    shardId: shardIdOf(i),
    startingHashKey: start,
    endingHashKey: (starts[i + 1] ?? HASH_KEY_SPACE) - 1n,
    open: true
  }))
  const parents = closed.map(([a, b], i) => ({
    shardId: shardIdOf(1_000 + i),
    startingHashKey: a < b ? a : b,
    endingHashKey: a < b ? b : a,
    open: false
  }))
  const all: Array<HashKeyRange> = [...open, ...parents]
  // A shuffle driven by the drawn numbers, so that the map's order is never the input's.
  order.forEach((n, i) => {
    const j = n % all.length
    const k = i % all.length
    ;[all[j], all[k]] = [all[k]!, all[j]!]
  })
  return all
})

describe("core: routing", () => {
  it.prop(
    "every hash key maps to exactly one open shard of a gapless map, the one whose range holds it",
    [reshardedMap, fc.array(hashKey, { minLength: 1, maxLength: 20 })],
    ([ranges, keys]) => {
      const map = new ShardMap(ranges)
      assert.isTrue(map.gapless)
      const open = ranges.filter((r) => r.open)
      assert.strictEqual(map.shards.length, open.length)
      for (const key of [0n, HASH_KEY_SPACE - 1n, ...keys, ...open.map((s) => s.startingHashKey)]) {
        const holders = open.filter((s) => s.startingHashKey <= key && key <= s.endingHashKey)
        assert.strictEqual(holders.length, 1)
        assert.strictEqual(map.shardOf(key), holders[0]!.shardId)
      }
    },
    { fastCheck: RUNS }
  )

  it.prop(
    "a map with a gap routes no key in the gap, and says it has one",
    [fc.integer({ min: 2, max: 40 }), fc.nat(), hashKey],
    ([count, drop, key]) => {
      const ranges = evenShards(count)
      const gone = ranges.splice(drop % count, 1)[0]!
      const map = new ShardMap(ranges)
      assert.isFalse(map.gapless)
      const inGap = gone.startingHashKey + (key % (gone.endingHashKey - gone.startingHashKey + 1n))
      assert.isUndefined(map.shardOf(inGap))
    },
    { fastCheck: RUNS }
  )

  it.prop(
    "the pacer's map, the shard simulator and the test double put every partition key on the same shard",
    [
      fc.integer({ min: 1, max: 64 }),
      fc.array(fc.string({ unit: "binary", minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 20 })
    ],
    ([count, keys]) =>
      Effect.runSync(Effect.gen(function*() {
        const { kinesis } = yield* ShardSimulator.make({ shards: count })
        const map = new ShardMap(yield* kinesis.listShards("s"))
        assert.isTrue(map.gapless)
        const results = yield* kinesis.putRecords({
          streamName: "s",
          records: keys.map((partitionKey) => ({ partitionKey, data: new Uint8Array(1) }))
        })
        keys.forEach((key, i) => {
          const predicted = map.shardOf(hashKeyOf(key))
          assert.deepStrictEqual(results[i]?._tag === "Written" && results[i].shardId, predicted)
          assert.strictEqual(ShardSimulator.shardId(ShardSimulator.shardIndexOf(key, count)), predicted)
        })
        if (count === 4) {
          const written = yield* KinesisTest.acceptAll({
            index: 0,
            request: {
              streamName: "s",
              records: keys.map((partitionKey) => ({ partitionKey, data: new Uint8Array(1) }))
            }
          })
          keys.forEach((key, i) =>
            assert.strictEqual(written[i]!._tag === "Written" && written[i]!.shardId, map.shardOf(hashKeyOf(key)))
          )
        }
      })),
    { fastCheck: RUNS }
  )

  it("an even split is the simulator's, shard i starting at floor(i · 2^128 / n)", () => {
    for (const n of [1, 3, 7]) {
      assert.deepStrictEqual(evenShards(n).map((s) => s.startingHashKey), ShardSimulator.startingHashKeys(n))
    }
    assert.strictEqual(hashKeyOf("a"), 0x0cc175b9c0f1b6a831c399e269772661n)
    assert.isUndefined(new ShardMap([]).shardOf(0n))
  })
})
