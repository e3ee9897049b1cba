/**
 * zlib's deflateBound plus the gzip header and trailer: no gzip stream of `n` bytes is longer.
 */
export const gzipBound = (n: number): number => n + (n >>> 12) + (n >>> 14) + (n >>> 25) + 13 + 18
