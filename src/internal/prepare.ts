/**
 * Building a batch's payloads, once per `writeBatch`, in two phases.
 *
 * 1. `serializeBatch`, before anything is sent: a fresh `record_id` per record, the
 *    `DataFileV1` serialized once and its envelope written around those bytes straight into
 *    the chunk's packed buffer (no re-encoding, no message object per record); each chunk of
 *    500 is handed to the `Compressor` (worker threads) as soon as it is packed, so gzip runs
 *    beside the serialization of the next chunks. Large payloads are offloaded to the store —
 *    over the threshold, or too large for the stream's record limit whatever the threshold.
 *    A failure here stops the batch with nothing sent, naming the record, and deletes the
 *    objects already written.
 * 2. `compressChunk`, chunk by chunk as delivery goes: the chunk's gzip'd records, handed to
 *    the calls and not kept, so a large batch never holds every compressed payload at once.
 *
 * Retries reuse what is built here: nothing is serialized, compressed or uploaded twice.
 */
import { create } from "@bufbuild/protobuf"
import type { Scope } from "effect"
import { Cause, Effect, Either, Exit, Fiber } from "effect"
import { createHash, randomUUID } from "node:crypto"
import type { Compressor } from "../Compressor.js"
import { CompressionError, LargePayloadStoreError, SerializationError } from "../Errors.js"
import { LargeDataFileEntrySchema } from "../gen/cygnus/v1/data_file_entry_pb.js"
import type { DataFileV1 } from "../gen/cygnus/v1/data_file_pb.js"
import type { LargePayloadStore, PayloadLocation } from "../LargePayloadStore.js"
import { mayHaveBeenApplied } from "./awsError.js"
import { backoff } from "./backoff.js"
import type { EntryPayload } from "./codec.js"
import { encodeEntryRecordSync, encodeStandardEntry, gzipSync, serializeDataFileSync } from "./codec.js"
import type { ResolvedWriterConfig } from "./config.js"
import { gzipBound } from "./core/gzipBound.js"
import { KinesisLimits } from "./core/limits.js"
import { partitionKeyPrefixes } from "./core/partitionKey.js"
import { DataFileEncoder } from "./dataFileEncoder.js"
import type { PackBuffers } from "./envelopePacker.js"
import { EnvelopePacker } from "./envelopePacker.js"
import { EventLoopSlice } from "./eventLoop.js"
import { deleteBestEffort, leftBehind } from "./orphans.js"
import { withRequestTimeout } from "./timeout.js"

/**
 * What the batch knows of each record from the start: enough to name it in an error.
 *
 * @since 0.1.0
 */
export interface BatchEntry {
  /** Index of the record in the batch given to `writeBatch`. */
  readonly index: number
  /** The caller's record. */
  readonly record: DataFileV1
  readonly recordId: string
  /** Where the large payload went, for a record offloaded to S3. */
  readonly largePayload?: PayloadLocation | undefined
}

/**
 * One record ready for PutRecords, built once and reused by every attempt.
 *
 * @since 0.1.0
 */
export interface PreparedRecord extends BatchEntry {
  /** The Kinesis record's Data: gzip'd `DataFileEntryRecord`. */
  readonly data: Uint8Array
  /** The envelope's size before gzip. */
  readonly uncompressedSize: number
  /** The partition key without its attempt suffix. */
  readonly partitionKeyPrefix: string
  /**
   * The hash key that routes it instead of its partition key, on every attempt (decimal, as
   * PutRecords takes it): an aggregate of one shard's records carries a key of that shard's
   * range. Absent for a record routed by its partition key.
   */
  readonly explicitHashKey?: string | undefined
  /**
   * The logical records of an aggregate (writer option `aggregation`), in order; `index`,
   * `record` and `recordId` are then the first's. Absent for a record that is not aggregated.
   */
  readonly members?: ReadonlyArray<BatchEntry> | undefined
}

/**
 * A batch ready for PutRecords.
 *
 * @since 0.1.0
 */
export interface PreparedBatch {
  readonly records: ReadonlyArray<PreparedRecord>
  readonly largePayloads: number
  readonly uncompressedBytes: number
  readonly compressedBytes: number
}

/**
 * What a batch's payload build can fail with; each error names the record by its index.
 *
 * @since 0.1.0
 */
export type PrepareError = SerializationError | CompressionError | LargePayloadStoreError

/**
 * What the builder needs besides the records.
 */
export interface PrepareContext {
  readonly config: ResolvedWriterConfig
  /** The stream's record limit in bytes (data plus partition key). */
  readonly recordLimitBytes: number
  readonly store: LargePayloadStore["Type"]
  readonly compressor: Compressor["Type"]
  readonly creationTime: bigint
  /** The writer's spare packing buffers, given back by the compressor (none: a new buffer per chunk). */
  readonly packBuffers?: PackBuffers | undefined
}

/**
 * A record during phase 1, by what is left to do for it:
 *
 * - `Packed`: its envelope is in its chunk's packed buffer, on its way through the `Compressor`;
 * - `Offload`: its payload goes to the large-payload store (the serialized bytes are kept
 *   until the upload);
 * - `Ready`: prepared already (a large payload's pointer, or a record compressed early to
 *   decide where it goes).
 */
export type RecordSlot = PackedSlot | OffloadSlot | ReadySlot | RefusedSlot

interface PackedSlot {
  readonly _tag: "Packed"
  readonly entry: BatchEntry
  readonly partitionKeyPrefix: string
}

export interface OffloadSlot {
  readonly _tag: "Offload"
  readonly entry: BatchEntry
  readonly partitionKeyPrefix: string
  readonly dataFileBytes: Uint8Array
}

interface ReadySlot {
  readonly _tag: "Ready"
  readonly prepared: PreparedRecord
}

/**
 * Up to `COMPRESSION_CHUNK` consecutive records of a batch and the compression of the
 * envelopes of its `Packed` records, started as soon as the chunk was serialized.
 */
export interface SerializedChunk {
  /** Batch indexes of the chunk's records: `start` up to `end`, exclusive. */
  readonly start: number
  readonly end: number
  /** The packed records, in packing order. */
  readonly packed: ReadonlyArray<PackedSlot>
  /** Envelope sizes before gzip, in packing order. */
  readonly envelopeSizes: ReadonlyArray<number>
  /**
   * The gzip'd envelopes, in packing order: the compressions of the chunk's parts (see
   * `COMPRESSION_PART_BYTES`), in order.
   */
  readonly compressed: ReadonlyArray<Fiber.Fiber<Array<Uint8Array>, CompressionError>>
}

/** A batch after phase 1: every record `Packed` or `Ready`. */
export interface SerializedBatch {
  readonly slots: ReadonlyArray<RecordSlot>
  /** What the batch knows of each record, by index: enough to name it in an error. */
  readonly entries: ReadonlyArray<BatchEntry>
  readonly chunks: ReadonlyArray<SerializedChunk>
  readonly largePayloads: number
}

/**
 * The record-limit guard's arithmetic, shared by the plain and the aggregated phase 1: every
 * byte count in UTF-8, keys with the digits of the last attempt `maxRetries` allows.
 */
export interface RecordLimitGuard {
  /** Bytes of a record's partition key at its longest. */
  readonly keyBytes: (partitionKeyPrefix: string) => number
  /**
   * Whether a record might not fit once gzip'd: its gzip bound (data file, file path, the
   * batch's info and `framing` bytes around it) plus its key exceeds the stream's limit.
   */
  readonly mayExceed: (dataFileBytes: Uint8Array, filePath: string, keyBytes: number, framing?: number) => boolean
  /** Whether `bytes` of Data plus its key fit the stream's record limit. */
  readonly fits: (bytes: number, keyBytes: number) => boolean
  /** The error of a record whose large-payload pointer alone does not fit. */
  readonly pointerTooLarge: (bytes: number, entry: BatchEntry) => SerializationError
}

/** The guard for a batch built with `context`. */
export const recordLimitGuard = (context: PrepareContext): RecordLimitGuard => {
  const { config, recordLimitBytes } = context
  const attemptDigits = String(config.maxRetries).length
  // Bytes on the wire are UTF-8 bytes: a name of CJK or emoji takes 3–4 bytes a character.
  const fixedInfoBytes = Buffer.byteLength(config.accountId, "utf8") + Buffer.byteLength(config.logGroupId, "utf8") +
    Buffer.byteLength(config.schemaName, "utf8") + 36 + 64
  return {
    keyBytes: (partitionKeyPrefix) => Buffer.byteLength(partitionKeyPrefix) + attemptDigits,
    mayExceed: (dataFileBytes, filePath, keyBytes, framing = 0) =>
      gzipBound(dataFileBytes.length + 3 * filePath.length + fixedInfoBytes + framing) + keyBytes > recordLimitBytes,
    fits: (bytes, keyBytes) => bytes + keyBytes <= recordLimitBytes,
    pointerTooLarge: (bytes, entry) =>
      new SerializationError({
        subject: "DataFileEntryRecord",
        reason:
          `even the large-payload pointer (${bytes} bytes) exceeds the stream's record limit of ${recordLimitBytes} bytes`,
        recordIndex: entry.index,
        filePath: entry.record.filePath
      })
  }
}

/** A record that could not be prepared, set aside while the rest of its batch goes on (the producer). */
interface RefusedSlot {
  readonly _tag: "Refused"
}

const refusedSlot: RefusedSlot = { _tag: "Refused" }

/** Phase 1 before the uploads: every record serialized, packed (its chunk's compression started) or set aside for the store. */
interface SerializedRecords {
  readonly slots: Array<RecordSlot>
  readonly chunks: ReadonlyArray<SerializedChunk>
  readonly offload: ReadonlyArray<OffloadSlot>
}

/**
 * Serializes every record, packs the envelopes of each chunk and starts its compression
 * (which then runs beside the serialization of the next chunks), and sets aside the records
 * whose payload goes to the store. A record that cannot be serialized fails the whole call,
 * or, given `refuse`, is handed to it and set aside while the others go on.
 */
const serializeRecords = (
  context: PrepareContext,
  records: ReadonlyArray<DataFileV1>,
  refuse?: (index: number, error: SerializationError | CompressionError) => void
): Effect.Effect<SerializedRecords, SerializationError | CompressionError, Scope.Scope> =>
  Effect.gen(function*() {
    const { config } = context
    const guard = recordLimitGuard(context)
    const partitionKeyPrefixOf = partitionKeyPrefixes(config, config.distributionFactor)
    const info = { ...config, creationTime: context.creationTime }
    const packer = new EnvelopePacker(info, undefined, context.packBuffers)
    // Each record's DataFileV1 is written into the encoder's one buffer and copied out at once
    // (into the packed chunk, or into bytes of its own when it is kept): no writer, chunk list
    // or map-entry garbage per record, as `toBinary` makes. Records it leaves to `toBinary`
    // get the same bytes, or the same error, from there.
    const encoder = new DataFileEncoder(info, ENCODER_BYTES)
    // Time slices rather than record counts: records range from bytes to a megabyte.
    const slice = new EventLoopSlice()
    const slots: Array<RecordSlot> = new Array(records.length)
    const chunks: Array<SerializedChunk> = []
    const offload: Array<OffloadSlot> = []
    // An offloaded record's bytes wait for its upload: its own copy, not a view of the encoder's buffer.
    const offloadLater = (entry: BatchEntry, partitionKeyPrefix: string, dataFileBytes: Uint8Array) => {
      const slot: OffloadSlot = {
        _tag: "Offload",
        entry,
        partitionKeyPrefix,
        dataFileBytes: new Uint8Array(dataFileBytes)
      }
      slots[entry.index] = slot
      offload.push(slot)
    }
    for (let start = 0; start < records.length; start += COMPRESSION_CHUNK) {
      const end = Math.min(records.length, start + COMPRESSION_CHUNK)
      const packed: Array<PackedSlot> = []
      const envelopeSizes: Array<number> = []
      const compressed: Array<Fiber.Fiber<Array<Uint8Array>, CompressionError>> = []
      let partBytes = 0
      // The hot loop: plain code over Eithers, no fiber or closure per record.
      for (let index = start; index < end; index++) {
        if (slice.spent()) yield* slice.yield
        const record = records[index]!
        encoder.reset()
        // A view of the encoder's buffer: valid until the next record's `reset`.
        let dataFileBytes = encoder.encode(record)
        if (dataFileBytes === undefined) {
          const serialized = serializeDataFileSync(record, index)
          if (Either.isLeft(serialized)) {
            if (refuse === undefined) return yield* serialized.left
            refuse(index, serialized.left)
            slots[index] = refusedSlot
            continue
          }
          dataFileBytes = serialized.right
        }
        const partitionKeyPrefix = partitionKeyPrefixOf(record.filePath)
        const entry: BatchEntry = { index, record, recordId: randomUUID() }
        if (dataFileBytes.length > config.largePayloadThreshold) {
          offloadLater(entry, partitionKeyPrefix, dataFileBytes)
          continue
        }
        // The record limit guard: a record that might not fit once gzip'd (its bound says so)
        // is compressed now to decide; the others go to the chunk's compression.
        const keyBytes = guard.keyBytes(partitionKeyPrefix)
        if (!guard.mayExceed(dataFileBytes, record.filePath, keyBytes)) {
          const slot: PackedSlot = { _tag: "Packed", entry, partitionKeyPrefix }
          slots[index] = slot
          packed.push(slot)
          const size = packer.add(dataFileBytes, record.filePath, entry.recordId)
          envelopeSizes.push(size)
          partBytes += size
          if (partBytes >= COMPRESSION_PART_BYTES) {
            compressed.push(
              yield* Effect.forkScoped(context.compressor.gzipPacked(packer.take(), config.compressionLevel))
            )
            partBytes = 0
          }
          continue
        }
        const built = build(context, entry, partitionKeyPrefix, { _tag: "standard", dataFileBytes })
        if (Either.isLeft(built)) {
          if (refuse === undefined) return yield* built.left
          refuse(index, built.left)
          slots[index] = refusedSlot
        } else if (!guard.fits(built.right.data.length, keyBytes)) {
          offloadLater(entry, partitionKeyPrefix, dataFileBytes)
        } else {
          slots[index] = { _tag: "Ready", prepared: built.right }
        }
      }
      if (partBytes > 0) {
        compressed.push(yield* Effect.forkScoped(context.compressor.gzipPacked(packer.take(), config.compressionLevel)))
      }
      chunks.push({ start, end, packed, envelopeSizes, compressed })
    }
    return { slots, chunks, offload }
  })

/**
 * One offloaded record: its payload written to the store, then its pointer envelope built and
 * checked against the record limit. Every location tried is added to `attempted`.
 */
const offloadOne = (
  context: PrepareContext,
  slot: OffloadSlot,
  attempted: Array<PayloadLocation>
): Effect.Effect<PreparedRecord, PrepareError> => {
  const guard = recordLimitGuard(context)
  return Effect.flatMap(upload(context, slot, attempted), (pointer) =>
    Effect.flatMap(
      build(context, slot.entry, slot.partitionKeyPrefix, { _tag: "large", pointer: pointer.entry }),
      (built): Effect.Effect<PreparedRecord, PrepareError> =>
        guard.fits(built.data.length, guard.keyBytes(slot.partitionKeyPrefix))
          ? Effect.succeed({ ...built, largePayload: pointer.location })
          : Effect.fail(guard.pointerTooLarge(built.data.length, slot.entry))
    ))
}

/**
 * Deletes the objects of `attempted` (they belong to no record on the stream) and fails with
 * `error` naming those that could not be deleted. Each delete is bounded by `requestTimeout`
 * and can be interrupted, wherever this runs.
 *
 * @internal
 */
export const cleanUpAfter = (
  context: PrepareContext,
  attempted: ReadonlyArray<PayloadLocation>,
  error: PrepareError
): Effect.Effect<never, PrepareError> =>
  Effect.flatMap(
    deleteBestEffort(context.store, attempted, context.config),
    (report) => Effect.fail(withLeftBehind(error, leftBehind(attempted, report)))
  )

/**
 * Phase 1: serializes every record, packs the envelopes of each chunk and starts its
 * compression (which then runs beside the serialization of the next chunks), and offloads
 * the large payloads. Fails before anything is sent, naming the record; the compressions
 * started belong to the scope.
 *
 * @internal
 */
export const serializeBatch = (
  context: PrepareContext,
  records: ReadonlyArray<DataFileV1>
): Effect.Effect<SerializedBatch, PrepareError, Scope.Scope> =>
  Effect.gen(function*() {
    const { chunks, offload, slots } = yield* serializeRecords(context, records)
    // Objects written (or perhaps written: an upload whose answer was lost) when the build
    // fails belong to no record on the stream: delete them.
    const attempted: Array<PayloadLocation> = []
    yield* Effect.forEach(offload, (slot) =>
      Effect.map(offloadOne(context, slot, attempted), (prepared) => {
        slots[slot.entry.index] = { _tag: "Ready", prepared }
      }), { concurrency: context.config.maxConcurrentUploads, discard: true }).pipe(
        // Runs once every upload has finished or been aborted (each aborted upload waits for
        // its request to settle), so that no upload lands after its delete. The objects that
        // could not be deleted are named in the error.
        Effect.catchAll((error) => cleanUpAfter(context, attempted, error)),
        Effect.onInterrupt(() => deleteBestEffort(context.store, attempted, context.config))
      )
    const entries = slots.map((slot) => slot._tag === "Ready" ? slot.prepared : (slot as PackedSlot).entry)
    return { slots, entries, chunks, largePayloads: offload.length }
  })

/**
 * Where the records of a batch prepared one by one go, each as soon as it is ready (the
 * producer): a prepared record with the bytes of memory it holds (its serialized size and its
 * compressed Data), or the cause of its refusal.
 */
export interface PreparedEach {
  readonly prepared: (index: number, record: PreparedRecord, heldBytes: number) => Effect.Effect<void>
  readonly refused: (index: number, cause: Cause.Cause<PrepareError>) => Effect.Effect<void>
}

/**
 * Prepares each record on its own account: one that cannot be serialized, compressed or
 * offloaded is refused alone, and a record that needs no upload is handed on as soon as its
 * chunk is compressed, whatever the uploads of the others do: this serializes and compresses,
 * and returns the uploads, for the caller to run apart. Each upload that fails deletes
 * what it may have written (or names it in its error) before its record is refused, and one
 * interrupted deletes it too, each delete bounded by `requestTimeout`. Never fails, whatever
 * cause a service returns: each record's cause goes to its own `refused`.
 *
 * @internal
 */
export const prepareEach = (
  context: PrepareContext,
  records: ReadonlyArray<DataFileV1>,
  to: PreparedEach
): Effect.Effect<Effect.Effect<void>> =>
  Effect.gen(function*() {
    const refusedEarly: Array<readonly [number, PrepareError]> = []
    const serialized = yield* Effect.exit(
      serializeRecords(context, records, (index, error) => refusedEarly.push([index, error]))
    )
    if (Exit.isFailure(serialized)) {
      return Effect.forEach(records, (_, index) => to.refused(index, serialized.cause), { discard: true })
    }
    yield* Effect.forEach(refusedEarly, ([index, error]) => to.refused(index, Cause.fail(error)), { discard: true })
    const { chunks, offload, slots } = serialized.value
    yield* Effect.forEach(chunks, (chunk) =>
      Effect.flatMap(Effect.exit(compressChunk({ slots }, chunk)), (exit) => {
        const steps: Array<Effect.Effect<void>> = []
        if (Exit.isFailure(exit)) {
          for (const slot of chunk.packed) steps.push(to.refused(slot.entry.index, exit.cause))
        }
        for (let index = chunk.start; index < chunk.end; index++) {
          const record = Exit.isSuccess(exit) ? exit.value[index - chunk.start] : undefined
          const slot = slots[index]!
          const ready = record ?? (slot._tag === "Ready" ? slot.prepared : undefined)
          if (ready !== undefined) steps.push(to.prepared(index, ready, ready.uncompressedSize + ready.data.length))
        }
        return Effect.all(steps, { discard: true })
      }), { discard: true })
    const uploaded = Effect.forEach(offload, (slot) => {
      const attempted: Array<PayloadLocation> = []
      return offloadOne(context, slot, attempted).pipe(
        Effect.catchAll((error) => cleanUpAfter(context, attempted, error)),
        Effect.onInterrupt(() => deleteBestEffort(context.store, attempted, context.config)),
        Effect.exit,
        Effect.flatMap((exit) =>
          Exit.isSuccess(exit)
            ? to.prepared(slot.entry.index, exit.value, slot.dataFileBytes.length + exit.value.data.length)
            : to.refused(slot.entry.index, exit.cause)
        )
      )
    }, { concurrency: context.config.maxConcurrentUploads, discard: true })
    return uploaded
  }).pipe(Effect.scoped)

/**
 * Phase 2: the prepared records of a chunk, once its compression is done. The compressed
 * records are handed on, not kept: once written, nothing holds them.
 *
 * @internal
 */
export const compressChunk = (
  batch: Pick<SerializedBatch, "slots">,
  chunk: SerializedChunk
): Effect.Effect<Array<PreparedRecord>, CompressionError> =>
  Effect.map(Effect.forEach(chunk.compressed, Fiber.join), (parts) => {
    const gz = parts.length === 1 ? parts[0]! : parts.flat()
    const out: Array<PreparedRecord> = new Array(chunk.end - chunk.start)
    chunk.packed.forEach((slot, i) => {
      const entry = slot.entry
      out[entry.index - chunk.start] = {
        index: entry.index,
        record: entry.record,
        recordId: entry.recordId,
        partitionKeyPrefix: slot.partitionKeyPrefix,
        data: gz[i]!,
        uncompressedSize: chunk.envelopeSizes[i]!
      }
    })
    for (let index = chunk.start; index < chunk.end; index++) {
      const slot = batch.slots[index]!
      if (slot._tag === "Ready") out[index - chunk.start] = slot.prepared
    }
    return out
  })

/**
 * Both phases for a whole batch: what `KinesisWriter.prepare` returns.
 *
 * @internal
 */
export const prepareBatch = (
  context: PrepareContext,
  records: ReadonlyArray<DataFileV1>
): Effect.Effect<PreparedBatch, PrepareError> =>
  Effect.gen(function*() {
    const serialized = yield* serializeBatch(context, records)
    const prepared = (yield* Effect.forEach(serialized.chunks, (chunk) => compressChunk(serialized, chunk))).flat()
    return preparedBatch(prepared, serialized.largePayloads)
  }).pipe(Effect.scoped)

/**
 * A batch's prepared records, with their bytes before and after gzip.
 *
 * @internal
 */
export const preparedBatch = (
  records: ReadonlyArray<PreparedRecord>,
  largePayloads: number
): PreparedBatch => {
  let uncompressedBytes = 0
  let compressedBytes = 0
  for (const p of records) {
    uncompressedBytes += p.uncompressedSize
    compressedBytes += p.data.length
  }
  return { records, largePayloads, uncompressedBytes, compressedBytes }
}

/** The error of a failed payload build, naming the objects its clean-up could not delete. */
const withLeftBehind = (error: PrepareError, objects: ReadonlyArray<PayloadLocation>): PrepareError => {
  if (objects.length === 0) return error
  const leftBehind = objects.map(({ bucket, key }) => ({ bucket, key }))
  switch (error._tag) {
    case "LargePayloadStoreError":
      return new LargePayloadStoreError({ ...error, leftBehind, cause: error.cause })
    case "SerializationError":
      return new SerializationError({ ...error, leftBehind, cause: error.cause })
    case "CompressionError":
      return new CompressionError({ ...error, leftBehind, cause: error.cause })
  }
}

/** Records per compression chunk: a full PutRecords call's worth. */
export const COMPRESSION_CHUNK = KinesisLimits.maxRecordsPerCall

/** The encoder's first buffer: one record at a time is in it, and it grows for a larger one. */
const ENCODER_BYTES = 64 * 1024

/**
 * Envelope bytes after which the part of a chunk packed so far goes to the compressor, before
 * the chunk is complete: a chunk of large records (500 of 30 KB at 500 columns) would
 * otherwise leave the compression worker idle while it is serialized, and the calling thread
 * idle while it is compressed. A chunk of small records (below 2 KiB each) is one part.
 */
export const COMPRESSION_PART_BYTES = 1024 * 1024

/** The `DataFileInfo` of a batch entry's envelope. */
export const entryInfo = (context: PrepareContext, entry: BatchEntry) => ({
  filePath: entry.record.filePath,
  creationTime: context.creationTime,
  accountId: context.config.accountId,
  recordId: entry.recordId,
  logGroupId: context.config.logGroupId,
  schemaName: context.config.schemaName
})

/** One record's envelope, gzip'd on the calling thread (for the few decided in phase 1). */
export const build = (
  context: PrepareContext,
  entry: BatchEntry,
  partitionKeyPrefix: string,
  payload: EntryPayload
): Either.Either<PreparedRecord, SerializationError | CompressionError> =>
  Either.flatMap(
    Either.mapLeft(
      encodeEntryRecordSync(entryInfo(context, entry), payload),
      (e) => new SerializationError({ ...e, recordIndex: entry.index, cause: e.cause })
    ),
    (envelope) =>
      Either.map(
        Either.mapLeft(
          gzipSync(envelope, context.config.compressionLevel),
          (e) => new CompressionError({ ...e, recordIndex: entry.index, cause: e.cause })
        ),
        (data): PreparedRecord => ({ ...entry, data, uncompressedSize: envelope.length, partitionKeyPrefix })
      )
  )

/**
 * Writes the large payload of a record once, under `{logGroupId}-{schemaName}-{streamName}/{record_id}`,
 * retrying transient faults on the writer's backoff. Every location tried is added to
 * `attempted`, for the clean-up of a build that fails.
 */
export const upload = (
  context: PrepareContext,
  slot: OffloadSlot,
  attempted: Array<PayloadLocation>
) => {
  const { config, store } = context
  const body = encodeStandardEntry(slot.dataFileBytes)
  const sha256 = createHash("sha256").update(body).digest()
  const key = `${config.logGroupId}-${config.schemaName}-${config.streamName}/${slot.entry.recordId}`
  const location = store.locate(key)
  attempted.push(location)
  // Whether some try may have written the object: a write refused for certain (a 4xx, a
  // connection never made) every time left nothing to clean up, and nothing is reported left.
  let mayExist = false
  return store.write(key, body).pipe(
    withRequestTimeout(
      config.requestTimeout,
      (facts) => new LargePayloadStoreError({ operation: "write", ...location, ...facts })
    ),
    Effect.tapError((e) => Effect.sync(() => mayExist ||= mayHaveBeenApplied(e.errorName, e.httpStatus))),
    Effect.retry({
      schedule: backoff({ base: config.backoffBase, cap: config.backoffCap, maxRetries: config.maxRetries }),
      while: (e) => e.retryable
    }),
    Effect.tapError(() =>
      Effect.sync(() => {
        if (!mayExist) attempted.splice(attempted.indexOf(location), 1)
      })
    ),
    Effect.mapError((e) => new LargePayloadStoreError({ ...e, recordIndex: slot.entry.index, cause: e.cause })),
    Effect.map((written) => ({
      location: written,
      entry: create(LargeDataFileEntrySchema, {
        bucket: written.bucket,
        key: written.key,
        sizeBytes: BigInt(body.length),
        sha256: new Uint8Array(sha256)
      })
    }))
  )
}
