// @ts-check
/**
 * gzip of one payload at a time, byte for byte what `zlib.gzipSync` gives, without what
 * `gzipSync` costs besides deflate itself: a stream object (a Transform, its states, its
 * listeners) and a new 16 KiB output buffer per payload. Each payload still gets a fresh
 * deflate state, so its bytes cannot depend on what was compressed before it; the output goes
 * to a scratch buffer that is reused. Shared by the main thread (`codec.ts`) and the
 * compression worker, so plain JavaScript (the worker loads it from `src/` and `dist/`).
 *
 * A reset stream (zlib's `deflateReset`) would save the deflate state's set-up too, but it is
 * not the same as a fresh one: the window keeps the previous payload's bytes, which deflate
 * reads past the end of a shorter input, and the output then differs.
 *
 * Node's zlib has no public API for this: it drives the native handle `zlib.gzipSync` itself
 * drives (`init`, `writeSync`, `close`). Those are checked once — they must exist, and a
 * sample must come out byte for byte as `gzipSync` gives it — and on a runtime where they do
 * not, every payload goes through `zlib.gzipSync`.
 */
import * as Zlib from "node:zlib"
import { gzipOptions } from "./gzipOptions.js"

/**
 * The output room of each call into zlib: `gzipSync`'s (its default `chunkSize`). Level 0
 * (stored blocks) cuts its blocks by the room it is given, so the same room gives the same
 * bytes.
 */
const OUTPUT_WINDOW = Zlib.constants.Z_DEFAULT_CHUNK

/**
 * gzip of `bytes` at `level`, as a view of a scratch buffer that the next call on this thread
 * overwrites, or null when this runtime cannot do it without `zlib.gzipSync`.
 *
 * @typedef {(bytes: Uint8Array, level: number) => Uint8Array | null} Deflater
 */

/** @type {Deflater | undefined} */
let deflater

/**
 * The gzip stream of `bytes` at `level`: byte for byte what `zlib.gzipSync` gives, as a view
 * that is valid until the next call on this thread. Throws what `zlib.gzipSync` throws (an
 * invalid level).
 *
 * @param {Uint8Array} bytes
 * @param {number} level
 * @returns {Uint8Array}
 */
export const gzipView = (bytes, level) =>
  (validLevel(level) ? getDeflater()(bytes, level) : null) ??
    Zlib.gzipSync(bytes, gzipOptions(bytes.length, level))

/**
 * {@link gzipView} as a buffer of its own.
 *
 * @param {Uint8Array} bytes
 * @param {number} level
 * @returns {Buffer}
 */
export const gzip = (bytes, level) => {
  const view = validLevel(level) ? getDeflater()(bytes, level) : null
  return view === null ? Zlib.gzipSync(bytes, gzipOptions(bytes.length, level)) : Buffer.from(view)
}

/**
 * zlib's levels: anything else goes to `zlib.gzipSync`, which refuses it with its own error.
 *
 * @param {number} level
 */
const validLevel = (level) => Number.isInteger(level) && level >= -1 && level <= 9

/** @returns {Deflater} */
const getDeflater = () => {
  if (deflater === undefined) deflater = makeDeflater()
  return deflater
}

/** A sample whose gzip must match `zlib.gzipSync`'s before the native handle is used. */
const SAMPLE = Buffer.from("cygnus-kinesis-writer: a sample of a few repeated words, a sample of words ".repeat(8))

/** @type {Deflater} */
const unavailable = () => null

/**
 * The deflater over zlib's native handle, or one that always answers null when this runtime's
 * zlib does not have what it drives or does not give `gzipSync`'s bytes with it.
 *
 * @returns {Deflater}
 */
const makeDeflater = () => {
  /** @type {any} */
  let Handle
  try {
    /** @type {any} */
    const probe = Zlib.createGzip()
    Handle = probe._handle?.constructor
    probe.close()
  } catch {
    return unavailable
  }
  if (typeof Handle !== "function") return unavailable
  const state = new Uint32Array(2)
  const noop = () => {}
  let scratch = Buffer.allocUnsafeSlow(4 * OUTPUT_WINDOW)
  /** @type {string | undefined} */
  let failure
  /** @param {string} message */
  const onerror = (message) => {
    failure = message
  }
  /** @type {Deflater} */
  const deflate = (bytes, level) => {
    const handle = new Handle(Zlib.constants.GZIP)
    // zlib's errors come through this callback (during `init` and `writeSync`): kept, and
    // thrown once the call has returned.
    handle.onerror = onerror
    failure = undefined
    try {
      const { windowBits } = gzipOptions(bytes.length, level)
      handle.init(windowBits, level, 8, Zlib.constants.Z_DEFAULT_STRATEGY, state, noop, undefined)
      if (failure !== undefined) throw new Error(failure)
      let inOff = 0
      let inLen = bytes.length
      let outOff = 0
      for (;;) {
        if (scratch.length - outOff < OUTPUT_WINDOW) {
          const grown = Buffer.allocUnsafeSlow(scratch.length * 2)
          scratch.copy(grown, 0, 0, outOff)
          scratch = grown
        }
        handle.writeSync(Zlib.constants.Z_FINISH, bytes, inOff, inLen, scratch, outOff, OUTPUT_WINDOW)
        if (failure !== undefined) throw new Error(failure)
        const availOut = /** @type {number} */ (state[0])
        const availIn = /** @type {number} */ (state[1])
        inOff += inLen - availIn
        inLen = availIn
        outOff += OUTPUT_WINDOW - availOut
        // Output room left after Z_FINISH: the stream has ended. None: there may be more.
        if (availOut > 0) return scratch.subarray(0, outOff)
      }
    } finally {
      handle.close()
    }
  }
  try {
    for (const level of [-1, 0, 1, 9]) {
      const view = deflate(SAMPLE, level)
      if (view === null || Buffer.compare(view, Zlib.gzipSync(SAMPLE, { level })) !== 0) return unavailable
    }
    return deflate
  } catch {
    return unavailable
  }
}
