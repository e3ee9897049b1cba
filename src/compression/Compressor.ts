/**
 * The `Compressor` service: gzip for many payloads at once. The worker-pool layer moves gzip
 * off the main thread (which keeps protobuf encoding) into worker threads, a batch per
 * message with its buffers transferred, not copied; the main-thread layer is the fallback
 * for tiny batches and for environments without worker threads. Both produce standard gzip
 * streams any consumer can read.
 *
 * @since 0.1.0
 */
import * as Transferable from "@effect/platform/Transferable"
import * as Worker from "@effect/platform/Worker"
import { NodeWorker } from "@effect/platform-node"
import { Context, Effect, Either, Layer } from "effect"
import * as WorkerThreads from "node:worker_threads"
import type { PackedPayloads } from "../codec/EnvelopePacker.js"
import { unpack } from "../codec/EnvelopePacker.js"
import { gzipSync } from "../codec/RecordCodec.js"
import { CompressionError } from "../errors.js"

/**
 * gzip of a batch of payloads, in order.
 *
 * @since 0.1.0
 */
export class Compressor extends Context.Tag("cygnus-kinesis-writer/Compressor")<Compressor, {
  /** gzip of each payload of a packed buffer, in order. The buffer may be transferred: do not use it afterwards. */
  readonly gzipPacked: (payloads: PackedPayloads, level: number) => Effect.Effect<Array<Uint8Array>, CompressionError>
}>() {
  /**
   * gzip on the calling thread, one payload after another.
   *
   * @since 0.1.0
   */
  static readonly mainThread: Compressor["Type"] = Compressor.of({
    gzipPacked: (packed, level) =>
      Effect.suspend(() => {
        const payloads = unpack(packed)
        const out: Array<Uint8Array> = new Array(payloads.length)
        for (let i = 0; i < payloads.length; i++) {
          const gz = gzipSync(payloads[i]!, level)
          if (Either.isLeft(gz)) return Effect.fail(gz.left)
          out[i] = gz.right
        }
        return Effect.succeed(out)
      })
  })

  /**
   * {@link Compressor.mainThread} as a layer.
   *
   * @since 0.1.0
   */
  static readonly layerMainThread: Layer.Layer<Compressor> = Layer.succeed(Compressor, Compressor.mainThread)

  /**
   * A pool of `workers` worker threads (at least 1), started with the layer and stopped when
   * its scope closes. Batches smaller than `minBatch` payloads (default 8) are compressed on
   * the calling thread, where a round trip to a worker would cost more than it saves.
   *
   * @since 0.1.0
   */
  static readonly makeWorkerPool = (options: { readonly workers: number; readonly minBatch?: number | undefined }) =>
    Effect.gen(function*() {
      const pool = yield* Worker.makePool<GzipRequest, GzipResponse, string>({
        size: Math.max(1, Math.floor(options.workers)),
        concurrency: 1,
        encode: (request) => Effect.as(Transferable.addAll([request.buffer.buffer, request.offsets.buffer]), request)
      }).pipe(
        Effect.provide(NodeWorker.layer(() => new WorkerThreads.Worker(new URL("./gzipWorker.js", import.meta.url)))),
        Effect.mapError((cause) => new CompressionError({ reason: `cannot start the compression workers: ${cause.message}`, cause }))
      )
      const minBatch = options.minBatch ?? 8
      return Compressor.of({
        gzipPacked: (packed, level) =>
          packed.offsets.length - 1 < minBatch
            ? Compressor.mainThread.gzipPacked(packed, level)
            : Effect.suspend(() => pool.executeEffect({ level, ...packed })).pipe(
              Effect.map(unpack),
              Effect.mapError((cause) =>
                new CompressionError({ reason: typeof cause === "string" ? cause : `compression worker failed: ${cause.message}`, cause })
              )
            )
      })
    })

  /**
   * {@link Compressor.makeWorkerPool} as a scoped layer.
   *
   * @since 0.1.0
   */
  static readonly layerWorkerPool = (options: { readonly workers: number; readonly minBatch?: number | undefined }) =>
    Layer.scoped(Compressor, Compressor.makeWorkerPool(options))
}

interface GzipRequest extends PackedPayloads {
  readonly level: number
}

type GzipResponse = PackedPayloads
