/**
 * The token bucket of the delivery core (`src/internal/core/tokenBucket.ts`) as a state
 * machine on a clock of whole milliseconds, over random limits and arrival patterns: it never
 * lets a shard exceed its limits in any one-second window, and nothing waits for ever.
 */
import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import type { BucketLimits } from "../../src/internal/core/tokenBucket.js"
import { TokenBucket } from "../../src/internal/core/tokenBucket.js"

const RUNS = { numRuns: 1_000, seed: 19 }

interface Taken {
  readonly at: number
  readonly bytes: number
}

/**
 * The first admission (by index) whose one-second window, the admissions in (at − 1000, at],
 * holds more than the limits: more records than `recordsPerSecond`, or more bytes than
 * `bytesPerSecond` unless it is that one record alone. Checking the window that ends at each
 * admission checks every window: any window's admissions are in the one ending at its last.
 */
const overLimit = (taken: ReadonlyArray<Taken>, limits: BucketLimits): number | undefined => {
  let first = 0
  let bytes = 0
  for (let i = 0; i < taken.length; i++) {
    bytes += taken[i]!.bytes
    while (taken[first]!.at <= taken[i]!.at - 1_000) bytes -= taken[first++]!.bytes
    const records = i - first + 1
    if (records > limits.recordsPerSecond || (bytes > limits.bytesPerSecond && records > 1)) return i
  }
  return undefined
}

const limits = fc.record({
  recordsPerSecond: fc.integer({ min: 1, max: 2_000 }),
  bytesPerSecond: fc.integer({ min: 1_000, max: 2_000_000 }),
  burst: fc.integer({ min: 1, max: 99 }).map((p) => p / 100)
})

/** Arrivals: a gap in millis before each, and its size as a share of a second's bytes (up to 1.5 seconds' worth). */
const arrivals = fc.array(
  fc.record({
    gap: fc.integer({ min: 0, max: 400 }),
    share: fc.oneof(fc.double({ min: 0, max: 0.05 }), fc.double({ min: 0, max: 1.5 }))
  }),
  { minLength: 1, maxLength: 300 }
)

describe("core: token bucket", () => {
  it.prop(
    "a sender that takes every token it is given never exceeds the shard's limits in any one-second window, and each record waits only until the time it was told",
    [limits, arrivals],
    ([limits, arrivals]) => {
      const bucket = new TokenBucket(limits, 0)
      const taken: Array<Taken> = []
      // Records in arrival order; the oldest not yet taken is offered, at its arrival or when told.
      const queue: Array<{ readonly arrives: number; readonly bytes: number }> = []
      let t = 0
      for (const a of arrivals) {
        t += a.gap
        queue.push({ arrives: t, bytes: Math.max(1, Math.round(a.share * limits.bytesPerSecond)) })
      }
      let now = 0
      let told: number | undefined
      for (const record of queue) {
        now = Math.max(now, record.arrives)
        for (;;) {
          const admission = bucket.offer(record.bytes, now)
          if (admission._tag === "Admitted") break
          // Told a time, offered then with nothing taken between: it goes.
          assert.isUndefined(told, `offered at the time it was told (${told}), it waited again`)
          assert.isAbove(admission.until, now)
          assert.isTrue(Number.isFinite(admission.until))
          told = admission.until
          now = admission.until
        }
        told = undefined
        taken.push({ at: now, bytes: record.bytes })
      }
      assert.isUndefined(overLimit(taken, limits))
    },
    { fastCheck: RUNS }
  )

  it.prop(
    "offers at arbitrary times (early, late, repeated) never break the limits, and a refused offer changes nothing",
    [
      limits,
      fc.array(fc.tuple(fc.integer({ min: 0, max: 300 }), fc.double({ min: 0, max: 1.2 })), {
        minLength: 1,
        maxLength: 400
      })
    ],
    ([limits, offers]) => {
      const bucket = new TokenBucket(limits, 0)
      // Offered only what the bucket took: if a refused offer changed nothing, it takes the same.
      const twin = new TokenBucket(limits, 0)
      const taken: Array<Taken> = []
      let now = 0
      for (const [gap, share] of offers) {
        now += gap
        const bytes = Math.max(1, Math.round(share * limits.bytesPerSecond))
        const admission = bucket.offer(bytes, now)
        if (admission._tag === "Admitted") {
          taken.push({ at: now, bytes })
          assert.strictEqual(twin.offer(bytes, now)._tag, "Admitted")
        } else {
          assert.isAbove(admission.until, now)
        }
      }
      assert.isUndefined(overLimit(taken, limits))
    },
    { fastCheck: RUNS }
  )

  it("starts as after a quiet second: a burst goes at once, then it refills at the rest of a second's limits", () => {
    const bucket = new TokenBucket({ recordsPerSecond: 1_000, bytesPerSecond: 1_048_576, burst: 0.1 }, 0)
    for (let i = 0; i < 100; i++) assert.strictEqual(bucket.offer(100, 0)._tag, "Admitted")
    // 900 records a second: the next one in 1.1 ms.
    assert.deepStrictEqual(bucket.offer(100, 0), { _tag: "Waiting", until: 2 })
    assert.strictEqual(bucket.offer(100, 1)._tag, "Waiting")
    assert.strictEqual(bucket.offer(100, 2)._tag, "Admitted")
  })

  it("a record larger than a burst goes after a quiet second, and what follows in the next second fits in what it left", () => {
    const bucket = new TokenBucket({ recordsPerSecond: 1_000, bytesPerSecond: 1_048_576, burst: 0.1 }, 0)
    assert.strictEqual(bucket.offer(1_000_000, 0)._tag, "Admitted")
    // In debt by 1,000,000 − 104,857 bytes, refilled at 943,719 bytes a second.
    const next = bucket.offer(40_000, 0)
    assert.deepStrictEqual(next, { _tag: "Waiting", until: Math.ceil((1_000_000 - 104_857 + 40_000) / 943.719) })
    assert.strictEqual(bucket.offer(40_000, 991)._tag, "Admitted")
    // A record of more than a second's bytes needs a quiet second, and goes alone.
    const huge = bucket.offer(2_000_000, 991)
    assert.strictEqual(huge._tag, "Waiting")
    if (huge._tag === "Waiting") assert.isAbove(huge.until, 1_991)
  })
})
