/**
 * Writes the stream envelopes of many records straight into one buffer: each
 * `DataFileEntryRecord` (standard case) around a record's already serialized `DataFileV1`,
 * byte for byte what `toBinary` of the whole message gives, with no message object, no
 * intermediate writer and one copy of the data file's bytes. The packed buffer is what the
 * `Compressor` takes (and hands to a worker thread without copying).
 *
 * The info fields that are the same for a whole batch (creation time, account, log group,
 * schema) are encoded once. Given a {@link PackBuffers}, the packer writes into buffers the
 * compressor has given back rather than into new ones (see there why).
 */
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire"
import type { DataFileInfoFields } from "./codec.js"

/**
 * Payloads packed into one buffer: payload `i` is `buffer[offsets[i]..offsets[i + 1])`.
 *
 * @since 0.1.0
 */
export interface PackedPayloads {
  readonly buffer: Uint8Array
  readonly offsets: Uint32Array
  /**
   * Takes `buffer` (or what a worker sent back of it) once the compressor has read it all,
   * for the packing of later chunks; absent when nobody reuses it. The compressor must not
   * touch the buffer after handing it here.
   */
  readonly recycle?: ((buffer: Uint8Array) => void) | undefined
}

/**
 * Spare packing buffers of one writer: those the compressor has given back, at most
 * `maxSpare` of them and `maxSpareBytes` in all, the largest kept.
 *
 * Why: a chunk of 500 envelopes is 0.4–15 MB, and memory that was never written costs far
 * more to write the first time than memory in use (the kernel maps and zeroes each page:
 * filling a new 16 MiB buffer took 10–90 ms on the benchmark machine, a reused one 0.6 ms).
 * A new buffer per chunk, and its doublings from 64 KiB in the first chunk of every batch,
 * made the copy into the packed buffer most of the writer's own time per record.
 */
export class PackBuffers {
  private readonly spare: Array<ArrayBuffer> = []

  constructor(readonly maxSpare = 3, readonly maxSpareBytes = 32 * 1024 * 1024) {}

  /** A buffer of at least `bytes`: the largest spare one if it is large enough, else a new one. */
  acquire(bytes: number): Buffer {
    let largest = -1
    for (let i = 0; i < this.spare.length; i++) {
      if (largest < 0 || this.spare[i]!.byteLength > this.spare[largest]!.byteLength) largest = i
    }
    if (largest >= 0 && this.spare[largest]!.byteLength >= bytes) {
      const buffer = this.spare[largest]!
      this.spare.splice(largest, 1)
      return Buffer.from(buffer)
    }
    return Buffer.allocUnsafeSlow(bytes)
  }

  /** Keeps `buffer` for a later `acquire`, unless it is too large or smaller than every spare one already kept. */
  release(buffer: ArrayBufferLike): void {
    // A detached buffer (transferred away) has no bytes left.
    if (
      !(buffer instanceof ArrayBuffer) || buffer.byteLength === 0 || buffer.byteLength > this.maxSpareBytes ||
      this.spare.includes(buffer)
    ) return
    this.spare.push(buffer)
    this.spare.sort((a, b) => b.byteLength - a.byteLength)
    let total = 0
    for (let i = 0; i < this.spare.length; i++) {
      total += this.spare[i]!.byteLength
      if (i >= this.maxSpare || total > this.maxSpareBytes) {
        this.spare.length = i
        break
      }
    }
  }
}

/**
 * The per-batch part of `DataFileInfo`: everything but `file_path` and `record_id`.
 *
 * @internal
 */
export type BatchInfo = Pick<DataFileInfoFields, "creationTime" | "accountId" | "logGroupId" | "schemaName">

/**
 * Bytes of the fields that come before a record's `DataFileV1` in its envelope (a standard
 * `DataFileEntryRecord`): `data_file_entry`, `standard`, `version` and `data_file_v1`, with
 * their tags and lengths.
 *
 * @internal
 */
export const envelopeHeaderSize = (dataFileLength: number): number => {
  const standard = 3 + varintSize(dataFileLength) + dataFileLength
  const entry = 1 + varintSize(standard) + standard
  return 1 + varintSize(entry) + 1 + varintSize(standard) + 3 + varintSize(dataFileLength)
}

/**
 * Writes the fields that come before a `DataFileV1` of `dataFileLength` bytes at `at`
 * ({@link envelopeHeaderSize} bytes); returns where the `DataFileV1` goes.
 *
 * @internal
 */
export const writeEnvelopeHeader = (b: Uint8Array, at: number, dataFileLength: number): number => {
  const standard = 3 + varintSize(dataFileLength) + dataFileLength
  const entry = 1 + varintSize(standard) + standard
  b[at++] = 0x0a // DataFileEntryRecord.data_file_entry
  at = writeVarint(b, at, entry)
  b[at++] = 0x0a // DataFileEntry.standard
  at = writeVarint(b, at, standard)
  b[at++] = 0x08 // StandardDataFileEntry.version
  b[at++] = 0x01 // DATA_FILE_VERSION_V1
  b[at++] = 0x12 // StandardDataFileEntry.data_file_v1
  return writeVarint(b, at, dataFileLength)
}

/**
 * The envelope's `data_file_info` for one batch: the fields that are the same for every
 * record (2 `creation_time`, 3 `account_id` before `record_id`; 5 `log_group_id`,
 * 6 `schema_name` after it) encoded once, and each record's `file_path` and `record_id`
 * written around them.
 *
 * @internal
 */
export class EnvelopeInfo {
  private readonly middle: Uint8Array
  private readonly tail: Uint8Array

  constructor(info: BatchInfo) {
    const middle = new BinaryWriter()
    if (info.creationTime !== 0n) middle.tag(2, WireType.Varint).uint64(info.creationTime)
    if (info.accountId !== "") middle.tag(3, WireType.LengthDelimited).string(info.accountId)
    this.middle = middle.finish()
    const tail = new BinaryWriter()
    if (info.logGroupId !== "") tail.tag(5, WireType.LengthDelimited).string(info.logGroupId)
    if (info.schemaName !== "") tail.tag(6, WireType.LengthDelimited).string(info.schemaName)
    this.tail = tail.finish()
  }

  /** Bytes of the `DataFileInfo` message of a record (without its own tag and length). */
  size(pathBytes: number, idBytes: number): number {
    return (pathBytes === 0 ? 0 : 1 + varintSize(pathBytes) + pathBytes) + this.middle.length +
      (idBytes === 0 ? 0 : 1 + varintSize(idBytes) + idBytes) + this.tail.length
  }

  /** Bytes of a whole envelope around a `DataFileV1` of `dataFileLength` bytes. */
  envelopeSize(dataFileLength: number, pathBytes: number, idBytes: number): number {
    const info = this.size(pathBytes, idBytes)
    return envelopeHeaderSize(dataFileLength) + dataFileLength + 1 + varintSize(info) + info
  }

  /**
   * Writes field 2 of the envelope (`data_file_info`, whose message is `size` bytes) at `at`;
   * returns its end. `pathAt`, when not -1, is where the path's UTF-8 bytes already are in `b`.
   */
  write(
    b: Buffer,
    at: number,
    size: number,
    filePath: string,
    pathBytes: number,
    recordId: string,
    idBytes: number,
    pathAt = -1
  ): number {
    b[at++] = 0x12 // DataFileEntryRecord.data_file_info
    at = writeVarint(b, at, size)
    if (pathBytes > 0) {
      b[at++] = 0x0a // DataFileInfo.file_path
      at = writeVarint(b, at, pathBytes)
      if (pathAt >= 0) b.copyWithin(at, pathAt, pathAt + pathBytes)
      else b.write(filePath, at, "utf8")
      at += pathBytes
    }
    b.set(this.middle, at)
    at += this.middle.length
    if (idBytes > 0) {
      b[at++] = 0x22 // DataFileInfo.record_id
      at = writeVarint(b, at, idBytes)
      if (idBytes === recordId.length) {
        // ASCII (a UUID): one byte per character.
        for (let k = 0; k < idBytes; k++) b[at++] = recordId.charCodeAt(k)
      } else {
        at += b.write(recordId, at, "utf8")
      }
    }
    b.set(this.tail, at)
    return at + this.tail.length
  }
}

/**
 * Bytes of a protobuf varint encoding `n` (a non-negative 32-bit integer).
 *
 * @internal
 */
export const varintSize = (n: number): number =>
  n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5

/**
 * Packs envelopes for one batch's records, a chunk at a time.
 *
 * @internal
 */
export class EnvelopePacker {
  private readonly info: EnvelopeInfo
  private buffer: Buffer
  private offsets: Array<number> = [0]
  /** The end of the aggregate being packed (`addMember`), until `endAggregate`. */
  private open: number | undefined
  private readonly buffers: PackBuffers | undefined
  private readonly recycle: ((buffer: Uint8Array) => void) | undefined

  constructor(info: BatchInfo, initialBytes = 64 * 1024, buffers?: PackBuffers) {
    this.info = new EnvelopeInfo(info)
    this.buffers = buffers
    this.recycle = buffers === undefined ? undefined : (buffer) => buffers.release(buffer.buffer)
    this.buffer = this.allocate(initialBytes)
  }

  /** Envelopes packed since the last `take`. */
  get count(): number {
    return this.offsets.length - 1
  }

  /** Appends the envelope of a record; returns its size in bytes. */
  add(dataFileBytes: Uint8Array, filePath: string, recordId: string): number {
    const pathBytes = Buffer.byteLength(filePath, "utf8")
    const idBytes = Buffer.byteLength(recordId, "utf8")
    const info = this.info.size(pathBytes, idBytes)
    const size = envelopeHeaderSize(dataFileBytes.length) + dataFileBytes.length + 1 + varintSize(info) + info
    let at = this.offsets[this.offsets.length - 1]!
    this.reserve(at + size, at)
    const b = this.buffer
    at = writeEnvelopeHeader(b, at, dataFileBytes.length)
    b.set(dataFileBytes, at)
    at += dataFileBytes.length
    at = this.info.write(b, at, info, filePath, pathBytes, recordId, idBytes)
    this.offsets.push(at)
    return size
  }

  /**
   * The size a record's envelope takes as a member of an aggregate (`addMember`): the
   * envelope framed as field 15 of `DataFileEntryRecordBatch`.
   */
  memberSize(dataFileLength: number, filePath: string, recordId: string): number {
    const size = this.info.envelopeSize(
      dataFileLength,
      Buffer.byteLength(filePath, "utf8"),
      Buffer.byteLength(recordId)
    )
    return 1 + varintSize(size) + size
  }

  /**
   * Appends a record's envelope to the aggregate being packed (a `DataFileEntryRecordBatch`
   * whose members are written one after another until `endAggregate`); returns the bytes it
   * took, framing included. Only for aggregation: `add` is the path of every other record.
   */
  addMember(dataFileBytes: Uint8Array, filePath: string, recordId: string): number {
    const start = this.open ?? this.offsets[this.offsets.length - 1]!
    const size = this.info.envelopeSize(
      dataFileBytes.length,
      Buffer.byteLength(filePath, "utf8"),
      Buffer.byteLength(recordId, "utf8")
    )
    const header = 1 + varintSize(size)
    this.reserve(start + header + size, start)
    this.buffer[start] = AGGREGATE_TAG
    writeVarint(this.buffer, start + 1, size)
    // `add` writes at the end of the last payload: let it write after the frame header.
    const count = this.offsets.length
    this.offsets.push(start + header)
    this.add(dataFileBytes, filePath, recordId)
    this.offsets.length = count
    this.open = start + header + size
    return header + size
  }

  /** Appends an already serialized envelope (a large payload's pointer) to the aggregate being packed. */
  addMemberEnvelope(envelope: Uint8Array): number {
    const start = this.open ?? this.offsets[this.offsets.length - 1]!
    const header = 1 + varintSize(envelope.length)
    this.reserve(start + header + envelope.length, start)
    this.buffer[start] = AGGREGATE_TAG
    writeVarint(this.buffer, start + 1, envelope.length)
    this.buffer.set(envelope, start + header)
    this.open = start + header + envelope.length
    return header + envelope.length
  }

  /** Appends an already serialized envelope as a payload of its own; returns its size. */
  addEnvelope(envelope: Uint8Array): number {
    const at = this.offsets[this.offsets.length - 1]!
    this.reserve(at + envelope.length, at)
    this.buffer.set(envelope, at)
    this.offsets.push(at + envelope.length)
    return envelope.length
  }

  /** Ends the aggregate being packed: it becomes one payload. */
  endAggregate(): void {
    if (this.open === undefined) return
    this.offsets.push(this.open)
    this.open = undefined
  }

  /**
   * The envelopes packed since the last `take`, in a buffer of their own (transferable to a
   * worker), and a fresh buffer for the next ones.
   */
  take(): PackedPayloads {
    this.endAggregate()
    const end = this.offsets[this.offsets.length - 1]!
    const packed: PackedPayloads = {
      buffer: this.buffer.subarray(0, end),
      offsets: Uint32Array.from(this.offsets),
      recycle: this.recycle
    }
    this.buffer = this.allocate(Math.max(64 * 1024, end))
    this.offsets = [0]
    return packed
  }

  /** Room for `bytes` bytes; the first `used` are kept. */
  private reserve(bytes: number, used: number): void {
    if (bytes <= this.buffer.length) return
    const grown = this.allocate(Math.max(bytes, this.buffer.length * 2))
    this.buffer.copy(grown, 0, 0, used)
    this.buffers?.release(this.buffer.buffer)
    this.buffer = grown
  }

  /** A buffer of its own (never a slice of Node's shared pool: it is transferred, and may be reused). */
  private allocate(bytes: number): Buffer {
    return this.buffers?.acquire(bytes) ?? Buffer.allocUnsafeSlow(bytes)
  }
}

/**
 * Views of each payload of a packed buffer (no copy).
 *
 * @internal
 */
export const unpack = ({ buffer, offsets }: PackedPayloads): Array<Uint8Array> => {
  const out: Array<Uint8Array> = new Array(offsets.length - 1)
  for (let i = 0; i < out.length; i++) out[i] = buffer.subarray(offsets[i]!, offsets[i + 1]!)
  return out
}

/**
 * Packs separate payloads into one buffer.
 *
 * @internal
 */
export const pack = (payloads: ReadonlyArray<Uint8Array>): PackedPayloads => {
  const offsets = new Uint32Array(payloads.length + 1)
  for (let i = 0; i < payloads.length; i++) offsets[i + 1] = offsets[i]! + payloads[i]!.length
  const buffer = new Uint8Array(offsets[payloads.length]!)
  for (let i = 0; i < payloads.length; i++) buffer.set(payloads[i]!, offsets[i]!)
  return { buffer, offsets }
}

/** The tag byte of `DataFileEntryRecordBatch.records`: field 15, length-delimited. */
const AGGREGATE_TAG = (15 << 3) | WireType.LengthDelimited

/** Writes `n` (a non-negative 32-bit integer) as a protobuf varint at `at`; returns the end. */
const writeVarint = (b: Uint8Array, at: number, n: number): number => {
  while (n > 0x7f) {
    b[at++] = (n & 0x7f) | 0x80
    n >>>= 7
  }
  b[at++] = n
  return at
}
