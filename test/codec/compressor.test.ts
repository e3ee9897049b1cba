import { assert, describe, it } from "@effect/vitest"
import { Effect, FastCheck as fc, Fiber, Layer, Logger, LogLevel, TestClock } from "effect"
import * as WorkerThreads from "node:worker_threads"
import * as Zlib from "node:zlib"
import { Compressor } from "../../src/Compressor.js"
import { KinesisWriter, LargePayloadStore, LargePayloadStoreError } from "../../src/index.js"
import { gzipBound } from "../../src/internal/core/gzipBound.js"
import { EnvelopePacker, pack, PackBuffers } from "../../src/internal/envelopePacker.js"
import { gzip, gzipView } from "../../src/internal/gzipEngine.js"
import { gzipOptions } from "../../src/internal/gzipOptions.js"
import { RecordGenerator } from "../../src/testing.js"
import { capturingLogs } from "../support/logs.js"
import { writerLayer } from "../support/writerLayers.js"

const payloads = Array.from({ length: 300 }, (_, i) => new TextEncoder().encode(`payload ${i} `.repeat(10 + (i % 50))))

describe("Compressor", () => {
  it.scoped("the worker pool gzips a batch into standard gzip streams, in order", () =>
    Effect.gen(function*() {
      const compressor = yield* Compressor.makeWorkerPool({ workers: 2 })
      const gz = yield* compressor.gzipPacked(pack(payloads), 6)
      assert.strictEqual(gz.length, payloads.length)
      gz.forEach((g, i) => assert.deepStrictEqual(new Uint8Array(Zlib.gunzipSync(g)), payloads[i]))
      // Several batches at once over the pool.
      const many = yield* Effect.forEach([1, 2, 3, 4], () => compressor.gzipPacked(pack(payloads), 1), {
        concurrency: 4
      })
      assert.isTrue(many.every((batch) => batch.length === payloads.length))
      // The caller's payloads are intact: the pool transfers the packed copy, not them.
      assert.isTrue(payloads.every((p) => p.length > 0))
    }))

  it.scoped("an invalid level is a CompressionError from the worker and from the main thread", () =>
    Effect.gen(function*() {
      const compressor = yield* Compressor.makeWorkerPool({ workers: 1 })
      const fromWorker = yield* Effect.flip(compressor.gzipPacked(pack(payloads), 42))
      assert.strictEqual(fromWorker._tag, "CompressionError")
      const fromMain = yield* Effect.flip(Compressor.mainThread.gzipPacked(pack(payloads.slice(0, 2)), 42))
      assert.strictEqual(fromMain._tag, "CompressionError")
    }))
})

describe("gzip options sized to the payload", () => {
  // The deflate window is sized to each payload to save zlib's set-up; that must never change a
  // byte of what is on the wire, nor break the bound the writer checks record sizes with.
  const payload = fc.oneof(
    fc.uint8Array({ maxLength: 40_000 }),
    fc.integer({ min: 0, max: 70_000 }).map((n) => new Uint8Array(n).fill(7)),
    fc.uint8Array({ maxLength: 40_000 }).map((bytes) => bytes.map((b) => b & 3))
  )
  it("give the same bytes as zlib's defaults, within gzipBound, at every level", () =>
    fc.assert(
      fc.property(payload, fc.constantFrom(-1, 0, 1, 6, 9), (bytes, level) => {
        const sized = Zlib.gzipSync(bytes, gzipOptions(bytes.length, level))
        assert.isTrue(sized.equals(Zlib.gzipSync(bytes, { level })))
        assert.isAtMost(sized.length, gzipBound(bytes.length))
      }),
      { numRuns: 300 }
    ))
})

describe("gzip on zlib's native handle (gzipEngine)", () => {
  // No stream object and a reused output buffer: the output must be zlib.gzipSync's byte for
  // byte, whatever was compressed before it (a reset deflate stream fails this: its window
  // keeps the previous payload), across the 16 KiB output windows (level 0 cuts its stored
  // blocks by them) and past 1 MiB.
  const payload = fc.oneof(
    fc.uint8Array({ maxLength: 70_000 }),
    fc.integer({ min: 0, max: 1_200_000 }).map((n) => new Uint8Array(n).fill(7)),
    fc.uint8Array({ maxLength: 40_000 }).map((bytes) => bytes.map((b) => b & 3))
  )
  it("gives zlib.gzipSync's bytes at every level, payload after payload", () =>
    fc.assert(
      fc.property(fc.array(payload, { minLength: 1, maxLength: 4 }), fc.integer({ min: -1, max: 9 }), (xs, level) => {
        for (const bytes of xs) {
          const expected = Zlib.gzipSync(bytes, { level })
          assert.isTrue(expected.equals(gzip(bytes, level)))
          assert.isTrue(expected.equals(gzipView(bytes, level)))
        }
      }),
      { numRuns: 150 }
    ))

  it("an invalid level throws zlib's error", () => {
    assert.throws(() => gzip(new Uint8Array([1]), 42), /level/)
  })
})

describe("packing buffers given back", () => {
  const info = { creationTime: 1n, accountId: "a", logGroupId: "g", schemaName: "s" }
  const packed = (buffers: PackBuffers) => {
    const packer = new EnvelopePacker(info, 64 * 1024, buffers)
    for (const bytes of payloads) packer.add(bytes, "s3://b/f.parquet", "id")
    return packer.take()
  }

  it.scoped("the worker pool sends the packed buffer back and the packer writes the next chunk into it", () =>
    Effect.gen(function*() {
      const compressor = yield* Compressor.makeWorkerPool({ workers: 1 })
      const buffers = new PackBuffers()
      const first = packed(buffers)
      const gz = yield* compressor.gzipPacked(first, 6)
      gz.forEach((g, i) => assert.isTrue(Zlib.gunzipSync(g).length > payloads[i]!.length))
      // Transferred to the worker and back: the packer's next buffer is that memory again.
      assert.strictEqual(first.buffer.buffer.byteLength, 0)
      const reused = buffers.acquire(1)
      assert.isAtLeast(reused.length, first.buffer.length)
    }))

  it.effect("the calling thread gives it back once it is read, and the output does not depend on it", () =>
    Effect.gen(function*() {
      const buffers = new PackBuffers()
      const first = packed(buffers)
      const gz = yield* Compressor.mainThread.gzipPacked(first, 6)
      const again = buffers.acquire(1)
      assert.strictEqual(again.buffer, first.buffer.buffer)
      again.fill(0)
      gz.forEach((g, i) => assert.isTrue(Zlib.gunzipSync(g).length > payloads[i]!.length))
    }))

  it("keeps at most maxSpare buffers and maxSpareBytes, the largest", () => {
    const buffers = new PackBuffers(2, 1000)
    for (const n of [100, 300, 200, 2000]) buffers.release(new ArrayBuffer(n))
    assert.strictEqual(buffers.acquire(1).length, 300)
    assert.strictEqual(buffers.acquire(1).length, 200)
    // None left: a new buffer of the size asked for.
    assert.strictEqual(buffers.acquire(50).length, 50)
  })
})

describe("the writer's compression pool", () => {
  it.live(
    "a batch that fails while the pool is starting does not break the batches after it",
    () =>
      Effect.gen(function*() {
        const memory = yield* LargePayloadStore.makeMemory()
        let refuse = true
        const store = Layer.succeed(
          LargePayloadStore,
          LargePayloadStore.of({
            ...memory.service,
            write: (key, bytes) =>
              refuse
                ? Effect.fail(
                  new LargePayloadStoreError({
                    operation: "write",
                    bucket: "memory",
                    key,
                    errorName: "AccessDenied",
                    retryable: false
                  })
                )
                : memory.service.write(key, bytes)
          })
        )
        yield* Effect.gen(function*() {
          const writer = yield* KinesisWriter
          // 40 small records start the pool; the large one fails its upload at once.
          const batch = [
            ...RecordGenerator.makeDataFiles(40),
            RecordGenerator.makeDataFile({ seed: 99, serializedBytes: 3_000 })
          ]
          assert.strictEqual((yield* Effect.flip(writer.writeBatch(batch)))._tag, "LargePayloadStoreError")
          refuse = false
          const result = yield* writer.writeBatch(batch)
          assert.strictEqual(result.records, 41)
        }).pipe(
          Effect.provide(writerLayer(undefined, { largePayloadThreshold: 2_000, compressionWorkers: 1 }, { store }))
        )
      }),
    30_000
  )
})

describe("a worker pool that cannot start", () => {
  it.scopedLive(
    "falls back to the calling thread after startTimeout instead of waiting for ever, with one warning",
    () =>
      Effect.gen(function*() {
        const { logs, result } = yield* capturingLogs(Effect.gen(function*() {
          const compressor = yield* Compressor.makeLazyWorkerPool({
            workers: 1,
            startTimeout: "1 second",
            spawn: () => new WorkerThreads.Worker(new URL("./no-such-worker.js", import.meta.url))
          })
          const gz = yield* compressor.gzipPacked(pack(payloads), 6).pipe(Effect.timeout("10 seconds"))
          gz.forEach((g, i) => assert.deepStrictEqual(new Uint8Array(Zlib.gunzipSync(g)), payloads[i]))
          // Later batches do not wait again.
          const again = yield* compressor.gzipPacked(pack(payloads), 6).pipe(Effect.timeout("1 second"))
          assert.strictEqual(again.length, payloads.length)
        }))
        yield* result
        // The worker that is missing on purpose: @effect/platform's WorkerError, then the pool's one fallback warning.
        assert.deepStrictEqual(
          logs.filter((l) => LogLevel.greaterThanEqual(l.level, LogLevel.Info)).map((l) => [
            l.level.label,
            l.annotations["package"] ?? "",
            l.message,
            l.cause.split("\n")[0]
          ]),
          [
            ["WARN", "@effect/platform", "", "WorkerError: An unexpected error occurred"],
            ["WARN", "", "compression workers unavailable: compressing on the calling thread", ""]
          ]
        )
      }),
    30_000
  )

  // The start is bounded on the live clock: a TestClock (it.scoped) neither stalls the bound
  // nor fires it early.
  it.scoped(
    "under a TestClock nobody advances, still falls back after startTimeout (real time)",
    () =>
      Effect.gen(function*() {
        const compressor = yield* Compressor.makeLazyWorkerPool({
          workers: 1,
          startTimeout: "1 second",
          spawn: () => new WorkerThreads.Worker(new URL("./no-such-worker.js", import.meta.url))
        })
        const gz = yield* compressor.gzipPacked(pack(payloads), 6)
        assert.strictEqual(gz.length, payloads.length)
      }),
    15_000
  )

  it.scoped("a working pool is not timed out by a TestClock advanced while it starts", () => {
    const logged: Array<string> = []
    return Effect.gen(function*() {
      const compressor = yield* Compressor.makeLazyWorkerPool({ workers: 1, startTimeout: "10 seconds" })
      const fiber = yield* Effect.fork(compressor.gzipPacked(pack(payloads), 6))
      // An hour of test time passes while the thread starts: the bound is real time, not this.
      yield* TestClock.adjust("1 hour")
      const gz = yield* Fiber.join(fiber)
      gz.forEach((g, i) => assert.deepStrictEqual(new Uint8Array(Zlib.gunzipSync(g)), payloads[i]))
      assert.deepStrictEqual(logged, [], "the pool gave up and fell back to the calling thread")
    }).pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => logged.push(String(message)))))
    )
  }, 15_000)
})
