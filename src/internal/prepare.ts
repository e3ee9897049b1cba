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
 *
 * @since 0.1.0
 */
import { create } from "@bufbuild/protobuf"
import type { Scope } from "effect"
import { Duration, Effect, Either, Fiber } from "effect"
import { createHash, randomUUID } from "node:crypto"
import { EnvelopePacker } from "./envelopePacker.js"
import type { EntryPayload } from "./codec.js"
import { encodeEntryRecordSync, encodeStandardEntry, gzipSync, serializeDataFileSync } from "./codec.js"
import type { Compressor } from "../Compressor.js"
import { CompressionError, LargePayloadStoreError, SerializationError } from "../Errors.js"
import type { DataFileV1 } from "../gen/cygnus/v1/data_file_pb.js"
import { LargeDataFileEntrySchema } from "../gen/cygnus/v1/data_file_entry_pb.js"
import type { PayloadLocation } from "../LargePayloadStore.js"
import { LargePayloadStore } from "../LargePayloadStore.js"
import { backoff } from "./backoff.js"
import { partitionKeyPrefix } from "./partitionKey.js"
import type { ResolvedWriterConfig } from "./config.js"

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
 *
 * @since 0.1.0
 */
export interface PrepareContext {
  readonly config: ResolvedWriterConfig
  /** The stream's record limit in bytes (data plus partition key). */
  readonly recordLimitBytes: number
  readonly store: LargePayloadStore["Type"]
  readonly compressor: Compressor["Type"]
  readonly creationTime: bigint
}

/**
 * A record after phase 1: already prepared (large payloads and records that had to be
 * compressed to decide where they go), or packed into its chunk's envelopes, on their way
 * through the `Compressor`. Only an offloaded record keeps its serialized bytes (for the
 * upload).
 *
 * @since 0.1.0
 */
export interface SerializedRecord extends BatchEntry {
  readonly partitionKeyPrefix: string
  dataFileBytes: Uint8Array | undefined
  prepared: PreparedRecord | undefined
}

/**
 * Up to `COMPRESSION_CHUNK` consecutive records and the compression of the envelopes of
 * those not prepared in phase 1, started as soon as the chunk was serialized.
 *
 * @since 0.1.0
 */
export interface SerializedChunk {
  readonly records: ReadonlyArray<SerializedRecord>
  /** Indexes (in `records`) of the packed records, in packing order. */
  readonly packed: ReadonlyArray<number>
  /** Envelope sizes before gzip, in packing order. */
  readonly envelopeSizes: ReadonlyArray<number>
  /** The gzip'd envelopes, in packing order. */
  readonly compressed: Fiber.Fiber<Array<Uint8Array>, CompressionError>
}

/**
 * A batch after phase 1.
 *
 * @since 0.1.0
 */
export interface SerializedBatch {
  readonly records: ReadonlyArray<SerializedRecord>
  readonly chunks: ReadonlyArray<SerializedChunk>
  readonly largePayloads: number
}

const YIELD_EVERY = 256

/**
 * Lets timers and I/O run: a macrotask turn, unlike `Effect.yieldNow`, which the default
 * scheduler resumes as a microtask.
 */
const yieldToEventLoop = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/**
 * Phase 1: serializes every record, packs the envelopes of each chunk and starts its
 * compression (which then runs beside the serialization of the next chunks), and offloads
 * the large payloads. Fails before anything is sent, naming the record; the compressions
 * started belong to the scope.
 *
 * @since 0.1.0
 */
export const serializeBatch = (
  context: PrepareContext,
  records: ReadonlyArray<DataFileV1>
): Effect.Effect<SerializedBatch, PrepareError, Scope.Scope> =>
  Effect.gen(function*() {
    const { config } = context
    const attemptDigits = String(config.maxRetries).length
    const fixedInfoBytes = config.accountId.length + config.logGroupId.length + config.schemaName.length + 36 + 64
    const packer = new EnvelopePacker({ ...config, creationTime: context.creationTime })
    const out: Array<SerializedRecord> = new Array(records.length)
    const chunks: Array<SerializedChunk> = []
    const offload: Array<SerializedRecord> = []
    for (let start = 0; start < records.length; start += COMPRESSION_CHUNK) {
      const end = Math.min(records.length, start + COMPRESSION_CHUNK)
      const packed: Array<number> = []
      const envelopeSizes: Array<number> = []
      // The hot loop: plain code over Eithers, no fiber or closure per record.
      for (let index = start; index < end; index++) {
        if (index % YIELD_EVERY === YIELD_EVERY - 1) yield* yieldToEventLoop
        const record = records[index]!
        const serialized = serializeDataFileSync(record, index)
        if (Either.isLeft(serialized)) return yield* serialized.left
        const dataFileBytes = serialized.right
        const keyPrefix = partitionKeyPrefix(config, record.filePath, config.distributionFactor)
        const entry: SerializedRecord = {
          index,
          record,
          recordId: randomUUID(),
          partitionKeyPrefix: keyPrefix,
          dataFileBytes: undefined,
          prepared: undefined
        }
        out[index] = entry
        if (dataFileBytes.length > config.largePayloadThreshold) {
          entry.dataFileBytes = dataFileBytes
          offload.push(entry)
          continue
        }
        // The record limit guard: a record that might not fit once gzip'd (its bound says so)
        // is compressed now to decide; the others go to the chunk's compression.
        const keyBytes = Buffer.byteLength(keyPrefix) + attemptDigits
        const bound = gzipBound(dataFileBytes.length + 3 * record.filePath.length + fixedInfoBytes)
        if (bound + keyBytes <= context.recordLimitBytes) {
          packed.push(index - start)
          envelopeSizes.push(packer.add(dataFileBytes, record.filePath, entry.recordId))
          continue
        }
        const built = yield* build(context, entry, { _tag: "standard", dataFileBytes })
        if (built.data.length + keyBytes > context.recordLimitBytes) {
          entry.dataFileBytes = dataFileBytes
          offload.push(entry)
        } else {
          entry.prepared = built
        }
      }
      const compressed = packed.length === 0
        ? Fiber.succeed<Array<Uint8Array>>([])
        : yield* Effect.forkScoped(context.compressor.gzipPacked(packer.take(), config.compressionLevel))
      chunks.push({ records: out.slice(start, end), packed, envelopeSizes, compressed })
    }
    // Objects written (or perhaps written: an upload whose answer was lost) when the build
    // fails belong to no record on the stream: delete them.
    const attempted: Array<string> = []
    yield* Effect.forEach(offload, (entry) =>
      Effect.flatMap(upload(context, entry, attempted), (pointer) =>
        Effect.flatMap(build(context, entry, { _tag: "large", pointer: pointer.entry }), (built) => {
          const keyBytes = Buffer.byteLength(entry.partitionKeyPrefix) + attemptDigits
          if (built.data.length + keyBytes > context.recordLimitBytes) {
            return Effect.fail(
              new SerializationError({
                subject: "DataFileEntryRecord",
                reason: `even the large-payload pointer (${built.data.length} bytes) exceeds the stream's record limit of ${context.recordLimitBytes} bytes`,
                recordIndex: entry.index,
                filePath: entry.record.filePath
              })
            )
          }
          // The entry object is shared with its chunk: update it in place.
          const mutable = entry as { largePayload?: PayloadLocation | undefined }
          mutable.largePayload = pointer.location
          entry.prepared = { ...built, largePayload: pointer.location }
          entry.dataFileBytes = undefined
          return Effect.void
        })), { concurrency: config.maxConcurrentUploads, discard: true }).pipe(
      Effect.onError(() =>
        Effect.forEach(
          attempted,
          (key) => Effect.ignore(Effect.timeout(context.store.delete(context.store.locate(key)), "10 seconds")),
          { concurrency: config.maxConcurrentUploads, discard: true }
        )
      )
    )
    return { records: out, chunks, largePayloads: offload.length }
  })

/**
 * Phase 2: the prepared records of a chunk, once its compression is done. The compressed
 * records are handed on, not kept: once written, nothing holds them.
 *
 * @since 0.1.0
 */
export const compressChunk = (chunk: SerializedChunk): Effect.Effect<Array<PreparedRecord>, CompressionError> =>
  Effect.map(Fiber.join(chunk.compressed), (gz) => {
    const out: Array<PreparedRecord> = new Array(chunk.records.length)
    chunk.packed.forEach((at, i) => {
      const entry = chunk.records[at]!
      out[at] = {
        index: entry.index,
        record: entry.record,
        recordId: entry.recordId,
        partitionKeyPrefix: entry.partitionKeyPrefix,
        data: gz[i]!,
        uncompressedSize: chunk.envelopeSizes[i]!
      }
    })
    chunk.records.forEach((entry, at) => {
      if (out[at] === undefined) out[at] = entry.prepared!
    })
    return out
  })

/**
 * Both phases for a whole batch: what `KinesisWriter.prepare` returns.
 *
 * @since 0.1.0
 */
export const prepareBatch = (
  context: PrepareContext,
  records: ReadonlyArray<DataFileV1>
): Effect.Effect<PreparedBatch, PrepareError> =>
  Effect.gen(function*() {
    const serialized = yield* serializeBatch(context, records)
    const prepared = (yield* Effect.forEach(serialized.chunks, compressChunk)).flat()
    let uncompressedBytes = 0
    let compressedBytes = 0
    for (const p of prepared) {
      uncompressedBytes += p.uncompressedSize
      compressedBytes += p.data.length
    }
    return { records: prepared, largePayloads: serialized.largePayloads, uncompressedBytes, compressedBytes }
  }).pipe(Effect.scoped)

/**
 * Records per compression chunk: a full PutRecords call's worth.
 *
 * @since 0.1.0
 */
export const COMPRESSION_CHUNK = 500

/** zlib's deflateBound plus the gzip header and trailer: no gzip stream of `n` bytes is longer. */
const gzipBound = (n: number): number => n + (n >>> 12) + (n >>> 14) + (n >>> 25) + 13 + 18

const info = (context: PrepareContext, entry: BatchEntry) => ({
  filePath: entry.record.filePath,
  creationTime: context.creationTime,
  accountId: context.config.accountId,
  recordId: entry.recordId,
  logGroupId: context.config.logGroupId,
  schemaName: context.config.schemaName
})

/** One record's envelope, gzip'd on the calling thread (for the few decided in phase 1). */
const build = (
  context: PrepareContext,
  entry: SerializedRecord,
  payload: EntryPayload
): Either.Either<PreparedRecord, SerializationError | CompressionError> =>
  Either.flatMap(
    Either.mapLeft(
      encodeEntryRecordSync(info(context, entry), payload),
      (e) => new SerializationError({ ...e, recordIndex: entry.index, cause: e.cause })
    ),
    (envelope) =>
      Either.map(
        Either.mapLeft(
          gzipSync(envelope, context.config.compressionLevel),
          (e) => new CompressionError({ ...e, recordIndex: entry.index, cause: e.cause })
        ),
        (data): PreparedRecord => ({
          index: entry.index,
          record: entry.record,
          recordId: entry.recordId,
          data,
          uncompressedSize: envelope.length,
          partitionKeyPrefix: entry.partitionKeyPrefix
        })
      )
  )

/**
 * Writes the large payload of a record once, under `{logGroupId}-{schemaName}-{streamName}/{record_id}`,
 * retrying transient faults on the writer's backoff.
 */
const upload = (context: PrepareContext, entry: SerializedRecord, attempted: Array<string>) => {
  const { config } = context
  const body = encodeStandardEntry(entry.dataFileBytes!)
  const sha256 = createHash("sha256").update(body).digest()
  const key = `${config.logGroupId}-${config.schemaName}-${config.streamName}/${entry.recordId}`
  attempted.push(key)
  return context.store.write(key, body).pipe(
    Effect.timeoutFail({
      duration: config.requestTimeout,
      onTimeout: () =>
        new LargePayloadStoreError({
          operation: "write",
          ...context.store.locate(key),
          errorName: "TimeoutError",
          retryable: true,
          cause: new Error(`no answer within ${Duration.format(config.requestTimeout)}`)
        })
    }),
    Effect.retry({
      schedule: backoff({ base: config.backoffBase, cap: config.backoffCap, maxRetries: config.maxRetries }),
      while: (e) => e.retryable
    }),
    Effect.mapError((e) => new LargePayloadStoreError({ ...e, recordIndex: entry.index, cause: e.cause })),
    Effect.map((location) => ({
      location,
      entry: create(LargeDataFileEntrySchema, {
        bucket: location.bucket,
        key: location.key,
        sizeBytes: BigInt(body.length),
        sha256: new Uint8Array(sha256)
      })
    }))
  )
}
