/**
 * The defect classes of issue 10, one `describe` each (the properties of
 * test/invariants/properties.test.ts cover classes 1–5 over generated cases; these are the cases a
 * property cannot reach cheaply, and the classes that are not about delivery).
 */
import { KinesisClient } from "@aws-sdk/client-kinesis"
import { create } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  ConfigProvider,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  FastCheck as fc,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Option,
  Schedule
} from "effect"
import { randomBytes } from "node:crypto"
import type { DataFileV1, KinesisWriterOptions } from "../../src/index.js"
import {
  DataFileV1Schema,
  Kinesis,
  KinesisMetrics,
  KinesisWriter,
  LargePayloadStore,
  LargePayloadStoreError,
  RecordCodec
} from "../../src/index.js"
import { awsErrorFacts, mayHaveBeenApplied } from "../../src/internal/awsError.js"
import { KinesisLimits } from "../../src/internal/core/limits.js"
import { engineOf } from "../../src/internal/engine.js"
import { KinesisTestRecorder } from "../../src/KinesisTest.js"
import * as ShardSimulator from "../../src/ShardSimulator.js"
import { KinesisTest, RecordGenerator } from "../../src/testing.js"
import { baseOptions, writerLayer } from "../support/writerLayers.js"

const quiet = Logger.withMinimumLogLevel(LogLevel.None)
const large = (seed: number) => RecordGenerator.makeDataFile({ seed, serializedBytes: 3_000 })

describe("class 3: the limits are checked with the attempt actually sent", () => {
  it.effect("a record at the record limit is refused with AttemptLimit at the first attempt whose key would pass it, never sent 1 byte over", () =>
    Effect.gen(function*() {
      const recordLimit = 16 * 1024
      const options = { maxRetries: 9, readStreamRecordLimit: true, compressionWorkers: 0 }
      // Find an incompressible record whose data plus key (suffix "9") is exactly the limit.
      const writer = yield* KinesisWriter.pipe(
        Effect.provide(writerLayer(undefined, options, { summary: { maxRecordSizeInKiB: recordLimit / 1024 } }))
      )
      let record: DataFileV1 | undefined
      for (let size = recordLimit - 100; size < recordLimit + 300 && record === undefined; size++) {
        const candidate = RecordGenerator.makeDataFile({ seed: 1, serializedBytes: size })
        const [prepared] = (yield* writer.prepare([candidate])).records
        const bytes = prepared!.data.length + Buffer.byteLength(prepared!.partitionKeyPrefix) + 1
        if (prepared!.largePayload === undefined && bytes === recordLimit) record = candidate
      }
      if (record === undefined) return assert.fail("no record lands exactly on the limit")
      const atLimit = record
      const { calls, error } = yield* Effect.gen(function*() {
        const error = yield* Effect.flip(
          (yield* KinesisWriter).writeBatch([atLimit], { schedule: Schedule.recurs(20) })
        )
        return { error, calls: yield* (yield* KinesisTestRecorder).calls }
      }).pipe(Effect.provide(writerLayer(
        (call) => KinesisTest.failEach(call, "ProvisionedThroughputExceededException"),
        options,
        { summary: { maxRecordSizeInKiB: recordLimit / 1024 } }
      )))
      const sizes = calls.map((c) =>
        c.request.records[0]!.data.length + Buffer.byteLength(c.request.records[0]!.partitionKey)
      )
      if (error._tag !== "WriteBatchError") return assert.fail(error.message)
      // writeBatch draws the record's own record_id, which can move its gzip'd size by a byte
      // from the one measured above: what follows holds for every draw. Attempt n sends the
      // record's bytes with n's digits; the first attempt whose bytes would pass the limit is
      // refused with AttemptLimit instead, and none is ever sent over it.
      const base = sizes[0]! - 1
      assert.isAtLeast(base + 1, recordLimit - 16, "the record is near the limit")
      const expected: Array<number> = []
      let refusedAt: number | undefined
      for (let n = 0; n <= 20; n++) {
        const size = base + String(n).length
        if (size > recordLimit) {
          refusedAt = n
          break
        }
        expected.push(size)
      }
      assert.deepStrictEqual(sizes, expected, "each attempt's bytes, none over the limit")
      for (const size of sizes) assert.isAtMost(size, recordLimit)
      if (refusedAt === undefined) {
        assert.strictEqual(error.undelivered[0]!.errorCode, "ProvisionedThroughputExceededException")
        assert.strictEqual(error.attempts, 21)
      } else {
        assert.strictEqual(error.undelivered[0]!.errorCode, "AttemptLimit")
        assert.include(error.undelivered[0]!.errorMessage, `attempt ${refusedAt}`)
        assert.strictEqual(error.attempts, refusedAt + 1)
      }
    }).pipe(quiet))
})

describe("class 4: byte counts on the wire are UTF-8 bytes", () => {
  /**
   * Names of CJK ideographs: 3 UTF-8 bytes and one UTF-16 unit (what `.length` counts) each,
   * drawn from 20,000, so that gzip cannot hide the difference.
   */
  const wide = fc.array(fc.integer({ min: 0x4e00, max: 0x9fff }).map((c) => String.fromCharCode(c)), {
    minLength: 60,
    maxLength: 125
  })

  it.effect.prop(
    "records near the record limit with multi-byte names (CJK, accents) never exceed it with their key",
    {
      logGroup: wide,
      schema: wide,
      sizes: fc.array(fc.integer({ min: -300, max: 150 }), { minLength: 1, maxLength: 4 })
    },
    ({ logGroup, schema, sizes }) =>
      Effect.gen(function*() {
        const recordLimit = 16 * 1024
        const over: Array<number> = []
        const layer = writerLayer(
          (call) => {
            for (const r of call.request.records) {
              const bytes = r.data.length + Buffer.byteLength(r.partitionKey, "utf8")
              if (bytes > recordLimit) over.push(bytes)
            }
            return KinesisTest.acceptAll(call)
          },
          {
            logGroupId: logGroup.join(""),
            // Keys of at most 256 characters: name + "-" + name + "-0-0".
            schemaName: schema.slice(0, KinesisLimits.maxPartitionKeyLength - 5 - logGroup.length).join(""),
            distributionFactor: 1,
            readStreamRecordLimit: true,
            compressionWorkers: 0
          },
          { summary: { maxRecordSizeInKiB: recordLimit / 1024 } }
        )
        // Incompressible records whose data plus key lands within a few hundred bytes of the
        // limit, counted in UTF-8: the names are in the key and in the record's info.
        const lg = logGroup.join("")
        const sch = schema.slice(0, KinesisLimits.maxPartitionKeyLength - 5 - logGroup.length).join("")
        const edge = recordLimit - Buffer.byteLength(`${lg}-${sch}-0-0`) - Buffer.byteLength(lg + sch) - 140
        const batch = sizes.map((delta, i) =>
          create(DataFileV1Schema, { filePath: `s3://b/${i}`, keyMetadata: randomBytes(Math.max(1, edge + delta)) })
        )
        yield* Effect.flatMap(KinesisWriter, (w) => w.writeBatch(batch)).pipe(Effect.provide(layer))
        assert.deepStrictEqual(over, [], "records over the limit")
      }).pipe(quiet),
    { fastCheck: { numRuns: 200 } }
  )
})

describe("class 5: no S3 object outlives a record certainly not on the stream", () => {
  it.live(
    "(c) each delete waits requestTimeout, not a fixed 10 s: 20 refused records with a hung S3 report in a few rounds",
    () =>
      Effect.gen(function*() {
        const memory = yield* LargePayloadStore.makeMemory("bucket")
        const hungDeletes = LargePayloadStore.of({ ...memory.service, delete: () => Effect.never })
        const started = Date.now()
        const error = yield* Effect.flatMap(KinesisWriter, (w) =>
          Effect.flip(w.writeBatch(Array.from({ length: 20 }, (_, i) => large(i + 1))))).pipe(
            Effect.provide(writerLayer((call) =>
              KinesisTest.failEach(call, "KMSAccessDeniedException"), {
              largePayloadThreshold: 2_000,
              requestTimeout: "100 millis",
              maxConcurrentUploads: 8
            }, { store: Layer.succeed(LargePayloadStore, hungDeletes) }))
          )
        const took = Date.now() - started
        if (error._tag !== "WriteBatchError") return assert.fail(error.message)
        assert.strictEqual(error.undelivered.length, 20)
        assert.isTrue(
          error.undelivered.every((u) => u.largePayload?.deleted === false),
          "what was not deleted is named"
        )
        // 3 rounds of 8 deletes, each bounded by 100 ms.
        assert.isBelow(took, 5_000, `took ${took} ms`)
      }).pipe(quiet),
    { timeout: 30_000 }
  )

  it.live(
    "(d) a failed upload's clean-up deletes only after the other uploads' aborted requests have settled",
    () =>
      Effect.gen(function*() {
        // A fake S3: the third PUT is refused; the others hang until aborted, and land 30 ms
        // after their abort, as an upload S3 had received in full would.
        const objects = new Set<string>()
        let puts = 0
        const client = {
          send: (
            command: { constructor: { name: string }; input: { Key: string } },
            options: { abortSignal?: AbortSignal }
          ) =>
            new Promise((resolve, reject) => {
              const key = command.input.Key
              if (command.constructor.name === "DeleteObjectCommand") {
                objects.delete(key)
                return resolve({})
              }
              if (++puts === 3) {
                return setTimeout(
                  () =>
                    reject(
                      Object.assign(new Error("Access Denied"), {
                        name: "AccessDenied",
                        $metadata: { httpStatusCode: 403 }
                      })
                    ),
                  5
                )
              }
              options.abortSignal?.addEventListener("abort", () =>
                setTimeout(() => {
                  objects.add(key)
                  reject(Object.assign(new Error("The operation was aborted"), { name: "AbortError" }))
                }, 30))
            })
        }
        const store = Layer.succeed(
          LargePayloadStore,
          LargePayloadStore.makeS3({ client: client as never, bucket: "bucket" })
        )
        const error = yield* Effect.flatMap(
          KinesisWriter,
          (w) => Effect.flip(w.writeBatch([large(1), large(2), large(3)]))
        ).pipe(
          // The other uploads are aborted when their requestTimeout passes.
          Effect.provide(
            writerLayer(undefined, {
              largePayloadThreshold: 2_000,
              maxConcurrentUploads: 3,
              requestTimeout: "200 millis"
            }, { store })
          )
        )
        assert.strictEqual(error._tag, "LargePayloadStoreError")
        yield* Effect.sleep("100 millis")
        assert.deepStrictEqual([...objects], [], "an aborted upload landed after its delete")
      }).pipe(quiet),
    { timeout: 30_000 }
  )

  it.effect("(e) when the clean-up's deletes fail too, the error names every object left behind", () =>
    Effect.gen(function*() {
      const memory = yield* LargePayloadStore.makeMemory("bucket")
      let writes = 0
      const refuse = (operation: "write" | "delete", key: string) =>
        new LargePayloadStoreError({
          operation,
          bucket: "bucket",
          key,
          errorName: "AccessDenied",
          httpStatus: 403,
          retryable: false
        })
      const store = LargePayloadStore.of({
        ...memory.service,
        write: (key, bytes) => ++writes === 3 ? Effect.fail(refuse("write", key)) : memory.service.write(key, bytes),
        delete: (location) => Effect.fail(refuse("delete", location.key))
      })
      const error = yield* Effect.flatMap(
        KinesisWriter,
        (w) => Effect.flip(w.writeBatch([large(1), large(2), large(3)]))
      ).pipe(
        Effect.provide(writerLayer(undefined, { largePayloadThreshold: 2_000, maxConcurrentUploads: 1 }, {
          store: Layer.succeed(LargePayloadStore, store)
        }))
      )
      if (error._tag !== "LargePayloadStoreError") return assert.fail(error.message)
      const stored = [...(yield* memory.objects).keys()]
      assert.strictEqual(stored.length, 2)
      const named = (error.leftBehind ?? []).map((l) => `${l.bucket}/${l.key}`)
      for (const key of stored) assert.include(named, key)
      assert.include(error.message, "could not be deleted")
    }).pipe(quiet))
})

describe("class 6: errors raised before anything is sent are not 'maybe delivered'", () => {
  it.effect("no region or no credentials: the record is certainly not delivered, its object deleted, the SDK's reason in the message", () =>
    Effect.gen(function*() {
      const noRegion = new KinesisClient({
        maxAttempts: 1,
        region: () => Promise.reject<string>(new Error("Region is missing"))
      })
      const noCredentials = new KinesisClient({
        maxAttempts: 1,
        region: "eu-west-1",
        credentials: () =>
          Promise.reject(
            Object.assign(new Error("Could not load credentials from any providers"), {
              name: "CredentialsProviderError",
              tryNextLink: false
            })
          )
      })
      for (
        const [client, reason] of [[noRegion, "Region is missing"], [
          noCredentials,
          "Could not load credentials"
        ]] as const
      ) {
        const memory = yield* LargePayloadStore.makeMemory("bucket")
        const error = yield* Effect.flatMap(KinesisWriter, (w) => Effect.flip(w.writeBatch([large(1)]))).pipe(
          Effect.provide(
            KinesisWriter.layer({ ...baseOptions, largePayloadThreshold: 2_000 }).pipe(
              Layer.provide(Layer.mergeAll(
                Kinesis.layer(client),
                Layer.succeed(LargePayloadStore, memory.service),
                KinesisMetrics.layerNoop
              ))
            )
          )
        )
        client.destroy()
        if (error._tag !== "WriteBatchError") return assert.fail(error.message)
        const [u] = error.undelivered
        assert.isFalse(u!.maybeDelivered, reason)
        assert.isTrue(u!.largePayload?.deleted, reason)
        assert.strictEqual((yield* memory.objects).size, 0)
        assert.include(error.cause?.message, reason)
        assert.include(u!.errorMessage, reason)
      }
    }).pipe(quiet))

  it("classification: a request that cannot have left is definite; one that may have reached the server is not", () => {
    const cases: ReadonlyArray<[unknown, boolean]> = [
      [new Error("Region is missing"), false],
      [Object.assign(new Error("no creds"), { name: "CredentialsProviderError" }), false],
      [Object.assign(new TypeError("Invalid URL"), { code: "ERR_INVALID_URL" }), false],
      [Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }), false],
      [
        Object.assign(new Error("denied"), { name: "AccessDeniedException", $metadata: { httpStatusCode: 400 } }),
        false
      ],
      [Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }), true],
      [Object.assign(new Error("boom"), { name: "InternalFailure", $metadata: { httpStatusCode: 500 } }), true],
      [Object.assign(new Error("late"), { name: "TimeoutError" }), true],
      [new Error("something else"), true]
    ]
    for (const [error, maybe] of cases) {
      const facts = awsErrorFacts(error)
      assert.strictEqual(mayHaveBeenApplied(facts.errorName, facts.httpStatus), maybe, String(error))
    }
  })
})

describe("class 7: configuration that should not be accepted is refused, naming the variable and the value", () => {
  const deps = Layer.mergeAll(KinesisTest.layer(), LargePayloadStore.layerMemory(), KinesisMetrics.layerNoop)
  const env = {
    KINESIS_STREAM_NAME: "env-stream",
    KINESIS_LOG_GROUP_ID: "lg",
    KINESIS_SCHEMA_NAME: "sc",
    AWS_ACCOUNT_ID: "210987654321"
  }
  const fromEnv = (vars: Record<string, string>) =>
    Effect.either(KinesisWriter.pipe(
      Effect.provide(KinesisWriter.layerConfig().pipe(Layer.provide(deps))),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ ...env, ...vars }))))
    ))
  const integers = [
    "KINESIS_DISTRIBUTION_FACTOR",
    "KINESIS_MAX_RETRIES",
    "KINESIS_COMPRESSION_LEVEL",
    "KINESIS_MAX_CONCURRENT_CALLS",
    "KINESIS_LARGE_PAYLOAD_THRESHOLD"
  ] as const

  it.effect.prop(
    "an integer variable takes decimal digits only: anything else (\"\", \" \", \"0x3\", \"0b1\", \"1e3\", \"3.0\") is refused with its name and value",
    {
      name: fc.constantFrom(...integers),
      text: fc.oneof(
        fc.constantFrom("", " ", "\t", "0x3", "0b1", "0o7", "1e3", "3.0", "+", "-", "Infinity", "NaN", "3 4"),
        fc.string({ maxLength: 6 })
      )
    },
    ({ name, text }) =>
      Effect.gen(function*() {
        const decimal = /^\s*[+-]?\d+\s*$/.test(text)
        const result = yield* fromEnv({ [name]: text })
        if (decimal) return
        if (Either.isRight(result)) return assert.fail(`${name}=${JSON.stringify(text)} was accepted`)
        assert.include(String(result.left), name)
        assert.include(String(result.left), JSON.stringify(text))
      }),
    { fastCheck: { numRuns: 200 } }
  )

  it.effect("durations read as the README writes them; a streamArn must be an ARN of streamName", () =>
    Effect.gen(function*() {
      const ok = yield* fromEnv({
        KINESIS_BACKOFF_BASE: "100 ms",
        KINESIS_BACKOFF_CAP: "10 s",
        KINESIS_REQUEST_TIMEOUT: "30s",
        KINESIS_STREAM_ARN: "arn:aws:kinesis:eu-west-1:210987654321:stream/env-stream"
      })
      if (Either.isLeft(ok)) return assert.fail(String(ok.left))
      assert.strictEqual(Duration.toMillis(engineOf(ok.right)!.config.backoffBase), 100)
      assert.strictEqual(Duration.toMillis(engineOf(ok.right)!.config.backoffCap), 10_000)
      assert.strictEqual(Duration.toMillis(engineOf(ok.right)!.config.requestTimeout), 30_000)
      for (
        const [name, text] of [
          ["KINESIS_REQUEST_TIMEOUT", ""],
          ["KINESIS_REQUEST_TIMEOUT", "30"],
          ["KINESIS_BACKOFF_BASE", "soon"],
          ["KINESIS_STREAM_ARN", "env-stream"],
          ["KINESIS_STREAM_ARN", "arn:aws:kinesis:eu-west-1:210987654321:stream/other-stream"]
        ]
      ) {
        const result = yield* fromEnv({ [name!]: text! })
        if (Either.isRight(result)) return assert.fail(`${name}=${JSON.stringify(text)} was accepted`)
        assert.include(
          String(result.left),
          name === "KINESIS_STREAM_ARN" && text!.startsWith("arn") ? "streamArn" : name!
        )
        assert.include(String(result.left), JSON.stringify(text))
      }
      const options: Partial<KinesisWriterOptions> = {
        streamArn: "arn:aws:kinesis:eu-west-1:210987654321:stream/other"
      }
      const error = yield* Effect.flip(
        Layer.build(KinesisWriter.layer({ ...baseOptions, ...options }).pipe(Layer.provide(deps)))
      ).pipe(Effect.scoped)
      assert.include(String(error), "streamArn")
    }))
})

describe("class 8: counts and key lengths", () => {
  it.effect("an interrupted first attempt counts as an attempt", () =>
    Effect.gen(function*() {
      const third = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Effect.flatMap(KinesisWriter, (w) => w.writeBatch(RecordGenerator.makeDataFiles(2_000, { columns: 2 }))).pipe(
          Effect.provide(writerLayer(
            (call) =>
              call.index < 3
                ? KinesisTest.acceptAll(call)
                : Effect.zipRight(Deferred.succeed(third, undefined), Effect.never),
            { maxConcurrentCalls: 1, compressionWorkers: 0 }
          ))
        )
      )
      yield* Deferred.await(third)
      const exit = yield* Fiber.interrupt(fiber)
      if (!Exit.isFailure(exit)) return assert.fail("not interrupted")
      const error = Option.getOrThrow(Cause.failureOption(exit.cause))
      if (error._tag !== "WriteBatchError") return assert.fail(error.message)
      assert.strictEqual(error.delivered, 1_500)
      assert.strictEqual(error.attempts, 1)
    }).pipe(quiet))

  it.effect("partition keys count characters (code points), not UTF-16 units: 250 emoji fit, the simulator takes them", () =>
    Effect.gen(function*() {
      // 😀 is 2 UTF-16 units: the longest key, 124 + 120 emoji and "-", "-", "0-9", is 249
      // characters but 493 units.
      const options = {
        logGroupId: "😀".repeat(124),
        schemaName: "😀".repeat(120),
        distributionFactor: 1,
        maxRetries: 9
      }
      const layer = KinesisWriter.layer({ ...baseOptions, ...options }).pipe(
        Layer.provideMerge(ShardSimulator.layer({ shards: 2, seed: 1 })),
        Layer.provideMerge(LargePayloadStore.layerMemory()),
        Layer.provideMerge(KinesisMetrics.layerNoop)
      )
      const written = yield* Effect.gen(function*() {
        yield* (yield* KinesisWriter).writeBatch(RecordGenerator.makeDataFiles(3, { columns: 2 }))
        return yield* (yield* ShardSimulator.ShardSimulatorState).written
      }).pipe(Effect.provide(layer))
      assert.strictEqual(written.length, 3)
      assert.isTrue(written.every((w) => [...w.partitionKey].length <= KinesisLimits.maxPartitionKeyLength))
      assert.isTrue(written.every((w) => w.partitionKey.length > KinesisLimits.maxPartitionKeyLength))
      assert.isTrue(Either.isRight(RecordCodec.decodeRecordDataSync(written[0]!.data)))
    }))
})
