import { ServeError } from "@effect/platform/HttpServerError"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as Util from "node:util"
import {
  CompressionError,
  DecodeError,
  KinesisError,
  LargePayloadStoreError,
  MetricsServerError,
  SerializationError,
  WriteBatchError
} from "../src/index.js"
import { RecordGenerator } from "../src/testing.js"

const root = fileURLToPath(new URL("..", import.meta.url))

const undelivered = (n: number) =>
  RecordGenerator.makeDataFiles(n).map((record, index) => ({
    record,
    index,
    recordId: `00000000-0000-4000-8000-${String(index).padStart(12, "0")}`,
    errorCode: index % 10 === 0 ? "InternalFailure" : "ProvisionedThroughputExceededException",
    maybeDelivered: index % 10 === 0,
    attempts: 4
  }))

const batchError = new WriteBatchError({
  streamName: "orders",
  undelivered: undelivered(100),
  delivered: 400,
  attempts: 4,
  interrupted: false,
  cause: new KinesisError({
    operation: "PutRecords",
    streamName: "orders",
    errorName: "InternalFailure",
    httpStatus: 500,
    retryable: true,
    cause: new Error("We encountered an internal error. Please try again.")
  })
})

/**
 * Checks a printed form names the counts and no record's content: short once stack frames
 * (as many as `Error.stackTraceLimit`, as long as the runner's file paths) are left out.
 */
const assertSummary = (printed: string) => {
  const lines = printed.split("\n")
  assert.isBelow(lines.filter((l) => !/^\s+at /.test(l)).join("\n").length, 2_000, printed)
  assert.isBelow(lines.length, 60, printed)
  assert.include(printed, "100 of 500 records not delivered to stream orders after 4 attempt(s)")
  assert.include(printed, "ProvisionedThroughputExceededException ×90")
  assert.include(printed, "InternalFailure ×10")
  assert.notInclude(printed, "$typeName")
  assert.notInclude(printed, "columnSizes")
}

describe("WriteBatchError: printed as a summary, the records kept as data", () => {
  it("util.inspect (console.log) is the message, the first records and the stack", () => {
    const printed = Util.inspect(batchError)
    assertSummary(printed)
    assert.include(printed, `#0 00000000-0000-4000-8000-000000000000 ${batchError.undelivered[0]!.record.filePath}`)
    assert.include(printed, "… and 97 more (error.undelivered holds them all)")
    assert.include(printed, "We encountered an internal error")
    assert.match(printed, /\n\s+at /)
  })

  it("toString is the same without the stack; toJSON is a summary JSON.stringify can write", () => {
    assertSummary(String(batchError))
    const json = JSON.stringify(batchError)
    assertSummary(json)
    const parsed = JSON.parse(json) as Record<string, unknown>
    assert.deepInclude(parsed, {
      _tag: "WriteBatchError",
      streamName: "orders",
      delivered: 400,
      undelivered: 100,
      maybeDelivered: 10,
      errorCodes: { InternalFailure: 10, ProvisionedThroughputExceededException: 90 },
      attempts: 4,
      interrupted: false
    })
    assert.strictEqual((parsed["firstUndelivered"] as Array<unknown>).length, 3)
    assert.deepStrictEqual(parsed["cause"], { _tag: "KinesisError", message: batchError.cause!.message })
  })

  it("the records stay available: error.undelivered holds all 100, each with its record", () => {
    assert.strictEqual(batchError.undelivered.length, 100)
    assert.strictEqual(batchError.undelivered[42]!.record.filePath.startsWith("s3://"), true)
    assert.notInclude(Object.keys(batchError), "undelivered")
  })

  it.effect("an Effect.runPromise rejection (FiberFailure): message, inspection and JSON stay short", () =>
    Effect.gen(function*() {
      const rejection = yield* Effect.promise(() => Effect.runPromise(Effect.fail(batchError)).catch((e: unknown) => e))
      assert.instanceOf(rejection, Error)
      if (!(rejection instanceof Error)) return
      assertSummary(rejection.message)
      assertSummary(Util.inspect(rejection))
      assertSummary(JSON.stringify(rejection))
    }))

  it("an uncaught runPromise rejection: what Node prints is short", async () => {
    const { stderr } = await Util.promisify(execFile)(
      process.execPath,
      ["--import", "tsx", `${root}test/fixtures/uncaughtWriteBatchError.ts`],
      { cwd: root, encoding: "utf8" }
    ).catch((e: { stderr: string }) => ({ stderr: e.stderr }))
    assert.include(stderr, "WriteBatchError: 100 of 500 records not delivered to stream orders after 4 attempt(s)")
    // The summary the README promises: codes, the first records, what is left.
    assert.include(stderr, "ProvisionedThroughputExceededException ×100")
    assert.include(stderr, "#0 00000000-0000-4000-8000-000000000000")
    assert.include(stderr, "… and 97 more (error.undelivered holds them all)")
    assert.isBelow(stderr.length, 4_000, stderr)
    assert.isBelow(stderr.split("\n").length, 60, stderr)
    assert.notInclude(stderr, "$typeName")
  }, 60_000)
})

describe("errors carry their cause's reason in their message, on one line", () => {
  const sdk = Object.assign(new Error("Stream orders under account 123456789012 not found.\nsecond line"), {
    name: "ResourceNotFoundException"
  })

  it("KinesisError: the SDK's message after the error name", () => {
    const error = new KinesisError({
      operation: "PutRecords",
      streamName: "orders",
      errorName: "ResourceNotFoundException",
      httpStatus: 400,
      retryable: false,
      cause: sdk
    })
    assert.strictEqual(
      error.message,
      "Kinesis PutRecords on stream orders failed: ResourceNotFoundException HTTP 400 (not retryable): Stream orders under account 123456789012 not found."
    )
  })

  it("LargePayloadStoreError: the SDK's message", () => {
    const error = new LargePayloadStoreError({
      operation: "write",
      bucket: "b",
      key: "k",
      errorName: "NoSuchBucket",
      httpStatus: 404,
      retryable: false,
      cause: new Error("The specified bucket does not exist")
    })
    assert.strictEqual(
      error.message,
      "large payload write failed for s3://b/k: NoSuchBucket HTTP 404: The specified bucket does not exist"
    )
  })

  it("MetricsServerError: the code and the listen error under the platform's empty ServeError", () => {
    const listen = Object.assign(new Error("listen EADDRINUSE: address already in use 127.0.0.1:19470"), {
      code: "EADDRINUSE"
    })
    const error = new MetricsServerError({
      host: "127.0.0.1",
      port: 19470,
      code: "EADDRINUSE",
      cause: new ServeError({ cause: listen })
    })
    assert.strictEqual(
      error.message,
      "serving metrics on 127.0.0.1:19470 failed: EADDRINUSE: listen EADDRINUSE: address already in use 127.0.0.1:19470"
    )
  })

  it("SerializationError, CompressionError, DecodeError: the cause's message, unless the reason already says it", () => {
    const boom = new Error("invalid uint64: -1")
    assert.strictEqual(
      new SerializationError({ subject: "DataFileV1", reason: "bad int64", recordIndex: 3, cause: boom }).message,
      "cannot serialize DataFileV1 (record #3): bad int64: invalid uint64: -1"
    )
    assert.strictEqual(
      new SerializationError({ subject: "DataFileV1", reason: "invalid uint64: -1", cause: boom }).message,
      "cannot serialize DataFileV1: invalid uint64: -1"
    )
    assert.strictEqual(
      new CompressionError({ reason: "worker died", cause: new Error("exit code 1") }).message,
      "cannot gzip record: worker died: exit code 1"
    )
    assert.strictEqual(
      new DecodeError({
        reason: "Gunzip",
        detail: "not a complete gzip stream",
        cause: new Error("unexpected end of file")
      })
        .message,
      "cannot decode record (Gunzip): not a complete gzip stream: unexpected end of file"
    )
  })

  it("no cause, or a cause without a message, adds nothing", () => {
    assert.strictEqual(
      new KinesisError({ operation: "PutRecords", streamName: "s", errorName: "ETIMEDOUT", retryable: true }).message,
      "Kinesis PutRecords on stream s failed: ETIMEDOUT (retryable)"
    )
    assert.strictEqual(
      new DecodeError({ reason: "Protobuf", detail: "x", cause: {} }).message,
      "cannot decode record (Protobuf): x"
    )
  })
})
