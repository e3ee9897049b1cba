/**
 * Records that cannot be serialized faithfully, through the public API: something that is not
 * a record (`null`, `undefined`, a number), and text that is not well-formed UTF-16 (a lone
 * surrogate, which UTF-8 cannot carry: it would reach the stream as U+FFFD, a different path
 * or partition than the caller's). Each fails with a `SerializationError` naming the field and
 * the record: `writeBatch` before anything is sent, `send` for that record alone. Both paths of
 * serialization are covered: plain records and aggregates.
 */
import { create } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Fiber, Layer, TestClock } from "effect"
import * as fc from "fast-check"
import type { DataFileV1, KinesisWriterOptions } from "../../src/index.js"
import { DataFileV1Schema, KinesisProducer, KinesisWriter, RecordCodec } from "../../src/index.js"
import { KinesisTestRecorder } from "../../src/KinesisTest.js"
import { RecordGenerator } from "../../src/testing.js"
import { writerLayer } from "../support/writerLayers.js"

const modes: ReadonlyArray<readonly [string, Partial<KinesisWriterOptions>]> = [
  ["plain", { compressionWorkers: 0 }],
  ["aggregated", { compressionWorkers: 0, aggregation: {} }]
]

const good = (i: number): DataFileV1 => RecordGenerator.makeDataFile({ seed: 100 + i, columns: 3 })

/** Text with a lone surrogate at `at` (a high one not followed by a low one, or a low one alone). */
const withLoneSurrogate = (text: string, at: number, high: boolean): string => {
  const i = Math.min(at, text.length)
  // A surrogate next to another could make a pair: a letter on each side keeps it alone.
  return `${text.slice(0, i)}a${high ? "\uD83D" : "\uDE00"}a${text.slice(i)}`
}

type Field = "file_path" | "partition key" | "partition value"

/** A good record with a lone surrogate in `field`. */
const spoiled = (i: number, field: Field, text: string): DataFileV1 => {
  const record = good(i)
  switch (field) {
    case "file_path":
      return { ...record, filePath: `s3://b/${text}.parquet` }
    case "partition key":
      return { ...record, partition: { ...record.partition, [text]: "v" } }
    case "partition value":
      return { ...record, partition: { ...record.partition, region: text } }
  }
}

const sentCount = Effect.map(Effect.flatMap(KinesisTestRecorder, (r) => r.calls), (calls) => calls.length)

/** Text of any code points (astral ones included), with a lone surrogate somewhere. */
const malformed = fc.tuple(fc.string({ unit: "grapheme", maxLength: 20 }), fc.nat({ max: 25 }), fc.boolean()).map((
  [text, at, high]
) => withLoneSurrogate(text, at, high))
const field = fc.constantFrom<Field>("file_path", "partition key", "partition value")

describe("writeBatch: a record that cannot be serialized faithfully fails the batch naming it, before any call", () => {
  for (const [mode, options] of modes) {
    for (const [name, value] of [["null", null], ["undefined", undefined], ["a number", 42]] as const) {
      it.effect(`${mode}: ${name} among records is a SerializationError naming the record, not a defect`, () =>
        Effect.gen(function*() {
          const writer = yield* KinesisWriter
          const batch = [good(0), value as unknown as DataFileV1, good(2)]
          const error = yield* Effect.flip(writer.writeBatch(batch))
          if (error._tag !== "SerializationError") return assert.fail(error.message)
          assert.strictEqual(error.recordIndex, 1)
          assert.strictEqual(error.subject, "record")
          assert.include(error.message, `got ${String(value)}`)
          assert.include(error.message, "record #1")
          assert.strictEqual(yield* sentCount, 0)
        }).pipe(Effect.provide(writerLayer(undefined, options))))
    }

    it.effect.prop(
      `${mode}: a lone surrogate in any text field (file_path, a partition key or value) is a SerializationError naming the field and the record`,
      { text: malformed, field, index: fc.nat({ max: 4 }) },
      ({ field, index, text }) =>
        Effect.gen(function*() {
          const writer = yield* KinesisWriter
          const batch = Array.from({ length: 5 }, (_, i) => i === index ? spoiled(i, field, text) : good(i))
          const error = yield* Effect.flip(writer.writeBatch(batch))
          if (error._tag !== "SerializationError") return assert.fail(error.message)
          assert.strictEqual(error.recordIndex, index)
          assert.strictEqual(error.subject, field === "file_path" ? "file_path" : "partition")
          assert.include(error.message, field === "partition value" ? "the value of partition key" : field)
          assert.include(error.message, "lone UTF-16 surrogate")
          assert.strictEqual(yield* sentCount, 0)
        }).pipe(Effect.provide(writerLayer(undefined, options))),
      { fastCheck: { seed: mode === "plain" ? 1912 : 1913, numRuns: 60 } }
    )

    it.effect(`${mode}: well-formed text of any script, astral characters included, is written as given`, () =>
      Effect.gen(function*() {
        const writer = yield* KinesisWriter
        const record = { ...good(1), filePath: "s3://b/表/😀/é.parquet", partition: { "😀": "日本", a: "\u00e9" } }
        yield* writer.writeBatch([record])
        const [call] = yield* Effect.flatMap(KinesisTestRecorder, (r) => r.calls)
        const decoded = Either.getOrThrow(RecordCodec.decodeRecordDataAllSync(call!.request.records[0]!.data))
        const entry = decoded[0]!.entry
        if (entry._tag !== "standard") return assert.fail("offloaded")
        assert.strictEqual(entry.dataFile.filePath, record.filePath)
        assert.deepStrictEqual(entry.dataFile.partition, record.partition)
      }).pipe(Effect.provide(writerLayer(undefined, options))))
  }
})

describe("KinesisProducer.send: a record that cannot be serialized faithfully fails its own send only", () => {
  const producerLayer = (options: Partial<KinesisWriterOptions>) =>
    KinesisProducer.layer({ linger: "10 millis" }).pipe(Layer.provideMerge(writerLayer(undefined, options)))

  for (const [mode, options] of modes) {
    it.effect.prop(
      `${mode}: null, undefined, or a lone surrogate in a random field fail that send with a SerializationError; the others are delivered`,
      {
        bad: fc.oneof(
          fc.constantFrom<unknown>(null, undefined, 7, "s3://b/x"),
          fc.tuple(field, malformed).map(([f, text]) => ({ field: f, text }))
        ),
        index: fc.nat({ max: 3 })
      },
      ({ bad, index }) =>
        Effect.gen(function*() {
          const producer = yield* KinesisProducer
          const isSpoiled = typeof bad === "object" && bad !== null
          const badRecord = isSpoiled
            ? spoiled(index, (bad as { field: Field }).field, (bad as { text: string }).text)
            : bad as DataFileV1
          const batch = Array.from({ length: 4 }, (_, i) => i === index ? badRecord : good(i))
          const fiber = yield* Effect.fork(
            Effect.forEach(batch, (r) => Effect.either(producer.send(r)), { concurrency: "unbounded" })
          )
          yield* TestClock.adjust("1 second")
          const results = yield* Fiber.join(fiber)
          results.forEach((result, i) => {
            if (i !== index) return assert.isTrue(Either.isRight(result), `record ${i}`)
            if (Either.isRight(result)) return assert.fail("the bad record was delivered")
            const error = result.left
            if (error._tag !== "SerializationError") return assert.fail(error.message)
            assert.strictEqual(
              error.subject,
              !isSpoiled ? "record" : (bad as { field: Field }).field === "file_path" ? "file_path" : "partition"
            )
          })
          if (mode === "plain") {
            const sent = (yield* Effect.flatMap(KinesisTestRecorder, (r) => r.calls)).flatMap((c) => c.request.records)
            assert.strictEqual(sent.length, 3)
          }
        }).pipe(Effect.provide(producerLayer(options))),
      { fastCheck: { seed: mode === "plain" ? 2012 : 2013, numRuns: 25 } }
    )
  }
})

describe("the encoder's fast path and protobuf agree", () => {
  it("a record the encoder leaves to protobuf for its text is refused there with the same field, not written as U+FFFD", () => {
    const record = create(DataFileV1Schema, { filePath: "s3://b/\uD800.parquet" })
    const result = RecordCodec.serializeDataFileSync(record)
    if (Either.isRight(result)) return assert.fail("serialized")
    assert.strictEqual(result.left.subject, "file_path")
    assert.include(result.left.message, "U+D800 at index 7")
  })
})
