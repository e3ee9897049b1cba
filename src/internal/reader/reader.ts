/**
 * The `StreamReader`'s machine: a coordinator that lists the shards, starts a reader fiber
 * for each shard whose parents are done, and lists again when a shard ends (and, following,
 * every `DISCOVERY_INTERVAL`); the readers hand their records to one bounded queue, which is
 * the stream. A full queue makes every reader wait, so what is held is bounded whatever the
 * backlog: the queue's answers, and one answer per reader.
 */
import type { Duration, Scope } from "effect"
import { Chunk, Effect, Queue, Stream, Take } from "effect"
import { KinesisError } from "../../Errors.js"
import { Kinesis } from "../../Kinesis.js"
import type { ShardRange } from "../../Kinesis.js"
import type { LargePayloadStore } from "../../LargePayloadStore.js"
import type { From, StreamRecord } from "../../StreamReader.js"
import { backoff } from "../backoff.js"
import { Attributes, SpanNames } from "../spans.js"
import { withRequestTimeout } from "../timeout.js"
import { initialStart, Lineage } from "./lineage.js"
import type { ReadStart } from "./lineage.js"
import { DedupeWindow } from "./records.js"
import type { ShardEnd } from "./shardReader.js"
import { readShard } from "./shardReader.js"

/** How often a following reader lists the shards even when none ended. */
export const DISCOVERY_INTERVAL: Duration.DurationInput = "30 seconds"

/** Decoded GetRecords answers held between the readers and the consumer. */
const QUEUED_ANSWERS = 4

const listRetry = backoff({ base: "500 millis", cap: "10 seconds", maxRetries: 8 })

/** The reader's options, validated and with their defaults. */
export interface ResolvedReaderOptions {
  readonly streamName: string
  readonly streamArn: string | undefined
  readonly from: From
  readonly follow: boolean
  readonly limit: number | undefined
  readonly idleDelay: Duration.Duration
  readonly requestTimeout: Duration.Duration
  readonly pointerConcurrency: number
  /** The window of `record_id`s to drop repeats of; `undefined`: no de-duplication. */
  readonly dedupeWindow: number | undefined
}

const TRIM_HORIZON: ReadStart = { iterator: { _tag: "TrimHorizon" } }

/** The stream of every logical record of the stream's shards, from `options.from`. */
export const makeStream = (
  options: ResolvedReaderOptions
): Stream.Stream<StreamRecord, KinesisError, Kinesis | LargePayloadStore> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const queue = yield* Effect.acquireRelease(
      Queue.bounded<Take.Take<StreamRecord, KinesisError>>(QUEUED_ANSWERS),
      Queue.shutdown
    )
    yield* Effect.forkScoped(
      // Not a finalizer: an offer to a full queue must stay interruptible when the consumer stops.
      coordinate(options, queue).pipe(
        Effect.matchCauseEffect({
          onSuccess: () => queue.offer(Take.end),
          onFailure: (cause) => queue.offer(Take.failCause(cause))
        })
      )
    )
    const window = options.dedupeWindow === undefined ? undefined : new DedupeWindow(options.dedupeWindow)
    const records = Stream.flattenTake(Stream.fromQueue(queue))
    return window === undefined
      ? records
      : Stream.filter(records, (r) => r._tag === "Failed" || window.fresh(r.record.info.recordId))
  }))

/** Lists shards, starts their readers in lineage order, and returns when no shard is left to read. */
const coordinate = Effect.fnUntraced(function*(
  options: ResolvedReaderOptions,
  queue: Queue.Enqueue<Take.Take<StreamRecord, KinesisError>>
): Effect.fn.Return<void, KinesisError, Kinesis | LargePayloadStore | Scope.Scope> {
  const kinesis = yield* Kinesis
  const { streamArn, streamName } = options
  const list = kinesis.listShards(streamName, streamArn).pipe(
    withRequestTimeout(
      options.requestTimeout,
      (facts) => new KinesisError({ operation: "ListShards", streamName, ...facts })
    ),
    Effect.retry({ schedule: listRetry, while: (error) => error.retryable })
  )
  const ended = yield* Queue.unbounded<{ readonly shardId: string; readonly end: ShardEnd }>()
  const lineage = new Lineage()
  const first = yield* list
  lineage.learn(first, initialStart(first, options.from))

  const startReady = Effect.suspend(() =>
    Effect.forEach(lineage.takeReady(), ({ shard, start }) =>
      Effect.forkScoped(
        readShard({
          ...options,
          shard,
          start,
          emit: (records) => queue.offer(Take.chunk(Chunk.unsafeFromArray(records)))
        }).pipe(
          Effect.flatMap((end) => ended.offer({ shardId: shard.shardId, end })),
          Effect.withSpan(SpanNames.readShard, { attributes: { [Attributes.shardId]: shard.shardId } }),
          // A reader's failure is the stream's.
          Effect.catchAllCause((cause) => queue.offer(Take.failCause(cause)))
        )
      ), { discard: true })
  )
  const learn = (listing: ReadonlyArray<ShardRange>) => lineage.learn(listing, () => TRIM_HORIZON)

  yield* startReady
  while (options.follow || lineage.reading > 0) {
    const event = options.follow
      ? yield* Effect.timeoutOption(Queue.take(ended), DISCOVERY_INTERVAL)
      : yield* Effect.asSome(Queue.take(ended))
    if (event._tag === "Some") {
      if (event.value.end === "Closed") lineage.finish(event.value.shardId)
      else lineage.reachTip(event.value.shardId)
    }
    // A closed shard's children are listed from the moment it closed.
    if (event._tag === "None" || event.value.end === "Closed") learn(yield* list)
    yield* startReady
  }
})
