/**
 * Deleting large payloads that belong to no record on the stream: the objects of a batch
 * whose build failed, and of records that are certainly not delivered. Best effort: each
 * delete is bounded by the writer's `requestTimeout`, and what could not be deleted is
 * reported, never retried for ever.
 *
 * @internal
 */
import { Effect } from "effect"
import type { LargePayloadStoreError } from "../Errors.js"
import { LargePayloadStoreError as StoreError } from "../Errors.js"
import type { LargePayloadStore, PayloadLocation } from "../LargePayloadStore.js"
import type { ResolvedWriterConfig } from "./config.js"
import { withRequestTimeout } from "./timeout.js"

/** What a best-effort delete did. */
export interface DeleteReport {
  readonly deleted: ReadonlyArray<PayloadLocation>
  readonly failed: ReadonlyArray<LargePayloadStoreError>
}

/** Deletes each location, `maxConcurrentUploads` at a time; never fails. */
export const deleteBestEffort = (
  store: LargePayloadStore.Service,
  locations: ReadonlyArray<PayloadLocation>,
  config: Pick<ResolvedWriterConfig, "streamName" | "requestTimeout" | "maxConcurrentUploads">
): Effect.Effect<DeleteReport> =>
  Effect.suspend(() => {
    const deleted: Array<PayloadLocation> = []
    const failed: Array<LargePayloadStoreError> = []
    return Effect.forEach(locations, (location) =>
      store.delete(location).pipe(
        withRequestTimeout(
          config.requestTimeout,
          (facts) => new StoreError({ operation: "delete", ...location, ...facts })
        ),
        Effect.matchEffect({
          onSuccess: () => Effect.sync(() => deleted.push(location)),
          onFailure: (error) =>
            Effect.zipRight(
              Effect.sync(() => failed.push(error)),
              Effect.logDebug("could not delete the large payload of an undelivered record").pipe(
                Effect.annotateLogs({ stream: config.streamName, key: location.key, error: error.message })
              )
            )
        })
      ), { concurrency: config.maxConcurrentUploads, discard: true }).pipe(
        Effect.as<DeleteReport>({ deleted, failed })
      )
  })
