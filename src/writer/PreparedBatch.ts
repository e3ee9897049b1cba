/**
 * Building a batch's payloads, once per `writeBatch`: a fresh `record_id` and the creation
 * time per record, the `DataFileV1` serialized once, large payloads offloaded to the store
 * (the threshold, and the stream's record limit whatever the threshold), envelopes gzip'd.
 * Retries reuse what is built here: nothing is serialized or uploaded twice.
 *
 * @since 0.1.0
 */
import { create } from "@bufbuild/protobuf"
import { Effect, Either } from "effect"
import { createHash, randomUUID } from "node:crypto"
import type { EntryPayload } from "../codec/RecordCodec.js"
import { encodeEntryRecordSync, encodeStandardEntry, gzipSync, serializeDataFileSync } from "../codec/RecordCodec.js"
import { CompressionError, LargePayloadStoreError, SerializationError } from "../errors.js"
import type { DataFileV1 } from "../gen/cygnus/v1/data_file_pb.js"
import { DataFileInfoSchema, LargeDataFileEntrySchema } from "../gen/cygnus/v1/data_file_entry_pb.js"
import type { PayloadLocation } from "../services/LargePayloadStore.js"
import { LargePayloadStore } from "../services/LargePayloadStore.js"
import { backoff } from "./Backoff.js"
import { partitionKeyPrefix } from "./PartitionKey.js"
import type { ResolvedWriterConfig } from "./WriterConfig.js"

/**
 * One record ready for PutRecords, built once and reused by every attempt.
 *
 * @since 0.1.0
 */
export interface PreparedRecord {
  /** Index of the record in the batch given to `writeBatch`. */
  readonly index: number
  /** The caller's record. */
  readonly record: DataFileV1
  readonly recordId: string
  /** The Kinesis record's Data: gzip'd `DataFileEntryRecord`. */
  readonly data: Uint8Array
  /** The envelope's size before gzip. */
  readonly uncompressedSize: number
  /** The partition key without its attempt suffix. */
  readonly partitionKeyPrefix: string
  /** Where the large payload went, for a record offloaded to S3. */
  readonly largePayload?: PayloadLocation | undefined
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

/** What the builder needs to know besides the records. */
export interface PrepareContext {
  readonly config: ResolvedWriterConfig
  /** The stream's record limit in bytes (data plus partition key). */
  readonly recordLimitBytes: number
  readonly store: LargePayloadStore["Type"]
  readonly creationTime: bigint
}

interface Draft {
  readonly index: number
  readonly record: DataFileV1
  readonly recordId: string
  readonly dataFileBytes: Uint8Array
  readonly keyPrefix: string
  /** Bytes of the longest partition key this record can get (last retry). */
  readonly keyBytes: number
}

/**
 * Builds the payloads of a batch. Fails before anything is sent, naming the record.
 *
 * @since 0.1.0
 */
export const prepareBatch = (
  context: PrepareContext,
  records: ReadonlyArray<DataFileV1>
): Effect.Effect<PreparedBatch, PrepareError> =>
  Effect.gen(function*() {
    const { config } = context
    const attemptDigits = String(config.maxRetries).length
    const drafts: Array<Draft> = new Array(records.length)
    const prepared: Array<PreparedRecord | undefined> = new Array(records.length)
    const offload: Array<Draft> = []
    // The hot loop: plain code over Eithers, no fiber or closure per record; it yields now
    // and then so that a long batch does not hold the event loop (timers, interruption).
    for (let index = 0; index < records.length; index++) {
      if (index % YIELD_EVERY === YIELD_EVERY - 1) yield* Effect.yieldNow()
      const record = records[index]!
      const dataFileBytes = yield* serializeDataFileSync(record, index)
      const keyPrefix = partitionKeyPrefix(config, record.filePath, config.distributionFactor)
      const draft: Draft = {
        index,
        record,
        recordId: randomUUID(),
        dataFileBytes,
        keyPrefix,
        keyBytes: Buffer.byteLength(keyPrefix) + attemptDigits
      }
      drafts[index] = draft
      if (dataFileBytes.length > config.largePayloadThreshold) {
        offload.push(draft)
        continue
      }
      const built = yield* build(context, draft, { _tag: "standard", dataFileBytes })
      // The 1 MiB guard: a record whose compressed envelope and key do not fit goes to S3 too.
      if (built.data.length + draft.keyBytes > context.recordLimitBytes) offload.push(draft)
      else prepared[index] = built
    }
    // Objects already written when the build fails belong to no record on the stream: delete them.
    const uploaded: Array<PayloadLocation> = []
    yield* Effect.forEach(offload, (draft) =>
      Effect.flatMap(Effect.tap(upload(context, draft), (pointer) => uploaded.push(pointer.location)), (pointer) =>
        Effect.flatMap(build(context, draft, { _tag: "large", pointer: pointer.entry }), (built) => {
          if (built.data.length + draft.keyBytes > context.recordLimitBytes) {
            return Effect.fail(
              new SerializationError({
                subject: "DataFileEntryRecord",
                reason: `even the large-payload pointer (${built.data.length} bytes) exceeds the stream's record limit of ${context.recordLimitBytes} bytes`,
                recordIndex: draft.index,
                filePath: draft.record.filePath
              })
            )
          }
          prepared[draft.index] = { ...built, largePayload: pointer.location }
          return Effect.void
        })), { concurrency: config.maxConcurrentUploads, discard: true }).pipe(
      Effect.onError(() => deleteBestEffort(context, uploaded))
    )
    let uncompressedBytes = 0
    let compressedBytes = 0
    for (const p of prepared) {
      uncompressedBytes += p!.uncompressedSize
      compressedBytes += p!.data.length
    }
    return { records: prepared as Array<PreparedRecord>, largePayloads: offload.length, uncompressedBytes, compressedBytes }
  })

const YIELD_EVERY = 256

const deleteBestEffort = (context: PrepareContext, locations: ReadonlyArray<PayloadLocation>) =>
  Effect.forEach(locations, (location) => Effect.ignore(Effect.timeout(context.store.delete(location), "10 seconds")), {
    concurrency: context.config.maxConcurrentUploads,
    discard: true
  })

const build = (
  context: PrepareContext,
  draft: Draft,
  payload: EntryPayload
): Either.Either<PreparedRecord, SerializationError | CompressionError> => {
  const { config } = context
  const info = create(DataFileInfoSchema, {
    filePath: draft.record.filePath,
    creationTime: context.creationTime,
    accountId: config.accountId,
    recordId: draft.recordId,
    logGroupId: config.logGroupId,
    schemaName: config.schemaName
  })
  return Either.flatMap(
    Either.mapLeft(encodeEntryRecordSync(info, payload), (e) => new SerializationError({ ...e, recordIndex: draft.index, cause: e.cause })),
    (envelope) =>
      Either.map(
        Either.mapLeft(gzipSync(envelope, config.compressionLevel), (e) => new CompressionError({ ...e, recordIndex: draft.index, cause: e.cause })),
        (data): PreparedRecord => ({
          index: draft.index,
          record: draft.record,
          recordId: draft.recordId,
          data,
          uncompressedSize: envelope.length,
          partitionKeyPrefix: draft.keyPrefix
        })
      )
  )
}

/**
 * Writes the large payload of a record once, under `{logGroupId}-{schemaName}-{streamName}/{record_id}`,
 * retrying transient faults on the writer's backoff.
 */
const upload = (context: PrepareContext, draft: Draft) => {
  const { config } = context
  const body = encodeStandardEntry(draft.dataFileBytes)
  const sha256 = createHash("sha256").update(body).digest()
  return context.store.write(`${config.logGroupId}-${config.schemaName}-${config.streamName}/${draft.recordId}`, body).pipe(
    Effect.retry({
      schedule: backoff({ base: config.backoffBase, cap: config.backoffCap, maxRetries: config.maxRetries }),
      while: (e) => e.retryable
    }),
    Effect.mapError((e) => new LargePayloadStoreError({ ...e, recordIndex: draft.index, cause: e.cause })),
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
