/**
 * The retry schedule: exponential from `base`, jittered (×0.8–1.2), each delay
 * capped at `cap`, at most `maxRetries` retries.
 *
 * @internal
 */
import type { Duration } from "effect"
import { Schedule } from "effect"

/**
 * `Schedule.exponential(base)`, jittered, each delay capped at `cap` (the cap comes after
 * the jitter, so it is hard), stopping after `maxRetries` recurrences.
 *
 * @example
 * ```ts
 * Effect.retry(effect, { schedule: backoff({ base: "100 millis", cap: "10 seconds", maxRetries: 3 }) })
 * ```
 *
 * @internal
 */
export const backoff = (options: {
  readonly base: Duration.DurationInput
  readonly cap: Duration.DurationInput
  readonly maxRetries: number
}): Schedule.Schedule<unknown, unknown> =>
  Schedule.exponential(options.base).pipe(
    Schedule.jittered,
    Schedule.union(Schedule.spaced(options.cap)),
    Schedule.intersect(Schedule.recurs(options.maxRetries))
  )
