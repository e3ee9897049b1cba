/**
 * Local AWS-protocol harness for the repository's tests, demo and bench: the servers are the
 * library's own `LocalAws` (cygnus-kinesis-writer/testing: kinesalite and s3rver in-process
 * on loopback; see src/internal/localAws.ts for how kinesalite differs from Kinesis), behind
 * a promise API, plus real AWS SDK v3 clients pointed at them and a reader of whole streams.
 *
 * This is test/demo infrastructure, so it uses plain async functions rather than Effect.
 */
import { GetRecordsCommand, GetShardIteratorCommand, KinesisClient, ListShardsCommand } from "@aws-sdk/client-kinesis"
import type { KinesisClientConfig, Shard } from "@aws-sdk/client-kinesis"
import { S3Client } from "@aws-sdk/client-s3"
import type { S3ClientConfig } from "@aws-sdk/client-s3"
import { NodeHttpHandler } from "@smithy/node-http-handler"
import { Cause, Effect, Exit, Scope } from "effect"

import * as Internal from "../../src/internal/localAws.js"
import { LocalAws as LocalAwsService } from "../../src/LocalAws.js"

export const DEFAULT_REGION = "us-east-1"

/** s3rver accepts only its own key pair; kinesalite accepts it too. */
export const LOCAL_CREDENTIALS: { readonly accessKeyId: string; readonly secretAccessKey: string } =
  Internal.LOCAL_CREDENTIALS

export interface LocalAws {
  readonly kinesisEndpoint: string
  readonly s3Endpoint: string
  readonly region: string
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string }
  /** Closes both servers (and their open sockets) and deletes the s3rver directory. Idempotent. */
  readonly stop: () => Promise<void>
}

export interface LocalAwsOptions {
  /** Defaults to 0 (a free port chosen by the OS). */
  readonly kinesisPort?: number
  /** Defaults to 0 (a free port chosen by the OS). */
  readonly s3Port?: number
}

export const startLocalAws = async (options: LocalAwsOptions = {}): Promise<LocalAws> => {
  const scope = Effect.runSync(Scope.make())
  const started = await Effect.runPromiseExit(LocalAwsService.start(options).pipe(Scope.extend(scope)))
  if (Exit.isFailure(started)) {
    await Effect.runPromise(Scope.close(scope, started))
    throw Cause.squash(started.cause)
  }
  let stopped: Promise<void> | undefined
  return {
    kinesisEndpoint: started.value.kinesisEndpoint,
    s3Endpoint: started.value.s3Endpoint,
    region: started.value.region,
    credentials: started.value.credentials,
    stop: () => (stopped ??= Effect.runPromise(Scope.close(scope, Exit.void)))
  }
}

/**
 * A Kinesis client for kinesalite.
 *
 * - `NodeHttpHandler`: @aws-sdk/client-kinesis defaults to `NodeHttp2Handler`
 *   (for SubscribeToShard); kinesalite only speaks HTTP/1.1 and every call
 *   fails with "Protocol error" otherwise.
 * - `maxAttempts: 1`: the library under test does its own retries, so the SDK
 *   must not hide failures behind its own retry loop.
 * - `overrides` is spread last, so a test can change anything above.
 */
export const makeKinesisClient = (
  endpoint: string,
  region: string = DEFAULT_REGION,
  overrides: KinesisClientConfig = {}
): KinesisClient =>
  new KinesisClient({
    endpoint,
    region,
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: 30_000 }),
    ...overrides
  })

/**
 * An S3 client for s3rver.
 *
 * - `forcePathStyle`: s3rver is addressed by IP, so virtual-host buckets
 *   (`bucket.127.0.0.1`) cannot work.
 * - Flexible checksums are deliberately left at the SDK defaults
 *   (`requestChecksumCalculation` / `responseChecksumValidation` =
 *   "WHEN_SUPPORTED") so tests exercise the production configuration. This
 *   works against s3rver 3.7.1 for PutObject/GetObject with an in-memory body
 *   (Uint8Array / Buffer / string): the SDK sends the CRC32 in an
 *   `x-amz-checksum-crc32` header, which s3rver ignores, and GetObject's
 *   `x-amz-checksum-mode: ENABLED` gets no `x-amz-checksum-*` response header
 *   back, so validation is skipped.
 *   CAVEAT (verified): with a *stream* Body the defaults break against s3rver.
 *   With a known ContentLength the SDK switches to `Content-Encoding:
 *   aws-chunked` + a trailing checksum, which s3rver does not decode: it
 *   silently STORES THE CHUNK FRAMING as the object bytes. With an unknown
 *   length the SDK fails client-side ("x-amz-decoded-content-length").
 *   If code under test uploads streams, pass
 *   `{ requestChecksumCalculation: "WHEN_REQUIRED" }` as `overrides`
 *   (verified to round-trip correctly).
 * - `maxAttempts: 1`: as for Kinesis, retries belong to the library under test.
 * - `overrides` is spread last, so a test can change anything above.
 */
export const makeS3Client = (
  endpoint: string,
  region: string = DEFAULT_REGION,
  overrides: S3ClientConfig = {}
): S3Client =>
  new S3Client({
    endpoint,
    region,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: 30_000 }),
    ...overrides
  })

export interface CreateStreamOptions {
  /** Upper bound on the wait for ACTIVE. Default 10 s. */
  readonly timeoutMs?: number
  /** Delay between DescribeStreamSummary polls. Default 20 ms. */
  readonly pollIntervalMs?: number
}

/** Creates a stream and waits (bounded) until it is ACTIVE. */
export const createStream = (
  client: KinesisClient,
  name: string,
  shardCount: number,
  options: CreateStreamOptions = {}
): Promise<void> =>
  Effect.runPromise(
    Internal.createStream(client, name, shardCount, options.timeoutMs ?? 10_000, options.pollIntervalMs ?? 20)
  )

export const createBucket = (client: S3Client, name: string): Promise<void> =>
  Effect.runPromise(Internal.createBucket(client, name))

export interface StoredRecord {
  readonly shardId: string
  readonly sequenceNumber: string
  readonly partitionKey: string
  readonly data: Uint8Array
}

const listAllShards = async (client: KinesisClient, streamName: string): Promise<ReadonlyArray<Shard>> => {
  const shards: Array<Shard> = []
  let nextToken: string | undefined
  for (let page = 0; page < 1_000; page++) {
    // ListShards rejects StreamName together with NextToken.
    const response = await client.send(
      new ListShardsCommand(nextToken === undefined ? { StreamName: streamName } : { NextToken: nextToken })
    )
    for (const shard of response.Shards ?? []) shards.push(shard)
    nextToken = response.NextToken
    if (nextToken === undefined) return shards
  }
  throw new Error(`ListShards for ${streamName} did not terminate`)
}

export interface ReadAllRecordsOptions {
  /** Safety bound on GetRecords calls per shard. Default 10 000. */
  readonly maxCallsPerShard?: number
}

/**
 * Reads every shard of a stream from TRIM_HORIZON until a GetRecords call
 * returns no records with MillisBehindLatest 0 (or the shard iterator ends).
 * Records are returned shard by shard (ListShards order), each shard in
 * sequence-number order.
 */
export const readAllRecords = async (
  client: KinesisClient,
  streamName: string,
  options: ReadAllRecordsOptions = {}
): Promise<Array<StoredRecord>> => {
  const maxCalls = options.maxCallsPerShard ?? 10_000
  const records: Array<StoredRecord> = []
  for (const shard of await listAllShards(client, streamName)) {
    const shardId = shard.ShardId
    if (shardId === undefined) continue
    const start = await client.send(
      new GetShardIteratorCommand({ StreamName: streamName, ShardId: shardId, ShardIteratorType: "TRIM_HORIZON" })
    )
    let iterator = start.ShardIterator
    let calls = 0
    while (iterator !== undefined) {
      if (++calls > maxCalls) {
        throw new Error(`readAllRecords: shard ${shardId} of ${streamName} not drained after ${maxCalls} calls`)
      }
      const response = await client.send(new GetRecordsCommand({ ShardIterator: iterator }))
      const batch = response.Records ?? []
      for (const record of batch) {
        records.push({
          shardId,
          sequenceNumber: record.SequenceNumber ?? "",
          partitionKey: record.PartitionKey ?? "",
          data: record.Data ?? new Uint8Array()
        })
      }
      if (batch.length === 0 && (response.MillisBehindLatest ?? 0) === 0) break
      iterator = response.NextShardIterator
    }
  }
  return records
}
