/**
 * A live stream as an Effect `Stream` of decoded logical records: every shard read by its
 * own fiber with GetRecords, new shards found with ListShards, a parent read to its end
 * before its children, records of one shard in order. Each element is a `LambdaRecordResult`
 * in shape — `Decoded` with its `DecodedRecord`, or `Failed` with why — and says where it
 * is (shard, sequence number, member of an aggregate) and where to resume after it.
 *
 * Single-process reading: tails, tools and small consumers. A fleet of consumers belongs on
 * Lambda (`RecordReader.processLambdaEvent`) or on the KCL and its lease table.
 *
 * @since 0.1.0
 */
import type { ConfigError, Duration } from "effect"
import { Effect, Stream } from "effect"
import type { KinesisError } from "./Errors.js"
import { toPosition } from "./internal/reader/lineage.js"
import { resolveOptions } from "./internal/reader/options.js"
import { makeStream } from "./internal/reader/reader.js"
import { Attributes, SpanNames } from "./internal/spans.js"
import type { Kinesis } from "./Kinesis.js"
import type { LargePayloadStore } from "./LargePayloadStore.js"
import type { DecodedRecord, ReadError } from "./RecordReader.js"

/**
 * A shard's id, e.g. `shardId-000000000003`.
 *
 * @since 0.1.0
 */
export type ShardId = string

/**
 * A Kinesis sequence number: a decimal string, increasing within a shard.
 *
 * @since 0.1.0
 */
export type SequenceNumber = string

/**
 * Where a shard was read to: the logical record handled last. `member` is set inside an
 * aggregate whose later members are still to come (as the KCL's extended sequence number);
 * absent, the whole Kinesis record was handled.
 *
 * @since 0.1.0
 */
export interface Position {
  readonly sequenceNumber: SequenceNumber
  readonly member?: number | undefined
}

/**
 * Where reading starts:
 * - `"trim-horizon"`: every record the stream still keeps;
 * - `"latest"`: the records written from now on;
 * - `{ timestamp }`: the records that arrived at or after a time;
 * - `{ positions }`: after the positions a previous reading reached (see {@link positions}):
 *   a shard in the map resumes after its position; a shard the map does not name is read
 *   from its start, unless it is the ancestor of one the map names (then it was read).
 *   A bare sequence number means that whole Kinesis record was handled.
 *
 * @since 0.1.0
 */
export type From =
  | "trim-horizon"
  | "latest"
  | { readonly timestamp: Date }
  | { readonly positions: ReadonlyMap<ShardId, SequenceNumber | Position> }

/**
 * The stream to read: by name, or by ARN (cross-account reads; the name is then taken from
 * the ARN unless given).
 *
 * @since 0.1.0
 */
export type StreamTarget =
  | { readonly streamName: string; readonly streamArn?: string | undefined }
  | { readonly streamName?: string | undefined; readonly streamArn: string }

/**
 * The options of {@link stream}.
 *
 * @since 0.1.0
 */
export type StreamOptions = StreamTarget & {
  readonly from: From
  /** `true`: read on as records come; `false`: end when every shard has been read to its current tip. */
  readonly follow: boolean
  /** GetRecords' `Limit`: at most this many Kinesis records a call (1–10 000; default: Kinesis' 10 000). */
  readonly maxRecordsPerCall?: number | undefined
  /** How long a shard at its tip waits before its next GetRecords. Default 1 s; a shorter one than 200 ms counts as 200 ms. */
  readonly idleDelay?: Duration.DurationInput | undefined
  /**
   * Drop a `Decoded` record whose `record_id` was among the last ones seen (the writer's
   * retries can land a record twice). `true`: a window of 10 000 ids. Default off.
   */
  readonly dedupe?: boolean | { readonly window: number } | undefined
  /** Every Kinesis call not answered within this fails as a retryable timeout. Default 30 s. */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /** Large payloads fetched from S3 at a time, per shard. Default 8. */
  readonly maxConcurrentPayloadReads?: number | undefined
}

interface Located {
  readonly shardId: ShardId
  readonly sequenceNumber: SequenceNumber
  readonly partitionKey: string
  /** The record's place in its Kinesis record: 0, or its index among an aggregate's members. */
  readonly member: number
  readonly approximateArrivalTimestamp: Date | undefined
  /** How far behind its shard's newest record the GetRecords answer that carried it was (0: at the tip). */
  readonly millisBehindLatest: number | undefined
  /** The position to resume from once this record is handled: give it back in {@link From}'s `positions`. */
  readonly position: Position
}

/**
 * One logical record of the stream: decoded, or why it could not be (a `DecodeError`, or a
 * `LargePayloadStoreError` for a pointer whose S3 object is missing or unreadable). A
 * Kinesis record that cannot be decoded at all is one `Failed` (member 0); a member of an
 * aggregate whose payload cannot be fetched is a `Failed` of its own.
 *
 * @since 0.1.0
 */
export type StreamRecord =
  | (Located & { readonly _tag: "Decoded"; readonly record: DecodedRecord })
  | (Located & { readonly _tag: "Failed"; readonly error: ReadError })

/**
 * Reads the stream's shards as one `Stream` of logical records.
 *
 * - Each shard is read by its own fiber, at most 5 GetRecords calls a second; throttling
 *   and transient failures are retried on a backoff (logged at Debug); an expired iterator
 *   is re-acquired after the last record read; every call is bounded by `requestTimeout`.
 * - After a reshard a parent is read to its end before its children; records of one shard
 *   come in order; shards interleave.
 * - A record that cannot be decoded is a `Failed` element; the stream goes on. A large
 *   payload's read is bounded by `requestTimeout` too, and retried a few times when it failed
 *   retryably before it counts as failed.
 * - A slow consumer makes the shard fibers wait: at most 4 decoded GetRecords answers wait
 *   for it, and one per shard.
 *
 * Fails with a `KinesisError` when a call fails for good (a missing stream, access denied,
 * retries run out), or a `ConfigError` naming an option that is not valid.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { StreamReader } from "cygnus-kinesis-writer/reader"
 *
 * const tail = StreamReader.stream({ streamName: "my-kinesis-stream", from: "latest", follow: true }).pipe(
 *   Stream.runForEach((r) =>
 *     r._tag === "Decoded"
 *       ? Effect.log(`${r.shardId} ${r.record.info.recordId} ${r.record.dataFile.filePath}`)
 *       : Effect.logWarning(`${r.shardId} ${r.sequenceNumber}: ${r.error.message}`)
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 */
export const stream = (
  options: StreamOptions
): Stream.Stream<StreamRecord, KinesisError | ConfigError.ConfigError, Kinesis | LargePayloadStore> =>
  Stream.unwrap(Effect.map(resolveOptions(options), makeStream)).pipe(
    Stream.withSpan(SpanNames.streamReader, {
      attributes: { [Attributes.streamName]: options.streamName ?? options.streamArn ?? "" }
    })
  )

/**
 * The positions to resume from after `records` were handled, in the order the stream gave
 * them: each shard's last position, over `start` (the positions reading began from). Give it
 * back as `from: { positions }`.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { StreamReader } from "cygnus-kinesis-writer/reader"
 *
 * const firstHundred = Effect.gen(function*() {
 *   const records = yield* StreamReader.stream({ streamName: "s", from: "trim-horizon", follow: false }).pipe(
 *     Stream.take(100),
 *     Stream.runCollect
 *   )
 *   // Later: StreamReader.stream({ streamName: "s", from: { positions: checkpoint }, follow: false })
 *   const checkpoint = StreamReader.positions(records)
 *   return checkpoint
 * })
 * ```
 *
 * @since 0.1.0
 */
export const positions = (
  records: Iterable<StreamRecord>,
  start: ReadonlyMap<ShardId, SequenceNumber | Position> = new Map()
): Map<ShardId, Position> => {
  const map = new Map<ShardId, Position>()
  for (const [shardId, position] of start) map.set(shardId, toPosition(position))
  for (const record of records) map.set(record.shardId, record.position)
  return map
}
