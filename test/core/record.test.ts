import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import type { Step } from "../../src/internal/core/record.js"
import { ErrorCodes, RecordLife } from "../../src/internal/core/record.js"

/**
 * The record state machine driven by random sequences of events, as a door would feed them
 * (some out of place on purpose: a late outcome, a due retry after shutdown), with a model
 * door that carries out each step. Shutdown comes last, then every delete asked for ends.
 */
const rules = { ttlMillis: 1_000, baseMillis: 100, capMillis: 400, maxRetries: 3 }

type Event =
  | { readonly _tag: "prepared"; readonly i: number; readonly object: boolean }
  | { readonly _tag: "refuse"; readonly i: number }
  | { readonly _tag: "cancel"; readonly i: number }
  | { readonly _tag: "startCall"; readonly i: number }
  | { readonly _tag: "written"; readonly i: number }
  | { readonly _tag: "failed"; readonly i: number; readonly retryable: boolean; readonly ambiguous: boolean }
  | { readonly _tag: "due"; readonly i: number }
  | { readonly _tag: "expire"; readonly i: number }
  | { readonly _tag: "advance"; readonly ms: number }
  | { readonly _tag: "deleted"; readonly i: number; readonly ok: boolean }

const RECORDS = 4
const index = fc.integer({ min: 0, max: RECORDS - 1 })
const event: fc.Arbitrary<Event> = fc.oneof(
  fc.record({ _tag: fc.constant("prepared" as const), i: index, object: fc.boolean() }),
  fc.record({ _tag: fc.constant("refuse" as const), i: index }),
  fc.record({ _tag: fc.constant("cancel" as const), i: index }),
  fc.record({ _tag: fc.constant("startCall" as const), i: index }),
  fc.record({ _tag: fc.constant("startCall" as const), i: index }),
  fc.record({ _tag: fc.constant("written" as const), i: index }),
  fc.record({
    _tag: fc.constant("failed" as const),
    i: index,
    retryable: fc.boolean(),
    ambiguous: fc.boolean()
  }),
  fc.record({ _tag: fc.constant("due" as const), i: index }),
  fc.record({ _tag: fc.constant("expire" as const), i: index }),
  fc.record({ _tag: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 600 }) }),
  fc.record({ _tag: fc.constant("deleted" as const), i: index, ok: fc.boolean() })
)

/** What the model door saw of one record. */
interface Seen {
  settles: number
  calls: number
  deletes: number
  /** A call carrying it may have written it (ambiguous, in flight at shutdown) or did. */
  mayBeOnStream: boolean
  hadObject: boolean
  prepared: boolean
}

const run = (events: ReadonlyArray<Event>) => {
  let now = 0
  const lives = Array.from({ length: RECORDS }, () => new RecordLife<string>(rules, now))
  const seen: Array<Seen> = lives.map(() => ({
    settles: 0,
    calls: 0,
    deletes: 0,
    mayBeOnStream: false,
    hadObject: false,
    prepared: false
  }))
  const deleting = new Set<number>()
  const apply = (i: number, step: Step) => {
    const life = lives[i]!
    if (step._tag === "Settle") {
      seen[i]!.settles++
      assert.isDefined(life.settlement)
      if (step.delete !== undefined) {
        seen[i]!.deletes++
        deleting.add(i)
      }
    }
    if (step._tag === "Delete") {
      seen[i]!.deletes++
      deleting.add(i)
    }
  }
  for (const e of events) {
    if (e._tag === "advance") {
      now += e.ms
      continue
    }
    const life = lives[e.i]!
    switch (e._tag) {
      case "prepared":
        // A record is prepared once: while queued or being prepared, or late, once it ended.
        if (["Ready", "InFlight", "Backoff"].includes(life.phase._tag) || seen[e.i]!.prepared) break
        seen[e.i]!.prepared = true
        life.startPreparing()
        if (e.object) seen[e.i]!.hadObject = true
        apply(e.i, life.prepared(now, e.object ? { bucket: "b", key: `k${e.i}` } : undefined))
        break
      case "refuse":
        life.startPreparing()
        apply(e.i, life.refuse("bad record"))
        break
      case "cancel":
        apply(e.i, life.cancel("gave up"))
        break
      case "startCall":
        if (life.phase._tag === "Ready") seen[e.i]!.calls++
        apply(e.i, life.startCall())
        break
      case "written":
        if (life.phase._tag === "InFlight") seen[e.i]!.mayBeOnStream = true
        apply(e.i, life.written("shardId-000000000000", "1"))
        break
      case "failed":
        if (life.phase._tag === "InFlight" && e.ambiguous) seen[e.i]!.mayBeOnStream = true
        apply(e.i, life.failed({ errorCode: "X", retryable: e.retryable, ambiguous: e.ambiguous }, now, 0.5))
        break
      case "due":
        apply(e.i, life.due(now))
        break
      case "expire":
        apply(e.i, life.expire(now))
        break
      case "deleted":
        if (deleting.delete(e.i)) apply(e.i, life.objectDeleted(e.ok))
        break
    }
    for (const [i, s] of seen.entries()) {
      assert.isAtMost(s.settles, 1, `record ${i} settled twice`)
      assert.strictEqual(lives[i]!.attempts, s.calls, `record ${i}: attempts are the calls that carried it`)
    }
  }
  // Shutdown: what is in flight may have been written; then every delete ends.
  const abandoned = new Set<number>()
  for (const [i, life] of lives.entries()) {
    if (life.phase._tag === "InFlight") seen[i]!.mayBeOnStream = true
    if (life.phase._tag === "Queued" || life.phase._tag === "Preparing") apply(i, life.refuse("closed"))
    else {
      const step = life.abandon(now, "shut down")
      if (step._tag !== "None") abandoned.add(i)
      apply(i, step)
    }
  }
  for (const i of [...deleting]) {
    deleting.delete(i)
    apply(i, lives[i]!.objectDeleted(true))
  }
  return { lives, seen, abandoned }
}

describe("RecordLife", () => {
  it("settles each record exactly once, whatever the order of events", () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), (events) => {
        const { lives, seen } = run(events)
        for (const [i, life] of lives.entries()) {
          assert.strictEqual(seen[i]!.settles, 1, `record ${i} settles once`)
          assert.isTrue(life.settled)
        }
      }),
      { numRuns: 1_000 }
    )
  })

  it("counts as attempts exactly the calls that carried the record, the one in flight at shutdown included", () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), (events) => {
        const { lives, seen } = run(events)
        for (const [i, life] of lives.entries()) {
          const settlement = life.settlement!
          assert.strictEqual(life.attempts, seen[i]!.calls)
          if (settlement._tag !== "Refused") assert.strictEqual(settlement.attempts, seen[i]!.calls)
        }
      }),
      { numRuns: 1_000 }
    )
  })

  it("deletes a record's object exactly when the record ends certainly not on the stream", () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), (events) => {
        const { lives, seen } = run(events)
        for (const [i, life] of lives.entries()) {
          const s = seen[i]!
          const object = life.object
          if (!s.hadObject) {
            assert.strictEqual(s.deletes, 0)
            continue
          }
          const settlement = life.settlement!
          const onStream = settlement._tag === "Delivered" ||
            (settlement._tag === "Undelivered" && settlement.maybeDelivered)
          if (onStream) {
            assert.strictEqual(s.deletes, 0, `record ${i} may be on the stream: its object is kept`)
            assert.strictEqual(object._tag, "Kept")
          } else {
            assert.strictEqual(s.deletes, 1, `record ${i} is certainly not on the stream: its object is deleted once`)
            assert.include(["Deleted", "Left"], object._tag)
          }
          if (settlement._tag === "Undelivered" && settlement.object !== undefined && !onStream) {
            assert.strictEqual(settlement.object.deleted, object._tag === "Deleted")
          }
        }
      }),
      { numRuns: 1_000 }
    )
  })

  it("a record past its TTL ends Expired, never Shutdown", () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), (events) => {
        const { abandoned, lives } = run([...events, { _tag: "advance", ms: 2_000 }])
        for (const i of abandoned) {
          const settlement = lives[i]!.settlement!
          assert.strictEqual(settlement._tag, "Undelivered")
          if (settlement._tag === "Undelivered") assert.strictEqual(settlement.failure.errorCode, ErrorCodes.expired)
        }
      }),
      { numRuns: 1_000 }
    )
  })

  it("a retry waits its backoff: exponential from the base, capped, never past the TTL", () => {
    const life = new RecordLife<string>(rules, 0)
    life.startPreparing()
    life.prepared(0, undefined)
    life.startCall()
    const step = life.failed(
      { errorCode: "ProvisionedThroughputExceededException", retryable: true, ambiguous: false },
      10,
      0.5
    )
    assert.deepStrictEqual(step, { _tag: "Retry", until: 110 })
    life.due(110)
    life.startCall()
    assert.deepStrictEqual(
      life.failed({ errorCode: "ProvisionedThroughputExceededException", retryable: true, ambiguous: false }, 900, 0.5),
      { _tag: "Retry", until: 1_000 }
    )
  })
})
