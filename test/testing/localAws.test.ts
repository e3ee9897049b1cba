import { Readable } from "node:stream"

import { DescribeStreamSummaryCommand, PutRecordsCommand } from "@aws-sdk/client-kinesis"
import type { KinesisClient } from "@aws-sdk/client-kinesis"
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3"
import type { S3Client } from "@aws-sdk/client-s3"
import { afterAll, assert, describe, inject, it } from "@effect/vitest"
import { Effect } from "effect"

import { createBucket, createStream, makeKinesisClient, makeS3Client, readAllRecords } from "../support/LocalAws.js"

let nameCounter = 0
/** Unique, lowercase, 3-63 chars: valid for both Kinesis streams and S3 buckets. */
const uniqueName = (prefix: string): string =>
  `${prefix}-${Date.now().toString(36)}-${(nameCounter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`

const bytesOf = (seed: number, length: number): Uint8Array => {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = (seed * 31 + i * 7) & 0xff
  return out
}

/** Runs an SDK call and returns its failure (fails the test if the call succeeds). */
const failureOf = <A>(
  thunk: () => Promise<A>
): Effect.Effect<{ readonly name?: unknown; readonly $metadata?: { readonly httpStatusCode?: number } }> =>
  Effect.tryPromise({ try: thunk, catch: (error) => error as { readonly name?: unknown } }).pipe(
    Effect.flip,
    Effect.orDieWith(() => new Error("expected the SDK call to fail, but it succeeded"))
  )

/** `inject` returns undefined when the globalSetup is not configured: fail with a useful message. */
const injected = (key: "kinesisEndpoint" | "s3Endpoint" | "region"): string => {
  const value = inject(key) as string | undefined
  if (value === undefined) {
    throw new Error(
      `inject("${key}") is undefined: add globalSetup: ["test/support/globalSetup.ts"] to vitest.config.ts`
    )
  }
  return value
}

describe("LocalAws harness", () => {
  const region = injected("region")
  const s3Endpoint = injected("s3Endpoint")
  const kinesis: KinesisClient = makeKinesisClient(injected("kinesisEndpoint"), region)
  const s3: S3Client = makeS3Client(s3Endpoint, region)

  afterAll(() => {
    kinesis.destroy()
    s3.destroy()
  })

  describe("Kinesis (kinesalite)", () => {
    it.effect("creates a 4-shard stream that is ACTIVE", () =>
      Effect.gen(function*() {
        const stream = uniqueName("stream")
        yield* Effect.promise(() => createStream(kinesis, stream, 4))
        const summary = yield* Effect.promise(() =>
          kinesis.send(new DescribeStreamSummaryCommand({ StreamName: stream }))
        )
        assert.strictEqual(summary.StreamDescriptionSummary?.StreamStatus, "ACTIVE")
        assert.strictEqual(summary.StreamDescriptionSummary?.OpenShardCount, 4)
      }))

    it.effect("PutRecords then readAllRecords returns every record byte-for-byte across shards", () =>
      Effect.gen(function*() {
        const stream = uniqueName("stream")
        yield* Effect.promise(() => createStream(kinesis, stream, 4))

        const sent = Array.from({ length: 20 }, (_, i) => ({
          PartitionKey: `partition-key-${i}-${"x".repeat(i)}`,
          Data: bytesOf(i, 1 + i * 13)
        }))
        const put = yield* Effect.promise(() =>
          kinesis.send(new PutRecordsCommand({ StreamName: stream, Records: sent }))
        )
        assert.strictEqual(put.FailedRecordCount ?? 0, 0)
        assert.strictEqual(put.Records?.length, 20)

        const read = yield* Effect.promise(() => readAllRecords(kinesis, stream))
        assert.strictEqual(read.length, 20)

        const byKey = new Map(read.map((r) => [r.partitionKey, r]))
        assert.strictEqual(byKey.size, 20)
        sent.forEach((record, i) => {
          const got = byKey.get(record.PartitionKey)
          assert.isDefined(got)
          assert.deepStrictEqual(got?.data, record.Data)
          // The sequence number / shard reported by PutRecords is where the record was stored.
          assert.strictEqual(got?.sequenceNumber, put.Records?.[i]?.SequenceNumber)
          assert.strictEqual(got?.shardId, put.Records?.[i]?.ShardId)
        })
        assert.isAbove(new Set(read.map((r) => r.shardId)).size, 1)
      }))

    it.effect("PutRecords to a missing stream fails with ResourceNotFoundException", () =>
      Effect.gen(function*() {
        const error = yield* failureOf(() =>
          kinesis.send(
            new PutRecordsCommand({
              StreamName: uniqueName("missing"),
              Records: [{ PartitionKey: "k", Data: new Uint8Array([1, 2, 3]) }]
            })
          )
        )
        assert.strictEqual(error.name, "ResourceNotFoundException")
      }))
  })

  describe("S3 (s3rver)", () => {
    it.effect("PutObject (application/x-protobuf) then GetObject returns identical bytes", () =>
      Effect.gen(function*() {
        const bucket = uniqueName("bucket")
        yield* Effect.promise(() => createBucket(s3, bucket))
        const key = "manifests/2024/01/01/object.pb.gz"
        const body = bytesOf(7, 256 * 1024 + 3)

        yield* Effect.promise(() =>
          s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: "application/x-protobuf" }))
        )
        const got = yield* Effect.promise(() => s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })))
        assert.strictEqual(got.ContentType, "application/x-protobuf")
        assert.isDefined(got.Body)
        const bytes = yield* Effect.promise(() => got.Body!.transformToByteArray())
        assert.deepStrictEqual(bytes, body)
      }))

    it.effect("a stream Body round-trips with the requestChecksumCalculation WHEN_REQUIRED override", () =>
      Effect.gen(function*() {
        // With the SDK default ("WHEN_SUPPORTED") a stream Body is sent aws-chunked,
        // which s3rver stores verbatim (framing included); see makeS3Client.
        const client = makeS3Client(s3Endpoint, region, { requestChecksumCalculation: "WHEN_REQUIRED" })
        yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
        const bucket = uniqueName("bucket")
        yield* Effect.promise(() => createBucket(client, bucket))
        const parts = [bytesOf(1, 1000), bytesOf(2, 2000)]
        yield* Effect.promise(() =>
          client.send(
            new PutObjectCommand({ Bucket: bucket, Key: "k", ContentLength: 3000, Body: Readable.from(parts) })
          )
        )
        const got = yield* Effect.promise(() => client.send(new GetObjectCommand({ Bucket: bucket, Key: "k" })))
        const bytes = yield* Effect.promise(() => got.Body!.transformToByteArray())
        assert.deepStrictEqual(bytes, new Uint8Array(Buffer.concat(parts)))
      }).pipe(Effect.scoped))

    it.effect("GetObject of a missing key fails with NoSuchKey", () =>
      Effect.gen(function*() {
        const bucket = uniqueName("bucket")
        yield* Effect.promise(() => createBucket(s3, bucket))
        const error = yield* failureOf(() => s3.send(new GetObjectCommand({ Bucket: bucket, Key: "does/not/exist" })))
        assert.strictEqual(error.name, "NoSuchKey")
        assert.strictEqual(error.$metadata?.httpStatusCode, 404)
      }))

    it.effect("PutObject to a missing bucket fails with NoSuchBucket", () =>
      Effect.gen(function*() {
        const error = yield* failureOf(() =>
          s3.send(new PutObjectCommand({ Bucket: uniqueName("missing"), Key: "k", Body: new Uint8Array([1]) }))
        )
        assert.strictEqual(error.name, "NoSuchBucket")
        assert.strictEqual(error.$metadata?.httpStatusCode, 404)
      }))
  })
})
