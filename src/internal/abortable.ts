/**
 * A promise-returning AWS call as an Effect whose interruption aborts the request and then
 * waits for it to settle, unlike `Effect.tryPromise`, which returns at once on interruption
 * while the aborted request may still be in flight. What runs after an interrupted call (the
 * delete of an object whose upload was aborted) then never runs before it.
 */
import { Effect } from "effect"

/**
 * How long an interruption waits for an aborted request to settle. The SDK settles an
 * aborted request at once; the bound only keeps a client that ignores its abort signal from
 * holding an interruption up.
 */
export const ABORT_SETTLE_MILLIS = 2_000

/** Runs `evaluate` with an abort signal; on interruption aborts it and waits for it to settle. */
export const tryAbortable = <A, E>(
  evaluate: (signal: AbortSignal) => PromiseLike<A>,
  onError: (cause: unknown) => E
): Effect.Effect<A, E> =>
  Effect.async<A, E>((resume) => {
    const controller = new AbortController()
    let promise: Promise<A>
    try {
      promise = Promise.resolve(evaluate(controller.signal))
    } catch (cause) {
      resume(Effect.fail(onError(cause)))
      return
    }
    promise.then(
      (a) => resume(Effect.succeed(a)),
      (cause) => resume(Effect.fail(onError(cause)))
    )
    return Effect.async<void>((settled) => {
      controller.abort()
      const timer = setTimeout(() => settled(Effect.void), ABORT_SETTLE_MILLIS)
      const done = () => {
        clearTimeout(timer)
        settled(Effect.void)
      }
      promise.then(done, done)
    })
  })
