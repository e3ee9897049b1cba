/**
 * `StreamReader` against real servers (kinesalite and s3rver, started once for the run by
 * test/support/globalSetup.ts): records written by the library's own writer — plain,
 * offloaded to S3, aggregated — read back whole, as a live tail, resumed from positions,
 * across a reshard, and around a corrupt record. Live clock: the servers answer in real time.
 */
import { MergeShardsCommand, PutRecordsCommand, SplitShardCommand } from "@aws-sdk/client-kinesis"
import { equals } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Stream } from "effect"
import type { DataFileV1, KinesisWriterOptions, StreamReader as SR } from "../../src/index.js"
import {
  DataFileV1Schema,
  Kinesis,
  KinesisMetrics,
  KinesisWriter,
  LargePayloadStore,
  StreamReader
} from "../../src/index.js"
import { RecordGenerator } from "../../src/testing.js"
import { createBucket, createStream } from "../support/LocalAws.js"
import { localClients, uniqueName } from "../support/names.js"

const { kinesis: kinesisClient, s3: s3Client } = localClients()

const base = { logGroupId: "lg-reader", schemaName: "orders", accountId: "123456789012" } as const

const newStream = (shards: number) =>
  Effect.gen(function*() {
    const name = uniqueName("sr-stream")
    yield* Effect.promise(() => createStream(kinesisClient, name, shards))
    return name
  })

const newBucket = Effect.gen(function*() {
  const name = uniqueName("sr-bucket")
  yield* Effect.promise(() => createBucket(s3Client, name))
  return name
})

/** What the reader needs: the Kinesis service over the SDK client, and the S3 store. */
const readerLayer = (bucket: string) =>
  Layer.merge(Kinesis.layer(kinesisClient), LargePayloadStore.layerS3({ client: s3Client, bucket }))

/** Writes `records` with a writer of these options; returns the record ids in order. */
const write = (
  streamName: string,
  bucket: string,
  records: ReadonlyArray<DataFileV1>,
  options: Partial<KinesisWriterOptions> = {}
) =>
  Effect.flatMap(KinesisWriter, (w) => w.writeBatch(records)).pipe(
    Effect.map((result) => result.recordIds),
    Effect.provide(
      KinesisWriter.layer({ ...base, streamName, ...options }).pipe(
        Layer.provide(readerLayer(bucket)),
        Layer.provide(KinesisMetrics.layerNoop)
      )
    )
  )

/** A mix: 12 plain records, 3 offloaded to S3 (over 5 000 bytes serialized), 20 in aggregates. */
const writeMix = (streamName: string, bucket: string, seed: number) =>
  Effect.gen(function*() {
    const plain = [
      ...RecordGenerator.makeDataFiles(12, { seed, columns: 4 }),
      ...[1, 2, 3].map((i) => RecordGenerator.makeDataFile({ seed: seed + 100 + i, serializedBytes: 8_000 }))
    ]
    const aggregated = RecordGenerator.makeDataFiles(20, { seed: seed + 200, columns: 4 })
    const plainIds = yield* write(streamName, bucket, plain, { largePayloadThreshold: 5_000 })
    const aggregatedIds = yield* write(streamName, bucket, aggregated, {
      aggregation: { maxRecords: 5 },
      distributionFactor: 2
    })
    const byId = new Map<string, DataFileV1>()
    plainIds.forEach((id, i) => byId.set(id, plain[i]!))
    aggregatedIds.forEach((id, i) => byId.set(id, aggregated[i]!))
    return byId
  })

/** Follows the stream from trim-horizon in a fiber of its own, until `count` records came. */
const followFirst = (streamName: string, bucket: string, count: number) =>
  StreamReader.stream({ streamName, from: "trim-horizon", follow: true, idleDelay: "200 millis" }).pipe(
    Stream.take(count),
    Stream.runCollect,
    Effect.provide(readerLayer(bucket)),
    Effect.fork
  )

const decoded = (records: Iterable<SR.StreamRecord>) =>
  [...records].filter((r): r is Extract<SR.StreamRecord, { _tag: "Decoded" }> => r._tag === "Decoded")

/** Each shard's records in the order the stream gave them are in (sequence number, member) order. */
const assertShardOrder = (records: Iterable<SR.StreamRecord>) => {
  const last = new Map<string, { readonly seq: bigint; readonly member: number }>()
  for (const r of records) {
    const seq = BigInt(r.sequenceNumber)
    const before = last.get(r.shardId)
    if (before !== undefined) {
      assert.isTrue(
        seq > before.seq || (seq === before.seq && r.member > before.member),
        `${r.shardId}: ${r.sequenceNumber}#${r.member} after ${before.seq}#${before.member}`
      )
    }
    last.set(r.shardId, { seq, member: r.member })
  }
}

/** The ids of the decoded records, each once: fails on a repeat. */
const idsOnce = (records: Iterable<SR.StreamRecord>): Set<string> => {
  const ids = new Set<string>()
  for (const r of decoded(records)) {
    assert.isFalse(ids.has(r.record.info.recordId), `record ${r.record.info.recordId} read twice`)
    ids.add(r.record.info.recordId)
  }
  return ids
}

describe("StreamReader against kinesalite and s3rver", () => {
  it.live("reads back a mix (plain, offloaded to S3, aggregated) from trim-horizon and ends at the tip", () =>
    Effect.gen(function*() {
      const [streamName, bucket] = [yield* newStream(3), yield* newBucket]
      const written = yield* writeMix(streamName, bucket, 1)
      const records = yield* StreamReader.stream({ streamName, from: "trim-horizon", follow: false }).pipe(
        Stream.runCollect,
        Effect.provide(readerLayer(bucket))
      )
      assert.deepStrictEqual(Chunk.toArray(records).flatMap((r) => r._tag === "Failed" ? [r.error.message] : []), [])
      assert.deepStrictEqual([...idsOnce(records)].sort(), [...written.keys()].sort())
      for (const r of decoded(records)) {
        assert.isTrue(equals(DataFileV1Schema, r.record.dataFile, written.get(r.record.info.recordId)!))
        assert.isDefined(r.approximateArrivalTimestamp)
      }
      assert.strictEqual(decoded(records).filter((r) => r.record.largePayload !== undefined).length, 3)
      assert.isAbove(decoded(records).filter((r) => r.member > 0).length, 0, "aggregates yield each member")
      assertShardOrder(records)
    }))

  it.live("follows a live stream: records written while it reads come out as they arrive", () =>
    Effect.gen(function*() {
      const [streamName, bucket] = [yield* newStream(2), yield* newBucket]
      const tail = yield* followFirst(streamName, bucket, 30)
      let ids: ReadonlyArray<string> = []
      for (let round = 0; round < 3; round++) {
        ids = ids.concat(yield* write(streamName, bucket, RecordGenerator.makeDataFiles(10, { seed: 10 * round + 1 })))
        yield* Effect.sleep("300 millis")
      }
      const records = yield* Fiber.join(tail)
      assert.deepStrictEqual([...idsOnce(records)].sort(), [...ids].sort())
      assertShardOrder(records)
    }))

  it.live("resumes from positions, inside an aggregate too, with no record lost or repeated", () =>
    Effect.gen(function*() {
      const [streamName, bucket] = [yield* newStream(2), yield* newBucket]
      const written = yield* writeMix(streamName, bucket, 40)
      const read = (from: SR.From) =>
        StreamReader.stream({ streamName, from, follow: false }).pipe(Stream.provideLayer(readerLayer(bucket)))
      // Stop at an element inside an aggregate: a member that is not its record's last.
      const everything = yield* Stream.runCollect(read("trim-horizon"))
      const cut = Chunk.findFirstIndex(everything, (r) => r.position.member !== undefined)
      assert.isTrue(cut._tag === "Some", "some element is inside an aggregate")
      const first = yield* Stream.runCollect(
        Stream.take(read("trim-horizon"), (cut._tag === "Some" ? cut.value : 0) + 1)
      )
      const checkpoint = StreamReader.positions(first)
      const rest = yield* Stream.runCollect(read({ positions: checkpoint }))
      const firstIds = idsOnce(first)
      const restIds = idsOnce(rest)
      for (const id of restIds) assert.isFalse(firstIds.has(id), `${id} read again after the checkpoint`)
      assert.strictEqual(firstIds.size + restIds.size, written.size)
      // Resuming at the end reads nothing more.
      const after = yield* Stream.runCollect(read({ positions: StreamReader.positions(rest, checkpoint) }))
      assert.strictEqual(after.length, 0)
    }))

  it.live("from a timestamp, reads only the records that arrived at or after it", () =>
    Effect.gen(function*() {
      const [streamName, bucket] = [yield* newStream(1), yield* newBucket]
      yield* write(streamName, bucket, RecordGenerator.makeDataFiles(5, { seed: 900 }))
      // Arrival times are kept to the second or finer: a clear second apart.
      yield* Effect.sleep("1100 millis")
      const timestamp = new Date()
      yield* Effect.sleep("1100 millis")
      const later = yield* write(streamName, bucket, RecordGenerator.makeDataFiles(5, { seed: 950 }))
      const records = yield* StreamReader.stream({ streamName, from: { timestamp }, follow: false }).pipe(
        Stream.runCollect,
        Effect.provide(readerLayer(bucket))
      )
      assert.deepStrictEqual([...idsOnce(records)], later)
    }))

  it.live("across a split mid-read: every record once, each shard in order, a parent before its children", () =>
    Effect.gen(function*() {
      const [streamName, bucket] = [yield* newStream(2), yield* newBucket]
      const before = yield* write(streamName, bucket, RecordGenerator.makeDataFiles(40, { seed: 300 }))
      const reading = yield* followFirst(streamName, bucket, 80)
      yield* Effect.promise(() =>
        kinesisClient.send(
          new SplitShardCommand({
            StreamName: streamName,
            ShardToSplit: "shardId-000000000000",
            NewStartingHashKey: (1n << 126n).toString()
          })
        )
      )
      yield* Effect.sleep("200 millis")
      const after = yield* write(streamName, bucket, RecordGenerator.makeDataFiles(40, { seed: 400 }))
      const records = yield* Fiber.join(reading)
      assert.deepStrictEqual([...idsOnce(records)].sort(), [...before, ...after].sort())
      assertShardOrder(records)
      const children = ["shardId-000000000002", "shardId-000000000003"]
      const lastOfParent = Chunk.findLastIndex(records, (r) => r.shardId === "shardId-000000000000")
      const firstOfChild = Chunk.findFirstIndex(records, (r) => children.includes(r.shardId))
      assert.isTrue(lastOfParent._tag === "Some" && firstOfChild._tag === "Some")
      if (lastOfParent._tag === "Some" && firstOfChild._tag === "Some") {
        assert.isBelow(lastOfParent.value, firstOfChild.value, "the parent's records come before its children's")
      }
    }))

  it.live("after a merge, reads both parents to their end before the merged shard", () =>
    Effect.gen(function*() {
      const [streamName, bucket] = [yield* newStream(2), yield* newBucket]
      const before = yield* write(streamName, bucket, RecordGenerator.makeDataFiles(30, { seed: 500 }))
      yield* Effect.promise(() =>
        kinesisClient.send(
          new MergeShardsCommand({
            StreamName: streamName,
            ShardToMerge: "shardId-000000000000",
            AdjacentShardToMerge: "shardId-000000000001"
          })
        )
      )
      yield* Effect.sleep("200 millis")
      const after = yield* write(streamName, bucket, RecordGenerator.makeDataFiles(30, { seed: 600 }))
      const records = yield* StreamReader.stream({ streamName, from: "trim-horizon", follow: false }).pipe(
        Stream.runCollect,
        Effect.provide(readerLayer(bucket))
      )
      assert.deepStrictEqual([...idsOnce(records)].sort(), [...before, ...after].sort())
      const firstOfChild = Chunk.findFirstIndex(records, (r) => r.shardId === "shardId-000000000002")
      assert.isTrue(firstOfChild._tag === "Some")
      if (firstOfChild._tag === "Some") {
        assert.isTrue(Chunk.every(Chunk.take(records, firstOfChild.value), (r) => r.shardId !== "shardId-000000000002"))
        assert.strictEqual(firstOfChild.value, before.length, "every parent record before the merged shard's")
      }
    }))

  it.live("a corrupt record among good ones is a Failed element naming its sequence number; the stream goes on", () =>
    Effect.gen(function*() {
      const [streamName, bucket] = [yield* newStream(1), yield* newBucket]
      const first = yield* write(streamName, bucket, RecordGenerator.makeDataFiles(5, { seed: 700 }))
      const put = yield* Effect.promise(() =>
        kinesisClient.send(
          new PutRecordsCommand({
            StreamName: streamName,
            Records: [{ Data: new TextEncoder().encode("not gzip at all"), PartitionKey: "corrupt" }]
          })
        )
      )
      const second = yield* write(streamName, bucket, RecordGenerator.makeDataFiles(5, { seed: 800 }))
      const records = yield* StreamReader.stream({ streamName, from: "trim-horizon", follow: false }).pipe(
        Stream.runCollect,
        Effect.provide(readerLayer(bucket))
      )
      const failed = Chunk.filter(records, (r) => r._tag === "Failed")
      assert.strictEqual(failed.length, 1)
      const bad = Chunk.unsafeGet(failed, 0)
      assert.strictEqual(bad.sequenceNumber, put.Records?.[0]?.SequenceNumber)
      assert.strictEqual(bad._tag === "Failed" && bad.error._tag === "DecodeError" && bad.error.reason, "Gunzip")
      assert.include(bad._tag === "Failed" ? bad.error.message : "", bad.sequenceNumber)
      assert.deepStrictEqual([...idsOnce(records)], [...first, ...second])
    }))
})
