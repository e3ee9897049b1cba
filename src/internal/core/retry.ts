/**
 * The retry delay, one formula for both doors: exponential from `base`, jittered ×0.8–1.2,
 * each delay capped at `cap` (the cap after the jitter, so it is hard). The random number is
 * given, so that the caller owns the randomness and a test can pin it.
 */

/** What decides a retry's delay and whether there is one. */
export interface RetryPolicy {
  readonly baseMillis: number
  readonly capMillis: number
  /** Retries after the first attempt: `maxRetries` retries make `maxRetries + 1` attempts. */
  readonly maxRetries: number
}

/** The lowest and highest jitter factor. */
export const JITTER_MIN = 0.8
export const JITTER_MAX = 1.2

/**
 * The delay before retry `retry` (1 for the first retry), in milliseconds, given `u` in
 * [0, 1): `base · 2^(retry − 1) · (0.8 + 0.4u)`, capped.
 *
 * @example
 * ```ts
 * retryDelayMillis({ baseMillis: 100, capMillis: 10_000, maxRetries: 3 }, 2, 0.5) // 200
 * ```
 */
export const retryDelayMillis = (policy: RetryPolicy, retry: number, u: number): number =>
  Math.min(
    policy.capMillis,
    policy.baseMillis * 2 ** Math.max(0, retry - 1) * (JITTER_MIN + (JITTER_MAX - JITTER_MIN) * u)
  )
