import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { DueQueue } from "../../src/internal/core/dueQueue.js"

describe("DueQueue", () => {
  it("gives every item once, each no sooner than it is due, in the order they fall due", () => {
    // Steps: push an item due at a time, or pop what is due at a clock that only moves forward.
    const step = fc.oneof(
      fc.record({ push: fc.integer({ min: 0, max: 1_000 }) }),
      fc.record({ advance: fc.integer({ min: 0, max: 300 }) })
    )
    fc.assert(
      fc.property(fc.array(step, { maxLength: 300 }), (steps) => {
        const queue = new DueQueue<number>()
        const dueOf = new Map<number, number>()
        const popped: Array<number> = []
        let now = 0
        let next = 0
        const drain = () => {
          let last = -Infinity
          for (let item = queue.popDue(now); item !== undefined; item = queue.popDue(now)) {
            const due = dueOf.get(item)!
            assert.isAtMost(due, now, "popped before it was due")
            assert.isAtLeast(due, last, "popped out of due order")
            last = due
            popped.push(item)
          }
          // Whatever is left is not due yet.
          if (queue.nextDue !== undefined) assert.isAbove(queue.nextDue, now)
        }
        for (const s of steps) {
          if ("push" in s) {
            dueOf.set(next, now + s.push)
            queue.push(next++, now + s.push)
          } else {
            now += s.advance
            drain()
          }
        }
        now = Infinity
        drain()
        assert.strictEqual(queue.size, 0)
        assert.deepStrictEqual([...popped].sort((a, b) => a - b), [...dueOf.keys()])
      }),
      { numRuns: 500 }
    )
  })
})
