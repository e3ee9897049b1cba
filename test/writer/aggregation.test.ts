import { create, createFileRegistry, equals, fromBinary, toBinary } from "@bufbuild/protobuf"
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, FastCheck as fc, Layer, Logger, LogLevel, Schedule } from "effect"
import { readFileSync } from "node:fs"
import * as Zlib from "node:zlib"
import {
  DataFileEntryRecordBatchSchema,
  DataFileEntryRecordSchema,
  DataFileInfoSchema
} from "../../src/gen/cygnus/v1/data_file_entry_pb.js"
import type { DataFileInfo } from "../../src/gen/cygnus/v1/data_file_entry_pb.js"
import type { DataFileV1 } from "../../src/gen/cygnus/v1/data_file_pb.js"
import { DataFileV1Schema } from "../../src/gen/cygnus/v1/data_file_pb.js"
import type { KinesisWriterOptions } from "../../src/index.js"
import {
  AggregationDefaults,
  KinesisError,
  KinesisMetrics,
  KinesisWriter,
  LargePayloadStore,
  RecordReader
} from "../../src/index.js"
import { fitToRecordLimit } from "../../src/internal/aggregate.js"
import * as RecordCodec from "../../src/internal/codec.js"
import { distributionBucket } from "../../src/internal/core/partitionKey.js"
import { engineOf } from "../../src/internal/engine.js"
import { EnvelopePacker, unpack } from "../../src/internal/envelopePacker.js"
import type { PreparedRecord } from "../../src/internal/prepare.js"
import { KinesisTestRecorder } from "../../src/KinesisTest.js"
import { KinesisTest, RecordGenerator } from "../../src/testing.js"
import { dataFileInfo, dataFileV1 } from "../arbitraries.js"
import { baseOptions, writerLayer } from "../support/writerLayers.js"

const RUNS = { numRuns: 200 }
const on = { aggregation: {} } as const satisfies Partial<KinesisWriterOptions>
/** ListShards denied: the writer does not know the shard map, and groups records by partition key. */
const noShardMap = {
  shards: Effect.fail(
    new KinesisError({
      operation: "ListShards",
      streamName: "test-stream",
      errorName: "AccessDeniedException",
      retryable: false
    })
  )
}
const noDelay = { schedule: Schedule.recurs(3) }

/** Every Kinesis record of every recorded call: key, Data and its logical records. */
const sent = Effect.gen(function*() {
  const calls = yield* (yield* KinesisTestRecorder).calls
  return calls.map((call) =>
    call.request.records.map((r) => ({
      partitionKey: r.partitionKey,
      data: r.data,
      records: Either.getOrThrow(RecordCodec.decodeRecordDataAllSync(r.data))
    }))
  )
})

const envelopeOf = (dataFile: DataFileV1, info: Partial<Omit<DataFileInfo, "$typeName">>) =>
  toBinary(DataFileEntryRecordSchema, RecordCodec.makeEntryRecord(dataFile, create(DataFileInfoSchema, info)))

describe("aggregation: the codec", () => {
  it.prop("an aggregate round-trips every record, and its bytes are toBinary of the DataFileEntryRecordBatch", [
    fc.array(fc.tuple(dataFileV1, dataFileInfo), { minLength: 1, maxLength: 6 })
  ], ([records]) => {
    const members = records.map(([dataFile, info]) => ({ dataFile, info }))
    const encoded = Either.getOrThrow(RecordCodec.encodeRecordBatchSync(members))
    const batch = RecordCodec.makeEntryRecordBatch(
      records.map(([dataFile, info]) => RecordCodec.makeEntryRecord(dataFile, info))
    )
    const expected = toBinary(DataFileEntryRecordBatchSchema, batch)
    assert.deepStrictEqual(Uint8Array.from(Zlib.gunzipSync(encoded.data)), expected)
    assert.strictEqual(encoded.uncompressedSize, expected.length)
    assert.isTrue(RecordCodec.isAggregateSync(expected))
    const back = Either.getOrThrow(RecordCodec.decodeRecordDataAllSync(encoded.data))
    assert.strictEqual(back.length, records.length)
    back.forEach((r, i) => {
      assert.isTrue(equals(DataFileInfoSchema, r.info, records[i]![1]))
      if (r.entry._tag !== "standard") return assert.fail("expected a standard entry")
      assert.isTrue(equals(DataFileV1Schema, r.entry.dataFile, records[i]![0]))
    })
  }, { fastCheck: RUNS })

  it.prop("the packer's aggregates, plain envelopes between them, are byte-identical to toBinary", [
    fc.array(fc.array(fc.tuple(dataFileV1, fc.uuid(), fc.boolean()), { minLength: 1, maxLength: 4 }), {
      minLength: 1,
      maxLength: 4
    }),
    dataFileInfo
  ], ([groups, batchInfo]) => {
    const packer = new EnvelopePacker(batchInfo, 64)
    const expected = groups.map((group) => {
      const envelopes = group.map(([dataFile, recordId, prebuilt]) => {
        const envelope = envelopeOf(dataFile, { ...batchInfo, filePath: dataFile.filePath, recordId })
        if (group.length === 1) {
          if (prebuilt) packer.addEnvelope(envelope)
          else packer.add(toBinary(DataFileV1Schema, dataFile), dataFile.filePath, recordId)
        } else {
          const size = prebuilt
            ? packer.addMemberEnvelope(envelope)
            : packer.addMember(toBinary(DataFileV1Schema, dataFile), dataFile.filePath, recordId)
          assert.strictEqual(
            size,
            packer.memberSize(toBinary(DataFileV1Schema, dataFile).length, dataFile.filePath, recordId)
          )
        }
        return envelope
      })
      if (group.length > 1) packer.endAggregate()
      return group.length === 1 ? envelopes[0]! : RecordCodec.encodeEntryRecordBatch(envelopes)
    })
    assert.deepStrictEqual(unpack(packer.take()).map((b) => Uint8Array.from(b)), expected)
  }, { fastCheck: RUNS })

  it("decodeRecordData refuses an aggregate with reason Aggregated; an empty aggregate is MissingField", () => {
    const dataFile = RecordGenerator.makeDataFile({ seed: 1, columns: 3 })
    const info = { ...create(DataFileInfoSchema), filePath: dataFile.filePath, recordId: "a" }
    const encoded = Either.getOrThrow(RecordCodec.encodeRecordBatchSync([{ dataFile, info }, { dataFile, info }]))
    const one = RecordCodec.decodeRecordDataSync(encoded.data)
    assert.isTrue(Either.isLeft(one) && one.left.reason === "Aggregated")
    // Not aggregated: decodeRecordDataAll gives the one record.
    const single = Either.getOrThrow(RecordCodec.encodeRecordSync(dataFile, info))
    assert.strictEqual(Either.getOrThrow(RecordCodec.decodeRecordDataAllSync(single.data)).length, 1)
    const empty = RecordCodec.parseEntryRecordsSync(Uint8Array.of(0x7a, 0x00))
    assert.isTrue(Either.isLeft(empty) && empty.left.reason === "MissingField", String(empty))
  })

  it("a reader built before aggregation (the released descriptor image) fails with MissingField, never misreads", () => {
    const registry = createFileRegistry(
      fromBinary(
        FileDescriptorSetSchema,
        readFileSync(new URL("../../proto/released/cygnus.v1.binpb", import.meta.url))
      )
    )
    assert.isUndefined(registry.getMessage("cygnus.v1.DataFileEntryRecordBatch"), "the image predates the batch")
    const OldRecord = registry.getMessage("cygnus.v1.DataFileEntryRecord")!
    /** The old reader: parseEntryRecordSync as released, with the old schema. */
    const oldParse = (bytes: Uint8Array) => {
      const record = fromBinary(OldRecord, bytes) as any
      if (record.dataFileInfo === undefined) {
        return Either.left({ reason: "MissingField", detail: "DataFileEntryRecord.data_file_info is not set" })
      }
      if (record.dataFileEntry === undefined) {
        return Either.left({ reason: "MissingField", detail: "DataFileEntryRecord.data_file_entry is not set" })
      }
      return Either.right(record)
    }
    const records = RecordGenerator.makeDataFiles(3, { columns: 5 }).map((dataFile, i) => ({
      dataFile,
      info: { ...create(DataFileInfoSchema), filePath: dataFile.filePath, recordId: `id-${i}`, accountId: "1" }
    }))
    const aggregate = Zlib.gunzipSync(Either.getOrThrow(RecordCodec.encodeRecordBatchSync(records)).data)
    const old = oldParse(aggregate)
    assert.isTrue(Either.isLeft(old))
    if (Either.isLeft(old)) assert.strictEqual(old.left.reason, "MissingField")
    // And the old reader still reads a record that is not aggregated.
    const plain = Either.getOrThrow(RecordCodec.encodeRecordSync(records[0]!.dataFile, records[0]!.info))
    assert.isTrue(Either.isRight(oldParse(Zlib.gunzipSync(plain.data))))
  })

  it("an aggregate over the record limit is split in halves until each part fits, members kept in order", () => {
    const entries = RecordGenerator.makeDataFiles(7, { columns: 20 }).map((record, index) => ({
      index,
      record,
      recordId: `id-${index}`
    }))
    const envelopes = entries.map((e) => envelopeOf(e.record, { filePath: e.record.filePath, recordId: e.recordId }))
    const bytes = RecordCodec.encodeEntryRecordBatch(envelopes)
    const data = Either.getOrThrow(RecordCodec.gzipSync(bytes))
    const aggregate: PreparedRecord = {
      ...entries[0]!,
      data,
      uncompressedSize: bytes.length,
      partitionKeyPrefix: "lg-schema-0-",
      members: entries
    }
    const limit = Math.ceil(data.length / 3)
    const parts = Either.getOrThrow(fitToRecordLimit(aggregate, limit, 1, -1))
    assert.isAbove(parts.length, 2)
    const ids: Array<string> = []
    for (const part of parts) {
      assert.isAtMost(part.data.length + "lg-schema-0-".length + 1, limit)
      const back = Either.getOrThrow(RecordCodec.decodeRecordDataAllSync(part.data))
      assert.deepStrictEqual(back.map((r) => r.info.recordId), (part.members ?? [part]).map((m) => m.recordId))
      assert.strictEqual(RecordCodec.isAggregateSync(Zlib.gunzipSync(part.data)), part.members !== undefined)
      for (const r of back) ids.push(r.info.recordId)
    }
    assert.deepStrictEqual(ids, entries.map((e) => e.recordId))
    const alone = fitToRecordLimit({ ...aggregate, members: undefined }, limit, 1, -1)
    assert.isTrue(Either.isLeft(alone) && alone.left._tag === "CompressionError")
  })
})

describe("aggregation: the writer", () => {
  it.effect("off by default: one DataFileEntryRecord per Kinesis record, kinesisRecords = records", () =>
    Effect.gen(function*() {
      const result = yield* (yield* KinesisWriter).writeBatch(RecordGenerator.makeDataFiles(50, { columns: 5 }))
      assert.strictEqual(result.kinesisRecords, 50)
      for (const r of (yield* sent).flat()) assert.isFalse(RecordCodec.isAggregateSync(Zlib.gunzipSync(r.data)))
    }).pipe(Effect.provide(writerLayer())))

  it.effect("without the shard map, records that share a partition key become one Kinesis record; results stay per logical record", () =>
    Effect.gen(function*() {
      const batch = RecordGenerator.makeDataFiles(300, { columns: 5 })
      const writer = yield* KinesisWriter
      const factor = engineOf(writer)!.config.distributionFactor
      const result = yield* writer.writeBatch(batch)
      const kinesis = (yield* sent).flat()
      const keys = new Set(batch.map((r) => distributionBucket(r.filePath, factor)))
      assert.strictEqual(kinesis.length, keys.size)
      assert.strictEqual(result.kinesisRecords, keys.size)
      assert.strictEqual(result.records, 300)
      assert.strictEqual(result.kinesisCalls, 1)
      assert.strictEqual(result.compressedBytes, kinesis.reduce((n, r) => n + r.data.length, 0))
      for (const r of kinesis) {
        for (const logical of r.records) {
          assert.strictEqual(r.partitionKey, `lg-schema-${distributionBucket(logical.info.filePath, factor)}-0`)
        }
      }
      // Every record once, with the id the result names at its index and its data file.
      const byId = new Map(kinesis.flatMap((r) => r.records).map((r) => [r.info.recordId, r]))
      assert.strictEqual(byId.size, 300)
      result.recordIds.forEach((id, i) => {
        const r = byId.get(id)!
        if (r.entry._tag !== "standard") return assert.fail("expected inline")
        assert.isTrue(equals(DataFileV1Schema, r.entry.dataFile, batch[i]!))
      })
    }).pipe(Effect.provide(writerLayer(undefined, on, noShardMap))))

  it.effect("maxRecords and maxBytes bound every aggregate; a group of one is a plain record", () =>
    Effect.gen(function*() {
      const byCount = yield* Effect.flatMap(
        KinesisWriter,
        (w) => Effect.zip(w.writeBatch(RecordGenerator.makeDataFiles(101, { columns: 5 })), sent)
      ).pipe(Effect.provide(writerLayer(undefined, { distributionFactor: 1, aggregation: { maxRecords: 25 } })))
      assert.deepStrictEqual(byCount[1].flat().map((r) => r.records.length), [25, 25, 25, 25, 1])
      assert.isFalse(RecordCodec.isAggregateSync(Zlib.gunzipSync(byCount[1].flat()[4]!.data)))
      assert.strictEqual(byCount[0].kinesisRecords, 5)

      const bySize = yield* Effect.flatMap(
        KinesisWriter,
        (w) => Effect.zip(w.writeBatch(RecordGenerator.makeDataFiles(200, { columns: 20 })), sent)
      ).pipe(Effect.provide(writerLayer(undefined, { distributionFactor: 1, aggregation: { maxBytes: 8_192 } })))
      const aggregates = bySize[1].flat()
      assert.isAbove(aggregates.length, 2)
      for (const r of aggregates) assert.isAtMost(Zlib.gunzipSync(r.data).length, 8_192)
      assert.strictEqual(aggregates.reduce((n, r) => n + r.records.length, 0), 200)
    }))

  it.live(
    "without the shard map, a batch of many chunks: groups stay open across chunks, aggregates fill to maxRecords, each key's records in batch order",
    () =>
      Effect.gen(function*() {
        const batch = RecordGenerator.makeDataFiles(9_000, { columns: 5 })
        const writer = yield* KinesisWriter
        const factor = engineOf(writer)!.config.distributionFactor
        const result = yield* writer.writeBatch(batch)
        const kinesis = (yield* sent).flat()
        assert.strictEqual(result.records, 9_000)
        assert.strictEqual(result.kinesisRecords, kinesis.length)
        // Per key, every aggregate but the last is full (the 2,000-record chunks do not cut them;
        // members stay open over two chunks and more, their bytes copied out of the first).
        const byKey = new Map<string, Array<number>>()
        for (const r of kinesis) byKey.set(r.partitionKey, [...(byKey.get(r.partitionKey) ?? []), r.records.length])
        for (const sizes of byKey.values()) for (const n of sizes.slice(0, -1)) assert.strictEqual(n, 300)
        assert.isAtMost(kinesis.length, Math.ceil(9_000 / 300) + factor)
        // Every record once, its id at its index, and the records of a key in batch order.
        const index = new Map(result.recordIds.map((id, i) => [id, i]))
        const seen = new Set<string>()
        const last = new Map<string, number>()
        for (const r of kinesis) {
          for (const logical of r.records) {
            const i = index.get(logical.info.recordId)!
            assert.isFalse(seen.has(logical.info.recordId))
            seen.add(logical.info.recordId)
            assert.isAbove(i, last.get(r.partitionKey) ?? -1)
            last.set(r.partitionKey, i)
            if (logical.entry._tag !== "standard") return assert.fail("expected inline")
            assert.isTrue(equals(DataFileV1Schema, logical.entry.dataFile, batch[i]!))
            assert.strictEqual(r.partitionKey, `lg-schema-${distributionBucket(batch[i]!.filePath, factor)}-0`)
          }
        }
        assert.strictEqual(seen.size, 9_000)
      }).pipe(
        // The worker pool (the calling thread shares the last chunk's gzip with it).
        Effect.provide(writerLayer(undefined, { compressionWorkers: 1, aggregation: { maxRecords: 300 } }, noShardMap))
      ),
    60_000
  )

  it.effect("retry: the same aggregate bytes again with suffix -1, retriedRecords counts its members", () =>
    Effect.gen(function*() {
      const batch = RecordGenerator.makeDataFiles(40, { columns: 5 })
      const result = yield* (yield* KinesisWriter).writeBatch(batch, noDelay)
      const [first, second] = yield* sent
      assert.strictEqual(second!.length, 1)
      assert.deepStrictEqual(second![0]!.data, first![0]!.data)
      assert.strictEqual(second![0]!.partitionKey, first![0]!.partitionKey.replace(/-0$/, "-1"))
      assert.strictEqual(result.retries, 1)
      assert.strictEqual(result.retriedRecords, first![0]!.records.length)
      assert.strictEqual(result.records, 40)
      assert.strictEqual(result.kinesisRecords, first!.length)
    }).pipe(Effect.provide(writerLayer(
      (call) =>
        call.index === 0
          ? KinesisTest.perRecord(call, (_, i) => i === 0 ? "ProvisionedThroughputExceededException" : undefined)
          : KinesisTest.acceptAll(call),
      { distributionFactor: 2, ...on }
    ))))

  it.effect("a permanent per-record failure of an aggregate names each of its logical records", () =>
    Effect.gen(function*() {
      const batch = RecordGenerator.makeDataFiles(40, { columns: 5 })
      const error = yield* Effect.flip((yield* KinesisWriter).writeBatch(batch, noDelay))
      if (error._tag !== "WriteBatchError") return assert.fail(error.message)
      const [first] = yield* sent
      const failedIds = new Set(first![1]!.records.map((r) => r.info.recordId))
      assert.strictEqual(error.undelivered.length, failedIds.size)
      assert.strictEqual(error.delivered, 40 - failedIds.size)
      for (const u of error.undelivered) {
        assert.isTrue(failedIds.has(u.recordId))
        assert.strictEqual(u.record, batch[u.index])
        assert.strictEqual(u.errorCode, "KMSAccessDeniedException")
      }
    }).pipe(
      Effect.provide(writerLayer(
        (call) => KinesisTest.perRecord(call, (_, i) => i === 1 ? "KMSAccessDeniedException" : undefined),
        { distributionFactor: 2, ...on }
      )),
      Effect.provide(Logger.minimumLogLevel(LogLevel.None))
    ))

  it.effect("a large record travels as a pointer inside the aggregate and reads back through the memory store", () =>
    Effect.gen(function*() {
      const memory = yield* LargePayloadStore.makeMemory("bucket")
      const store = Layer.succeed(LargePayloadStore, memory.service)
      const batch = [
        RecordGenerator.makeDataFile({ seed: 1, columns: 3 }),
        RecordGenerator.makeDataFile({ seed: 2, serializedBytes: 5_000 }),
        RecordGenerator.makeDataFile({ seed: 3, columns: 3 }),
        RecordGenerator.makeDataFile({ seed: 4, serializedBytes: 6_000 })
      ]
      const { kinesis, result } = yield* Effect.gen(function*() {
        const result = yield* (yield* KinesisWriter).writeBatch(batch)
        return { result, kinesis: (yield* sent).flat() }
      }).pipe(Effect.provide(writerLayer(undefined, { distributionFactor: 1, largePayloadThreshold: 1_000, ...on }, {
        store
      })))
      assert.strictEqual(kinesis.length, 1)
      assert.strictEqual(result.largePayloads, 2)
      assert.deepStrictEqual(kinesis[0]!.records.map((r) => r.entry._tag), ["standard", "large", "standard", "large"])
      assert.strictEqual((yield* memory.objects).size, 2)
      const back = yield* RecordReader.decodeRecords([{ Data: kinesis[0]!.data }]).pipe(Effect.provide(store))
      assert.deepStrictEqual(back.map((r) => r.info.recordId), result.recordIds)
      back.forEach((r, i) => assert.isTrue(equals(DataFileV1Schema, r.dataFile, batch[i]!)))
      assert.deepStrictEqual(back.map((r) => r.largePayload !== undefined), [false, true, false, true])
    }))

  it.effect("prepare + putAttempt give aggregates too, each failed as a unit", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const batch = yield* writer.prepare(RecordGenerator.makeDataFiles(30, { columns: 5 }))
      assert.strictEqual(batch.records.length, 1)
      assert.strictEqual(batch.records[0]!.members!.length, 30)
      const outcome = yield* writer.putAttempt(batch.records, 0)
      assert.strictEqual(outcome.written, 1)
    }).pipe(Effect.provide(writerLayer(undefined, { distributionFactor: 1, ...on }))))
})

describe("aggregation: configuration", () => {
  const deps = Layer.mergeAll(
    KinesisTest.layer(undefined, { maxRecordSizeInKiB: 10_240 }),
    LargePayloadStore.layerMemory(),
    KinesisMetrics.layerNoop
  )
  const build = (options: Partial<KinesisWriterOptions>) =>
    Layer.build(KinesisWriter.layer({ ...baseOptions, ...options }).pipe(Layer.provide(deps))).pipe(
      Effect.flatMap((ctx) => Effect.succeed(ctx)),
      Effect.scoped
    )
  const fails = (options: Partial<KinesisWriterOptions>, field: string, shown: string) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(build(options))
      if (error._tag !== "ConfigError" || error._op !== "InvalidData") return assert.fail(String(error))
      assert.deepStrictEqual(error.path, ["aggregation", field])
      assert.include(error.message, `aggregation.${field}`)
      assert.include(error.message, shown)
    })

  it.effect("maxRecords under 2, or not an integer, a maxBytes or maxMemberBytes out of range, fails the layer naming it", () =>
    Effect.gen(function*() {
      yield* fails({ aggregation: { maxRecords: 1 } }, "maxRecords", "1")
      yield* fails({ aggregation: { maxRecords: 2.5 } }, "maxRecords", "2.5")
      yield* fails({ aggregation: { maxBytes: 100 } }, "maxBytes", "100")
      yield* fails({ aggregation: { maxMemberBytes: 0 } }, "maxMemberBytes", "0")
    }))

  it.effect("a maxBytes the stream's record limit cannot hold fails the layer, naming the largest that fits", () =>
    Effect.gen(function*() {
      yield* fails({ aggregation: { maxBytes: 1024 * 1024 } }, "maxBytes", "1048576")
      const error = yield* Effect.flip(build({ aggregation: { maxBytes: 1024 * 1024 } }))
      assert.include(String(error), "largest maxBytes that fits")
      // The stream's own limit, when read, decides: 10 MiB holds 1 MiB.
      yield* build({ aggregation: { maxBytes: 1024 * 1024 }, readStreamRecordLimit: true })
    }))

  it.effect("from the environment: KINESIS_AGGREGATION turns it on, with its bounds", () =>
    Effect.gen(function*() {
      const read = (env: Record<string, string>) =>
        Effect.flatMap(KinesisWriter, (w) => Effect.succeed(engineOf(w)!.config.aggregation)).pipe(
          Effect.provide(KinesisWriter.layerConfig().pipe(Layer.provide(deps))),
          Effect.withConfigProvider(ConfigProvider.fromMap(
            new Map(Object.entries({
              KINESIS_STREAM_NAME: "s",
              KINESIS_LOG_GROUP_ID: "lg",
              KINESIS_SCHEMA_NAME: "schema",
              AWS_ACCOUNT_ID: "123456789012",
              ...env
            }))
          ))
        )
      assert.isUndefined(yield* read({}))
      assert.deepStrictEqual(yield* read({ KINESIS_AGGREGATION: "true" }), {
        maxRecords: 500,
        maxBytes: 262_144,
        maxMemberBytes: AggregationDefaults.maxMemberBytes
      })
      assert.deepStrictEqual(
        yield* read({
          KINESIS_AGGREGATION: "true",
          KINESIS_AGGREGATION_MAX_RECORDS: "50",
          KINESIS_AGGREGATION_MAX_MEMBER_BYTES: "10000"
        }),
        { maxRecords: 50, maxBytes: 262_144, maxMemberBytes: 10_000 }
      )
    }))
})

describe("aggregation: the reader", () => {
  const dataFiles = RecordGenerator.makeDataFiles(5, { columns: 4 })
  const infoOf = (i: number) => ({ ...create(DataFileInfoSchema), filePath: dataFiles[i]!.filePath, recordId: `r${i}` })
  const aggregate = Either.getOrThrow(
    RecordCodec.encodeRecordBatchSync([0, 1, 2].map((i) => ({ dataFile: dataFiles[i]!, info: infoOf(i) })))
  ).data
  const plain = Either.getOrThrow(RecordCodec.encodeRecordSync(dataFiles[3]!, infoOf(3))).data
  const event = {
    Records: [aggregate, plain].map((data, i) => ({
      kinesis: { data: Buffer.from(data).toString("base64"), sequenceNumber: `seq-${i}` }
    }))
  }
  const store = LargePayloadStore.layerMemory()

  it.effect("decodeRecordAll, decodeRecords and decodeLambdaEvent return every logical record in order", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual((yield* RecordReader.decodeRecordAll(aggregate)).map((r) => r.info.recordId), [
        "r0",
        "r1",
        "r2"
      ])
      assert.deepStrictEqual((yield* RecordReader.decodeRecordAll(plain)).map((r) => r.info.recordId), ["r3"])
      const all = yield* RecordReader.decodeRecords([{ Data: aggregate }, { Data: plain }])
      assert.deepStrictEqual(all.map((r) => r.info.recordId), ["r0", "r1", "r2", "r3"])
      all.forEach((r, i) => assert.isTrue(equals(DataFileV1Schema, r.dataFile, dataFiles[i]!)))
      const lambda = yield* RecordReader.decodeLambdaEvent(event)
      assert.deepStrictEqual(lambda.map((r) => r.info.recordId), ["r0", "r1", "r2", "r3"])
      const error = yield* Effect.flip(RecordReader.decodeRecord(aggregate))
      assert.strictEqual(error._tag === "DecodeError" && error.reason, "Aggregated")
    }).pipe(Effect.provide(store)))

  it.effect("decodeLambdaRecords gives each member its index; processLambdaEvent reports an aggregate once", () =>
    Effect.gen(function*() {
      const results = yield* RecordReader.decodeLambdaRecords(event)
      assert.deepStrictEqual(
        results.map((r) => r._tag === "Decoded" ? [r.index, r.member, r.record.info.recordId] : r._tag),
        [[0, 0, "r0"], [0, 1, "r1"], [0, 2, "r2"], [1, 0, "r3"]]
      )
      const seen: Array<string> = []
      const response = yield* RecordReader.processLambdaEvent(event, (record, position) => {
        seen.push(`${position.index}.${position.member}`)
        return record.info.recordId === "r0" || record.info.recordId === "r2" ? Effect.fail("no") : Effect.void
      })
      assert.deepStrictEqual(seen, ["0.0", "0.1", "0.2", "1.0"])
      assert.deepStrictEqual(response.batchItemFailures, [{ itemIdentifier: "seq-0" }])
    }).pipe(Effect.provide(store), Effect.provide(Logger.minimumLogLevel(LogLevel.None))))
})
