/**
 * The writer's delivery invariants under injected faults, end to end through the REAL AWS
 * SDK: `KinesisWriter` over a Kinesis client and an S3 client that both go through a
 * fault-injecting proxy (test/support/FaultProxy.ts) in front of the real kinesalite and
 * s3rver. Every fault type is dealt on both proxies: resets, responses cut after the
 * server applied the request, delays past the client's request timeout (forwarded or not),
 * 500s, 503s and throttling.
 *
 * After the batches, every shard is read back DIRECTLY from kinesalite (not through the
 * proxy) and every record decoded with `RecordReader` over a direct S3 client, and for each
 * seed:
 *
 * 1. every input record is on the stream, or named by the batch's error: in
 *    `WriteBatchError.undelivered`, or the batch failed in preparation (a
 *    `LargePayloadStoreError`: an S3 upload that kept failing) and then NOTHING of that
 *    batch is on the stream;
 * 2. nothing on the stream is unknown, and every record decodes to exactly the input;
 * 3. a record on the stream more than once (an ambiguous fault made the writer send it
 *    again) carries the same `record_id` each time, and duplicates only happen when the
 *    proxy dealt an ambiguous fault;
 * 4. an undelivered record that landed anyway (its call timed out after Kinesis applied it)
 *    carries the `record_id` the error names;
 * 5. every delivered large entry's S3 object exists and matches the pointer's size and
 *    sha256 (the reader verifies), under `{logGroupId}-{schemaName}-{stream}/{record_id}`;
 * 6. every failure the writer reports is one it classified as retryable, and it gave up
 *    only after `maxRetries` retries.
 *
 * On a violation the seed and the proxies' statistics are printed. The fault sequence a
 * proxy deals is fixed by its seed; which request gets which fault also depends on the
 * order concurrent requests arrive in.
 */
import { ListObjectsV2Command } from "@aws-sdk/client-s3"
import { equals } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import { NodeHttpHandler } from "@smithy/node-http-handler"
import { Effect, Either, Exit, Fiber, Layer, Logger, LogLevel, Scope } from "effect"
import type {
  DataFileV1,
  KinesisWriterOptions,
  RecordReceipt,
  SendError,
  WriteError,
  WriteResult
} from "../../src/index.js"
import {
  DataFileV1Schema,
  Kinesis,
  KinesisError,
  KinesisMetrics,
  KinesisProducer,
  KinesisWriter,
  LargePayloadStore,
  LargePayloadStoreError,
  RecordReader,
  WriteBatchError
} from "../../src/index.js"
import { distributionBucket } from "../../src/internal/core/partitionKey.js"
import { RecordGenerator, ShardSimulator } from "../../src/testing.js"
import type { FaultKind, FaultProxy, FaultRates } from "../support/FaultProxy.js"
import { startFaultProxy } from "../support/FaultProxy.js"
import { createBucket, createStream, makeKinesisClient, makeS3Client, readAllRecords } from "../support/LocalAws.js"
import { localClients, uniqueName } from "../support/names.js"
import { streamRecordLimit } from "../support/writerLayers.js"

/** Direct clients, for set-up and for reading back: never through a proxy. */
const { kinesis: directKinesis, kinesisEndpoint, region, s3: directS3, s3Endpoint } = localClients()

const RECORDS = 300
const BATCH = 50
const LARGE_RATE = 0.05
const THRESHOLD = 8_192
const DISTRIBUTION = 8
/** The SDK's request timeout; a proxy `delay` holds longer. */
const REQUEST_TIMEOUT = 400
const DELAY = 700

/** ~15% of requests faulted, every kind. */
const MODERATE: FaultRates = {
  reset: 0.03,
  cutResponse: 0.03,
  delay: 0.02,
  status500: 0.02,
  status503: 0.02,
  throttle: 0.03
}
/** ~40%: with few retries, some records stay undelivered and some uploads fail for good. */
const HEAVY: FaultRates = {
  reset: 0.08,
  cutResponse: 0.08,
  delay: 0.04,
  status500: 0.06,
  status503: 0.06,
  throttle: 0.08
}
/** Only answers that were applied but lost, and refusals: what tells "maybe delivered" from "certainly not". */
const AMBIGUOUS: FaultRates = { cutResponse: 0.25, delay: 0.05, throttle: 0.3 }

interface Scenario {
  readonly seed: number
  readonly faults: FaultRates
  readonly maxRetries: number
  /** The writer's `aggregation` on, with aggregates of 8 KiB (their gzip'd bound must fit the 16 KiB records). */
  readonly aggregation?: boolean | undefined
}

const SCENARIOS: ReadonlyArray<Scenario> = [
  { seed: 1_001, faults: MODERATE, maxRetries: 6 },
  { seed: 2_002, faults: MODERATE, maxRetries: 6 },
  { seed: 3_003, faults: MODERATE, maxRetries: 6, aggregation: true },
  { seed: 5_005, faults: HEAVY, maxRetries: 2 },
  { seed: 6_006, faults: HEAVY, maxRetries: 2 },
  { seed: 7_007, faults: AMBIGUOUS, maxRetries: 2 },
  { seed: 8_008, faults: AMBIGUOUS, maxRetries: 2 }
]

/** The producer's runs: each door under the same faults, one with the writer's aggregation on. */
const PRODUCER_SCENARIOS: ReadonlyArray<Scenario> = [
  { seed: 4_004, faults: MODERATE, maxRetries: 6 },
  { seed: 9_009, faults: HEAVY, maxRetries: 2 },
  { seed: 10_010, faults: AMBIGUOUS, maxRetries: 2, aggregation: true }
]

const scenarioName = ({ aggregation, faults, maxRetries, seed }: Scenario) =>
  `seed ${seed}: ${RECORDS} records, faults ${
    Object.values(faults).reduce((a, b) => a + (b ?? 0), 0).toFixed(2)
  }, maxRetries ${maxRetries}, aggregation ${aggregation === true ? "on" : "off"}`

/** Failures the injected faults can cause: all transient. */
const TRANSIENT = new Set([
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "TimeoutError",
  "InternalFailure",
  "InternalError",
  "ServiceUnavailableException",
  "ServiceUnavailable",
  "SlowDown",
  "ProvisionedThroughputExceededException",
  "LimitExceededException"
])

const base = { logGroupId: "lg-faults", schemaName: "inv", accountId: "123456789012" } as const

/** `RECORDS` records, ~5% of them large, with file paths unique within the seed. */
const makeRecords = (seed: number): Array<DataFileV1> => {
  const rand = RecordGenerator.prng(seed)
  return Array.from({ length: RECORDS }, (_, i) =>
    rand() < LARGE_RATE
      ? RecordGenerator.makeDataFile({
        columns: 12,
        seed: seed * 1_000 + i,
        serializedBytes: 10_000 + Math.floor(rand() * 10_000)
      })
      : RecordGenerator.makeDataFile({ columns: 12, seed: seed * 1_000 + i }))
}

const resource = <A>(acquire: () => Promise<A>, release: (a: A) => Promise<void> | void) =>
  Effect.acquireRelease(Effect.promise(acquire), (a) => Effect.promise(async () => release(a)))

const handler = () =>
  new NodeHttpHandler({ connectionTimeout: 1_000, requestTimeout: REQUEST_TIMEOUT, throwOnRequestTimeout: true })

const proxySummary = (name: string, proxy: FaultProxy): string => {
  const s = proxy.stats()
  const dealt = Object.entries(s.dealt).filter(([, n]) => n > 0).map(([k, n]) => `${k}=${n}`).join(" ")
  return `${name}: ${s.requests} requests (${dealt}), ${s.delaysForwarded} delays forwarded, ${s.ambiguous.length} ambiguous, ${s.upstreamErrors} upstream errors`
}

const describeOutcome = (outcome: Either.Either<WriteResult, WriteError>): string =>
  Either.match(outcome, {
    onRight: (r) => `ok (${r.kinesisCalls} calls, ${r.retries} retries, ${r.largePayloads} large)`,
    onLeft: (e) =>
      e instanceof WriteBatchError
        ? `WriteBatchError (${e.undelivered.length} undelivered: ${
          [...new Set(e.undelivered.map((u) => u.errorCode))].join(",")
        }; ${e.delivered} delivered; ${e.attempts} attempts)`
        : `${e._tag}${e instanceof LargePayloadStoreError ? ` ${e.errorName} record #${e.recordIndex}` : ""}`
  })

type ProxyOptions = Omit<Parameters<typeof startFaultProxy>[0], "target" | "flavour" | "delayMs">

/**
 * A stream of `shards` shards and a bucket, fault proxies in front of kinesalite and s3rver,
 * and SDK clients that go through them; all closed with the scope.
 */
const proxiedAws = (name: string, shards: number, kinesis: ProxyOptions, s3: ProxyOptions) =>
  Effect.gen(function*() {
    const stream = uniqueName(name)
    const bucket = uniqueName(name)
    yield* Effect.promise(() => createStream(directKinesis, stream, shards))
    yield* Effect.promise(() => createBucket(directS3, bucket))
    const kinesisProxy = yield* resource(
      () => startFaultProxy({ target: kinesisEndpoint, delayMs: DELAY, ...kinesis }),
      (p) => p.stop()
    )
    const s3Proxy = yield* resource(
      () => startFaultProxy({ target: s3Endpoint, flavour: "s3", delayMs: DELAY, ...s3 }),
      (p) => p.stop()
    )
    const kinesisClient = yield* resource(
      async () => makeKinesisClient(kinesisProxy.endpoint, region, { requestHandler: handler() }),
      (c) => c.destroy()
    )
    const s3Client = yield* resource(
      async () => makeS3Client(s3Proxy.endpoint, region, { requestHandler: handler() }),
      (c) => c.destroy()
    )
    return { stream, bucket, kinesisProxy, s3Proxy, kinesisClient, s3Client }
  })

/**
 * A 4-shard stream and a bucket, fault proxies in front of kinesalite and s3rver dealing the
 * scenario's faults, and a writer layer whose clients go through them.
 */
const proxiedWriter = ({ aggregation, faults, maxRetries, seed }: Scenario) =>
  Effect.gen(function*() {
    const { bucket, kinesisClient, kinesisProxy, s3Client, s3Proxy, stream } = yield* proxiedAws(
      "inv-stream",
      4,
      { seed, faults, applyTo: (r) => r.operation === "PutRecords" },
      // Uploads, and the deletes of orphaned objects (best effort: a failed delete only leaves the object).
      { seed: seed + 1, faults, applyTo: (r) => r.method === "PUT" || r.method === "DELETE" }
    )
    const options: KinesisWriterOptions = {
      ...base,
      streamName: stream,
      distributionFactor: DISTRIBUTION,
      largePayloadThreshold: THRESHOLD,
      maxRetries,
      backoffBase: "5 millis",
      backoffCap: "200 millis",
      // Small calls, so a batch takes several PutRecords calls per attempt, on a stream
      // whose records are said to be at most that (a smaller maxRequestBytes is refused).
      maxRequestBytes: 16_384,
      readStreamRecordLimit: true,
      maxConcurrentCalls: 4,
      maxConcurrentUploads: 4,
      ...(aggregation === true ? { aggregation: { maxBytes: 8 * 1024 } } : {})
    }
    const writer = KinesisWriter.layer(options).pipe(
      Layer.provide(streamRecordLimit(16).pipe(Layer.provide(Kinesis.layer(kinesisClient)))),
      Layer.provide(LargePayloadStore.layerS3({ client: s3Client, bucket })),
      Layer.provide(KinesisMetrics.layerNoop)
    )
    return { stream, bucket, kinesisProxy, s3Proxy, writer }
  })

/**
 * Every shard read back directly from kinesalite, and every logical record of each (the
 * members of an aggregate in its place) decoded with its large payload from s3rver; and the
 * keys the bucket holds.
 */
const readBack = (stream: string, bucket: string) =>
  Effect.gen(function*() {
    const stored = yield* Effect.promise(() => readAllRecords(directKinesis, stream))
    // The read-back retries a transient S3 fault of its own (a reused keep-alive socket reset
    // under load): the invariants are about what the writer left, not about this read.
    const decoded = yield* Effect.forEach(stored, (s) =>
      Effect.either(
        RecordReader.decodeRecordAll(s.data).pipe(
          Effect.retry({ times: 3, while: (e) => e._tag === "LargePayloadStoreError" && e.retryable })
        )
      ), {
      concurrency: 8
    }).pipe(
      Effect.provide(LargePayloadStore.layerS3({ client: directS3, bucket }))
    )
    const listed = yield* Effect.promise(() => directS3.send(new ListObjectsV2Command({ Bucket: bucket })))
    return { stored, decoded, objectKeys: (listed.Contents ?? []).map((o) => o.Key ?? "") }
  })

/** Where a large entry's object must be: `{logGroupId}-{schemaName}-{stream}/{record_id}` in the bucket. */
const expectedKey = (stream: string, recordId: string) => `${base.logGroupId}-${base.schemaName}-${stream}/${recordId}`

/**
 * Every object in the bucket is pointed to by a record on the stream or named by an error
 * (kept for a record that may be on the stream, or left behind by a delete that failed); an
 * object said deleted is not there.
 */
const objectsUnaccounted = (
  objectKeys: ReadonlyArray<string>,
  deleted: ReadonlyArray<{ readonly index: number; readonly key: string }>,
  pointedTo: ReadonlySet<string>,
  named: ReadonlySet<string>
): Array<string> => {
  const present = new Set(objectKeys)
  return [
    ...deleted.flatMap(({ index, key }) =>
      present.has(key) ? [`record #${index}: its S3 object ${key} is reported deleted but exists`] : []
    ),
    ...objectKeys.flatMap((key) =>
      pointedTo.has(key) || named.has(key)
        ? []
        : [`the S3 object ${key} is pointed to by no record on the stream and named by no error`]
    )
  ]
}

/** Prints a seed's violations, with what reproduces it, and fails on them. */
const assertNoViolations = (seed: number, summary: string, violations: ReadonlyArray<string>) => {
  if (violations.length > 0) {
    console.error(
      `INVARIANT VIOLATION — reproduce with seed ${seed}\n${summary}\n${
        violations.slice(0, 30).map((m) => `  ✗ ${m}`).join("\n")
      }${violations.length > 30 ? `\n  … and ${violations.length - 30} more` : ""}`
    )
  } else if (process.env["FAULT_PROXY_VERBOSE"]) {
    console.info(summary)
  }
  assert.deepStrictEqual(violations, [], `seed ${seed}: ${violations.length} invariant violation(s)`)
}

describe("writer invariants under injected faults (real SDK → fault proxy → kinesalite / s3rver)", () => {
  for (const scenario of SCENARIOS) {
    const { maxRetries, seed } = scenario
    it.scopedLive(`${scenarioName(scenario)}, in batches of ${BATCH}`, () =>
      Effect.gen(function*() {
        const { bucket, kinesisProxy, s3Proxy, stream, writer } = yield* proxiedWriter(scenario)
        const records = makeRecords(seed)
        const isLarge = records.map((r) => RecordGenerator.serializedSize(r) > THRESHOLD)
        const byPath = new Map(records.map((r, i) => [r.filePath, i]))
        assert.strictEqual(byPath.size, RECORDS, "file paths are unique within the seed")
        assert.isTrue(isLarge.some((l) => l), "some records are large")
        const batches = Array.from({ length: RECORDS / BATCH }, (_, b) => records.slice(b * BATCH, (b + 1) * BATCH))

        const outcomes = yield* Effect.forEach(
          batches,
          (batch) => Effect.flatMap(KinesisWriter, (w) => w.writeBatch(batch)).pipe(Effect.either)
        ).pipe(
          Effect.provide(writer),
          Logger.withMinimumLogLevel(LogLevel.Error)
        )

        // Read back directly: every shard from kinesalite, large payloads from s3rver.
        const { decoded, objectKeys, stored } = yield* readBack(stream, bucket)

        const violations: Array<string> = []
        const v = (message: string) => violations.push(message)
        /** Per input index: the record_ids seen on the stream. */
        const seen = new Map<number, Array<string>>()
        let largeDelivered = 0
        /** Objects a record on the stream points at. */
        const pointedTo = new Set<string>()
        let aggregates = 0
        const checkMember = (s: (typeof stored)[number], member: RecordReader.DecodedRecord, aggregated: boolean) => {
          const { dataFile, info, largePayload } = member
          const index = byPath.get(info.filePath)
          if (index === undefined) {
            return v(`stored record ${s.shardId}/${s.sequenceNumber} has an unknown file_path ${info.filePath}`)
          }
          const input = records[index]!
          if (!equals(DataFileV1Schema, dataFile, input)) v(`record #${index} on the stream differs from the input`)
          if (
            info.accountId !== base.accountId || info.logGroupId !== base.logGroupId ||
            info.schemaName !== base.schemaName
          ) {
            v(`record #${index} carries the wrong info`)
          }
          const keyPrefix = `${base.logGroupId}-${base.schemaName}-${distributionBucket(input.filePath, DISTRIBUTION)}-`
          const attempt = Number(s.partitionKey.slice(s.partitionKey.lastIndexOf("-") + 1))
          // Its own key; or, in an aggregate by shard (under its first member's key), a key
          // whose first attempt goes to the shard the aggregate is on, as its own does.
          const keyFits = s.partitionKey.startsWith(keyPrefix) ||
            (aggregated && ShardSimulator.shardId(ShardSimulator.shardIndexOf(`${keyPrefix}0`, 4)) === s.shardId)
          if (!keyFits || !Number.isInteger(attempt) || attempt < 0 || attempt > maxRetries) {
            v(`record #${index} has partition key ${s.partitionKey}`)
          }
          if (isLarge[index] !== (largePayload !== undefined)) {
            v(`record #${index}: large ${isLarge[index]}, pointer on the stream ${largePayload !== undefined}`)
          }
          if (largePayload !== undefined) {
            largeDelivered++
            pointedTo.add(largePayload.key)
            // The reader fetched it and checked size and sha256; check where it is.
            const key = expectedKey(stream, info.recordId)
            if (largePayload.bucket !== bucket || largePayload.key !== key) {
              v(`record #${index}: pointer s3://${largePayload.bucket}/${largePayload.key}, expected s3://${bucket}/${key}`)
            }
          }
          seen.set(index, [...(seen.get(index) ?? []), info.recordId])
        }
        decoded.forEach((d, k) => {
          const s = stored[k]!
          if (Either.isLeft(d)) {
            return v(`stored record ${s.shardId}/${s.sequenceNumber} does not decode: ${d.left.message}`)
          }
          if (d.right.length > 1) aggregates++
          for (const member of d.right) checkMember(s, member, d.right.length > 1)
        })
        if ((scenario.aggregation === true) !== aggregates > 0) {
          v(`aggregation ${scenario.aggregation === true ? "on" : "off"}, ${aggregates} aggregates on the stream`)
        }

        const deletedObjects: Array<{ readonly index: number; readonly key: string }> = []
        /** Objects an error names as kept or left behind. */
        const named = new Set<string>()
        let duplicates = 0
        let landedUndelivered = 0
        let undeliveredTotal = 0
        let prepareFailures = 0
        outcomes.forEach((outcome, b) => {
          const offset = b * BATCH
          const ids = (j: number) => seen.get(offset + j) ?? []
          for (let j = 0; j < BATCH; j++) {
            const got = ids(j)
            if (got.length > 1) duplicates += got.length - 1
            if (new Set(got).size > 1) {
              v(`record #${offset + j} is on the stream under ${new Set(got).size} different record_ids: ${
                got.join(", ")
              }`)
            }
          }
          if (Either.isRight(outcome)) {
            const result = outcome.right
            if (result.records !== BATCH) v(`batch ${b}: WriteResult.records ${result.records}`)
            if (new Set(result.recordIds).size !== BATCH) v(`batch ${b}: record ids are not unique`)
            if (result.retries > maxRetries) v(`batch ${b}: ${result.retries} retries > maxRetries ${maxRetries}`)
            const large = isLarge.slice(offset, offset + BATCH).filter((l) => l).length
            if (result.largePayloads !== large) {
              v(`batch ${b}: largePayloads ${result.largePayloads}, expected ${large}`)
            }
            for (let j = 0; j < BATCH; j++) {
              const got = ids(j)
              if (got.length === 0) v(`batch ${b}: record #${offset + j} reported delivered but is not on the stream`)
              else if (got[0] !== result.recordIds[j]) {
                v(`batch ${b}: record #${offset + j} on the stream as ${got[0]}, WriteResult says ${
                  result.recordIds[j]
                }`)
              }
            }
            return
          }
          const error = outcome.left
          if (error instanceof WriteBatchError) {
            const undelivered = new Map(error.undelivered.map((u) => [u.index, u]))
            undeliveredTotal += undelivered.size
            if (undelivered.size !== error.undelivered.length) v(`batch ${b}: an index is undelivered twice`)
            if (error.delivered + undelivered.size !== BATCH) {
              v(`batch ${b}: delivered ${error.delivered} + undelivered ${undelivered.size} ≠ ${BATCH}`)
            }
            const cause: { readonly _tag: string } | undefined = error.cause
            const causeName = cause instanceof KinesisError ? cause.errorName : cause?._tag
            if (error.attempts !== maxRetries + 1) {
              v(`batch ${b}: gave up after ${error.attempts} attempts, not ${
                maxRetries + 1
              }, on transient faults (cause ${causeName})`)
            }
            if (cause !== undefined && !(cause instanceof KinesisError)) {
              v(`batch ${b}: delivery stopped by ${cause._tag}`)
            }
            if (cause instanceof KinesisError && !cause.retryable) {
              v(`batch ${b}: the cause ${cause.errorName} is classified not retryable`)
            }
            if (error.interrupted) v(`batch ${b}: interrupted`)
            for (let j = 0; j < BATCH; j++) {
              const u = undelivered.get(j)
              const got = ids(j)
              if (u === undefined) {
                if (got.length === 0) v(`batch ${b}: record #${offset + j} neither on the stream nor undelivered`)
                continue
              }
              if (u.record !== batches[b]![j]) v(`batch ${b}: undelivered index ${j} names another record`)
              if (!TRANSIENT.has(u.errorCode)) {
                v(`batch ${b}: record #${offset + j} undelivered with ${u.errorCode}, not an injected fault`)
              }
              if ((u.largePayload !== undefined) !== isLarge[offset + j]!) {
                v(`batch ${b}: record #${offset + j} largePayload ${JSON.stringify(u.largePayload)}`)
              }
              if (u.largePayload?.deleted === true) deletedObjects.push({ index: offset + j, key: u.largePayload.key })
              else if (u.largePayload !== undefined) named.add(u.largePayload.key)
              if (got.length > 0) {
                landedUndelivered++
                if (got.some((id) => id !== u.recordId)) {
                  v(`batch ${b}: undelivered record #${offset + j} landed as ${
                    got.join(",")
                  }, the error says ${u.recordId}`)
                }
                if (!u.maybeDelivered) {
                  v(`batch ${b}: undelivered record #${
                    offset + j
                  } (${u.errorCode}) is on the stream but maybeDelivered is false`)
                }
                if (u.largePayload?.deleted === true) {
                  v(`batch ${b}: undelivered record #${offset + j} is on the stream but its S3 object was deleted`)
                }
              }
            }
            return
          }
          prepareFailures++
          if (!(error instanceof LargePayloadStoreError)) {
            return v(`batch ${b}: unexpected ${error._tag}: ${error.message}`)
          }
          for (const left of error.leftBehind ?? []) named.add(left.key)
          if (!error.retryable || !TRANSIENT.has(error.errorName)) {
            v(`batch ${b}: upload failed with ${error.errorName} (retryable ${error.retryable}), not an injected fault`)
          }
          if (error.recordIndex === undefined || !isLarge[offset + error.recordIndex]) {
            v(`batch ${b}: LargePayloadStoreError names record ${error.recordIndex}, not a large one`)
          }
          for (let j = 0; j < BATCH; j++) {
            if (ids(j).length > 0) {
              v(`batch ${b} failed in preparation (${error.errorName}) but record #${offset + j} is on the stream`)
            }
          }
        })

        // An object the writer says it deleted is gone (its record is certainly not on the stream),
        // and every object left is pointed to from the stream or named by an error.
        for (const m of objectsUnaccounted(objectKeys, deletedObjects, pointedTo, named)) v(m)

        const kinesisStats = kinesisProxy.stats()
        const ambiguous = kinesisStats.ambiguous.length
        if ((duplicates > 0 || landedUndelivered > 0) && ambiguous === 0) {
          v(`${duplicates} duplicates and ${landedUndelivered} undelivered-but-landed records without any ambiguous fault`)
        }
        if (kinesisStats.upstreamErrors + s3Proxy.stats().upstreamErrors > 0) v("the proxy failed to reach a server")

        const summary = [
          `seed ${seed} (maxRetries ${maxRetries}, stream ${stream}, bucket ${bucket})`,
          `  batches: ${outcomes.map(describeOutcome).join(" | ")}`,
          `  stream: ${stored.length} records (${aggregates} aggregates), ${seen.size} distinct inputs, ${duplicates} duplicates, ${largeDelivered} large entries; ${undeliveredTotal} undelivered (${landedUndelivered} landed anyway); ${prepareFailures} batches failed in preparation; ${objectKeys.length} objects in the bucket`,
          `  ${proxySummary("kinesis proxy", kinesisProxy)}`,
          `  ${proxySummary("s3 proxy", s3Proxy)}`
        ].join("\n")
        assertNoViolations(seed, summary, violations)
        // The run exercised what it claims to.
        const dealt = Object.values(kinesisStats.dealt).reduce((a, n) => a + n, 0) - kinesisStats.dealt.pass
        assert.isTrue(dealt > 0, `seed ${seed}: no fault dealt on the Kinesis proxy`)
      }))
  }
})

/** Sending fibers in the producer's runs, each sending its share of the records in turn. */
const SENDERS = 30

/**
 * The producer over the same proxied writer: ${RECORDS} records sent from ${SENDERS} fibers, the
 * scope closed once a seeded share of the sends has settled (so that shutdown finds records
 * queued, in calls and in backoff), with a shutdown timeout of a second. Then, read back as
 * above:
 *
 * 1. every send settled exactly once, none is waiting after the close, and each failed only
 *    with `RecordUndeliveredError` (an injected fault's code, or the producer's own
 *    `Expired`/`Shutdown`/`AttemptLimit`), `LargePayloadStoreError` (an upload that kept
 *    failing, retryable) or `ProducerClosedError`;
 * 2. every receipt names a record on the stream at its shard and sequence number, with the
 *    send's record and record_id; no record_id is named by two sends;
 * 3. every record on the stream belongs to a send that got a receipt or failed with
 *    `maybeDelivered` under the record_id it names; one refused or failed in preparation is not on the stream;
 * 4. duplicates only when the Kinesis proxy dealt an ambiguous fault;
 * 5. every object in the bucket is pointed to by a record on the stream or named by an error;
 *    one said deleted is gone.
 */
describe("producer invariants under injected faults (real SDK → fault proxy → kinesalite / s3rver)", () => {
  for (const scenario of PRODUCER_SCENARIOS) {
    const { seed } = scenario
    it.scopedLive(`${scenarioName(scenario)}, from ${SENDERS} fibers, the scope closed at a seeded moment`, () =>
      Effect.gen(function*() {
        const { bucket, kinesisProxy, s3Proxy, stream, writer } = yield* proxiedWriter(scenario)
        const records = makeRecords(seed)
        const byPath = new Map(records.map((r, i) => [r.filePath, i]))
        const closeAfter = Math.floor(RECORDS * (0.5 + RecordGenerator.prng(seed * 13)() * 0.5))

        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(
          KinesisProducer.layer({ linger: "20 millis", maxBufferedRecords: 100, shutdownTimeout: "1 second" }).pipe(
            Layer.provide(writer)
          ),
          scope
        )
        const producer = yield* Effect.provide(KinesisProducer, context)
        const outcomes: Array<Array<Exit.Exit<RecordReceipt, SendError>>> = records.map(() => [])
        let settled = 0
        const enough = yield* Effect.makeLatch(false)
        const senders = yield* Effect.forEach(
          Array.from({ length: SENDERS }, (_, f) => f),
          (f) =>
            Effect.fork(Effect.forEach(
              Array.from({ length: RECORDS / SENDERS }, (_, k) => f + k * SENDERS),
              (i) =>
                Effect.flatMap(Effect.exit(producer.send(records[i]!)), (exit) => {
                  outcomes[i]!.push(exit)
                  return ++settled === closeAfter ? enough.open : Effect.void
                }),
              { discard: true }
            ))
        )
        yield* enough.await
        yield* Scope.close(scope, Exit.void).pipe(Logger.withMinimumLogLevel(LogLevel.None))
        // Senders refused at close end at once; this bounds a hang, it asserts no time.
        const waiting = yield* Effect.forEach(
          senders,
          (sender) =>
            Effect.map(Effect.timeout(Fiber.await(sender), "10 seconds").pipe(Effect.option), (o) => o._tag === "None")
        )

        const { decoded, objectKeys, stored } = yield* readBack(stream, bucket)
        const violations: Array<string> = []
        const v = (message: string) => violations.push(message)
        if (waiting.some((w) => w)) v(`${waiting.filter((w) => w).length} senders still waiting after the close`)

        // 1. Each send settled once, with an expected ending.
        const deletedObjects: Array<{ readonly index: number; readonly key: string }> = []
        const named = new Set<string>()
        const counts = { delivered: 0, undelivered: 0, closed: 0, buildFailed: 0 }
        const byRecordId = new Map<string, number>()
        const settledAs = records.map((_, i): "receipt" | "maybe" | "not" | undefined => {
          const exits = outcomes[i]!
          if (exits.length !== 1) return void v(`input #${i} settled ${exits.length} times`)
          const exit = exits[0]!
          const claim = (recordId: string) => {
            if (byRecordId.has(recordId)) {
              v(`record_id ${recordId} named by inputs #${byRecordId.get(recordId)} and #${i}`)
            }
            byRecordId.set(recordId, i)
          }
          if (Exit.isSuccess(exit)) {
            counts.delivered++
            claim(exit.value.recordId)
            return "receipt"
          }
          const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
          if (error === undefined) return void v(`input #${i}: send ended with ${exit.cause._tag}`)
          switch (error._tag) {
            case "ProducerClosedError":
              counts.closed++
              return "not"
            case "LargePayloadStoreError":
              counts.buildFailed++
              if (!error.retryable || !TRANSIENT.has(error.errorName)) {
                v(`input #${i}: upload failed with ${error.errorName} (retryable ${error.retryable}), not an injected fault`)
              }
              for (const left of error.leftBehind ?? []) named.add(left.key)
              return "not"
            case "RecordUndeliveredError":
              counts.undelivered++
              claim(error.recordId)
              if (error.record !== records[i]) v(`input #${i}: its error carries another record`)
              if (
                !TRANSIENT.has(error.errorCode) && !["Expired", "Shutdown", "AttemptLimit"].includes(error.errorCode)
              ) {
                v(`input #${i}: undelivered with ${error.errorCode}, not an injected fault`)
              }
              if (error.largePayload?.deleted === true) deletedObjects.push({ index: i, key: error.largePayload.key })
              else if (error.largePayload !== undefined) named.add(error.largePayload.key)
              return error.maybeDelivered ? "maybe" : "not"
            default:
              return void v(`input #${i}: unexpected ${error._tag}: ${error.message}`)
          }
        })

        // 2–4. What the stream holds.
        const at = new Map<string, number>()
        const pointedTo = new Set<string>()
        const copies = new Map<number, number>()
        decoded.forEach((d, k) => {
          const s = stored[k]!
          if (Either.isLeft(d)) {
            return void v(`stored record ${s.shardId}/${s.sequenceNumber} does not decode: ${d.left.message}`)
          }
          for (const { dataFile, info, largePayload } of d.right) {
            const index = byPath.get(info.filePath)
            if (index === undefined) return void v(`stored record ${s.shardId}/${s.sequenceNumber} matches no input`)
            copies.set(index, (copies.get(index) ?? 0) + 1)
            at.set(`${s.shardId}/${s.sequenceNumber}`, index)
            if (!equals(DataFileV1Schema, dataFile, records[index]!)) {
              v(`input #${index} on the stream differs from the input`)
            }
            if (byRecordId.get(info.recordId) !== index) {
              v(`input #${index} is on the stream as ${info.recordId}, which its send does not name`)
            }
            const ending = settledAs[index]
            if (ending === "not") v(`input #${index} is on the stream but its send says it certainly is not`)
            if (largePayload !== undefined) {
              pointedTo.add(largePayload.key)
              if (largePayload.bucket !== bucket || largePayload.key !== expectedKey(stream, info.recordId)) {
                v(`input #${index}: pointer s3://${largePayload.bucket}/${largePayload.key}`)
              }
            }
          }
        })
        outcomes.forEach((exits, i) => {
          const exit = exits[0]
          if (exit === undefined || Exit.isFailure(exit)) return
          const { sequenceNumber, shardId } = exit.value
          if (at.get(`${shardId}/${sequenceNumber}`) !== i) {
            v(`input #${i}: its receipt names ${shardId}/${sequenceNumber}, which does not hold it`)
          }
        })
        const duplicates = [...copies.values()].reduce((n, c) => n + c - 1, 0)
        const kinesisStats = kinesisProxy.stats()
        if (duplicates > 0 && kinesisStats.ambiguous.length === 0) {
          v(`${duplicates} duplicates without any ambiguous fault`)
        }
        if (kinesisStats.upstreamErrors + s3Proxy.stats().upstreamErrors > 0) v("the proxy failed to reach a server")

        // 5. The bucket.
        for (const m of objectsUnaccounted(objectKeys, deletedObjects, pointedTo, named)) v(m)

        const summary = [
          `seed ${seed} (producer, close after ${closeAfter} settled, stream ${stream}, bucket ${bucket})`,
          `  sends: ${
            JSON.stringify(counts)
          }; stream: ${stored.length} records, ${duplicates} duplicates; ${objectKeys.length} objects in the bucket`,
          `  ${proxySummary("kinesis proxy", kinesisProxy)}`,
          `  ${proxySummary("s3 proxy", s3Proxy)}`
        ].join("\n")
        assertNoViolations(seed, summary, violations)
        assert.isAbove(counts.delivered, 0, `seed ${seed}: nothing delivered`)
        const dealt = Object.values(kinesisStats.dealt).reduce((a, n) => a + n, 0) - kinesisStats.dealt.pass
        assert.isTrue(dealt > 0, `seed ${seed}: no fault dealt on the Kinesis proxy`)
      }).pipe(Logger.withMinimumLogLevel(LogLevel.Error)))
  }
})

/**
 * The same invariants on scripted fault sequences, where the outcome is certain: which
 * request gets which fault is fixed, so each case pins down one path of the writer.
 */
describe("scripted ambiguous outcomes (real SDK → fault proxy → kinesalite / s3rver)", () => {
  const scripted = (
    kinesisScript: ReadonlyArray<FaultKind>,
    s3Script: ReadonlyArray<FaultKind>,
    writerOptions: Partial<KinesisWriterOptions>,
    // Two small records and one large, in one PutRecords call.
    records: ReadonlyArray<DataFileV1> = [
      RecordGenerator.makeDataFile({ columns: 8, seed: 71 }),
      RecordGenerator.makeDataFile({ columns: 8, seed: 72, serializedBytes: 12_000 }),
      RecordGenerator.makeDataFile({ columns: 8, seed: 73 })
    ],
    // Which S3 requests the script deals to: uploads, or deletes too.
    s3Requests: "PUT" | "PUT and DELETE" = "PUT"
  ) =>
    Effect.gen(function*() {
      const { bucket, kinesisClient, kinesisProxy, s3Client, s3Proxy, stream } = yield* proxiedAws("inv-script", 1, {
        seed: 1,
        script: kinesisScript,
        delayForwarded: true,
        kinesisThrottle: "ProvisionedThroughputExceededException",
        applyTo: (r) => r.operation === "PutRecords"
      }, {
        seed: 2,
        script: s3Script,
        applyTo: (r) => r.method === "PUT" || (s3Requests === "PUT and DELETE" && r.method === "DELETE")
      })
      const outcome = yield* Effect.flatMap(KinesisWriter, (w) => w.writeBatch(records)).pipe(
        Effect.either,
        Effect.provide(
          KinesisWriter.layer({
            ...base,
            streamName: stream,
            largePayloadThreshold: THRESHOLD,
            backoffBase: "5 millis",
            ...writerOptions
          }).pipe(
            Layer.provide(Kinesis.layer(kinesisClient)),
            Layer.provide(LargePayloadStore.layerS3({ client: s3Client, bucket })),
            Layer.provide(KinesisMetrics.layerNoop)
          )
        ),
        Logger.withMinimumLogLevel(LogLevel.Error)
      )
      const stored = yield* Effect.promise(() => readAllRecords(directKinesis, stream))
      const decoded = yield* Effect.forEach(stored, (s) => Effect.either(RecordReader.decodeRecord(s.data))).pipe(
        Effect.provide(LargePayloadStore.layerS3({ client: directS3, bucket }))
      )
      const objects = yield* Effect.promise(() => directS3.send(new ListObjectsV2Command({ Bucket: bucket })))
      return {
        outcome,
        stored,
        decoded,
        objectKeys: (objects.Contents ?? []).map((o) => o.Key ?? ""),
        kinesis: kinesisProxy.stats(),
        s3: s3Proxy.stats()
      }
    })

  /** The batch failed in preparation with a `LargePayloadStoreError`, before any PutRecords call. */
  const failedInPreparation = (run: Effect.Effect.Success<ReturnType<typeof scripted>>): LargePayloadStoreError => {
    const error = Either.isLeft(run.outcome) ? run.outcome.left : undefined
    assert.instanceOf(error, LargePayloadStoreError, describeOutcome(run.outcome))
    assert.strictEqual(run.stored.length, 0)
    // With aggregation on, the writer may list the stream's shards first: only PutRecords counts.
    const puts = run.kinesis.history.filter((r) => r.operation === "PutRecords")
    assert.strictEqual(puts.length, 0, "no PutRecords call")
    return error
  }

  it.scopedLive(
    "a PutRecords answer cut after Kinesis applied it, then throttling until retries run out: the records are on the stream, so the error must say maybeDelivered and keep the S3 object",
    () =>
      Effect.gen(function*() {
        const run = yield* scripted(["cutResponse", "throttle"], [], { maxRetries: 1 })
        assert.deepStrictEqual(run.kinesis.history.map((h) => h.fault), ["cutResponse", "throttle"])
        assert.strictEqual(run.kinesis.ambiguous.length, 1)
        assert.isTrue(
          Either.isLeft(run.outcome) && run.outcome.left instanceof WriteBatchError,
          describeOutcome(run.outcome)
        )
        if (Either.isRight(run.outcome) || !(run.outcome.left instanceof WriteBatchError)) return
        const error = run.outcome.left
        assert.strictEqual(error.undelivered.length, 3)
        assert.strictEqual(run.stored.length, 3, "the cut call was applied: all three records are on the stream")
        assert.isTrue(error.undelivered.every((u) => u.errorCode === "ProvisionedThroughputExceededException"))
        // Everything that matters, gathered before asserting, so a failure shows the whole picture.
        const large = error.undelivered.find((u) => u.largePayload !== undefined)
        const facts = {
          maybeDelivered: error.undelivered.map((u) => u.maybeDelivered),
          largePayloadDeleted: large?.largePayload?.deleted,
          unreadableOnStream: run.decoded.flatMap((d) => Either.isLeft(d) ? [d.left.message] : [])
        }
        assert.deepStrictEqual(
          facts,
          { maybeDelivered: [true, true, true], largePayloadDeleted: false, unreadableOnStream: [] },
          "the cut call failed with ECONNRESET carrying $metadata.httpStatusCode 200 (the status line arrived before the cut)"
        )
      })
  )

  it.scopedLive(
    "a PutRecords call that timed out after Kinesis applied it, then throttling: maybeDelivered, the S3 object kept, every record readable",
    () =>
      Effect.gen(function*() {
        const run = yield* scripted(["delay", "throttle"], [], { maxRetries: 1 })
        assert.deepStrictEqual(run.kinesis.history.map((h) => h.fault), ["delay", "throttle"])
        assert.isTrue(
          Either.isLeft(run.outcome) && run.outcome.left instanceof WriteBatchError,
          describeOutcome(run.outcome)
        )
        if (Either.isRight(run.outcome) || !(run.outcome.left instanceof WriteBatchError)) return
        assert.strictEqual(run.stored.length, 3)
        for (const u of run.outcome.left.undelivered) assert.isTrue(u.maybeDelivered, `record #${u.index}`)
        assert.isTrue(run.outcome.left.undelivered.every((u) => u.largePayload?.deleted !== true))
        for (const d of run.decoded) assert.isTrue(Either.isRight(d), Either.isLeft(d) ? d.left.message : "")
      })
  )

  it.scopedLive(
    "throttled on every attempt (never applied): nothing on the stream, and the large payload's S3 object is deleted",
    () =>
      Effect.gen(function*() {
        const run = yield* scripted(["throttle", "throttle"], [], { maxRetries: 1 })
        assert.isTrue(
          Either.isLeft(run.outcome) && run.outcome.left instanceof WriteBatchError,
          describeOutcome(run.outcome)
        )
        if (Either.isRight(run.outcome) || !(run.outcome.left instanceof WriteBatchError)) return
        assert.strictEqual(run.stored.length, 0)
        for (const u of run.outcome.left.undelivered) assert.isFalse(u.maybeDelivered, `record #${u.index}`)
        const large = run.outcome.left.undelivered.find((u) => u.largePayload !== undefined)
        assert.strictEqual(large?.largePayload?.deleted, true)
        assert.deepStrictEqual(run.objectKeys, [])
      })
  )

  it.scopedLive(
    "a retried PutRecords call after a cut answer succeeds: the records land twice under the same record_id, and the result names those ids",
    () =>
      Effect.gen(function*() {
        const run = yield* scripted(["cutResponse"], [], { maxRetries: 2 })
        assert.isTrue(Either.isRight(run.outcome), describeOutcome(run.outcome))
        if (Either.isLeft(run.outcome)) return
        const ids = run.outcome.right.recordIds
        assert.strictEqual(run.stored.length, 6)
        const seen = run.decoded.map((d) => Either.isRight(d) ? d.right.info.recordId : "undecodable")
        assert.deepStrictEqual([...seen].sort(), [...ids, ...ids].sort())
        // The retry went with attempt 1's partition keys.
        assert.deepStrictEqual(run.stored.map((s) => s.partitionKey.at(-1)).sort(), ["0", "0", "0", "1", "1", "1"])
      })
  )

  it.scopedLive(
    "an S3 upload that keeps failing fails the batch before anything is sent, and the object another record already uploaded is deleted",
    () =>
      Effect.gen(function*() {
        // Uploads one at a time: the first large record's upload passes, the second's fails on every try.
        const run = yield* scripted([], ["pass", "reset", "status500", "throttle"], {
          maxRetries: 2,
          maxConcurrentUploads: 1
        }, [
          RecordGenerator.makeDataFile({ columns: 8, seed: 81 }),
          RecordGenerator.makeDataFile({ columns: 8, seed: 82, serializedBytes: 12_000 }),
          RecordGenerator.makeDataFile({ columns: 8, seed: 83, serializedBytes: 14_000 })
        ])
        assert.deepStrictEqual(run.s3.history.filter((h) => h.method === "PUT").map((h) => h.fault), [
          "pass",
          "reset",
          "status500",
          "throttle"
        ])
        failedInPreparation(run)
        assert.deepStrictEqual(run.objectKeys, [], "the object uploaded before the failure was deleted")
      })
  )

  it.scopedLive(
    "an S3 upload whose answer was cut after s3rver stored it, then failing for good: the batch fails before anything is sent and even that ambiguous write is deleted",
    () =>
      Effect.gen(function*() {
        const run = yield* scripted([], ["cutResponse", "reset", "reset"], { maxRetries: 2 })
        failedInPreparation(run)
        // The cut write did land; the writer deletes the key of every upload it attempted.
        assert.isAtLeast(run.s3.ambiguous.length, 1)
        assert.deepStrictEqual(run.objectKeys, [], "the ambiguous write was deleted")
      })
  )

  /**
   * Every upload of the large record's payload is cut after s3rver stored it, and the delete
   * that follows is throttled: the object stays, and the batch's error must name it. With
   * aggregation on, the error names nothing: `aggregate.ts` cleans up with
   * `Effect.onError(() => deleteBestEffort(…))` and drops the report that `prepare.ts`'s
   * `cleanUpAfter` turns into `leftBehind`. Seen first on the seeded run of seed 8008 with
   * the AMBIGUOUS faults and aggregation on (two objects left, unnamed).
   */
  const leftBehindNamed = (aggregation: boolean) =>
    Effect.gen(function*() {
      const run = yield* scripted(
        [],
        ["cutResponse", "cutResponse", "cutResponse", "throttle", "throttle", "throttle"],
        { maxRetries: 2, maxConcurrentUploads: 1, ...(aggregation ? { aggregation: {} } : {}) },
        [
          RecordGenerator.makeDataFile({ columns: 8, seed: 91 }),
          RecordGenerator.makeDataFile({ columns: 8, seed: 92, serializedBytes: 12_000 }),
          RecordGenerator.makeDataFile({ columns: 8, seed: 93 })
        ],
        "PUT and DELETE"
      )
      assert.deepStrictEqual(run.s3.history.map((h) => `${h.method} ${h.fault}`), [
        "PUT cutResponse",
        "PUT cutResponse",
        "PUT cutResponse",
        "DELETE throttle"
      ])
      const error = failedInPreparation(run)
      assert.strictEqual(run.objectKeys.length, 1, "the cut upload landed and its delete was refused")
      assert.deepStrictEqual((error.leftBehind ?? []).map((l) => l.key), run.objectKeys)
    })

  it.scopedLive(
    "aggregation off: an upload cut after s3rver stored it, whose delete is then refused, fails the batch with an error naming the object left",
    () => leftBehindNamed(false)
  )

  it.scopedLive(
    "aggregation on: an upload cut after s3rver stored it, whose delete is then refused, fails the batch with an error naming the object left",
    () => leftBehindNamed(true)
  )
})
