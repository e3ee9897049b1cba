/**
 * `LambdaEvent` (cygnus-kinesis-writer/testing): the events it builds are what Lambda
 * delivers, and the reader's Lambda helpers read them back to the records that went in.
 */
import { create, equals } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { DataFileV1Schema, KinesisWriter, LargePayloadStore, RecordReader } from "../../src/index.js"
import { KinesisTestRecorder } from "../../src/KinesisTest.js"
import { LambdaEvent, RecordGenerator } from "../../src/testing.js"
import { baseOptions, writerLayer } from "../support/writerLayers.js"

const options = { logGroupId: "lg", schemaName: "orders", streamName: "orders", region: "eu-west-1" } as const

describe("LambdaEvent", () => {
  it.effect("fromDataFiles: every field Lambda sets, and decodeLambdaEvent gives back the records in order", () =>
    Effect.gen(function*() {
      const dataFiles = RecordGenerator.makeDataFiles(5, { columns: 4 })
      const event = yield* LambdaEvent.fromDataFiles(dataFiles, options)

      assert.strictEqual(event.Records.length, 5)
      const sequenceNumbers = event.Records.map((r) => r.kinesis.sequenceNumber)
      for (const [i, record] of event.Records.entries()) {
        assert.strictEqual(record.eventSource, "aws:kinesis")
        assert.strictEqual(record.eventName, "aws:kinesis:record")
        assert.strictEqual(record.eventSourceARN, "arn:aws:kinesis:eu-west-1:123456789012:stream/orders")
        assert.strictEqual(record.awsRegion, "eu-west-1")
        assert.strictEqual(record.eventID, `shardId-000000000000:${record.kinesis.sequenceNumber}`)
        assert.match(record.kinesis.sequenceNumber, /^\d{56}$/)
        assert.match(record.kinesis.partitionKey, /^lg-orders-\d+-0$/)
        assert.strictEqual(record.kinesis.approximateArrivalTimestamp, Date.UTC(2026, 0, 1) / 1000)
        // base64 of a gzip stream
        assert.deepStrictEqual([...Buffer.from(record.kinesis.data, "base64").subarray(0, 2)], [0x1f, 0x8b])
        if (i > 0) assert.isTrue(BigInt(sequenceNumbers[i]!) > BigInt(sequenceNumbers[i - 1]!))
      }

      const decoded = yield* RecordReader.decodeLambdaEvent(event).pipe(Effect.provide(LargePayloadStore.layerMemory()))
      assert.strictEqual(decoded.length, 5)
      decoded.forEach((record, i) => {
        assert.isTrue(equals(DataFileV1Schema, record.dataFile, dataFiles[i]!))
        assert.strictEqual(record.info.logGroupId, "lg")
        assert.strictEqual(record.info.schemaName, "orders")
        assert.strictEqual(record.info.recordId, `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`)
      })
      // The same call builds the same event.
      assert.deepStrictEqual(yield* LambdaEvent.fromDataFiles(dataFiles, options), event)
    }))

  it.effect("aggregate: records sharing a partition key travel as one Kinesis record; processLambdaEvent reports the sequence number of the one whose handler failed", () =>
    Effect.gen(function*() {
      const dataFiles = RecordGenerator.makeDataFiles(12)
      // One partition-key bucket: every record shares the key.
      const event = yield* LambdaEvent.fromDataFiles(dataFiles, { ...options, distributionFactor: 1, aggregate: true })
      assert.strictEqual(event.Records.length, 1)
      const two = yield* LambdaEvent.fromDataFiles(dataFiles, { ...options, distributionFactor: 2, aggregate: true })
      assert.strictEqual(two.Records.length, 2)

      const results = yield* RecordReader.decodeLambdaRecords(two).pipe(Effect.provide(LargePayloadStore.layerMemory()))
      assert.strictEqual(results.length, 12)
      assert.sameMembers(
        results.map((r) => (r._tag === "Decoded" ? r.record.dataFile.filePath : "failed")),
        dataFiles.map((d) => d.filePath)
      )

      const failing = dataFiles[7]!.filePath
      const response = yield* RecordReader.processLambdaEvent(
        two,
        ({ dataFile }) => dataFile.filePath === failing ? Effect.fail("handler failed") : Effect.void
      ).pipe(Effect.provide(LargePayloadStore.layerMemory()))
      const failedIn = results.find((r) => r._tag === "Decoded" && r.record.dataFile.filePath === failing)!
      assert.deepStrictEqual(response.batchItemFailures, [{ itemIdentifier: failedIn.sequenceNumber! }])
    }))

  it.effect("fromRecords: the Data a writer sent, with its partition keys, reads back as the batch written", () =>
    Effect.gen(function*() {
      const dataFiles = RecordGenerator.makeDataFiles(8, { seed: 3 })
      const { calls, result } = yield* Effect.gen(function*() {
        const result = yield* (yield* KinesisWriter).writeBatch(dataFiles)
        return { result, calls: yield* (yield* KinesisTestRecorder).calls }
      }).pipe(Effect.provide(writerLayer()))
      const sent = calls.flatMap((c) => c.request.records)
      const event = LambdaEvent.fromRecords(
        sent.map((r) => ({ data: r.data, partitionKey: r.partitionKey, shardId: "shardId-000000000003" })),
        { streamName: baseOptions.streamName, firstSequenceNumber: 1000n, arrivalTime: new Date(1_700_000_000_123) }
      )
      assert.deepStrictEqual(event.Records.map((r) => r.kinesis.partitionKey), sent.map((r) => r.partitionKey))
      assert.deepStrictEqual(
        event.Records.map((r) => r.eventID),
        sent.map((_, i) => `shardId-000000000003:${1000 + i}`)
      )
      assert.strictEqual(event.Records[0]!.kinesis.approximateArrivalTimestamp, 1_700_000_000.123)

      const decoded = yield* RecordReader.decodeLambdaEvent(event).pipe(Effect.provide(LargePayloadStore.layerMemory()))
      assert.deepStrictEqual(decoded.map((d) => d.info.recordId), result.recordIds)
    }))

  it.effect("a record that cannot be encoded is a SerializationError naming it; no event is built", () =>
    Effect.gen(function*() {
      const bad = create(DataFileV1Schema, { filePath: "" })
      const result = yield* Effect.either(LambdaEvent.fromDataFiles([RecordGenerator.makeDataFile(), bad]))
      assert.isTrue(Either.isLeft(result))
      assert.strictEqual(Either.isLeft(result) && result.left._tag, "SerializationError")
    }))
})
