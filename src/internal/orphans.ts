/**
 * Deleting large payloads that belong to no record on the stream: the objects of a batch
 * whose build failed, and of records that are certainly not delivered. Best effort: each
 * delete is bounded by the writer's `requestTimeout`, and what could not be deleted is
 * reported, never retried for ever.
 */
import { Cause, Effect, Exit, Option } from "effect"
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

/** A report filled in as deletes finish, readable when they were interrupted midway. */
export interface DeleteProgress {
  readonly deleted: Array<PayloadLocation>
  readonly failed: Array<LargePayloadStoreError>
}

/** An empty {@link DeleteProgress}. */
export const deleteProgress = (): DeleteProgress => ({ deleted: [], failed: [] })

/** The locations a delete did not confirm: failed, or not finished when it was interrupted. */
export const leftBehind = (
  locations: ReadonlyArray<PayloadLocation>,
  report: DeleteReport
): Array<PayloadLocation> => {
  const deleted = new Set(report.deleted.map(locationId))
  return locations.filter((l) => !deleted.has(locationId(l)))
}

/** A location as one string, `bucket/key`. */
export const locationId = (location: PayloadLocation): string => `${location.bucket}/${location.key}`

/**
 * Deletes each location, `maxConcurrentUploads` at a time; never fails. `progress`, when
 * given, is filled in as deletes finish.
 */
export const deleteBestEffort = (
  store: LargePayloadStore.Service,
  locations: ReadonlyArray<PayloadLocation>,
  config: Pick<ResolvedWriterConfig, "streamName" | "requestTimeout" | "maxConcurrentUploads">,
  progress: DeleteProgress = deleteProgress()
): Effect.Effect<DeleteReport> =>
  Effect.suspend(() => {
    const { deleted, failed } = progress
    return Effect.forEach(locations, (location) =>
      store.delete(location).pipe(
        withRequestTimeout(
          config.requestTimeout,
          (facts) => new StoreError({ operation: "delete", ...location, ...facts })
        ),
        // Recorded as the delete ends, even when an interruption is already waiting.
        Effect.onExit((exit) =>
          Exit.isSuccess(exit)
            ? Effect.sync(() => deleted.push(location))
            : Option.match(Cause.failureOption(exit.cause), {
              onNone: () => Effect.void,
              onSome: (error) =>
                Effect.zipRight(
                  Effect.sync(() => failed.push(error)),
                  Effect.logDebug("could not delete the large payload of an undelivered record").pipe(
                    Effect.annotateLogs({ stream: config.streamName, key: location.key, error: error.message })
                  )
                )
            })
        ),
        Effect.ignore
      ), { concurrency: config.maxConcurrentUploads, discard: true }).pipe(
        Effect.as<DeleteReport>({ deleted, failed })
      )
  })
