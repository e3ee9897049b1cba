/**
 * Keeping the event loop turning: the writer runs on the caller's thread, beside its timers
 * and I/O, and never holds it for long (RELIABILITY.md › Invariants).
 */
import { Effect } from "effect"

/**
 * Lets timers and I/O run: a macrotask turn, unlike `Effect.yieldNow`, which the default
 * scheduler resumes as a microtask.
 */
export const yieldToEventLoop: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** How long a loop of synchronous work may run before it lets the event loop turn. */
export const SLICE_MILLIS = 5

/**
 * A time slice for a loop of synchronous work: `spent()` is a cheap check to make between
 * steps; `yield` lets the event loop turn and starts a new slice. Steps are never split, so
 * the longest hold is a slice plus one step.
 */
export class EventLoopSlice {
  private start = performance.now()

  spent(): boolean {
    return performance.now() - this.start >= SLICE_MILLIS
  }

  readonly yield: Effect.Effect<void> = Effect.zipRight(
    yieldToEventLoop,
    Effect.sync(() => {
      this.start = performance.now()
    })
  )
}
