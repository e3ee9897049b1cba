// @ts-check
/**
 * The zlib options the writer gzips one payload with, shared by the main thread and the
 * compression worker (plain JavaScript so the worker can load it from `src/` and `dist/`).
 *
 * zlib's defaults size the deflate state for 32 KiB of history: about 270 KB allocated and a
 * 64 KiB hash table cleared for every stream, whatever its length. A Kinesis record is
 * usually a few KiB, so that set-up is most of the cost of gzipping one: the window is sized
 * to the payload instead (the smallest power of two that holds the payload and zlib's
 * look-ahead, 512 B to 32 KiB). A window at least as long as the input changes nothing in
 * the output: the bytes are the same as with the default window, and any gzip reader reads
 * them (gzip streams carry no window size).
 */

/** zlib's look-ahead (MIN_LOOKAHEAD = MAX_MATCH + MIN_MATCH + 1). */
const LOOKAHEAD = 262

/**
 * The smallest deflate window (as `windowBits`, 9–15) that holds `length` bytes and zlib's
 * look-ahead.
 *
 * @param {number} length
 * @returns {number}
 */
export const windowBitsFor = (length) => {
  let bits = 9
  while (bits < 15 && 1 << bits < length + LOOKAHEAD) bits++
  return bits
}

/**
 * Options for `zlib.gzipSync` of `length` bytes at `level`.
 *
 * @param {number} length
 * @param {number} level
 * @returns {{ level: number, windowBits: number }}
 */
export const gzipOptions = (length, level) => ({ level, windowBits: windowBitsFor(length) })
