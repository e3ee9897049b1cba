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
import type { Duration } from "effect"
import { Clock, Context, Deferred, Effect, Either, ExecutionStrategy, Exit, Layer, Scope } from "effect"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as WorkerThreads from "node:worker_threads"
import { CompressionError } from "./Errors.js"
import { gzipSync } from "./internal/codec.js"
import type { PackedPayloads } from "./internal/envelopePacker.js"
import { unpack } from "./internal/envelopePacker.js"
import { EventLoopSlice } from "./internal/eventLoop.js"

export type { PackedPayloads } from "./internal/envelopePacker.js"

/**
 * gzip of a batch of payloads, in order.
 *
 * @since 0.1.0
 */
export class Compressor extends Context.Tag("cygnus-kinesis-writer/Compressor")<Compressor, Compressor.Service>() {
  /**
   * gzip on the calling thread, one payload after another, letting the event loop turn
   * between payloads every few milliseconds.
   *
   * @since 0.1.0
   */
  static readonly mainThread: Compressor.Service = Compressor.of({
    gzipPacked: (packed, level) =>
      Effect.gen(function*() {
        const payloads = unpack(packed)
        const out: Array<Uint8Array> = new Array(payloads.length)
        const slice = new EventLoopSlice()
        for (let i = 0; i < payloads.length; i++) {
          if (slice.spent()) yield* slice.yield
          const gz = gzipSync(payloads[i]!, level)
          if (Either.isLeft(gz)) return yield* gz.left
          out[i] = gz.right
        }
        packed.recycle?.(packed.buffer)
        return out
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
   * its scope closes. Batches smaller than `minBatch` payloads (default 8) — unless two or more
   * that hold 64 KiB (a few aggregates are worth a worker) — are compressed on
   * the calling thread, where a round trip to a worker would cost more than it saves.
   *
   * @since 0.1.0
   */
  static readonly makeWorkerPool = (options: WorkerPoolOptions) =>
    Effect.gen(function*() {
      // The platform retries a worker that cannot start until the start timeout: when the
      // default worker's file is not there (a bundle without it), fail at once instead.
      const missing = options.spawn === undefined ? missingGzipWorker() : undefined
      if (missing !== undefined) {
        return yield* new CompressionError({ reason: `cannot start the compression workers: ${missing}` })
      }
      const NodeWorker = yield* Effect.tryPromise({
        try: () => import("@effect/platform-node/NodeWorker"),
        catch: (cause) =>
          new CompressionError({ reason: `worker threads need @effect/platform-node: ${String(cause)}`, cause })
      })
      const pool = yield* Worker.makePool<GzipRequest, GzipResponse, string>({
        size: Math.max(1, Math.floor(options.workers)),
        concurrency: 1,
        encode: (request) => Effect.as(Transferable.addAll([request.buffer.buffer, request.offsets.buffer]), request)
      }).pipe(
        Effect.provide(NodeWorker.layer(options.spawn ?? spawnGzipWorker)),
        Effect.mapError((cause) =>
          new CompressionError({ reason: `cannot start the compression workers: ${cause.message}`, cause })
        ),
        // A worker that cannot start is retried by the platform for ever, in a start that
        // does not yield to interruption: stop waiting for it (disconnect) after a bound.
        Effect.disconnect,
        Effect.timeoutFail({
          duration: options.startTimeout ?? "15 seconds",
          onTimeout: () => new CompressionError({ reason: "the compression workers did not start in time" })
        }),
        // Threads start in real time: the bound (and the platform's respawns) run on the live
        // clock, not on the caller's Clock, which under a TestClock nobody may advance (the
        // bound would never fire) or a driver may advance at once (a "timeout" after 0 ms).
        Effect.withClock(Clock.make())
      )
      const minBatch = options.minBatch ?? 8
      return Compressor.of({
        gzipPacked: (packed, level) =>
          isSmall(packed, minBatch)
            ? Compressor.mainThread.gzipPacked(packed, level)
            : Effect.suspend(() => pool.executeEffect({ level, buffer: packed.buffer, offsets: packed.offsets })).pipe(
              Effect.map((response) => {
                // The worker sends the packed buffer back with the answer (a worker of the
                // caller's own `spawn` may not), for the packing of later chunks.
                if (response.input !== undefined) packed.recycle?.(response.input)
                return unpack(response)
              }),
              Effect.mapError((cause) =>
                new CompressionError({
                  reason: typeof cause === "string" ? cause : `compression worker failed: ${cause.message}`,
                  cause
                })
              )
            )
      })
    })

  /**
   * {@link Compressor.makeWorkerPool} as a scoped layer.
   *
   * @since 0.1.0
   */
  static readonly layerWorkerPool = (options: WorkerPoolOptions) =>
    Layer.scoped(Compressor, Compressor.makeWorkerPool(options))

  /**
   * The writer's compressor: a worker pool started on the first batch large enough to use
   * it (a program that only writes small batches never starts a thread) and stopped with the
   * scope. Until then, and for good if the workers cannot start (a bundler that left the
   * worker file out, a runtime without worker threads), batches are compressed on the
   * calling thread, with one warning in the log: compression never waits for ever.
   *
   * @since 0.1.0
   */
  static readonly makeLazyWorkerPool = (
    options: WorkerPoolOptions
  ): Effect.Effect<Compressor.Service, never, Scope.Scope> =>
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const ready = yield* Deferred.make<Compressor.Service>()
      // The pool starts in a fiber of the given scope, so that a batch interrupted (or
      // failed) while it starts only stops waiting for it; a pool that fails to start has
      // its own scope closed, which stops the platform's attempts to respawn its workers.
      const startPool = Effect.gen(function*() {
        const poolScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
        const pool = yield* Effect.either(Scope.extend(Compressor.makeWorkerPool(options), poolScope))
        if (Either.isRight(pool)) return pool.right
        yield* Effect.forkDaemon(Scope.close(poolScope, Exit.void))
        yield* Effect.logWarning("compression workers unavailable: compressing on the calling thread").pipe(
          Effect.annotateLogs({ error: pool.left.message })
        )
        return Compressor.mainThread
      })
      let started = false
      const start = Effect.suspend(() => {
        if (started) return Effect.void
        started = true
        return Effect.asVoid(Effect.forkIn(Effect.intoDeferred(startPool, ready), scope))
      })
      const minBatch = options.minBatch ?? 8
      return Compressor.of({
        gzipPacked: (packed, level) =>
          isSmall(packed, minBatch)
            ? Compressor.mainThread.gzipPacked(packed, level)
            : start.pipe(Effect.zipRight(Deferred.await(ready)), Effect.flatMap((c) => c.gzipPacked(packed, level)))
      })
    })
}

/**
 * Bytes from which a batch goes to a worker whatever its payload count: a few aggregates of
 * many records each cost as much gzip as a chunk of separate records.
 */
const MIN_WORKER_BYTES = 64 * 1024

/**
 * A batch a round trip to a worker would cost more than it saves: fewer than `minBatch`
 * payloads, unless there are several and they hold `MIN_WORKER_BYTES` (a lone payload stays
 * on the calling thread, as it always did).
 */
const isSmall = (packed: PackedPayloads, minBatch: number): boolean => {
  const payloads = packed.offsets.length - 1
  return payloads < minBatch && (payloads < 2 || packed.buffer.length < MIN_WORKER_BYTES)
}

/**
 * @since 0.1.0
 */
export declare namespace Compressor {
  /**
   * What `yield* Compressor` gives.
   *
   * @since 0.1.0
   */
  export interface Service {
    /** gzip of each payload of a packed buffer, in order. The buffer may be transferred: do not use it afterwards. */
    readonly gzipPacked: (payloads: PackedPayloads, level: number) => Effect.Effect<Array<Uint8Array>, CompressionError>
  }
}

/**
 * Options of the worker-pool compressors.
 *
 * @since 0.1.0
 */
export interface WorkerPoolOptions {
  /** Worker threads (at least 1). */
  readonly workers: number
  /** Batches of fewer payloads (unless two or more of 64 KiB in all) are compressed on the calling thread. Default 8. */
  readonly minBatch?: number | undefined
  /** How long to wait for the workers to start. Default 15 s. */
  readonly startTimeout?: Duration.DurationInput | undefined
  /** Starts one worker thread; the default runs this package's gzip worker. */
  readonly spawn?: ((id: number) => WorkerThreads.Worker) | undefined
}

/**
 * A worker thread running the gzip worker. `execArgv` is emptied: the worker is plain
 * JavaScript, and flags meant for the main program (a TypeScript loader, `--input-type`)
 * can keep a worker from starting.
 */
const spawnGzipWorker = () => new WorkerThreads.Worker(gzipWorkerUrl(), { execArgv: [] })

/** Beside the package's modules: `dist/internal/gzipWorker.js`, or `src/internal/` under tsx and vitest. */
const gzipWorkerUrl = () => new URL("./internal/gzipWorker.js", import.meta.url)

/**
 * Why the default gzip worker cannot start, if its file is plainly not there: a bundler
 * (esbuild, Rollup, …) inlines this module but does not emit the worker file, and
 * `import.meta.url` is then the bundle's own address (or undefined in a CommonJS bundle).
 */
const missingGzipWorker = (): string | undefined => {
  let url: URL
  try {
    url = gzipWorkerUrl()
  } catch {
    return "import.meta.url does not locate the gzip worker (a CommonJS bundle?)"
  }
  if (url.protocol !== "file:") return undefined
  const path = fileURLToPath(url)
  return existsSync(path) ? undefined : `${path} is missing (bundled without it?)`
}

interface GzipRequest {
  readonly level: number
  readonly buffer: Uint8Array
  readonly offsets: Uint32Array
}

/** The gzip'd payloads, packed, and the request's buffer, sent back (transferred) for reuse. */
interface GzipResponse {
  readonly buffer: Uint8Array
  readonly offsets: Uint32Array
  readonly input?: Uint8Array | undefined
}
