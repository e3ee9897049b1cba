/**
 * A `Kinesis` double that reads, for what no emulator does on demand: throttling and expired
 * iterators on the calls a test names. Shards hold records in memory; iterators are plain
 * strings (`shardId|index`); every call is recorded with the `Clock` time it was made, so a
 * test under `TestClock` counts calls per simulated second.
 */
import { Clock, Effect, Layer } from "effect"
import type { GetRecordsResult, KinesisRecord, ShardIteratorStart, ShardRange } from "../../src/index.js"
import { Kinesis, KinesisError } from "../../src/index.js"
import { KinesisTest } from "../../src/testing.js"

export interface DoubleShard {
  readonly shardId: string
  readonly records: ReadonlyArray<KinesisRecord>
  readonly open: boolean
  readonly parentShardId?: string | undefined
}

export interface ReadCall {
  readonly operation: "GetShardIterator" | "GetRecords" | "ListShards"
  readonly shardId: string
  /** The call's 0-based index among the calls of its operation. */
  readonly index: number
  readonly at: number
  readonly start?: ShardIteratorStart | undefined
}

/**
 * The double: `fault` names the error of a call (`ProvisionedThroughputExceededException`,
 * `ExpiredIteratorException`, …), `Hang` for a call that never answers, or `undefined` to
 * answer it.
 */
export const readingKinesis = (
  shards: ReadonlyArray<DoubleShard>,
  fault: (call: ReadCall) => string | undefined = () => undefined
) => {
  const calls: Array<ReadCall> = []
  const byId = new Map(shards.map((s) => [s.shardId, s]))
  const record = (operation: ReadCall["operation"], shardId: string, start?: ShardIteratorStart) =>
    Effect.flatMap(Clock.currentTimeMillis, (at) => {
      const call: ReadCall = {
        operation,
        shardId,
        index: calls.filter((c) => c.operation === operation).length,
        at,
        start
      }
      calls.push(call)
      const errorName = fault(call)
      if (errorName === "Hang") return Effect.never
      return errorName === undefined ? Effect.void : Effect.fail(
        new KinesisError({
          operation,
          streamName: "double",
          errorName,
          retryable: errorName === "ProvisionedThroughputExceededException"
        })
      )
    })
  const indexOf = (shard: DoubleShard, start: ShardIteratorStart): number => {
    const at = (sequenceNumber: string) => shard.records.findIndex((r) => r.sequenceNumber === sequenceNumber)
    switch (start._tag) {
      case "TrimHorizon":
      case "AtTimestamp":
        return 0
      case "Latest":
        return shard.records.length
      case "AtSequenceNumber":
        return at(start.sequenceNumber)
      case "AfterSequenceNumber":
        return at(start.sequenceNumber) + 1
    }
  }
  const listing: ReadonlyArray<ShardRange> = shards.map((s, i) => ({
    shardId: s.shardId,
    startingHashKey: BigInt(i),
    endingHashKey: BigInt(i),
    open: s.open,
    ...(s.parentShardId === undefined ? {} : { parentShardId: s.parentShardId })
  }))
  const kinesis = Kinesis.of({
    ...KinesisTest.unreadable("readingKinesis"),
    putRecords: () => Effect.die("readingKinesis does not write"),
    describeStreamSummary: (streamName) => Effect.succeed({ streamName, status: "ACTIVE", openShardCount: 1 }),
    listShards: () => Effect.as(record("ListShards", ""), listing),
    getShardIterator: (request) =>
      Effect.as(
        record("GetShardIterator", request.shardId, request.start),
        `${request.shardId}|${indexOf(byId.get(request.shardId)!, request.start)}`
      ),
    getRecords: (request) => {
      const [shardId, from] = request.shardIterator.split("|") as [string, string]
      const shard = byId.get(shardId)!
      return Effect.as(
        record("GetRecords", shardId),
        (() => {
          const index = Number(from)
          const records = shard.records.slice(index, index + (request.limit ?? 10_000))
          const next = index + records.length
          const ended = !shard.open && records.length === 0 && next >= shard.records.length
          return {
            records,
            nextShardIterator: ended ? undefined : `${shardId}|${next}`,
            millisBehindLatest: next >= shard.records.length ? 0 : 1_000
          } satisfies GetRecordsResult
        })()
      )
    }
  })
  return { layer: Layer.succeed(Kinesis, kinesis), calls }
}
