import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { Holdings } from "../../src/internal/core/holdings.js"

type Op =
  | { readonly _tag: "arrive"; readonly bytes: number }
  | { readonly _tag: "measure"; readonly pick: number; readonly bytes: number }
  | { readonly _tag: "settle"; readonly pick: number }
  | { readonly _tag: "leave"; readonly pick: number }

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ _tag: fc.constant("arrive" as const), bytes: fc.integer({ min: 0, max: 1_500 }) }),
  fc.record({ _tag: fc.constant("measure" as const), pick: fc.nat(), bytes: fc.integer({ min: 0, max: 1_500 }) }),
  fc.record({ _tag: fc.constant("settle" as const), pick: fc.nat() }),
  fc.record({ _tag: fc.constant("leave" as const), pick: fc.nat() })
)

describe("Holdings", () => {
  it("admits within both bounds (a record larger than the byte bound only alone), oldest first, and accounts every byte", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 2_000 }), fc.array(op, { maxLength: 80 }), (
        maxRecords,
        maxBytes,
        ops
      ) => {
        const holdings = new Holdings<number>(maxRecords, maxBytes)
        /** Held records and what each is charged now; arrivals in line, in order. */
        const held = new Map<number, number>()
        const line: Array<number> = []
        let next = 0
        const admitted = (list: ReadonlyArray<{ readonly arrival: number; readonly charged: number }>) => {
          for (const { arrival, charged } of list) {
            assert.strictEqual(arrival, line.shift(), "admitted out of line order")
            // Admitted within the bounds, or alone.
            const before = [...held.values()].reduce((a, b) => a + b, 0)
            assert.isTrue(held.size === 0 || before + charged <= maxBytes)
            held.set(arrival, charged)
          }
        }
        for (const o of ops) {
          const keys = [...held.keys()]
          switch (o._tag) {
            case "arrive": {
              const id = next++
              const before = [...held.values()].reduce((a, b) => a + b, 0)
              if (holdings.arrive(id, o.bytes)) {
                assert.strictEqual(line.length, 0, "admitted past those in line")
                assert.isTrue(held.size === 0 || before + o.bytes <= maxBytes)
                held.set(id, o.bytes)
              } else line.push(id)
              break
            }
            case "measure": {
              if (keys.length === 0) break
              const id = keys[o.pick % keys.length]!
              const charged = held.get(id)!
              held.set(id, o.bytes)
              admitted(holdings.measured(charged, o.bytes))
              break
            }
            case "settle": {
              if (keys.length === 0) break
              const id = keys[o.pick % keys.length]!
              const bytes = held.get(id)!
              held.delete(id)
              admitted(holdings.release(1, bytes))
              break
            }
            case "leave": {
              if (line.length === 0) break
              const id = line[o.pick % line.length]!
              assert.isTrue(holdings.leave(id))
              line.splice(line.indexOf(id), 1)
              // Someone leaving the line may let those behind in at the next release.
              break
            }
          }
          assert.isAtMost(holdings.heldRecords, maxRecords)
          assert.strictEqual(holdings.heldRecords, held.size)
          assert.strictEqual(holdings.heldBytes, [...held.values()].reduce((a, b) => a + b, 0))
          assert.strictEqual(holdings.waiting, line.length)
        }
        // Once everything settles, everyone in line gets in, in order.
        for (const [id, bytes] of [...held]) {
          held.delete(id)
          admitted(holdings.release(1, bytes))
        }
        while (line.length > 0 && held.size > 0) {
          const [id, bytes] = [...held][0]!
          held.delete(id)
          admitted(holdings.release(1, bytes))
        }
        assert.strictEqual(line.length, 0, "no arrival waits for ever")
      }),
      { numRuns: 1_000 }
    )
  })
})
