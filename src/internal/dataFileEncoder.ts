/**
 * A `DataFileV1` encoder for phase 1 of a batch, plain (`prepare.ts`: one record at a time,
 * copied out into the packed chunk) and aggregated (`aggregate.ts`: a record's whole
 * envelope, in one buffer per chunk): byte for byte what protobuf-es
 * `toBinary(DataFileV1Schema, record)` gives, without a new writer, its chunk list and a
 * writer per map entry for every record. `toBinary` was half of the main thread's time per
 * record, and most of its garbage (about 4.5 KB per record at 50 columns).
 *
 * It covers the records a program builds with `create(DataFileV1Schema, …)` and well-typed
 * values; anything else (no `$typeName`, unknown fields, a value of the wrong type or out
 * of range, a map key that is not an int32) is left to `toBinary`: `encode` answers
 * `undefined`, and the caller serializes the record as before, with the same bytes or the
 * same error.
 */
import type { DataFileV1 } from "../gen/cygnus/v1/data_file_pb.js"
import { isWellFormed } from "./core/options.js"
import type { BatchInfo } from "./envelopePacker.js"
import { envelopeHeaderSize, EnvelopeInfo, writeEnvelopeHeader } from "./envelopePacker.js"

const TYPE_NAME = "cygnus.v1.DataFileV1"
const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const SAFE = BigInt(Number.MAX_SAFE_INTEGER)
/**
 * Room kept before a record's `DataFileV1` for the envelope's header, written once the
 * length is known: tags and lengths of `data_file_entry`, `standard`, `version`, `data_file_v1`.
 */
const HEADER_ROOM = 20

/**
 * A record's `DataFileEntryRecord` (standard case) and the `DataFileV1` inside it: views of
 * the encoder's buffer.
 *
 * @internal
 */
export interface EncodedEnvelope {
  readonly envelope: Uint8Array
  readonly dataFile: Uint8Array
}

const isInt32 = (n: unknown): n is number =>
  typeof n === "number" && Number.isInteger(n) && n >= -0x80000000 && n <= 0x7fffffff

/**
 * Encodes `DataFileV1` records one after another into a buffer it owns. The bytes `encode`
 * returns are a view of that buffer: valid until `reset`.
 *
 * @internal
 */
export class DataFileEncoder {
  private buffer: Buffer
  private pos = 0
  /** UTF-8 bytes of the last string written. */
  private lastStringBytes = 0
  /** The envelope's `DataFileInfo`, as `EnvelopePacker` writes it. */
  private readonly info: EnvelopeInfo
  /** Where the last record's `file_path` bytes are in the buffer (field 2 of `DataFileV1`). */
  private pathAt = 0
  private pathBytes = 0

  constructor(info: BatchInfo, initialBytes = 1024 * 1024) {
    this.info = new EnvelopeInfo(info)
    this.buffer = Buffer.allocUnsafe(initialBytes)
  }

  /** Reuses the buffer from its start: every view `encode` returned before is overwritten. */
  reset(): void {
    this.pos = 0
  }

  /**
   * Goes on in a new buffer, the size of what the current one holds: the views returned
   * before stay valid (they keep the old buffer alive while they are referenced).
   */
  renew(): void {
    if (this.pos === 0) return
    this.buffer = Buffer.allocUnsafe(Math.max(64 * 1024, this.pos + (this.pos >> 3)))
    this.pos = 0
  }

  /** Where the next record goes: what {@link rewind} goes back to. */
  get mark(): number {
    return this.pos
  }

  /**
   * Goes back to `mark`: the records written since are dropped, and their views overwritten by
   * the next ones (for a record copied out at once, whose bytes need not stay in the buffer).
   */
  rewind(mark: number): void {
    this.pos = mark
  }

  /** The record's bytes as `toBinary` writes them, or `undefined` when `toBinary` must do it. */
  encode(record: DataFileV1): Uint8Array | undefined {
    const start = this.pos
    if (!this.fields(record)) {
      this.pos = start
      return undefined
    }
    return this.buffer.subarray(start, this.pos)
  }

  /**
   * The record's envelope, `DataFileEntryRecord` with its info (`file_path`, the batch's
   * fields, `recordId`) and its `DataFileV1` as the standard entry: byte for byte what
   * `toBinary(DataFileEntryRecordSchema, …)` gives (and `EnvelopePacker.add` writes).
   * `undefined` when the record is left to `toBinary`: then {@link wrap} its bytes.
   */
  encodeEnvelope(record: DataFileV1, recordId: string): EncodedEnvelope | undefined {
    const start = this.pos
    this.ensure(HEADER_ROOM)
    this.pos += HEADER_ROOM
    if (!this.fields(record)) {
      this.pos = start
      return undefined
    }
    return this.finishEnvelope(start + HEADER_ROOM, this.pathAt, this.pathBytes, record.filePath, recordId)
  }

  /** The envelope around a `DataFileV1` serialized elsewhere (what {@link encodeEnvelope} left to `toBinary`). */
  wrap(dataFile: Uint8Array, filePath: string, recordId: string): EncodedEnvelope {
    this.ensure(HEADER_ROOM + dataFile.length)
    this.pos += HEADER_ROOM
    const at = this.pos
    this.buffer.set(dataFile, at)
    this.pos += dataFile.length
    return this.finishEnvelope(at, -1, Buffer.byteLength(filePath, "utf8"), filePath, recordId)
  }

  /**
   * Writes the header before the `DataFileV1` that starts at `at` and ends at `pos` (right
   * against it, in the room kept), then the info after it. `pathAt` is where the path's
   * UTF-8 bytes are already in the buffer, or -1.
   */
  private finishEnvelope(
    at: number,
    pathAt: number,
    pathBytes: number,
    filePath: string,
    recordId: string
  ): EncodedEnvelope {
    const dataFileEnd = this.pos
    const length = dataFileEnd - at
    const start = at - envelopeHeaderSize(length)
    writeEnvelopeHeader(this.buffer, start, length)
    const idBytes = Buffer.byteLength(recordId, "utf8")
    const info = this.info.size(pathBytes, idBytes)
    this.ensure(1 + 5 + info)
    const b = this.buffer
    this.pos = this.info.write(b, this.pos, info, filePath, pathBytes, recordId, idBytes, pathAt)
    return { envelope: b.subarray(start, this.pos), dataFile: b.subarray(at, dataFileEnd) }
  }

  /** Writes the fields in field-number order, as `toBinary` does; false when a value is left to `toBinary`. */
  private fields(m: DataFileV1): boolean {
    if (typeof m !== "object" || m === null) return false
    if (m.$typeName !== TYPE_NAME || (m.$unknown !== undefined && m.$unknown.length > 0)) return false
    if (typeof m.filePath !== "string" || m.filePath === "") return false
    const keyMetadata = m.keyMetadata
    if (!(keyMetadata instanceof Uint8Array)) return false
    if (!this.enumField(1, m.content)) return false
    this.tag(2, 2)
    if (!this.string(m.filePath)) return false
    this.pathBytes = this.lastStringBytes
    this.pathAt = this.pos - this.lastStringBytes
    if (
      !(this.enumField(3, m.fileFormat) &&
        this.stringMap(4, m.partition) &&
        this.int64Field(5, m.recordCount) &&
        this.int64Field(6, m.fileSizeInBytes) &&
        this.int64Map(7, m.columnSizes) &&
        this.int64Map(8, m.valueCounts) &&
        this.int64Map(9, m.nullValueCounts) &&
        this.int64Map(10, m.nanValueCounts) &&
        this.bytesMap(11, m.lowerBounds) &&
        this.bytesMap(12, m.upperBounds))
    ) return false
    if (keyMetadata.length > 0) {
      this.tag(13, 2)
      this.bytes(keyMetadata)
    }
    if (!(this.packedInt64(14, m.splitOffsets) && this.packedInt32(15, m.equalityIds))) return false
    const sortOrderId = m.sortOrderId
    if (sortOrderId !== undefined && Object.prototype.hasOwnProperty.call(m, "sortOrderId")) {
      this.tag(16, 0)
      if (!this.int32(sortOrderId)) return false
    }
    // Implicit presence: `toBinary` skips a zero (and fails on what is not an int32).
    const specId: unknown = m.specId
    if (specId === 0) return true
    this.tag(17, 0)
    return this.int32(specId)
  }

  private ensure(bytes: number): void {
    if (this.pos + bytes <= this.buffer.length) return
    const grown = Buffer.allocUnsafe(Math.max(this.pos + bytes, this.buffer.length * 2))
    this.buffer.copy(grown, 0, 0, this.pos)
    this.buffer = grown
  }

  private tag(field: number, wireType: number): void {
    this.varint32((field << 3) | wireType)
  }

  /** A non-negative 32-bit varint. */
  private varint32(n: number): void {
    this.ensure(5)
    const b = this.buffer
    while (n > 0x7f) {
      b[this.pos++] = (n & 0x7f) | 0x80
      n >>>= 7
    }
    b[this.pos++] = n
  }

  private int32(n: unknown): boolean {
    if (!isInt32(n)) return false
    if (n >= 0) {
      this.varint32(n)
      return true
    }
    // Negative: sign-extended to 64 bits, 10 bytes (as protobuf-es writes it).
    this.ensure(10)
    const b = this.buffer
    let v = n
    for (let i = 0; i < 9; i++) {
      b[this.pos++] = (v & 0x7f) | 0x80
      v >>= 7
    }
    b[this.pos++] = 1
    return true
  }

  private int64(v: unknown): boolean {
    if (typeof v !== "bigint" || v < INT64_MIN || v > INT64_MAX) return false
    this.ensure(10)
    const b = this.buffer
    if (v >= 0n && v <= SAFE) {
      let n = Number(v)
      while (n > 0x7fffffff) {
        b[this.pos++] = (n % 128) | 0x80
        n = Math.floor(n / 128)
      }
      while (n > 0x7f) {
        b[this.pos++] = (n & 0x7f) | 0x80
        n >>>= 7
      }
      b[this.pos++] = n
      return true
    }
    // Two's complement in 64 bits, 7 bits at a time.
    let u = BigInt.asUintN(64, v)
    while (u > 0x7fn) {
      b[this.pos++] = Number(u & 0x7fn) | 0x80
      u >>= 7n
    }
    b[this.pos++] = Number(u)
    return true
  }

  private enumField(field: number, value: unknown): boolean {
    if (value === 0) return true
    this.tag(field, 0)
    return this.int32(value)
  }

  private int64Field(field: number, value: unknown): boolean {
    if (value === 0n) return true
    this.tag(field, 0)
    return this.int64(value)
  }

  /**
   * A string's UTF-8 bytes with their length. Text with a lone surrogate, which UTF-8 cannot
   * carry, is left to `serializeDataFileSync`, which refuses it naming the field.
   */
  private string(value: unknown): boolean {
    if (typeof value !== "string") return false
    const length = Buffer.byteLength(value, "utf8")
    if (length === value.length) {
      // ASCII (as many bytes as UTF-16 units only then): one byte a character.
      this.lastStringBytes = length
      this.varint32(length)
      this.ensure(length)
      const b = this.buffer
      for (let i = 0; i < length; i++) b[this.pos++] = value.charCodeAt(i)
      return true
    }
    if (!isWellFormed(value)) return false
    this.lastStringBytes = length
    this.varint32(length)
    this.ensure(length)
    this.pos += this.buffer.write(value, this.pos, "utf8")
    return true
  }

  private bytes(value: Uint8Array): void {
    this.varint32(value.length)
    this.ensure(value.length)
    this.buffer.set(value, this.pos)
    this.pos += value.length
  }

  /** Starts a length-delimited field whose length is not known yet: one byte kept for it. */
  private open(field: number): number {
    this.tag(field, 2)
    this.ensure(1)
    return this.pos++
  }

  /** Writes the length of the field opened at `at`, moving its contents when it needs more than a byte. */
  private close(at: number): void {
    const length = this.pos - at - 1
    if (length < 0x80) {
      this.buffer[at] = length
      return
    }
    const size = length < 0x4000 ? 2 : length < 0x200000 ? 3 : length < 0x10000000 ? 4 : 5
    this.ensure(size - 1)
    const b = this.buffer
    b.copyWithin(at + size, at + 1, this.pos)
    this.pos += size - 1
    let n = length
    let i = at
    while (n > 0x7f) {
      b[i++] = (n & 0x7f) | 0x80
      n >>>= 7
    }
    b[i] = n
  }

  /** The keys of a map field, in the order `toBinary` writes them, or undefined when it is no object. */
  private keys(map: unknown): Array<string> | undefined {
    return typeof map === "object" && map !== null ? Object.keys(map) : undefined
  }

  /** A map key of an int32 map, converted as protobuf-es does (`Number.parseInt`). */
  private int32Key(key: string): boolean {
    this.tag(1, 0)
    return this.int32(Number.parseInt(key))
  }

  private stringMap(field: number, map: unknown): boolean {
    const keys = this.keys(map)
    if (keys === undefined) return false
    const values = map as { readonly [key: string]: unknown }
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!
      const at = this.open(field)
      this.tag(1, 2)
      if (!this.string(key)) return false
      this.tag(2, 2)
      if (!this.string(values[key])) return false
      this.close(at)
    }
    return true
  }

  private int64Map(field: number, map: unknown): boolean {
    const keys = this.keys(map)
    if (keys === undefined) return false
    const values = map as { readonly [key: string]: unknown }
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!
      const at = this.open(field)
      if (!this.int32Key(key)) return false
      this.tag(2, 0)
      if (!this.int64(values[key])) return false
      this.close(at)
    }
    return true
  }

  private bytesMap(field: number, map: unknown): boolean {
    const keys = this.keys(map)
    if (keys === undefined) return false
    const values = map as { readonly [key: string]: unknown }
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!
      const value = values[key]
      if (!(value instanceof Uint8Array)) return false
      const at = this.open(field)
      if (!this.int32Key(key)) return false
      this.tag(2, 2)
      this.bytes(value)
      this.close(at)
    }
    return true
  }

  private packedInt64(field: number, values: unknown): boolean {
    if (!Array.isArray(values)) return false
    if (values.length === 0) return true
    const at = this.open(field)
    for (let i = 0; i < values.length; i++) if (!this.int64(values[i])) return false
    this.close(at)
    return true
  }

  private packedInt32(field: number, values: unknown): boolean {
    if (!Array.isArray(values)) return false
    if (values.length === 0) return true
    const at = this.open(field)
    for (let i = 0; i < values.length; i++) if (!this.int32(values[i])) return false
    this.close(at)
    return true
  }
}
