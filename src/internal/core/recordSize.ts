/**
 * What a record will hold once prepared, estimated before it is serialized: the producer
 * charges a record this much of `maxBufferedBytes` when it accepts it, and what it really
 * holds (its serialized and its compressed bytes) once prepared.
 */
import type { DataFileV1 } from "../../gen/cygnus/v1/data_file_pb.js"

/** Bytes of a map entry of two small integers (tag, key, value, framing) at most. */
const INT_ENTRY_BYTES = 16

const intEntries = (map: object | undefined): number => {
  let n = 0
  if (map !== null && typeof map === "object") { for (const _ in map) n++ }
  return n * INT_ENTRY_BYTES
}

const bytesEntries = (map: { readonly [key: number]: Uint8Array } | undefined): number => {
  let n = 0
  if (map !== null && typeof map === "object") {
    for (const key in map) n += (map[key as unknown as number]?.length ?? 0) + 8
  }
  return n
}

/**
 * The serialized size of a record, roughly and never much below it: each field's bytes as
 * protobuf writes them, with strings counted at one byte a UTF-16 unit. Reads the fields
 * only: a small share of what serializing costs. Anything not a record is 0 (it is refused
 * when serialized).
 */
export const serializedSizeEstimate = (record: DataFileV1): number => {
  if (record === null || typeof record !== "object") return 0
  let n = 64 + (typeof record.filePath === "string" ? record.filePath.length : 0)
  const partition = record.partition
  if (partition !== null && typeof partition === "object") {
    for (const key in partition) n += key.length + (partition[key]?.length ?? 0) + 6
  }
  n += intEntries(record.columnSizes) + intEntries(record.valueCounts) + intEntries(record.nullValueCounts) +
    intEntries(record.nanValueCounts)
  n += bytesEntries(record.lowerBounds) + bytesEntries(record.upperBounds)
  n += record.keyMetadata?.length ?? 0
  n += (record.splitOffsets?.length ?? 0) * 10 + (record.equalityIds?.length ?? 0) * 5
  return n
}

/**
 * What a record is charged when accepted: its serialized size and, until its compressed size
 * is known, as much again for its compressed Data (gzip never makes much more than it is given).
 */
export const admissionCharge = (record: DataFileV1): number => 2 * serializedSizeEstimate(record)
