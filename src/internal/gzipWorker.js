// @ts-check
/**
 * The compression worker: a worker thread that gzips batches of payloads for the writer's
 * `Compressor` pool, speaking `@effect/platform`'s worker protocol. Plain JavaScript so the
 * same file runs from `src/` (tests, tsx) and from `dist/`.
 *
 * A request packs its payloads into one buffer (`buffer`, with `offsets.length - 1` payloads,
 * payload i at `buffer[offsets[i]..offsets[i + 1])`); the answer packs their gzip streams the
 * same way, and sends the request's buffer back for the caller to pack later chunks into. Every
 * buffer is transferred, not copied. Each payload is gzip'd by a deflate stream kept for its
 * level (`gzipEngine.js`): the bytes of `zlib.gzipSync`, without its set-up per payload.
 */
import * as NodeWorkerRunner from "@effect/platform-node/NodeWorkerRunner"
import * as Transferable from "@effect/platform/Transferable"
import * as WorkerRunner from "@effect/platform/WorkerRunner"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { gzipView } from "./gzipEngine.js"

/**
 * Where a request's gzip streams are gathered before they are copied, once, into a buffer of
 * the answer's exact size: kept between requests (up to `MAX_KEPT` bytes), so that they are
 * written into memory in use rather than into new pages.
 */
let gathered = Buffer.allocUnsafeSlow(64 * 1024)
const MAX_KEPT = 16 * 1024 * 1024

/**
 * @param {{ readonly level: number, readonly buffer: Uint8Array, readonly offsets: Uint32Array }} request
 * @returns {Effect.Effect<{ buffer: Uint8Array, offsets: Uint32Array, input: Uint8Array }, string>}
 */
const gzipAll = ({ buffer, level, offsets }) =>
  Effect.try({
    try: () => {
      const count = offsets.length - 1
      const outOffsets = new Uint32Array(count + 1)
      let at = 0
      for (let i = 0; i < count; i++) {
        const start = /** @type {number} */ (offsets[i])
        const end = /** @type {number} */ (offsets[i + 1])
        const part = gzipView(buffer.subarray(start, end), level)
        if (at + part.length > gathered.length) {
          const grown = Buffer.allocUnsafeSlow(Math.max(at + part.length, 2 * gathered.length))
          gathered.copy(grown, 0, 0, at)
          gathered = grown
        }
        gathered.set(part, at)
        at += part.length
        outOffsets[i + 1] = at
      }
      const out = new Uint8Array(at)
      out.set(gathered.subarray(0, at))
      if (gathered.length > MAX_KEPT) gathered = Buffer.allocUnsafeSlow(64 * 1024)
      // The request's buffer goes back to the caller, which packs later chunks into it.
      return { buffer: out, offsets: outOffsets, input: buffer }
    },
    catch: (cause) => cause instanceof Error ? cause.message : String(cause)
  })

WorkerRunner.layer(gzipAll, {
  encodeOutput: (_request, output) =>
    Effect.as(Transferable.addAll([output.buffer.buffer, output.offsets.buffer, output.input.buffer]), output)
}).pipe(
  Layer.provide(NodeWorkerRunner.layer),
  WorkerRunner.launch,
  Effect.runFork
)
