import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import type { KinesisWriterOptions } from "../../src/index.js"
import { KinesisMetrics, KinesisWriter, LargePayloadStore } from "../../src/index.js"
import { engineOf } from "../../src/internal/engine.js"
import { KinesisTest } from "../../src/testing.js"
import { baseOptions } from "../support/writerLayers.js"

const deps = Layer.mergeAll(KinesisTest.layer(), LargePayloadStore.layerMemory(), KinesisMetrics.layerNoop)
const build = (options: Partial<KinesisWriterOptions>) =>
  Effect.flip(Layer.build(KinesisWriter.layer({ ...baseOptions, ...options }).pipe(Layer.provide(deps)))).pipe(
    Effect.scoped
  )

const cases: ReadonlyArray<[string, Partial<KinesisWriterOptions>, string]> = [
  ["streamName", { streamName: "" }, `""`],
  ["streamName", { streamName: "has space" }, `"has space"`],
  ["streamName", { streamName: "x".repeat(129) }, "x".repeat(129)],
  ["accountId", { accountId: "12345" }, `"12345"`],
  ["accountId", { accountId: "12345678901a" }, `"12345678901a"`],
  ["logGroupId", { logGroupId: "" }, `""`],
  ["schemaName", { schemaName: "" }, `""`],
  ["distributionFactor", { distributionFactor: 2.5 }, "2.5"],
  ["largePayloadThreshold", { largePayloadThreshold: 0 }, "0"],
  ["largePayloadThreshold", { largePayloadThreshold: 10.5 }, "10.5"],
  ["maxRetries", { maxRetries: -1 }, "-1"],
  ["maxRetries", { maxRetries: 1.5 }, "1.5"],
  ["maxRequestBytes", { maxRequestBytes: 11 * 1024 * 1024 }, String(11 * 1024 * 1024)],
  ["maxConcurrentCalls", { maxConcurrentCalls: 0 }, "0"],
  ["maxConcurrentUploads", { maxConcurrentUploads: 0 }, "0"],
  ["compressionLevel", { compressionLevel: 10 }, "10"],
  ["backoffBase", { backoffBase: "0 millis" }, "0 millis"],
  ["backoffCap", { backoffCap: "soon" as never }, "soon"],
  ["requestTimeout", { requestTimeout: "-1 seconds" }, "-1 seconds"],
  ["compressionWorkers", { compressionWorkers: -1 }, "-1"]
]

describe("KinesisWriter configuration", () => {
  for (const [field, options, shown] of cases) {
    it.effect(`a bad ${field} (${JSON.stringify(Object.values(options)[0]).slice(0, 40)}) fails the layer with a ConfigError naming it`, () =>
      Effect.gen(function*() {
        const error = yield* build(options)
        if (error._tag !== "ConfigError" || error._op !== "InvalidData") return assert.fail(String(error))
        assert.deepStrictEqual(error.path, [field])
        assert.include(error.message, field)
        assert.include(error.message, shown)
      }))
  }

  it.effect("partition keys that cannot fit 256 characters are refused when the writer is built", () =>
    Effect.gen(function*() {
      const error = yield* build({
        logGroupId: "g".repeat(200),
        schemaName: "s".repeat(50),
        distributionFactor: 1000,
        maxRetries: 10
      })
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(error.message, "256")
      assert.include(error.message, "partition keys of up to 258 characters")
    }))

  it.effect("a key of exactly 256 characters is accepted", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter.pipe(
        Effect.provide(
          KinesisWriter.layer({
            ...baseOptions,
            logGroupId: "g".repeat(201),
            schemaName: "s".repeat(50),
            distributionFactor: 10,
            maxRetries: 9
          }).pipe(Layer.provide(deps))
        )
      )
      assert.strictEqual(engineOf(writer)!.config.maxRetries, 9)
    }))

  it.effect("defaults are the documented ones", () =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter.pipe(
        Effect.provide(KinesisWriter.layer(baseOptions).pipe(Layer.provide(deps)))
      )
      assert.strictEqual(engineOf(writer)!.config.distributionFactor, 16)
      assert.strictEqual(engineOf(writer)!.config.largePayloadThreshold, 921_600)
      assert.strictEqual(engineOf(writer)!.config.maxRetries, 3)
      assert.strictEqual(engineOf(writer)!.config.maxRequestBytes, 5 * 1024 * 1024)
      assert.strictEqual(engineOf(writer)!.recordLimitBytes, 1024 * 1024)
    }))

  it.effect("layerConfig reads the same settings through Config, and validates them", () =>
    Effect.gen(function*() {
      const env = new Map([
        ["KINESIS_STREAM_NAME", "env-stream"],
        ["KINESIS_LOG_GROUP_ID", "lg"],
        ["KINESIS_SCHEMA_NAME", "sc"],
        ["AWS_ACCOUNT_ID", "210987654321"],
        ["KINESIS_MAX_RETRIES", "5"],
        ["KINESIS_BACKOFF_CAP", "3 seconds"]
      ])
      const writer = yield* KinesisWriter.pipe(
        Effect.provide(KinesisWriter.layerConfig().pipe(Layer.provide(deps))),
        Effect.withConfigProvider(ConfigProvider.fromMap(env))
      )
      assert.strictEqual(engineOf(writer)!.config.streamName, "env-stream")
      assert.strictEqual(engineOf(writer)!.config.maxRetries, 5)
      assert.strictEqual(engineOf(writer)!.config.distributionFactor, 16)

      const error = yield* Effect.flip(Layer.build(KinesisWriter.layerConfig().pipe(Layer.provide(deps)))).pipe(
        Effect.scoped,
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([...env, ["AWS_ACCOUNT_ID", "nope"]])))
      )
      // The variable is named, not the option it feeds, in one line.
      if (error._tag !== "ConfigError" || error._op !== "InvalidData") return assert.fail(String(error))
      assert.deepStrictEqual(error.path, ["AWS_ACCOUNT_ID"])
      assert.strictEqual(String(error), `AWS_ACCOUNT_ID must be 12 digits, got "nope"`)
      const missing = yield* Effect.flip(Layer.build(KinesisWriter.layerConfig().pipe(Layer.provide(deps)))).pipe(
        Effect.scoped,
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
      )
      assert.include(String(missing), "KINESIS_STREAM_NAME")
    }))
})
