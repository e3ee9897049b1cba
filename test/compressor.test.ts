import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Zlib from "node:zlib"
import { Compressor } from "../src/compression/Compressor.js"

const payloads = Array.from({ length: 300 }, (_, i) => new TextEncoder().encode(`payload ${i} `.repeat(10 + (i % 50))))

describe("Compressor", () => {
  it.scoped("the worker pool gzips a batch into standard gzip streams, in order", () =>
    Effect.gen(function*() {
      const compressor = yield* Compressor.makeWorkerPool({ workers: 2 })
      const gz = yield* compressor.gzipAll(payloads, 6)
      assert.strictEqual(gz.length, payloads.length)
      gz.forEach((g, i) => assert.deepStrictEqual(new Uint8Array(Zlib.gunzipSync(g)), payloads[i]))
      // Several batches at once over the pool.
      const many = yield* Effect.forEach([1, 2, 3, 4], () => compressor.gzipAll(payloads, 1), { concurrency: 4 })
      assert.isTrue(many.every((batch) => batch.length === payloads.length))
      // The caller's buffers are intact (the pool transfers a packed copy, not them).
      assert.strictEqual(payloads[0]!.length > 0, true)
    }))

  it.scoped("an invalid level is a CompressionError from the worker and from the main thread", () =>
    Effect.gen(function*() {
      const compressor = yield* Compressor.makeWorkerPool({ workers: 1 })
      const fromWorker = yield* Effect.flip(compressor.gzipAll(payloads, 42))
      assert.strictEqual(fromWorker._tag, "CompressionError")
      const fromMain = yield* Effect.flip(Compressor.mainThread.gzipAll(payloads.slice(0, 2), 42))
      assert.strictEqual(fromMain._tag, "CompressionError")
    }))
})
