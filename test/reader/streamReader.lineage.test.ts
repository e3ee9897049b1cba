/**
 * The reader's lineage, without I/O: random reshard histories (splits and merges) listed as
 * ListShards lists them, shards ending in random order, and what the machine starts.
 */
import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import type { ShardRange } from "../../src/index.js"
import { initialStart, Lineage } from "../../src/internal/reader/lineage.js"

const idOf = (n: number) => `shardId-${String(n).padStart(12, "0")}`

/** A history: `roots` shards, then each step splits an open shard or merges two (picked by index). */
const history = fc.record({
  roots: fc.integer({ min: 1, max: 4 }),
  steps: fc.array(fc.record({ merge: fc.boolean(), pick: fc.nat(), other: fc.nat() }), { maxLength: 12 })
})

type History = typeof history extends fc.Arbitrary<infer A> ? A : never

const listingOf = ({ roots, steps }: History): Array<ShardRange> => {
  const shards: Array<{ -readonly [K in keyof ShardRange]: ShardRange[K] }> = []
  const add = (parents: ReadonlyArray<string>) => {
    const shard = { shardId: idOf(shards.length), startingHashKey: 0n, endingHashKey: 0n, open: true }
    shards.push({
      ...shard,
      ...(parents[0] === undefined ? {} : { parentShardId: parents[0] }),
      ...(parents[1] === undefined ? {} : { adjacentParentShardId: parents[1] })
    })
  }
  for (let i = 0; i < roots; i++) add([])
  for (const step of steps) {
    const open = shards.filter((s) => s.open)
    const first = open[step.pick % open.length]!
    const second = open.filter((s) => s !== first)[step.other % Math.max(1, open.length - 1)]
    if (step.merge && second !== undefined) {
      first.open = second.open = false
      add([first.shardId, second.shardId])
    } else {
      first.open = false
      add([first.shardId])
      add([first.shardId])
    }
  }
  return shards
}

const parentsOf = (shard: ShardRange) =>
  [shard.parentShardId, shard.adjacentParentShardId].filter((p): p is string => p !== undefined)

/** Runs the machine to its end, ending a random reading shard at each turn; returns the start order. */
const run = (lineage: Lineage, listing: ReadonlyArray<ShardRange>, order: ReadonlyArray<number>) => {
  const byId = new Map(listing.map((s) => [s.shardId, s]))
  const started: Array<string> = []
  // Shards done before reading began (ancestors of a position, closed shards from latest) count as ended.
  const finished = new Set(listing.filter((s) => lineage.phaseOf(s.shardId) === "Finished").map((s) => s.shardId))
  const reading: Array<string> = []
  for (let turn = 0;; turn++) {
    for (const { shard } of lineage.takeReady()) {
      for (const parent of parentsOf(shard)) {
        assert.isTrue(finished.has(parent), `${shard.shardId} started before its parent ${parent} ended`)
      }
      started.push(shard.shardId)
      reading.push(shard.shardId)
    }
    if (reading.length === 0) return { started, finished }
    const [shardId] = reading.splice((order[turn % Math.max(1, order.length)] ?? 0) % reading.length, 1)
    if (byId.get(shardId!)!.open) lineage.reachTip(shardId!)
    else {
      lineage.finish(shardId!)
      finished.add(shardId!)
    }
  }
}

describe("StreamReader lineage", () => {
  it("from trim-horizon, every shard starts exactly once, never before its parents have ended", () => {
    fc.assert(
      fc.property(history, fc.array(fc.nat(), { minLength: 1 }), (h, order) => {
        const listing = listingOf(h)
        const lineage = new Lineage()
        lineage.learn(listing, initialStart(listing, "trim-horizon"))
        const { started } = run(lineage, listing, order)
        assert.deepStrictEqual([...started].sort(), listing.map((s) => s.shardId).sort())
        assert.strictEqual(new Set(started).size, started.length)
      }),
      { seed: 21, numRuns: 300 }
    )
  })

  it("from positions, a shard named resumes after its position and none of its ancestors is read again", () => {
    fc.assert(
      fc.property(history, fc.nat(), fc.array(fc.nat(), { minLength: 1 }), (h, pick, order) => {
        const listing = listingOf(h)
        const named = listing[pick % listing.length]!
        const lineage = new Lineage()
        const startOf = initialStart(listing, { positions: new Map([[named.shardId, "1000"]]) })
        lineage.learn(listing, startOf)
        assert.deepStrictEqual(startOf(named), {
          iterator: { _tag: "AfterSequenceNumber", sequenceNumber: "1000" }
        })
        const ancestors = new Set<string>()
        const climb = (shard: ShardRange) =>
          parentsOf(shard).forEach((p) => {
            ancestors.add(p)
            climb(listing.find((s) => s.shardId === p)!)
          })
        climb(named)
        const { started } = run(lineage, listing, order)
        for (const shardId of started) assert.isFalse(ancestors.has(shardId), `ancestor ${shardId} read again`)
        assert.include(started, named.shardId)
      }),
      { seed: 21, numRuns: 300 }
    )
  })

  it("from latest, closed shards are not read and open shards start at their tip", () => {
    fc.assert(
      fc.property(history, (h) => {
        const listing = listingOf(h)
        const lineage = new Lineage()
        lineage.learn(listing, initialStart(listing, "latest"))
        const ready = lineage.takeReady()
        assert.deepStrictEqual(ready.map((r) => r.shard.shardId), listing.filter((s) => s.open).map((s) => s.shardId))
        for (const r of ready) assert.deepStrictEqual(r.start, { iterator: { _tag: "Latest" } })
      }),
      { seed: 21, numRuns: 100 }
    )
  })

  it("a shard found after the first listing (a new child) is read from its start once its parent ends", () => {
    const parent: ShardRange = { shardId: idOf(0), startingHashKey: 0n, endingHashKey: 0n, open: true }
    const lineage = new Lineage()
    lineage.learn([parent], initialStart([parent], "latest"))
    assert.deepStrictEqual(lineage.takeReady().map((r) => r.start), [{ iterator: { _tag: "Latest" } }])
    const child: ShardRange = { ...parent, shardId: idOf(1), parentShardId: parent.shardId }
    lineage.learn([{ ...parent, open: false }, child], () => ({ iterator: { _tag: "TrimHorizon" } }))
    assert.deepStrictEqual(lineage.takeReady(), [], "the child waits for its parent")
    lineage.finish(parent.shardId)
    assert.deepStrictEqual(lineage.takeReady(), [{ shard: child, start: { iterator: { _tag: "TrimHorizon" } } }])
  })
})
