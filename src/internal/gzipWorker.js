// @ts-check
/**
 * The compression worker: a worker thread that gzips batches of payloads for the writer's
 * `Compressor` pool, speaking `@effect/platform`'s worker protocol. Plain JavaScript so the
 * same file runs from `src/` (tests, tsx) and from `dist/`.
 *
 * A request packs its payloads into one buffer (`buffer`, with `offsets.length - 1` payloads,
 * payload i at `buffer[offsets[i]..offsets[i + 1])`); the answer packs their gzip streams the
 * same way. Both buffers are transferred, not copied.
 */
import * as NodeWorkerRunner from "@effect/platform-node/NodeWorkerRunner"
import * as Transferable from "@effect/platform/Transferable"
import * as WorkerRunner from "@effect/platform/WorkerRunner"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Zlib from "node:zlib"
import { gzipOptions } from "./gzipOptions.js"

/**
 * @param {{ readonly level: number, readonly buffer: Uint8Array, readonly offsets: Uint32Array }} request
 * @returns {Effect.Effect<{ buffer: Uint8Array, offsets: Uint32Array }, string>}
 */
const gzipAll = ({ buffer, level, offsets }) =>
  Effect.try({
    try: () => {
      const count = offsets.length - 1
      /** @type {Array<Buffer>} */
      const parts = new Array(count)
      const outOffsets = new Uint32Array(count + 1)
      for (let i = 0; i < count; i++) {
        const start = /** @type {number} */ (offsets[i])
        const end = /** @type {number} */ (offsets[i + 1])
        const part = Zlib.gzipSync(buffer.subarray(start, end), gzipOptions(end - start, level))
        parts[i] = part
        outOffsets[i + 1] = /** @type {number} */ (outOffsets[i]) + part.length
      }
      const out = new Uint8Array(/** @type {number} */ (outOffsets[count]))
      for (let i = 0; i < count; i++) out.set(/** @type {Buffer} */ (parts[i]), outOffsets[i])
      return { buffer: out, offsets: outOffsets }
    },
    catch: (cause) => cause instanceof Error ? cause.message : String(cause)
  })

WorkerRunner.layer(gzipAll, {
  encodeOutput: (_request, output) =>
    Effect.as(Transferable.addAll([output.buffer.buffer, output.offsets.buffer]), output)
}).pipe(
  Layer.provide(NodeWorkerRunner.layer),
  WorkerRunner.launch,
  Effect.runFork
)
