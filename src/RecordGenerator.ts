/**
 * Realistic `DataFileV1` records for tests, the demo and benchmarks: Iceberg-like paths and
 * partitions, a chosen number of columns with their statistics, and a size knob that makes
 * a record's serialized size exactly what a test needs (just under or just over a threshold).
 *
 * Every function is deterministic for a given seed.
 *
 * @since 0.1.0
 */
import { create, toBinary } from "@bufbuild/protobuf"
import type { DataFileV1 } from "./gen/cygnus/v1/data_file_pb.js"
import { DataFileV1Schema, FileContent, FileFormat } from "./gen/cygnus/v1/data_file_pb.js"
import { varintSize } from "./internal/envelopePacker.js"
import { prng as internalPrng } from "./internal/prng.js"

/**
 * Options of {@link makeDataFile}.
 *
 * @since 0.1.0
 */
export interface DataFileOptions {
  /** Number of columns with statistics. Default 20. */
  readonly columns?: number | undefined
  /** Seed of the record: the same seed gives the same record. Default 1. */
  readonly seed?: number | undefined
  /** When set, pad `key_metadata` so that the serialized `DataFileV1` is exactly this many bytes. */
  readonly serializedBytes?: number | undefined
  /** Whether the padding compresses well (repeated bytes) or not at all (random). Default false. */
  readonly compressiblePadding?: boolean | undefined
}

const TABLES = ["events", "orders", "clicks", "sessions", "payments", "inventory"] as const
const REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"] as const
const FORMATS = [FileFormat.PARQUET, FileFormat.PARQUET, FileFormat.PARQUET, FileFormat.AVRO, FileFormat.ORC] as const
const EXTENSIONS: Record<FileFormat, string> = {
  [FileFormat.UNSPECIFIED]: "bin",
  [FileFormat.PARQUET]: "parquet",
  [FileFormat.AVRO]: "avro",
  [FileFormat.ORC]: "orc"
}

/**
 * A seeded pseudo-random generator (mulberry32): numbers in [0, 1).
 *
 * @since 0.1.0
 */
export const prng: (seed: number) => () => number = internalPrng

/**
 * One realistic data-file manifest: a Parquet (mostly) file under an Iceberg table layout
 * partitioned by day and region, with `columns` columns of mixed types and their sizes,
 * counts and lower/upper bounds in Iceberg's single-value serialization.
 *
 * @example
 * ```ts
 * const small = makeDataFile({ columns: 50, seed: 7 })
 * const justOver = makeDataFile({ seed: 8, serializedBytes: 921_601 })
 * ```
 *
 * @since 0.1.0
 */
export const makeDataFile = (options: DataFileOptions = {}): DataFileV1 => {
  const seed = options.seed ?? 1
  const columns = Math.max(0, Math.floor(options.columns ?? 20))
  const rand = prng(seed)
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1))
  const pick = <A>(xs: ReadonlyArray<A>): A => xs[int(0, xs.length - 1)]!

  const table = pick(TABLES)
  const day = new Date(Date.UTC(2026, 0, 1) + int(0, 364) * 86_400_000).toISOString().slice(0, 10)
  const region = pick(REGIONS)
  const format = pick(FORMATS)
  const content = rand() < 0.9
    ? FileContent.DATA
    : rand() < 0.5
    ? FileContent.POSITION_DELETES
    : FileContent.EQUALITY_DELETES
  const recordCount = BigInt(int(1_000, 5_000_000))
  const fileId = `${hex(rand, 8)}-${hex(rand, 4)}-${hex(rand, 4)}-${hex(rand, 4)}-${hex(rand, 12)}`
  const filePath = `s3://warehouse-${region}/analytics/${table}/data/event_date=${day}/region=${region}/` +
    `${String(int(0, 99_999)).padStart(5, "0")}-${int(0, 64)}-${fileId}-${String(seed % 100_000).padStart(5, "0")}.${
      EXTENSIONS[format]
    }`

  const columnSizes: Record<number, bigint> = {}
  const valueCounts: Record<number, bigint> = {}
  const nullValueCounts: Record<number, bigint> = {}
  const nanValueCounts: Record<number, bigint> = {}
  const lowerBounds: Record<number, Uint8Array> = {}
  const upperBounds: Record<number, Uint8Array> = {}
  let fileSize = 0n
  for (let id = 1; id <= columns; id++) {
    const size = BigInt(int(1_000, 50_000_000))
    fileSize += size
    columnSizes[id] = size
    valueCounts[id] = recordCount
    nullValueCounts[id] = BigInt(int(0, Number(recordCount / 10n)))
    const [lower, upper, isFloat] = bounds(id % 4, rand)
    lowerBounds[id] = lower
    upperBounds[id] = upper
    if (isFloat) nanValueCounts[id] = BigInt(int(0, 100))
  }
  const splitOffsets: Array<bigint> = [4n]
  for (let i = 0, n = int(1, 8); i < n; i++) {
    splitOffsets.push(splitOffsets[splitOffsets.length - 1]! + BigInt(int(1 << 20, 128 << 20)))
  }

  const dataFile = create(DataFileV1Schema, {
    content,
    filePath,
    fileFormat: format,
    partition: { event_date: day, region },
    recordCount,
    fileSizeInBytes: fileSize + 4096n,
    columnSizes,
    valueCounts,
    nullValueCounts,
    nanValueCounts,
    lowerBounds,
    upperBounds,
    splitOffsets,
    equalityIds: content === FileContent.EQUALITY_DELETES ? [1, 2] : [],
    specId: int(0, 3),
    ...(rand() < 0.7 ? { sortOrderId: int(0, 5) } : {})
  })
  return options.serializedBytes === undefined
    ? dataFile
    : withSerializedSize(dataFile, options.serializedBytes, rand, options.compressiblePadding ?? false)
}

/**
 * `count` records of the given options, seeds `firstSeed`, `firstSeed + 1`, …
 *
 * @since 0.1.0
 */
export const makeDataFiles = (count: number, options: DataFileOptions = {}): Array<DataFileV1> => {
  const first = options.seed ?? 1
  return Array.from({ length: count }, (_, i) => makeDataFile({ ...options, seed: first + i }))
}

/**
 * The byte length of a `DataFileV1` once serialized.
 *
 * @since 0.1.0
 */
export const serializedSize = (dataFile: DataFileV1): number => toBinary(DataFileV1Schema, dataFile).length

const withSerializedSize = (
  dataFile: DataFileV1,
  target: number,
  rand: () => number,
  compressible: boolean
): DataFileV1 => {
  const base = serializedSize(create(DataFileV1Schema, { ...dataFile, keyMetadata: new Uint8Array(0) }))
  // key_metadata adds 1 (tag) + varint(length) + length bytes.
  let length = Math.max(0, target - base - 2)
  while (length > 0 && base + 1 + varintSize(length) + length > target) length--
  while (base + 1 + varintSize(length) + length < target) length++
  if (length === 0 || base + 1 + varintSize(length) + length !== target) {
    throw new RangeError(`cannot make a record of exactly ${target} bytes: its fields alone take ${base}`)
  }
  const padding = new Uint8Array(length)
  if (compressible) padding.fill(0x61)
  else for (let i = 0; i < length; i++) padding[i] = Math.floor(rand() * 256)
  return create(DataFileV1Schema, { ...dataFile, keyMetadata: padding })
}

const hex = (rand: () => number, digits: number): string => {
  let out = ""
  for (let i = 0; i < digits; i++) out += Math.floor(rand() * 16).toString(16)
  return out
}

// Iceberg single-value serialization: int/long little-endian, double IEEE 754 little-endian,
// string UTF-8 bytes (bounds truncated to 16 characters as Iceberg writers do).
const bounds = (kind: number, rand: () => number): [Uint8Array, Uint8Array, boolean] => {
  switch (kind) {
    case 0: {
      const lo = Math.floor(rand() * 1_000_000)
      return [int32le(lo), int32le(lo + Math.floor(rand() * 1_000_000)), false]
    }
    case 1: {
      const lo = BigInt(Math.floor(rand() * 2 ** 40))
      return [int64le(lo), int64le(lo + BigInt(Math.floor(rand() * 2 ** 30))), false]
    }
    case 2: {
      const lo = rand() * 1000 - 500
      return [float64le(lo), float64le(lo + rand() * 1000), true]
    }
    default: {
      const words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
      const a = words[Math.floor(rand() * 4)]! + Math.floor(rand() * 1000)
      const b = words[4 + Math.floor(rand() * 4)]! + Math.floor(rand() * 1000)
      return [utf8.encode(a.slice(0, 16)), utf8.encode(b.slice(0, 16)), false]
    }
  }
}

const utf8 = new TextEncoder()
const int32le = (n: number) => {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setInt32(0, n, true)
  return out
}
const int64le = (n: bigint) => {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigInt64(0, n, true)
  return out
}
const float64le = (n: number) => {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setFloat64(0, n, true)
  return out
}
