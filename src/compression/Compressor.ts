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
import { gzipSync } from "../codec/RecordCodec.js"
import { CompressionError } from "../errors.js"

/**
 * gzip of a batch of payloads, in order.
 *
 * @since 0.1.0
 */
export class Compressor extends Context.Tag("cygnus-kinesis-writer/Compressor")<Compressor, {
  readonly gzipAll: (payloads: ReadonlyArray<Uint8Array>, level: number) => Effect.Effect<Array<Uint8Array>, CompressionError>
}>() {
  /**
   * gzip on the calling thread, one payload after another.
   *
   * @since 0.1.0
   */
  static readonly mainThread: Compressor["Type"] = Compressor.of({
    gzipAll: (payloads, level) =>
      Effect.suspend(() => {
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
        gzipAll: (payloads, level) =>
          payloads.length < minBatch
            ? Compressor.mainThread.gzipAll(payloads, level)
            : Effect.suspend(() => pool.executeEffect(pack(payloads, level))).pipe(
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

interface GzipRequest {
  readonly level: number
  readonly buffer: Uint8Array
  readonly offsets: Uint32Array
}

interface GzipResponse {
  readonly buffer: Uint8Array
  readonly offsets: Uint32Array
}

/** Packs payloads into one transferable buffer. */
const pack = (payloads: ReadonlyArray<Uint8Array>, level: number): GzipRequest => {
  const offsets = new Uint32Array(payloads.length + 1)
  for (let i = 0; i < payloads.length; i++) offsets[i + 1] = offsets[i]! + payloads[i]!.length
  const buffer = new Uint8Array(offsets[payloads.length]!)
  for (let i = 0; i < payloads.length; i++) buffer.set(payloads[i]!, offsets[i]!)
  return { level, buffer, offsets }
}

/** Views of each gzip stream in the answer's buffer (no copy). */
const unpack = ({ buffer, offsets }: GzipResponse): Array<Uint8Array> => {
  const out: Array<Uint8Array> = new Array(offsets.length - 1)
  for (let i = 0; i < out.length; i++) out[i] = buffer.subarray(offsets[i]!, offsets[i + 1]!)
  return out
}
