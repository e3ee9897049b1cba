/**
 * The one options module: one duration grammar for every duration option of the writer and
 * the producer, NaN / negative / infinite values refused and printed as they are, errors from
 * the environment naming the variable, every configuration error one line, and
 * `maxRequestBytes` settled against the stream's record limit. The decisions live in
 * `src/internal/core/`, which imports nothing from Effect or the AWS SDK.
 */
import { assert, describe, it } from "@effect/vitest"
import type { ConfigError } from "effect"
import { Cause, Config, ConfigProvider, Duration, Effect, Either, Layer, Runtime } from "effect"
import * as fc from "fast-check"
import { readdirSync, readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import type { KinesisProducerOptions, KinesisWriterOptions } from "../../src/index.js"
import { KinesisMetrics, KinesisProducer, KinesisWriter, LargePayloadStore } from "../../src/index.js"
import { fitStreamLimits, resolveProducerOptions, resolveWriterConfig } from "../../src/internal/config.js"
import { KinesisTestRecorder } from "../../src/KinesisTest.js"
import { KinesisTest, RecordGenerator } from "../../src/testing.js"
import { baseOptions } from "../support/writerLayers.js"

const MiB = 1024 * 1024
const deps = Layer.mergeAll(KinesisTest.layer(), LargePayloadStore.layerMemory(), KinesisMetrics.layerNoop)

const writerOption = (field: "backoffBase" | "backoffCap" | "requestTimeout", value: unknown) =>
  Either.map(
    resolveWriterConfig({ ...baseOptions, [field]: value } as KinesisWriterOptions),
    (config) => config[field]
  )
const producerOption = (field: "linger" | "recordTtl" | "shutdownTimeout", value: unknown) =>
  Either.map(
    resolveProducerOptions(
      // recordTtl must be at least linger: the least linger and a long TTL keep the other valid.
      { linger: 1e-6, recordTtl: "1000 weeks", [field]: value } as KinesisProducerOptions,
      MiB
    ),
    (options) => options[field]
  )

/** Every duration option, read the way its module reads it. */
const durationOptions: ReadonlyArray<readonly [string, (value: unknown) => Either.Either<Duration.Duration, unknown>]> =
  [
    ["backoffBase", (v) => writerOption("backoffBase", v)],
    ["backoffCap", (v) => writerOption("backoffCap", v)],
    ["requestTimeout", (v) => writerOption("requestTimeout", v)],
    ["linger", (v) => producerOption("linger", v)],
    ["recordTtl", (v) => producerOption("recordTtl", v)],
    ["shutdownTimeout", (v) => producerOption("shutdownTimeout", v)]
  ]

/** The ways of writing `millis` the grammar takes, all meaning the same. */
const formsOf = (millis: number): Array<unknown> => {
  const forms: Array<unknown> = [
    millis,
    `${millis} ms`,
    `${millis}ms`,
    `${millis} millis`,
    `${millis} milliseconds`,
    ` ${millis}  millis `,
    Duration.millis(millis),
    BigInt(millis) * 1_000_000n,
    `${millis * 1000} micros`
  ]
  if (millis % 1000 === 0) {
    const s = millis / 1000
    forms.push(`${s} s`, `${s}s`, `${s} sec`, `${s} second${s === 1 ? "" : "s"}`, `${s} seconds`, [s, 0])
    forms.push(Duration.seconds(s))
  }
  if (millis % 60_000 === 0) forms.push(`${millis / 60_000} min`, `${millis / 60_000} minutes`)
  return forms
}

const messageOf = (result: Either.Either<unknown, unknown>): string => {
  if (Either.isRight(result)) return assert.fail(`accepted: ${String(result.right)}`)
  const error = result.left as ConfigError.ConfigError
  assert.strictEqual(error._tag, "ConfigError")
  return String(error)
}

describe("one duration grammar for every duration option", () => {
  it.prop(
    "every accepted form of a duration means the same for every option: numbers are milliseconds, text takes ms, s, seconds, millis…",
    [
      fc.oneof(
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.integer({ min: 1, max: 10_000 }).map((s) => s * 1000),
        fc.integer({ min: 1, max: 100 }).map((m) => m * 60_000)
      )
    ],
    ([millis]) => {
      for (const [name, read] of durationOptions) {
        for (const form of formsOf(millis)) {
          const read_ = read(form)
          if (Either.isLeft(read_)) return assert.fail(`${name} refused ${String(form)}: ${String(read_.left)}`)
          assert.strictEqual(Duration.toMillis(read_.right), millis, `${name} = ${String(form)}`)
        }
      }
    },
    { fastCheck: { seed: 20261206, numRuns: 200 } }
  )

  it.prop(
    "NaN, negative and infinite values are refused by every duration option, and the message prints the value as given",
    [
      fc.oneof(
        fc.constant(Number.NaN),
        fc.constant(Number.POSITIVE_INFINITY),
        fc.constant(Number.NEGATIVE_INFINITY),
        fc.integer({ min: 1, max: 1_000_000 }).map((n) => -n),
        fc.integer({ min: 1, max: 1_000 }).map((n) => `-${n} ms`),
        fc.integer({ min: 1, max: 1_000 }).map((n) => `-${n} seconds`),
        fc.constant("NaN ms"),
        fc.constant("Infinity"),
        fc.constant([Number.NaN, 0]),
        fc.constant(-5n)
      )
    ],
    ([value]) => {
      const shown = typeof value === "string"
        ? JSON.stringify(value)
        : typeof value === "bigint"
        ? `${value}n`
        : Array.isArray(value)
        ? `[${value.map(String).join(", ")}]`
        : String(value)
      for (const [name, read] of durationOptions) {
        const message = messageOf(read(value))
        assert.isTrue(message.startsWith(`${name} must `), message)
        assert.isTrue(message.endsWith(`, got ${shown}`), message)
        assert.notInclude(message, "null")
        assert.notInclude(message, "\n")
      }
    },
    { fastCheck: { seed: 20261207, numRuns: 100 } }
  )

  it("Duration.infinity is refused as Infinity; zero is refused except for shutdownTimeout", () => {
    for (const [name, read] of durationOptions) {
      assert.include(messageOf(read(Duration.infinity)), "got Infinity", name)
      if (name === "shutdownTimeout") assert.strictEqual(Duration.toMillis(Either.getOrThrow(read(0))), 0)
      else assert.include(messageOf(read("0 ms")), `${name} must be a positive duration, got "0 ms"`)
    }
  })

  it("a bare number in text and an unknown unit are refused, naming the grammar", () => {
    for (const [name, read] of durationOptions) {
      for (const value of ["100", "10 parsecs", "", "ms"]) {
        const message = messageOf(read(value))
        assert.include(message, `${name} must be a duration such as "100 ms", "30 s", "10 seconds"`)
        assert.include(message, `got ${JSON.stringify(value)}`)
      }
    }
  })

  it.effect("the README's producer options build a producer: linger \"100 ms\", recordTtl \"30 s\", shutdownTimeout \"10 seconds\"", () =>
    Effect.gen(function*() {
      const producer = yield* KinesisProducer.pipe(
        Effect.provide(
          KinesisProducer.layer({ linger: "100 ms", recordTtl: "30 s", shutdownTimeout: "10 seconds" }).pipe(
            Layer.provideMerge(KinesisWriter.layer({ ...baseOptions, backoffBase: "100 ms" }).pipe(Layer.provide(deps)))
          )
        )
      )
      assert.strictEqual(producer.streamName, baseOptions.streamName)
    }))

  it.effect("shutdownTimeout NaN fails the producer's layer with a ConfigError that prints NaN", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(
          KinesisProducer.layer({ shutdownTimeout: Number.NaN }).pipe(
            Layer.provide(KinesisWriter.layer(baseOptions).pipe(Layer.provide(deps)))
          )
        )
      ).pipe(Effect.scoped)
      if (error._tag !== "ConfigError" || error._op !== "InvalidData") return assert.fail(String(error))
      assert.deepStrictEqual(error.path, ["shutdownTimeout"])
      assert.strictEqual(
        String(error),
        "shutdownTimeout must be a duration such as \"100 ms\", \"30 s\", \"10 seconds\" or a number of milliseconds, got NaN"
      )
    }))

  it("integer options print NaN and Infinity as such", () => {
    for (const field of ["maxRetries", "distributionFactor", "largePayloadThreshold", "maxConcurrentCalls"] as const) {
      for (const value of [Number.NaN, Number.POSITIVE_INFINITY]) {
        const message = messageOf(resolveWriterConfig({ ...baseOptions, [field]: value }))
        assert.isTrue(message.startsWith(`${field} must be an integer`), message)
        assert.isTrue(message.endsWith(`got ${String(value)}`), message)
      }
    }
    const message = messageOf(resolveProducerOptions({ maxBufferedRecords: Number.NaN }, MiB))
    assert.strictEqual(message, "maxBufferedRecords must be a positive integer, got NaN")
  })
})

describe("configuration errors: the variable named, one readable line", () => {
  const env = new Map([
    ["KINESIS_STREAM_NAME", "env-stream"],
    ["KINESIS_LOG_GROUP_ID", "lg"],
    ["KINESIS_SCHEMA_NAME", "sc"],
    ["AWS_ACCOUNT_ID", "210987654321"]
  ])
  const fromEnv = (overrides: ReadonlyArray<readonly [string, string]>, without: ReadonlyArray<string> = []) =>
    Effect.flip(Layer.build(KinesisWriter.layerConfig().pipe(Layer.provide(deps)))).pipe(
      Effect.scoped,
      Effect.withConfigProvider(
        ConfigProvider.fromMap(new Map([...env, ...overrides].filter(([k]) => !without.includes(k))))
      )
    )

  const cases: ReadonlyArray<readonly [string, string, string]> = [
    ["AWS_ACCOUNT_ID", "1234", "AWS_ACCOUNT_ID must be 12 digits, got \"1234\""],
    [
      "KINESIS_STREAM_NAME",
      "has space",
      "KINESIS_STREAM_NAME must be 1–128 characters of [a-zA-Z0-9_.-], got \"has space\""
    ],
    ["KINESIS_MAX_RETRIES", "-1", "KINESIS_MAX_RETRIES must be an integer from 0 to 1000, got -1"],
    ["KINESIS_MAX_RETRIES", "0x3", "KINESIS_MAX_RETRIES must be a decimal integer, got \"0x3\""],
    [
      "KINESIS_MAX_REQUEST_BYTES",
      "99999999",
      "KINESIS_MAX_REQUEST_BYTES must be an integer from 1024 to 10485760, got 99999999"
    ],
    ["KINESIS_REQUEST_TIMEOUT", "-30 s", "KINESIS_REQUEST_TIMEOUT must not be negative, got \"-30 s\""],
    [
      "KINESIS_BACKOFF_BASE",
      "100",
      "KINESIS_BACKOFF_BASE must be a duration such as \"100 ms\", \"30 s\", \"10 seconds\""
    ],
    ["KINESIS_AGGREGATION_MAX_RECORDS", "1", "KINESIS_AGGREGATION_MAX_RECORDS must be an integer from 2 to 100000"]
  ]
  for (const [variable, value, expected] of cases) {
    it.effect(`${variable}=${value} fails naming ${variable}, in one line`, () =>
      Effect.gen(function*() {
        const error = yield* fromEnv([[variable, value]])
        if (error._tag !== "ConfigError" || error._op !== "InvalidData") return assert.fail(String(error))
        assert.deepStrictEqual(error.path, [variable])
        assert.isTrue(String(error).startsWith(expected), String(error))
        assert.notInclude(String(error), "\n")
        assert.notInclude(String(error), "Invalid data at")
      }))
  }

  it.effect("the durations of the environment take the same grammar as the options", () =>
    Effect.gen(function*() {
      for (const text of ["100 ms", "100ms", "100 millis", "0.1 s", "100 milliseconds"]) {
        const options = yield* Config.unwrap(KinesisWriter.fromEnv).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([...env, ["KINESIS_BACKOFF_BASE", text]])))
        )
        assert.strictEqual(Duration.toMillis(options.backoffBase as Duration.Duration), 100, text)
      }
    }))

  it.effect("several errors at once (a variable missing, another bad) print as one line", () =>
    Effect.gen(function*() {
      const error = yield* fromEnv([["KINESIS_MAX_RETRIES", "many"]], ["KINESIS_STREAM_NAME"])
      const line = String(error)
      assert.notInclude(line, "\n")
      assert.include(line, "KINESIS_STREAM_NAME")
      assert.notInclude(line, "Invalid data at")
    }))

  it.effect("an uncaught configuration error's headline, under Effect.runPromise and runMain, is that line", () =>
    Effect.gen(function*() {
      const error = yield* fromEnv([["AWS_ACCOUNT_ID", "1234"]])
      const line = "AWS_ACCOUNT_ID must be 12 digits, got \"1234\""
      // What Effect.runPromise rejects with, and what runMain's logger prints first.
      assert.strictEqual(Runtime.makeFiberFailure(Cause.fail(error)).message, line)
      assert.strictEqual(Cause.pretty(Cause.fail(error)).split("\n")[0], `Error: ${line}`)
    }))

  it.effect("an option's error names the option, in one line", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(KinesisWriter.layer({ ...baseOptions, accountId: "1234" }).pipe(Layer.provide(deps)))
      ).pipe(Effect.scoped)
      assert.strictEqual(String(error), "accountId must be 12 digits, got \"1234\"")
    }))

  it.effect("text options with a lone surrogate (which every record's info and key would carry as U+FFFD) are refused", () =>
    Effect.gen(function*() {
      for (const field of ["logGroupId", "schemaName"] as const) {
        const error = yield* Effect.flip(
          Layer.build(KinesisWriter.layer({ ...baseOptions, [field]: "lg\uD800" }).pipe(Layer.provide(deps)))
        ).pipe(Effect.scoped)
        assert.strictEqual(
          String(error),
          `${field} must be well-formed text (it holds a lone UTF-16 surrogate), got "lg\\ud800"`
        )
      }
    }))
})

describe("maxRequestBytes against the stream's record limit", () => {
  const build = (options: Partial<KinesisWriterOptions>, recordLimitKiB?: number) =>
    KinesisWriter.layer({ ...baseOptions, compressionWorkers: 0, ...options }).pipe(
      Layer.provideMerge(
        Layer.mergeAll(
          KinesisTest.layer(
            KinesisTest.acceptAll,
            recordLimitKiB === undefined ? {} : { maxRecordSizeInKiB: recordLimitKiB }
          ),
          LargePayloadStore.layerMemory(),
          KinesisMetrics.layerNoop
        )
      )
    )

  it.effect("a value below the record limit is refused with a ConfigError naming both (2,048 bytes on a 1 MiB stream)", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(build({ maxRequestBytes: 2048 }))).pipe(Effect.scoped)
      if (error._tag !== "ConfigError" || error._op !== "InvalidData") return assert.fail(String(error))
      assert.deepStrictEqual(error.path, ["maxRequestBytes"])
      assert.include(String(error), "record limit (1048576 bytes")
      assert.isTrue(String(error).endsWith("got 2048"))
    }))

  it.effect("the check uses the limit the stream reports: 5 MiB refused on a 10 MiB stream, 64 KiB accepted on a 64 KiB one", () =>
    Effect.gen(function*() {
      const refused = yield* Effect.flip(
        Layer.build(build({ maxRequestBytes: 5 * MiB, readStreamRecordLimit: true }, 10 * 1024))
      ).pipe(Effect.scoped)
      assert.include(String(refused), "maxRequestBytes must be at least the stream's record limit (10485760 bytes")
      const writer = yield* KinesisWriter.pipe(
        Effect.provide(build({ maxRequestBytes: 64 * 1024, readStreamRecordLimit: true }, 64))
      )
      yield* writer.writeBatch(RecordGenerator.makeDataFiles(3))
    }))

  it("left out, it is 5 MiB, or the stream's record limit when larger (up to 10 MiB)", () => {
    const settings = Either.getOrThrow(resolveWriterConfig(baseOptions))
    const fitted = (limit: number) => Either.getOrThrow(fitStreamLimits(settings, limit)).maxRequestBytes
    assert.strictEqual(fitted(MiB), 5 * MiB)
    assert.strictEqual(fitted(5 * MiB), 5 * MiB)
    assert.strictEqual(fitted(6 * MiB), 6 * MiB)
    assert.strictEqual(fitted(10 * MiB), 10 * MiB)
  })

  it.effect(
    "on a stream allowing 10 MiB records, a 6 MiB record goes inline in a call within the request bytes",
    () =>
      Effect.gen(function*() {
        const writer = yield* KinesisWriter
        const big = RecordGenerator.makeDataFile({ seed: 9, serializedBytes: 6 * MiB })
        const result = yield* writer.writeBatch([RecordGenerator.makeDataFile({ seed: 8 }), big])
        assert.strictEqual(result.largePayloads, 0)
        const calls = yield* (yield* KinesisTestRecorder).calls
        const bytes = calls.map((c) =>
          c.request.records.reduce((n, r) => n + r.data.length + Buffer.byteLength(r.partitionKey), 0)
        )
        assert.isAbove(Math.max(...bytes), 6 * MiB)
        for (const b of bytes) assert.isAtMost(b, 10 * MiB)
      }).pipe(
        Effect.provide(build({ readStreamRecordLimit: true, largePayloadThreshold: 10 * MiB }, 10 * 1024))
      ),
    { timeout: 60_000 }
  )
})

describe("the core decides without effects", () => {
  it("src/internal/core/ and what it imports import nothing from effect or @aws-sdk", () => {
    const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../src/internal/core")
    const seen = new Set<string>()
    const offending: Array<string> = []
    const visit = (file: string) => {
      if (seen.has(file)) return
      seen.add(file)
      const text = readFileSync(file, "utf8")
      for (
        const match of text.matchAll(
          /(?:import|export)[^"']*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g
        )
      ) {
        const spec = match[1] ?? match[2]!
        if (spec.startsWith(".")) visit(resolve(dirname(file), spec.replace(/\.js$/, ".ts")))
        else if (
          spec === "effect" || spec.startsWith("effect/") || spec.startsWith("@effect/") || spec.startsWith("@aws-sdk/")
        ) {
          offending.push(`${file}: ${spec}`)
        }
      }
    }
    const files = readdirSync(root).filter((f) => f.endsWith(".ts"))
    assert.isAbove(files.length, 0)
    for (const f of files) visit(join(root, f))
    assert.deepStrictEqual(offending, [])
  })
})
