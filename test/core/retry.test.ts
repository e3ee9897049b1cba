import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { retryDelayMillis } from "../../src/internal/core/retry.js"

describe("retryDelayMillis", () => {
  it("is exponential from the base, jittered ×0.8–1.2, and never above the cap", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000 }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.integer({ min: 1, max: 20 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (baseMillis, capMillis, retry, u) => {
          const delay = retryDelayMillis({ baseMillis, capMillis, maxRetries: 20 }, retry, u)
          const nominal = baseMillis * 2 ** (retry - 1)
          assert.isAtMost(delay, capMillis)
          assert.isAtLeast(delay, Math.min(capMillis, 0.8 * nominal) - 1e-9)
          assert.isAtMost(delay, 1.2 * nominal + 1e-9)
        }
      ),
      { numRuns: 1_000 }
    )
  })
})
