/**
 * Local AWS-protocol harness: starts REAL in-process emulators on loopback
 * ports and builds real AWS SDK v3 clients pointed at them.
 *
 * - Kinesis: `kinesalite` with its in-memory store (no `path`, so the native
 *   `leveldown` module is never loaded).
 * - S3: `s3rver` backed by a fresh `fs.mkdtemp` directory that is removed on
 *   `stop()`.
 *
 * This is test/demo infrastructure, so it uses plain async functions rather
 * than Effect.
 *
 * kinesalite 3.3.3 differences from real Kinesis worth knowing (verified):
 * - Per-record limit is on `Data` alone (<= 1 048 576 bytes); the partition key
 *   is NOT counted (AWS counts key + data against 1 MiB).
 * - No 5 MiB per-PutRecords aggregate check. The only cap is a 7 MiB HTTP body
 *   limit (base64 JSON), so ~5.2 MiB of raw data is accepted and ~5.5 MiB gets
 *   a bare HTTP 413 that the SDK surfaces as an error named "Unknown".
 * - 500-records-per-call and per-record limits return ValidationException.
 * - DescribeStreamSummary has no MaxRecordSizeInKiB and no StreamModeDetails.
 * - ListShards never paginates (and rejects a NextToken-only call).
 * - MillisBehindLatest is always 0 for open shards.
 * - Default shardLimit is 10 open shards for the whole server (raised here).
 */
import { mkdtemp, rm } from "node:fs/promises"
import type { Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"

import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand
} from "@aws-sdk/client-kinesis"
import type { KinesisClientConfig, Shard } from "@aws-sdk/client-kinesis"
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3"
import type { S3ClientConfig } from "@aws-sdk/client-s3"
import { NodeHttpHandler } from "@smithy/node-http-handler"
import kinesalite from "kinesalite"
import S3rver from "s3rver"

export const DEFAULT_REGION = "us-east-1"

/**
 * s3rver only accepts its hard-coded dummy key pair (S3RVER / S3RVER) when it
 * verifies signatures; kinesalite only checks that a SigV4 header is present,
 * so the same pair works for both.
 */
export const LOCAL_CREDENTIALS: { readonly accessKeyId: string; readonly secretAccessKey: string } = {
  accessKeyId: "S3RVER",
  secretAccessKey: "S3RVER"
}

const LOOPBACK = "127.0.0.1"

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

const listen = (server: Server, port: number, host: string): Promise<AddressInfo> =>
  new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error)
    server.once("error", onError)
    server.listen(port, host, () => {
      server.off("error", onError)
      resolve(server.address() as AddressInfo)
    })
  })

/** kinesalite patches `server.close(cb)` to close its store first, then the HTTP server. */
const closeKinesalite = (server: Server): Promise<void> =>
  new Promise((resolve, reject) => {
    // The SDK's NodeHttpHandler keeps sockets alive; drop them so close() is immediate.
    server.closeAllConnections()
    server.close((error) => (error ? reject(error) : resolve()))
  })

export const startLocalAws = async (options: LocalAwsOptions = {}): Promise<LocalAws> => {
  const kinesisServer = kinesalite({
    // Streams become ACTIVE/deleted/updated on the next timer tick.
    createStreamMs: 0,
    deleteStreamMs: 0,
    updateStreamMs: 0,
    // The default (10 open shards across ALL streams) is far too low for a
    // test run that creates a fresh multi-shard stream per test.
    shardLimit: 10_000
  })
  let kinesisAddress: AddressInfo
  try {
    kinesisAddress = await listen(kinesisServer, options.kinesisPort ?? 0, LOOPBACK)
  } catch (error) {
    kinesisServer.close(() => {})
    throw error
  }

  let directory: string | undefined
  let s3: S3rver | undefined
  let s3Address: AddressInfo
  try {
    directory = await mkdtemp(join(tmpdir(), "local-aws-s3rver-"))
    s3 = new S3rver({
      address: LOOPBACK,
      port: options.s3Port ?? 0,
      directory,
      silent: true,
      configureBuckets: []
    })
    s3Address = await s3.run()
  } catch (error) {
    await closeKinesalite(kinesisServer).catch(() => {})
    if (s3?.httpServer !== undefined) await s3.close().catch(() => {})
    if (directory !== undefined) await rm(directory, { recursive: true, force: true })
    throw error
  }

  const s3Server = s3
  const s3Directory = directory
  let stopped: Promise<void> | undefined

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      s3Server.httpServer?.closeAllConnections()
      const results = await Promise.allSettled([closeKinesalite(kinesisServer), s3Server.close()])
      await rm(s3Directory, { recursive: true, force: true })
      const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected")
      if (failure !== undefined) throw failure.reason
    })()
    return stopped
  }

  return {
    kinesisEndpoint: `http://${LOOPBACK}:${kinesisAddress.port}`,
    s3Endpoint: `http://${LOOPBACK}:${s3Address.port}`,
    region: DEFAULT_REGION,
    credentials: LOCAL_CREDENTIALS,
    stop
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
export const createStream = async (
  client: KinesisClient,
  name: string,
  shardCount: number,
  options: CreateStreamOptions = {}
): Promise<void> => {
  const timeoutMs = options.timeoutMs ?? 10_000
  const pollIntervalMs = options.pollIntervalMs ?? 20
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shardCount }))
  const deadline = Date.now() + timeoutMs
  let status: string | undefined
  for (;;) {
    const summary = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }))
    status = summary.StreamDescriptionSummary?.StreamStatus
    if (status === "ACTIVE") return
    if (Date.now() >= deadline) {
      throw new Error(`Stream ${name} not ACTIVE after ${timeoutMs} ms (last status: ${String(status)})`)
    }
    await sleep(pollIntervalMs)
  }
}

export const createBucket = async (client: S3Client, name: string): Promise<void> => {
  await client.send(new CreateBucketCommand({ Bucket: name }))
}

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
