/**
 * One bound for every request to AWS: a call with no answer within `duration` is
 * interrupted (which aborts its HTTP request) and fails as a retryable `TimeoutError`.
 */
import { Duration, Effect } from "effect"

/** The facts of a timed-out request, for the service's error type. */
export interface TimeoutFacts {
  readonly errorName: "TimeoutError"
  readonly retryable: true
  readonly cause: Error
}

/**
 * Fails `self` with `onTimeout(facts)` when it has not finished within `duration`. The request
 * runs interruptibly wherever this is called from (a clean-up in a finalizer, a settlement in
 * a masked region): a request that can wait on the network must be stoppable by its bound.
 */
export const withRequestTimeout =
  <E2>(duration: Duration.Duration, onTimeout: (facts: TimeoutFacts) => E2) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | E2, R> =>
    Effect.timeoutFail(Effect.interruptible(self), {
      duration,
      onTimeout: () =>
        onTimeout({
          errorName: "TimeoutError",
          retryable: true,
          cause: new Error(`no answer within ${Duration.format(duration)}`)
        })
    })
