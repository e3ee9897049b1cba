/**
 * A scriptable `Kinesis` test double: every PutRecords call is recorded and answered by a
 * script the test (or a user's test) writes — accept everything, refuse some records with a
 * per-record error code, fail whole calls with a `KinesisError`, or anything in between.
 * For what no real server does on demand: throttling, partial failures, crashes.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { KinesisTest } from "cygnus-kinesis-writer/testing"
 *
 * // Refuse every record of the first call with throttling, accept the rest.
 * const layer = KinesisTest.layer((call) =>
 *   call.index === 0
 *     ? KinesisTest.failEach(call, "ProvisionedThroughputExceededException")
 *     : KinesisTest.acceptAll(call))
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import { KinesisError } from "./Errors.js"
import { evenShards, routingHashKey, ShardMap } from "./internal/core/routing.js"
import type { PutRecordsRequest, PutRecordsResultEntry, ShardRange, StreamSummary } from "./Kinesis.js"
import { Kinesis } from "./Kinesis.js"

/**
 * One recorded PutRecords call: its 0-based index among the double's calls and its request.
 *
 * @since 0.1.0
 */
export interface PutRecordsCall {
  readonly index: number
  readonly request: PutRecordsRequest
}

/**
 * How the double answers a call.
 *
 * @since 0.1.0
 */
export type PutRecordsScript = (
  call: PutRecordsCall
) => Effect.Effect<ReadonlyArray<PutRecordsResultEntry>, KinesisError>

/**
 * What the double saw, for assertions.
 *
 * @since 0.1.0
 */
export class KinesisTestRecorder extends Context.Tag("cygnus-kinesis-writer/KinesisTestRecorder")<KinesisTestRecorder, {
  /** Every PutRecords call so far, in the order they started. */
  readonly calls: Effect.Effect<ReadonlyArray<PutRecordsCall>>
  /** ListShards calls so far. */
  readonly listShardsCalls: Effect.Effect<number>
}>() {}

/**
 * The shard map the double answers ListShards with by default: 4 open shards that split the
 * hash-key space evenly (`shardId-000000000000` … `shardId-000000000003`), the ones
 * {@link acceptAll} writes to.
 *
 * @since 0.1.0
 */
export const defaultShards: ReadonlyArray<ShardRange> = evenShards(4)

const defaultMap = new ShardMap(defaultShards)

/**
 * Writes every record of the call on the shard of {@link defaultShards} whose hash-key range
 * holds its explicit hash key, or else the MD5 of its partition key, as Kinesis routes it.
 *
 * @since 0.1.0
 */
export const acceptAll = (call: PutRecordsCall): Effect.Effect<ReadonlyArray<PutRecordsResultEntry>> =>
  Effect.sync(() =>
    call.request.records.map((r, i): PutRecordsResultEntry => ({
      _tag: "Written",
      shardId: defaultMap.shardOf(routingHashKey(r))!,
      sequenceNumber: `${call.index}-${i}`
    }))
  )

/**
 * Refuses every record of the call with a per-record error code.
 *
 * @since 0.1.0
 */
export const failEach = (
  call: PutRecordsCall,
  errorCode: string
): Effect.Effect<ReadonlyArray<PutRecordsResultEntry>> =>
  Effect.succeed(call.request.records.map(() => ({ _tag: "Failed", errorCode, errorMessage: `scripted ${errorCode}` })))

/**
 * Answers record by record: `errorCodeOf` returns an error code to refuse a record, or
 * `undefined` to write it.
 *
 * @since 0.1.0
 */
export const perRecord = (
  call: PutRecordsCall,
  errorCodeOf: (record: PutRecordsRequest["records"][number], index: number) => string | undefined
): Effect.Effect<ReadonlyArray<PutRecordsResultEntry>> =>
  Effect.map(acceptAll(call), (written) =>
    written.map((entry, i) => {
      const errorCode = errorCodeOf(call.request.records[i]!, i)
      return errorCode === undefined ? entry : { _tag: "Failed", errorCode, errorMessage: `scripted ${errorCode}` }
    }))

/**
 * Fails the whole call, as the SDK would for an error with this name and HTTP status.
 *
 * @since 0.1.0
 */
export const failCall = (
  call: PutRecordsCall,
  errorName: string,
  options: { readonly httpStatus?: number | undefined; readonly retryable: boolean }
): Effect.Effect<never, KinesisError> =>
  Effect.fail(
    new KinesisError({
      operation: "PutRecords",
      streamName: call.request.streamName,
      errorName,
      httpStatus: options.httpStatus,
      retryable: options.retryable
    })
  )

/**
 * GetShardIterator and GetRecords for a double that does not read: each call fails with a
 * `KinesisError` that is not retryable (`errorName` `UnsupportedByTestDouble`) and names the
 * double, so a `StreamReader` pointed at it stops at once with a reason.
 *
 * @example
 * ```ts
 * const kinesis = Kinesis.of({ putRecords, describeStreamSummary, listShards, ...KinesisTest.unreadable("my double") })
 * ```
 *
 * @since 0.1.0
 */
export const unreadable = (double: string): Pick<Kinesis.Service, "getShardIterator" | "getRecords"> => {
  const refuse = (operation: string, streamName: string) =>
    Effect.fail(
      new KinesisError({
        operation,
        streamName,
        errorName: "UnsupportedByTestDouble",
        retryable: false,
        cause: new Error(`${double} writes only; it cannot answer ${operation}`)
      })
    )
  return {
    getShardIterator: (request) => refuse("GetShardIterator", request.streamName),
    getRecords: (request) => refuse("GetRecords", request.streamName)
  }
}

/**
 * The double and its recorder as a layer. `summary` answers DescribeStreamSummary; `shards`
 * answers ListShards (an effect, to change the answer over time or fail it).
 *
 * @since 0.1.0
 */
export const layer = (
  script: PutRecordsScript = acceptAll,
  summary: Partial<StreamSummary> = {},
  shards: Effect.Effect<ReadonlyArray<ShardRange>, KinesisError> = Effect.succeed(defaultShards)
): Layer.Layer<Kinesis | KinesisTestRecorder> =>
  Layer.effectContext(Effect.sync(() => {
    const calls: Array<PutRecordsCall> = []
    let listShardsCalls = 0
    const kinesis = Kinesis.of({
      putRecords: (request) =>
        Effect.suspend(() => {
          const call = { index: calls.length, request }
          calls.push(call)
          return script(call)
        }),
      describeStreamSummary: (streamName) =>
        Effect.succeed({ streamName, status: "ACTIVE", openShardCount: 4, ...summary }),
      listShards: () =>
        Effect.suspend(() => {
          listShardsCalls++
          return shards
        }),
      ...unreadable("KinesisTest")
    })
    return Context.make(Kinesis, kinesis).pipe(
      Context.add(KinesisTestRecorder, {
        calls: Effect.sync(() => [...calls]),
        listShardsCalls: Effect.sync(() => listShardsCalls)
      })
    )
  }))
