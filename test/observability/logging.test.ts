import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger, LogLevel, Schedule } from "effect"
import { KinesisWriter, LargePayloadStore } from "../../src/index.js"
import { KinesisTest, RecordGenerator } from "../../src/testing.js"
import { atInfoOrAbove, capturingLogs } from "../support/logs.js"
import { countingStore, writerLayer } from "../support/writerLayers.js"

const retryAfterFailures = writerLayer((call) =>
  call.index === 0
    ? KinesisTest.perRecord(call, (_, i) => i % 2 === 0 ? "ProvisionedThroughputExceededException" : undefined)
    : call.index === 1
    ? KinesisTest.failCall(call, "InternalFailure", { httpStatus: 500, retryable: true })
    : KinesisTest.acceptAll(call)
)

describe("logging: retries are the writer doing its job", () => {
  it.effect("a batch delivered after per-record and whole-call retries logs nothing at Info or above", () =>
    Effect.gen(function*() {
      const { logs, result } = yield* capturingLogs(
        Effect.flatMap(
          KinesisWriter,
          (w) => w.writeBatch(RecordGenerator.makeDataFiles(10), { schedule: Schedule.recurs(3) })
        )
      )
      assert.isTrue(result._tag === "Right" && result.right.retries === 2)
      assert.deepStrictEqual(atInfoOrAbove(logs), [])
      // ... and the retries can still be seen, at Debug.
      const debug = logs.filter((l) => l.level === LogLevel.Debug).map((l) => l.message)
      assert.include(debug, "PutRecords call failed")
      assert.include(debug, "retrying records that failed")
    }).pipe(Effect.provide(retryAfterFailures)))

  it.live("a transient S3 fault retried logs nothing at Info or above", () =>
    Effect.gen(function*() {
      const counter = { writes: 0 }
      const store = countingStore(yield* LargePayloadStore.makeMemory(), counter, {
        count: 2,
        errorName: "SlowDown",
        retryable: true
      })
      const batch = [RecordGenerator.makeDataFile({ seed: 2, serializedBytes: 5_000 })]
      const { logs, result } = yield* capturingLogs(
        Effect.flatMap(KinesisWriter, (w) => w.writeBatch(batch)).pipe(
          Effect.provide(writerLayer(undefined, { largePayloadThreshold: 1_000, backoffBase: "1 millis" }, { store }))
        )
      )
      assert.strictEqual(result._tag, "Right")
      assert.strictEqual(counter.writes, 3)
      assert.deepStrictEqual(atInfoOrAbove(logs), [])
    }))

  it.effect("a batch that ends with records undelivered warns once, however many retries it took", () =>
    Effect.gen(function*() {
      const { logs, result } = yield* capturingLogs(
        Effect.flatMap(
          KinesisWriter,
          (w) => w.writeBatch(RecordGenerator.makeDataFiles(100), { schedule: Schedule.recurs(3) })
        )
      )
      assert.isTrue(result._tag === "Left" && result.left._tag === "WriteBatchError")
      const loud = atInfoOrAbove(logs)
      assert.strictEqual(loud.length, 1, loud.join("\n"))
      assert.match(loud[0]!, /^WARN batch ended with records not delivered/)
    }).pipe(
      Effect.provide(writerLayer((call) => KinesisTest.failEach(call, "ProvisionedThroughputExceededException")))
    ))
})

describe("logging: how a user sees the retries", () => {
  it.effect("Logger.withMinimumLogLevel(LogLevel.Debug) shows them; the default minimum (Info) does not", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const write = Effect.flatMap(
        KinesisWriter,
        (w) => w.writeBatch(RecordGenerator.makeDataFiles(4), { schedule: Schedule.recurs(3) })
      ).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => logs.push(String(message)))))
      )
      yield* write
      assert.deepStrictEqual(logs, [])
      yield* write.pipe(Logger.withMinimumLogLevel(LogLevel.Debug))
      assert.include(logs, "retrying records that failed")
    }).pipe(Effect.provide(writerLayer((call) =>
      // Every first attempt refuses its first record: each batch retries once.
      KinesisTest.perRecord(call, (r, i) => i === 0 && r.partitionKey.endsWith("-0") ? "InternalFailure" : undefined)
    ))))
})
