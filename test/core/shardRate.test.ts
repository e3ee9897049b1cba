/**
 * The adaptive pace of one shard (`src/internal/core/shardRate.ts`) as a state machine on a
 * clock of whole milliseconds:
 *
 * - over random sequences of offers, answers and refusals, the share stays within its bounds,
 *   a cut comes at most once per hold and never for a call sent before the last cut, and the
 *   share rises only while the shard holds records back;
 * - producers that share a model of one shard (Kinesis' fixed one-second windows: a record
 *   beyond the second's capacity is refused) with no coordination between them fill it, are
 *   rarely refused, settle on even shares, and a newcomer or a leaver moves the shares within
 *   seconds.
 */
import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import type { RateRules } from "../../src/internal/core/shardRate.js"
import { DefaultPacingLimits, DefaultRateRules, isThrottling, ShardRate } from "../../src/internal/core/shardRate.js"
import type { BucketLimits } from "../../src/internal/core/tokenBucket.js"

const RUNS = { numRuns: 1_000, seed: 22 }
const LIMITS: BucketLimits = DefaultPacingLimits

type Event =
  | { readonly _tag: "Offer"; readonly gap: number; readonly bytes: number }
  | { readonly _tag: "Accepted"; readonly gap: number; readonly records: number }
  | { readonly _tag: "Throttled"; readonly gap: number; readonly records: number; readonly sentAgo: number }

const event: fc.Arbitrary<Event> = fc.oneof(
  fc.record({
    _tag: fc.constant("Offer" as const),
    gap: fc.integer({ min: 0, max: 50 }),
    bytes: fc.integer({ min: 1, max: 200_000 })
  }),
  fc.record({
    _tag: fc.constant("Accepted" as const),
    gap: fc.integer({ min: 0, max: 300 }),
    records: fc.integer({ min: 0, max: 200 })
  }),
  fc.record({
    _tag: fc.constant("Throttled" as const),
    gap: fc.integer({ min: 0, max: 600 }),
    records: fc.integer({ min: 0, max: 100 }),
    sentAgo: fc.integer({ min: 0, max: 1_500 })
  })
)

describe("core: a shard's adaptive pace", () => {
  it.prop(
    "the share stays within its bounds; a cut comes at most once per hold, never for a call sent before the last one; it rises only while the shard holds records back",
    [fc.array(event, { minLength: 1, maxLength: 200 })],
    ([events]) => {
      const rate = new ShardRate(LIMITS, DefaultRateRules, 0)
      let now = 0
      let lastCut = Number.NEGATIVE_INFINITY
      let lastWait = Number.NEGATIVE_INFINITY
      for (const e of events) {
        now += e.gap
        const before = rate.share
        switch (e._tag) {
          case "Offer":
            if (rate.offer(e.bytes, now)._tag === "Waiting") lastWait = now
            assert.strictEqual(rate.share, before, "an offer never moves the share")
            break
          case "Accepted":
            rate.accepted(e.records, e.records * 500, now)
            if (rate.share > before) assert.isAtMost(now - lastWait, 1_000, "it rose while nothing waited")
            assert.isAtLeast(rate.share, before, "an answer never cuts")
            break
          case "Throttled": {
            const sentAt = Math.max(0, now - e.sentAgo)
            rate.throttled(e.records, sentAt, now)
            if (rate.share < before) {
              assert.isAtLeast(now - lastCut, DefaultRateRules.holdMillis, "two cuts within a hold")
              assert.isAtLeast(sentAt, lastCut, "a cut for a call sent before the last cut")
              assert.isAtLeast(e.records, 1)
              lastCut = now
            }
            break
          }
        }
        assert.isAtLeast(rate.share, DefaultRateRules.minShare)
        assert.isAtMost(rate.share, 1)
      }
    },
    { fastCheck: RUNS }
  )

  it("the codes of throughput refusals are told from other failures", () => {
    assert.isTrue(isThrottling("ProvisionedThroughputExceededException"))
    assert.isTrue(isThrottling("ThrottlingException"))
    assert.isFalse(isThrottling("InternalFailure"))
    assert.isFalse(isThrottling("KMSThrottlingException"))
  })

  describe("producers sharing a model shard", () => {
    it("one, two or four producers offered 1.5× the shard together fill ≥ 90% of it, ≤ 5% refused, on even shares", () => {
      for (const n of [1, 2, 4]) {
        const run = shareShard({
          capacity: 1_000,
          seconds: 20,
          demands: Array.from({ length: n }, () => () => 1_500 / n)
        })
        const settled = run.perProducer(2, 20)
        const total = settled.reduce((a, b) => a + b, 0)
        assert.isAtLeast(total / (1_000 * 18), 0.9, `goodput with ${n}`)
        assert.isAtMost(run.refusedShare, 0.05, `refused with ${n}`)
        assert.isAtLeast(jain(settled), 0.9, `fairness with ${n}`)
      }
    })

    it("a newcomer takes about half within seconds; when it leaves, the first gets the shard back", () => {
      const run = shareShard({
        capacity: 1_000,
        seconds: 30,
        demands: [() => 1_500, (t) => (t >= 6_000 ? 1_500 : 0)],
        leaveAt: [undefined, 16_000]
      })
      const [first, second] = [run.perProducer(9, 16), run.perSecondOf(1)]
      assert.isAtMost(first[0]! / (first[0]! + first[1]!), 0.7)
      assert.isAtLeast(second.slice(9, 16).reduce((a, b) => a + b, 0), 0.3 * 7 * 1_000)
      const after = run.perSecondOf(0).slice(24, 30)
      for (const second of after) assert.isAtLeast(second, 900)
    })

    it("a producer learns a shard that takes a fifth of Kinesis' limits and fills it", () => {
      const run = shareShard({ capacity: 200, seconds: 20, demands: [() => 300] })
      assert.isAtLeast(run.perProducer(5, 20)[0]! / (200 * 15), 0.9)
      assert.isAtMost(run.refusedShare, 0.05)
    })
  })
})

/** Jain's fairness index: 1 when all are equal, 1/n when one has everything. */
const jain = (xs: ReadonlyArray<number>) =>
  xs.reduce((a, b) => a + b, 0) ** 2 / (xs.length * xs.reduce((a, b) => a + b * b, 0))

interface ShareRun {
  /** Records each producer had accepted in [from, to) seconds. */
  readonly perProducer: (from: number, to: number) => Array<number>
  /** Records producer `i` had accepted in each second. */
  readonly perSecondOf: (i: number) => ReadonlyArray<number>
  readonly refusedShare: number
}

/**
 * Producers (each with a backlog fed at its demand, records per second at time t) send every
 * 20 ms what their pace admits to one shard that takes `capacity` records in each whole
 * second and refuses the rest; answers come 10 ms later. Deterministic.
 */
const shareShard = (options: {
  readonly capacity: number
  readonly seconds: number
  readonly demands: ReadonlyArray<(t: number) => number>
  /** When each producer leaves (its backlog with it), if it does. */
  readonly leaveAt?: ReadonlyArray<number | undefined>
  readonly rules?: RateRules
}): ShareRun => {
  const step = 20
  const n = options.demands.length
  const rates: Array<ShardRate | undefined> = new Array(n).fill(undefined)
  const backlog = new Array<number>(n).fill(0)
  const got = options.demands.map(() => new Array<number>(options.seconds).fill(0))
  let windowAt = -1
  let used = 0
  let refused = 0
  let written = 0
  const order = Array.from({ length: n }, (_, i) => i)
  for (let now = 0; now < options.seconds * 1_000; now += step) {
    const second = Math.floor(now / 1_000)
    if (second !== windowAt) {
      windowAt = second
      used = 0
    }
    order.push(order.shift()!)
    for (const i of order) {
      if (now >= (options.leaveAt?.[i] ?? Number.POSITIVE_INFINITY)) continue
      backlog[i]! += (options.demands[i]!(now) * step) / 1_000
      if (backlog[i]! < 1) continue
      const rate = (rates[i] ??= new ShardRate(LIMITS, options.rules ?? DefaultRateRules, now))
      let admitted = 0
      while (backlog[i]! - admitted >= 1 && rate.offer(600, now)._tag === "Admitted") admitted++
      if (admitted === 0) continue
      const ok = Math.max(0, Math.min(admitted, options.capacity - used))
      used += ok
      backlog[i]! -= ok
      written += ok
      refused += admitted - ok
      got[i]![second]! += ok
      rate.accepted(ok, ok * 600, now + 10)
      if (admitted > ok) rate.throttled(admitted - ok, now, now + 10)
    }
  }
  return {
    perProducer: (from, to) => got.map((g) => g.slice(from, to).reduce((a, b) => a + b, 0)),
    perSecondOf: (i) => got[i]!,
    refusedShare: refused / (written + refused)
  }
}
