/**
 * The stream's shard map, as the library loads it: ListShards (every page), bounded by the
 * writer's `requestTimeout`; a stream with no open shard is a failed load, since no record
 * could be routed by it. The one load that the producer's pacing (`pacing.ts`) and the
 * writer's aggregation by predicted shard (`aggregate.ts`) share.
 *
 * The writer's holder of the map ({@link makeShardMapSource}), for aggregation only:
 *
 * - loaded when first needed, and that first batch waits for it (at most `requestTimeout`,
 *   and half the batch's deadline: see `writer.ts`): a short-lived writer (a Lambda) gets
 *   per-shard aggregates from its first batch;
 * - a load that fails never fails a batch: the batch groups records by exact partition key,
 *   as without a map, the failure is logged at Debug, and the map is tried again in the
 *   background at most once per {@link RETRY_INTERVAL};
 * - a receipt on a shard other than the one an aggregate was built for (a split or a merge
 *   since the load) refreshes the map in the background, at most once per
 *   {@link REFRESH_INTERVAL}; batches meanwhile use the map they have.
 */
import type { Scope } from "effect"
import { Clock, Deferred, Duration, Effect, FiberId } from "effect"
import { KinesisError } from "../Errors.js"
import type { ShardRange } from "../Kinesis.js"
import { ShardMap } from "./core/routing.js"
import type { AttemptOutcome } from "./delivery.js"
import { withRequestTimeout } from "./timeout.js"

/** What one load of a stream's shard map needs. */
export interface ShardMapLoad {
  readonly streamName: string
  /** ListShards, every page (the `Kinesis` service's `listShards`): bounded here. */
  readonly listShards: Effect.Effect<ReadonlyArray<ShardRange>, KinesisError>
  /** The bound of the whole load (the writer's `requestTimeout`). */
  readonly requestTimeout: Duration.DurationInput
}

/**
 * One load of the stream's shard map: ListShards within `requestTimeout` (a `TimeoutError`
 * otherwise), failing with `NoOpenShards` when the stream has no open shard.
 */
export const loadShardMap = (load: ShardMapLoad): Effect.Effect<ShardMap<ShardRange>, KinesisError> =>
  load.listShards.pipe(
    withRequestTimeout(
      Duration.decode(load.requestTimeout),
      (facts) => new KinesisError({ operation: "ListShards", streamName: load.streamName, ...facts })
    ),
    Effect.map((ranges) => new ShardMap(ranges)),
    Effect.filterOrFail((map) => map.shards.length > 0, () => noShards(load.streamName))
  )

const noShards = (streamName: string): KinesisError =>
  new KinesisError({
    operation: "ListShards",
    streamName,
    errorName: "NoOpenShards",
    retryable: true,
    cause: new Error("ListShards answered no open shard")
  })

/** The least time between two loads after a failed one. */
export const RETRY_INTERVAL = Duration.seconds(30)

/** The least time between two loads on a receipt from a shard other than the one predicted. */
export const REFRESH_INTERVAL = Duration.seconds(5)

/** The writer's shard map for aggregation. */
export interface ShardMapSource {
  /**
   * The map, if one is known. The first call loads it and waits for the load; after a failed
   * load, a call at least {@link RETRY_INTERVAL} later starts another in the background and
   * answers `undefined` meanwhile. Never fails.
   */
  readonly current: Effect.Effect<ShardMap<ShardRange> | undefined>
  /**
   * After an attempt: a record sent with an explicit hash key that Kinesis wrote on a shard
   * other than the one the map gives that key starts a refresh in the background.
   */
  readonly observe: (outcome: AttemptOutcome) => Effect.Effect<void>
}

/** Where the writer stands on the stream's shards. */
type SourceState =
  | { readonly _tag: "Unloaded" }
  /** The first load, which the batches that need the map wait for. */
  | { readonly _tag: "Loading"; readonly done: Deferred.Deferred<void> }
  | { readonly _tag: "Known"; readonly map: ShardMap<ShardRange> }
  /** Every load so far failed; the last one ended at `at` (`Clock` millis). */
  | { readonly _tag: "Failed"; readonly at: number }

/**
 * The writer's holder of the shard map: its loads run in fibers of `scope` (the writer's), so
 * that a batch interrupted while it waits for the first load does not stop it.
 */
export const makeShardMapSource = (load: ShardMapLoad, scope: Scope.Scope): ShardMapSource => {
  let state: SourceState = { _tag: "Unloaded" }
  /** Whether a load runs in the background. */
  let refreshing = false
  /** When the last background load started on a surprise (`Clock` millis). */
  let lastRefreshAt = Number.NEGATIVE_INFINITY

  /** One load; its outcome becomes the state (a failed refresh keeps the map it had). */
  const loadOnce = loadShardMap(load).pipe(
    Effect.matchEffect({
      onSuccess: (map) =>
        Effect.sync(() => {
          state = { _tag: "Known", map }
        }),
      onFailure: (error) =>
        Effect.flatMap(Clock.currentTimeMillis, (at) => {
          if (state._tag !== "Known") state = { _tag: "Failed", at }
          return Effect.logDebug("could not list the stream's shards: records are aggregated by partition key").pipe(
            Effect.annotateLogs({ stream: load.streamName, error: error.message })
          )
        })
    })
  )

  const inBackground = (effect: Effect.Effect<void>) =>
    Effect.suspend(() => {
      if (refreshing) return Effect.void
      refreshing = true
      return Effect.asVoid(
        Effect.forkIn(Effect.ensuring(effect, Effect.sync(() => (refreshing = false))), scope)
      )
    })

  const known = Effect.sync(() => knownOf(state))

  const current: Effect.Effect<ShardMap<ShardRange> | undefined> = Effect.suspend(() => {
    switch (state._tag) {
      case "Known":
        return Effect.succeed(state.map)
      case "Unloaded": {
        // Loading from here on, in this same step: a batch that asks meanwhile waits for this load.
        const done = Deferred.unsafeMake<void>(FiberId.none)
        state = { _tag: "Loading", done }
        return Effect.forkIn(Effect.ensuring(loadOnce, Deferred.succeed(done, undefined)), scope).pipe(
          Effect.zipRight(Deferred.await(done)),
          Effect.zipRight(known)
        )
      }
      case "Loading":
        return Effect.zipRight(Deferred.await(state.done), known)
      case "Failed": {
        const at = state.at
        return Effect.flatMap(Clock.currentTimeMillis, (now) =>
          now - at >= Duration.toMillis(RETRY_INTERVAL)
            ? Effect.as(inBackground(loadOnce), undefined)
            : Effect.succeed(undefined))
      }
    }
  })

  const observe = (outcome: AttemptOutcome) =>
    Effect.suspend(() => {
      if (state._tag !== "Known") return Effect.void
      const map = state.map
      const surprised = outcome.writtenRecords.some((w) =>
        w.record.explicitHashKey !== undefined && map.shardOf(BigInt(w.record.explicitHashKey)) !== w.shardId
      )
      if (!surprised) return Effect.void
      return Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (now - lastRefreshAt < Duration.toMillis(REFRESH_INTERVAL)) return Effect.void
        lastRefreshAt = now
        return inBackground(loadOnce)
      })
    })

  return { current, observe }
}

/** The map once a load has ended: known, or none. */
const knownOf = (state: SourceState): ShardMap<ShardRange> | undefined => state._tag === "Known" ? state.map : undefined
