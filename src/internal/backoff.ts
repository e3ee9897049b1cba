/**
 * The retry schedule: exponential from `base`, jittered (×0.8–1.2), each delay
 * capped at `cap`, at most `maxRetries` retries.
 */
import { Duration, Effect, Random, Schedule } from "effect"
import { retryDelayMillis } from "./core/retry.js"

/**
 * At most `maxRetries` recurrences, each after the core's retry delay: exponential from
 * `base`, jittered ×0.8–1.2 with a draw of the `Random` service, capped at `cap` (the cap
 * after the jitter, so it is hard). The producer computes its retries' delays with the same
 * function.
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
}): Schedule.Schedule<unknown, unknown> => {
  const policy = {
    baseMillis: Duration.toMillis(options.base),
    capMillis: Duration.toMillis(options.cap),
    maxRetries: options.maxRetries
  }
  return Schedule.recurs(options.maxRetries).pipe(
    Schedule.addDelayEffect((n) => Effect.map(Random.next, (u) => Duration.millis(retryDelayMillis(policy, n + 1, u))))
  )
}
