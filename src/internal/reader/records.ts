/**
 * The records of one GetRecords answer as the reader's elements: one per logical record (each
 * member of an aggregate), decoded or failed, each with the position to resume from; and the
 * window that drops repeats of a `record_id`.
 */
import type { Duration } from "effect"
import { Effect, Either } from "effect"
import { DecodeError, LargePayloadStoreError } from "../../Errors.js"
import type { KinesisRecord } from "../../Kinesis.js"
import type { LargePayloadStore } from "../../LargePayloadStore.js"
import type { ReadError } from "../../RecordReader.js"
import type { StreamRecord } from "../../StreamReader.js"
import { backoff } from "../backoff.js"
import type { DecodedEntryRecord } from "../codec.js"
import { decodeRecordDataAllSync } from "../codec.js"
import { withRequestTimeout } from "../timeout.js"
import { resolve } from "./resolve.js"

/** One logical record before its data file is resolved. */
type Pending =
  | { readonly _tag: "Entry"; readonly base: Base; readonly entry: DecodedEntryRecord }
  | { readonly _tag: "Failed"; readonly base: Base; readonly error: ReadError }

type Base = Omit<Extract<StreamRecord, { _tag: "Failed" }>, "_tag" | "error">

/**
 * Every logical record of `records`, in order. An aggregate's members each carry the
 * position inside it, the last the position after it; a Kinesis record that cannot be
 * decoded is one `Failed`. Members up to `skipThrough.member` of the record `skipThrough`
 * names were handled before a resume and are left out. Large payloads are fetched
 * `concurrency` at a time; a payload that cannot be fetched or verified fails its member only.
 */
export const toStreamRecords = (
  shardId: string,
  records: ReadonlyArray<KinesisRecord>,
  options: {
    readonly concurrency: number
    readonly skipThrough?: { readonly sequenceNumber: string; readonly member: number } | undefined
    readonly millisBehindLatest: number | undefined
    readonly requestTimeout: Duration.Duration
  }
): Effect.Effect<Array<StreamRecord>, never, LargePayloadStore> => {
  const pending: Array<Pending> = []
  for (const record of records) {
    const skip = options.skipThrough?.sequenceNumber === record.sequenceNumber ? options.skipThrough.member : -1
    const base = (member: number, last: boolean): Base => ({
      shardId,
      sequenceNumber: record.sequenceNumber,
      partitionKey: record.partitionKey,
      member,
      approximateArrivalTimestamp: record.approximateArrivalTimestamp,
      millisBehindLatest: options.millisBehindLatest,
      position: last ? { sequenceNumber: record.sequenceNumber } : { sequenceNumber: record.sequenceNumber, member }
    })
    const decoded = decodeRecordDataAllSync(record.data)
    if (Either.isLeft(decoded)) {
      const error = decoded.left
      pending.push({
        _tag: "Failed",
        base: base(0, true),
        error: new DecodeError({
          reason: error.reason,
          detail: error.detail,
          sequenceNumber: record.sequenceNumber,
          cause: error.cause
        })
      })
      continue
    }
    decoded.right.forEach((entry, member) => {
      if (member > skip) pending.push({ _tag: "Entry", base: base(member, member === decoded.right.length - 1), entry })
    })
  }
  return Effect.forEach(pending, (p): Effect.Effect<StreamRecord, never, LargePayloadStore> =>
    p._tag === "Failed"
      ? Effect.succeed({ _tag: "Failed", ...p.base, error: p.error })
      : Effect.match(resolveBounded(p.entry, options.requestTimeout), {
        onSuccess: (record): StreamRecord => ({ _tag: "Decoded", ...p.base, record }),
        onFailure: (error): StreamRecord => ({ _tag: "Failed", ...p.base, error })
      }), { concurrency: options.concurrency })
}

/** Retries of a large payload's read that failed retryably (throttling, 5xx, a timeout, a network fault). */
const payloadRetry = backoff({ base: "200 millis", cap: "5 seconds", maxRetries: 4 })

/**
 * An entry to its data file; a large payload's read bounded by `requestTimeout` and retried
 * a few times when it failed retryably, before it becomes the member's `Failed`.
 */
const resolveBounded = (entry: DecodedEntryRecord, requestTimeout: Duration.Duration) => {
  if (entry.entry._tag === "standard") return resolve(entry)
  const { bucket, key } = entry.entry.pointer
  return resolve(entry).pipe(
    withRequestTimeout(
      requestTimeout,
      (facts) => new LargePayloadStoreError({ operation: "read", bucket, key, ...facts })
    ),
    Effect.retry({ schedule: payloadRetry, while: (e) => e._tag === "LargePayloadStoreError" && e.retryable })
  )
}

/**
 * A bounded memory of the `record_id`s seen last: `fresh` is false for an id among the last
 * `window` ids seen, and remembers it otherwise (the oldest is forgotten).
 */
export class DedupeWindow {
  private readonly seen = new Set<string>()
  private readonly order: Array<string | undefined>
  private next = 0

  constructor(readonly window: number) {
    this.order = new Array<string | undefined>(window)
  }

  fresh(recordId: string): boolean {
    if (this.seen.has(recordId)) return false
    const evicted = this.order[this.next]
    if (evicted !== undefined) this.seen.delete(evicted)
    this.order[this.next] = recordId
    this.next = (this.next + 1) % this.window
    this.seen.add(recordId)
    return true
  }
}
