/**
 * End to end through the real AWS SDK clients against real servers (kinesalite and s3rver,
 * started once for the run by test/support/globalSetup.ts): the writer composed as the README
 * composes it, records read back shard by shard and decoded with `RecordReader`.
 *
 * These tests run on the live clock (`it.live`): the writer stamps `creation_time` from
 * `Clock` and waits out its backoff on it, and the servers answer in real time.
 */
import type { KinesisClient } from "@aws-sdk/client-kinesis"
import { equals } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { createServer } from "node:net"
import { Registry } from "prom-client"
import type { DataFileV1, KinesisWriterOptions } from "../../src/index.js"
import {
  DataFileV1Schema,
  Kinesis,
  KinesisError,
  KinesisMetrics,
  KinesisWriter,
  LargePayloadStore,
  LargePayloadStoreError,
  RecordReader,
  WriteBatchError
} from "../../src/index.js"
import { distributionBucket } from "../../src/internal/core/partitionKey.js"
import { engineOf } from "../../src/internal/engine.js"
import { RecordGenerator } from "../../src/testing.js"
import type { StoredRecord } from "../support/LocalAws.js"
import { createBucket, createStream, makeKinesisClient, readAllRecords } from "../support/LocalAws.js"
import { atInfoOrAbove, capturingLogs } from "../support/logs.js"
import { localClients, uniqueName } from "../support/names.js"

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

const { kinesis: kinesisClient, region, s3: s3Client } = localClients()

const base = {
  logGroupId: "lg-integration",
  schemaName: "orders",
  accountId: "123456789012"
} as const

/** The writer, composed exactly as the README shows. */
const writerLayer = (options: KinesisWriterOptions, bucket: string, client: KinesisClient = kinesisClient) =>
  KinesisWriter.layer(options).pipe(
    Layer.provide(Kinesis.layer(client)),
    Layer.provide(LargePayloadStore.layerS3({ client: s3Client, bucket })),
    Layer.provide(KinesisMetrics.layerPrometheus(new Registry()))
  )

/** The writer plus the same S3 store for the reader. */
const layers = (options: KinesisWriterOptions, bucket: string, client: KinesisClient = kinesisClient) =>
  Layer.merge(writerLayer(options, bucket, client), LargePayloadStore.layerS3({ client: s3Client, bucket }))

const newStream = (shards = 4) =>
  Effect.gen(function*() {
    const name = uniqueName("it-stream")
    yield* Effect.promise(() => createStream(kinesisClient, name, shards))
    return name
  })

const newBucket = Effect.gen(function*() {
  const name = uniqueName("it-bucket")
  yield* Effect.promise(() => createBucket(s3Client, name))
  return name
})

const readBack = (stream: string): Effect.Effect<Array<StoredRecord>> =>
  Effect.promise(() => readAllRecords(kinesisClient, stream))

const writeBatch = (records: ReadonlyArray<DataFileV1>) => Effect.flatMap(KinesisWriter, (w) => w.writeBatch(records))

/** A port on loopback where nothing listens. */
const freePort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

describe("KinesisWriter against kinesalite and s3rver", () => {
  it.live("2,000 realistic records, 100 of them large, round-trip exactly: none missing, none extra, S3 pointers verified, partition keys spread over shards", () =>
    Effect.gen(function*() {
      const stream = yield* newStream()
      const bucket = yield* newBucket
      const threshold = 8_192
      const distributionFactor = 16
      const options: KinesisWriterOptions = {
        ...base,
        streamName: stream,
        distributionFactor,
        largePayloadThreshold: threshold
      }

      // Every 20th record is large (12,000–20,000 serialized bytes), the others are plain.
      const records = Array.from({ length: 2_000 }, (_, i) =>
        i % 20 === 7
          ? RecordGenerator.makeDataFile({
            columns: 20,
            seed: 10_000 + i,
            serializedBytes: 12_000 + ((i * 97) % 8_001)
          })
          : RecordGenerator.makeDataFile({ columns: 20, seed: 10_000 + i }))
      const expectedLarge = new Set<number>()
      records.forEach((r, i) => {
        if (RecordGenerator.serializedSize(r) > threshold) expectedLarge.add(i)
      })
      assert.strictEqual(expectedLarge.size, 100)

      yield* Effect.gen(function*() {
        const before = Date.now()
        const result = yield* writeBatch(records)
        const after = Date.now()
        assert.strictEqual(result.records, 2_000)
        assert.strictEqual(result.recordIds.length, 2_000)
        assert.strictEqual(new Set(result.recordIds).size, 2_000)
        assert.strictEqual(result.largePayloads, 100)
        assert.strictEqual(result.retries, 0)
        assert.isTrue(result.compressedBytes > 0 && result.compressedBytes < result.uncompressedBytes)

        const stored = yield* readBack(stream)
        assert.strictEqual(stored.length, 2_000, "records on the stream")
        const indexOf = new Map(result.recordIds.map((id, i) => [id, i]))
        const seen = new Set<number>()
        const largeSeen = new Set<number>()
        const keyPattern = new RegExp(`^${base.logGroupId}-${base.schemaName}-${stream}/(.+)$`)

        const decoded = yield* Effect.forEach(
          stored,
          (s) => Effect.map(RecordReader.decodeRecord(s.data), (d) => ({ stored: s, d })),
          {
            concurrency: 16
          }
        )
        for (const { d, stored: s } of decoded) {
          const index = indexOf.get(d.info.recordId)
          assert.isDefined(index, `record ${d.info.recordId} read back but not written`)
          if (index === undefined) continue
          assert.isFalse(seen.has(index), `record #${index} read back twice`)
          seen.add(index)
          const written = records[index]!
          assert.isTrue(equals(DataFileV1Schema, d.dataFile, written), `record #${index} differs from what was written`)
          assert.strictEqual(d.info.accountId, base.accountId)
          assert.strictEqual(d.info.logGroupId, base.logGroupId)
          assert.strictEqual(d.info.schemaName, base.schemaName)
          assert.strictEqual(d.info.filePath, written.filePath)
          const created = Number(d.info.creationTime)
          assert.isTrue(
            created >= before - 1_000 && created <= after + 1_000,
            `creation_time ${created} not within the write (${before}–${after})`
          )
          assert.strictEqual(
            s.partitionKey,
            `${base.logGroupId}-${base.schemaName}-${distributionBucket(written.filePath, distributionFactor)}-0`
          )
          if (d.largePayload !== undefined) {
            largeSeen.add(index)
            assert.strictEqual(d.largePayload.bucket, bucket)
            const match = keyPattern.exec(d.largePayload.key)
            assert.isNotNull(match, `S3 key ${d.largePayload.key}`)
            assert.match(match?.[1] ?? "", UUID)
            assert.strictEqual(Number(d.largePayload.sizeBytes) > threshold, true)
            assert.strictEqual(d.largePayload.sha256.length, 32)
          }
        }
        assert.strictEqual(seen.size, 2_000, "every written record read back")
        assert.strictEqual(largeSeen.size, result.largePayloads)
        assert.deepStrictEqual([...largeSeen].sort((a, b) => a - b), [...expectedLarge].sort((a, b) => a - b))
        assert.isTrue(new Set(stored.map((s) => s.shardId)).size > 1, "records landed on more than one shard")
      }).pipe(Effect.provide(layers(options, bucket)))
    }))

  it.live("a stream that does not exist fails at once: WriteBatchError caused by a non-retryable ResourceNotFoundException, 1 attempt, every record undelivered", () =>
    Effect.gen(function*() {
      const stream = uniqueName("it-missing")
      const bucket = yield* newBucket
      const records = RecordGenerator.makeDataFiles(25, { columns: 5, seed: 300 })
      const { logs, result } = yield* capturingLogs(
        writeBatch(records).pipe(
          Effect.flip,
          Effect.provide(layers({ ...base, streamName: stream, maxRetries: 3, backoffBase: "1 millis" }, bucket))
        )
      )
      const error = yield* result
      assert.deepStrictEqual(atInfoOrAbove(logs), ["WARN batch ended with records not delivered"])
      assert.strictEqual(logs.find((l) => l.level.label === "WARN")!.annotations["undelivered"], 25)
      assert.instanceOf(error, WriteBatchError)
      if (!(error instanceof WriteBatchError)) return
      assert.instanceOf(error.cause, KinesisError)
      assert.strictEqual(error.cause?.errorName, "ResourceNotFoundException")
      assert.strictEqual(error.cause?.retryable, false)
      assert.strictEqual(error.attempts, 1)
      assert.strictEqual(error.delivered, 0)
      assert.deepStrictEqual(error.undelivered.map((u) => u.index), records.map((_, i) => i))
      assert.isTrue(error.undelivered.every((u) => u.errorCode === "ResourceNotFoundException"))
    }))

  it.live("a bucket that does not exist fails the batch with LargePayloadStoreError NoSuchBucket naming the record, and nothing reaches the stream", () =>
    Effect.gen(function*() {
      const stream = yield* newStream()
      const bucket = uniqueName("it-nobucket")
      const records = [
        ...RecordGenerator.makeDataFiles(3, { columns: 5, seed: 400 }),
        RecordGenerator.makeDataFile({ columns: 5, seed: 403, serializedBytes: 20_000 })
      ]
      const error = yield* writeBatch(records).pipe(
        Effect.flip,
        Effect.provide(
          layers({ ...base, streamName: stream, largePayloadThreshold: 8_192, backoffBase: "1 millis" }, bucket)
        )
      )
      assert.instanceOf(error, LargePayloadStoreError)
      if (!(error instanceof LargePayloadStoreError)) return
      assert.strictEqual(error.errorName, "NoSuchBucket")
      assert.strictEqual(error.retryable, false)
      assert.strictEqual(error.operation, "write")
      assert.strictEqual(error.bucket, bucket)
      assert.strictEqual(error.recordIndex, 3)
      assert.strictEqual((yield* readBack(stream)).length, 0)
    }))

  it.live("an endpoint where nothing listens: retryable ECONNREFUSED, retried maxRetries times, then a WriteBatchError after 3 attempts", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const client = makeKinesisClient(`http://127.0.0.1:${port}`, region)
      const bucket = yield* newBucket
      const records = RecordGenerator.makeDataFiles(10, { columns: 5, seed: 500 })
      const { logs, result } = yield* capturingLogs(
        writeBatch(records).pipe(
          Effect.flip,
          Effect.provide(
            layers({ ...base, streamName: "it-unreachable", maxRetries: 2, backoffBase: "1 millis" }, bucket, client)
          ),
          Effect.ensuring(Effect.sync(() => client.destroy()))
        )
      )
      const error = yield* result
      assert.deepStrictEqual(atInfoOrAbove(logs), ["WARN batch ended with records not delivered"])
      assert.strictEqual(logs.find((l) => l.level.label === "WARN")!.annotations["undelivered"], 10)
      assert.instanceOf(error, WriteBatchError)
      if (!(error instanceof WriteBatchError)) return
      assert.instanceOf(error.cause, KinesisError)
      assert.strictEqual(error.cause?.errorName, "ECONNREFUSED")
      assert.strictEqual(error.cause?.retryable, true)
      assert.strictEqual(error.attempts, 3)
      assert.strictEqual(error.delivered, 0)
      assert.strictEqual(error.undelivered.length, 10)
      assert.isTrue(error.undelivered.every((u) => u.errorCode === "ECONNREFUSED"))
    }))

  it.live("readStreamRecordLimit reads DescribeStreamSummary; kinesalite reports no MaxRecordSizeInKiB, so the limit is 1 MiB", () =>
    Effect.gen(function*() {
      const stream = yield* newStream()
      const bucket = yield* newBucket
      const writer = yield* KinesisWriter.pipe(
        Effect.provide(writerLayer({ ...base, streamName: stream, readStreamRecordLimit: true }, bucket))
      )
      assert.strictEqual(engineOf(writer)!.recordLimitBytes, 1_048_576)
    }))

  it.live("an incompressible 1.1 MB record goes to S3 under a 2 MB threshold (the 1 MiB guard) and reads back through S3", () =>
    Effect.gen(function*() {
      const stream = yield* newStream()
      const bucket = yield* newBucket
      const record = RecordGenerator.makeDataFile({ columns: 10, seed: 600, serializedBytes: 1_100_000 })
      yield* Effect.gen(function*() {
        const result = yield* writeBatch([record])
        assert.strictEqual(result.largePayloads, 1)
        const stored = yield* readBack(stream)
        assert.strictEqual(stored.length, 1)
        const decoded = yield* RecordReader.decodeRecord(stored[0]!.data)
        assert.strictEqual(decoded.info.recordId, result.recordIds[0])
        assert.isDefined(decoded.largePayload)
        assert.strictEqual(Number(decoded.largePayload?.sizeBytes ?? 0) > 1_100_000, true)
        assert.isTrue(equals(DataFileV1Schema, decoded.dataFile, record))
      }).pipe(Effect.provide(layers({ ...base, streamName: stream, largePayloadThreshold: 2_000_000 }, bucket)))
    }))

  it.live("records just under 1 MiB: incompressible goes to S3 because gzip + key exceed the limit, compressible stays inline", () =>
    Effect.gen(function*() {
      const stream = yield* newStream()
      const bucket = yield* newBucket
      const size = 1_048_576 - 100
      const incompressible = RecordGenerator.makeDataFile({ columns: 10, seed: 700, serializedBytes: size })
      const compressible = RecordGenerator.makeDataFile({
        columns: 10,
        seed: 701,
        serializedBytes: size,
        compressiblePadding: true
      })
      yield* Effect.gen(function*() {
        const result = yield* writeBatch([incompressible, compressible])
        assert.strictEqual(result.largePayloads, 1)
        const stored = yield* readBack(stream)
        assert.strictEqual(stored.length, 2)
        const decoded = yield* RecordReader.decodeRecords(stored.map((s) => ({ Data: s.data })))
        const byId = new Map(decoded.map((d) => [d.info.recordId, d]))
        const [incompressibleId, compressibleId] = result.recordIds
        const viaS3 = byId.get(incompressibleId!)
        const inline = byId.get(compressibleId!)
        assert.isDefined(viaS3?.largePayload, "the incompressible record went to S3")
        assert.isUndefined(inline?.largePayload, "the compressible record stayed on the stream")
        assert.isTrue(viaS3 !== undefined && equals(DataFileV1Schema, viaS3.dataFile, incompressible))
        assert.isTrue(inline !== undefined && equals(DataFileV1Schema, inline.dataFile, compressible))
      }).pipe(Effect.provide(layers({ ...base, streamName: stream, largePayloadThreshold: 2_000_000 }, bucket)))
    }))
})
