/**
 * The consumer side: a Kinesis record's Data back to its `DataFileInfo` and
 * `DataFileV1`, fetching a large payload from the `LargePayloadStore` and verifying its size
 * and sha256. For a Lambda handler, a KCL worker, or a test reading a stream back.
 *
 * A Kinesis record holds one logical record, or — from a writer with `aggregation` on —
 * several (`DataFileEntryRecordBatch`). {@link decodeRecordAll} and every function over many
 * records (`decodeRecords`, the Lambda functions) return every logical record, aggregated or
 * not; {@link decodeRecord} reads exactly one and refuses an aggregate.
 *
 * @since 0.1.0
 */
import { Cause, Effect, Option } from "effect"
import { DecodeError } from "./Errors.js"
import type { LargePayloadStoreError } from "./Errors.js"
import type { DataFileInfo, LargeDataFileEntry } from "./gen/cygnus/v1/data_file_entry_pb.js"
import type { DataFileV1 } from "./gen/cygnus/v1/data_file_pb.js"
import { decodeRecordDataAllSync, decodeRecordDataSync } from "./internal/codec.js"
import { resolve } from "./internal/reader/resolve.js"
import { SpanNames } from "./internal/spans.js"
import type { LargePayloadStore } from "./LargePayloadStore.js"

/**
 * A record read back.
 *
 * @since 0.1.0
 */
export interface DecodedRecord {
  readonly info: DataFileInfo
  readonly dataFile: DataFileV1
  /** The pointer the record carried, when its data file was fetched from S3. */
  readonly largePayload?: LargeDataFileEntry | undefined
}

/**
 * What reading a record can fail with: a `DecodeError` (not gzip, not our message, a missing
 * part, a large payload whose size or sha256 does not match) or a `LargePayloadStoreError`
 * (the S3 object is missing or unreadable).
 *
 * @since 0.1.0
 */
export type ReadError = DecodeError | LargePayloadStoreError

/**
 * Decodes one Kinesis record's Data that holds one record. An aggregate (several records,
 * from a writer with `aggregation` on) fails with a `DecodeError` of reason `Aggregated`:
 * read those with {@link decodeRecordAll}.
 *
 * @example
 * ```ts
 * const { info, dataFile } = yield* RecordReader.decodeRecord(record.Data)
 * ```
 *
 * @since 0.1.0
 */
export const decodeRecord = Effect.fn(SpanNames.decodeRecord)(function*(
  data: Uint8Array
): Effect.fn.Return<DecodedRecord, ReadError, LargePayloadStore> {
  return yield* resolve(yield* decodeRecordDataSync(data))
})

/**
 * Decodes every logical record of one Kinesis record's Data, in order: the members of an
 * aggregate, or the one record of a record that is not aggregated. Large payloads are
 * fetched a few at a time; the first that fails fails the call.
 *
 * @example
 * ```ts
 * const records = yield* RecordReader.decodeRecordAll(record.Data)
 * ```
 *
 * @since 0.1.0
 */
export const decodeRecordAll = (
  data: Uint8Array,
  options: { readonly concurrency?: number | undefined } = {}
): Effect.Effect<Array<DecodedRecord>, ReadError, LargePayloadStore> =>
  Effect.flatMap(
    Effect.suspend(() => decodeRecordDataAllSync(data)),
    (decoded) =>
      decoded.length === 1
        ? Effect.map(resolve(decoded[0]!), (one) => [one])
        : Effect.forEach(decoded, resolve, { concurrency: options.concurrency ?? 8 })
  ).pipe(Effect.withSpan(SpanNames.decodeRecord))

/**
 * Decodes the records of a `GetRecords` answer (or anything with a `Data` field), in order,
 * fetching large payloads a few at a time: every logical record, the members of an
 * aggregate in their order in place of it. The first record that fails to decode fails the
 * whole call; its error names what failed.
 *
 * @since 0.1.0
 */
export const decodeRecords = (
  records: ReadonlyArray<{ readonly Data?: Uint8Array | undefined }>,
  options: { readonly concurrency?: number | undefined } = {}
): Effect.Effect<Array<DecodedRecord>, ReadError, LargePayloadStore> =>
  Effect.map(
    Effect.forEach(records, (r) => decodeRecordAll(r.Data ?? new Uint8Array(0)), {
      concurrency: options.concurrency ?? 8
    }),
    (all) => all.flat()
  )

/**
 * A record of a Lambda Kinesis event (`event.Records[i]`), as far as the reader reads it:
 * `kinesis.data` is the record's Data in base64, `kinesis.sequenceNumber` identifies it in
 * a partial batch response. The `KinesisStreamRecord` of `@types/aws-lambda` fits.
 *
 * @since 0.1.0
 */
export interface LambdaKinesisEventRecord {
  readonly kinesis: {
    /** The record's Data, base64. Absent only in a malformed event: that record is a `DecodeError`. */
    readonly data?: string | undefined
    readonly sequenceNumber?: string | undefined
    readonly partitionKey?: string | undefined
  }
}

/**
 * A Lambda Kinesis event (`KinesisStreamEvent` of `@types/aws-lambda` fits).
 *
 * @since 0.1.0
 */
export interface LambdaKinesisEvent {
  readonly Records: ReadonlyArray<LambdaKinesisEventRecord>
}

/**
 * The partial batch response of a Lambda function on a Kinesis event source mapping with
 * `FunctionResponseTypes: ["ReportBatchItemFailures"]` (`KinesisStreamBatchResponse` of
 * `@types/aws-lambda`): the sequence numbers of the records that failed.
 *
 * @since 0.1.0
 */
export interface KinesisStreamBatchResponse {
  readonly batchItemFailures: Array<{ readonly itemIdentifier: string }>
}

/**
 * What {@link decodeLambdaRecords} gives for one record of the event: where it is (its
 * index in `event.Records` and its sequence number) and either the decoded record or why it
 * could not be read. An aggregate gives one `Decoded` per member (`member` 0, 1, …), or one
 * `Failed` for the whole Kinesis record.
 *
 * @since 0.1.0
 */
export type LambdaRecordResult =
  | {
    readonly _tag: "Decoded"
    readonly index: number
    readonly sequenceNumber: string | undefined
    /** The record's place in its Kinesis record: 0, or its index among an aggregate's members. */
    readonly member: number
    readonly record: DecodedRecord
  }
  | {
    readonly _tag: "Failed"
    readonly index: number
    readonly sequenceNumber: string | undefined
    readonly error: ReadError
  }

/**
 * Where a record is in its Lambda event, given to the handler of {@link processLambdaEvent}.
 *
 * @since 0.1.0
 */
export interface LambdaRecordPosition {
  readonly index: number
  readonly sequenceNumber: string | undefined
  /** The record's place in its Kinesis record: 0, or its index among an aggregate's members. */
  readonly member: number
}

/**
 * Every logical record of one Lambda event record's Data; a record without any is a
 * DecodeError that names it.
 */
const decodeLambdaRecord = (
  record: LambdaKinesisEventRecord,
  index: number
): Effect.Effect<Array<DecodedRecord>, ReadError, LargePayloadStore> => {
  const sequenceNumber = record.kinesis?.sequenceNumber
  const data = record.kinesis?.data
  if (typeof data !== "string") {
    return Effect.fail(
      new DecodeError({
        reason: "MissingField",
        detail: "the Lambda event record has no kinesis.data",
        recordIndex: index,
        sequenceNumber
      })
    )
  }
  return decodeRecordAll(Buffer.from(data, "base64")).pipe(
    Effect.mapError((error) =>
      error._tag === "DecodeError"
        ? new DecodeError({
          reason: error.reason,
          detail: error.detail,
          recordIndex: index,
          sequenceNumber,
          cause: error.cause
        })
        : error
    )
  )
}

/**
 * Decodes the records of a Lambda Kinesis event (`event.Records`), in order, all or
 * nothing, every logical record (an aggregate's members in place of it): the first record
 * that cannot be read fails the whole call, and a `DecodeError` names its index and
 * sequence number. To handle each record on its own, and have Lambda
 * retry only from the first that failed, use {@link processLambdaEvent} or
 * {@link decodeLambdaRecords}.
 *
 * @since 0.1.0
 */
export const decodeLambdaEvent = (
  event: LambdaKinesisEvent,
  options: { readonly concurrency?: number | undefined } = {}
): Effect.Effect<Array<DecodedRecord>, ReadError, LargePayloadStore> =>
  Effect.map(
    Effect.forEach(event.Records, decodeLambdaRecord, { concurrency: options.concurrency ?? 8 }),
    (all) => all.flat()
  )

/**
 * Decodes every record of a Lambda Kinesis event on its own: one result per logical record,
 * in order, each the decoded record or its `DecodeError` / `LargePayloadStoreError`, with its
 * index and sequence number (and, in an aggregate, its `member` index; an aggregate that
 * cannot be read is one `Failed`). Never fails; large payloads are fetched a few at a time.
 *
 * @example
 * ```ts
 * const results = yield* RecordReader.decodeLambdaRecords(event)
 * const failed = results.filter((r) => r._tag === "Failed")
 * ```
 *
 * @since 0.1.0
 */
export const decodeLambdaRecords = (
  event: LambdaKinesisEvent,
  options: { readonly concurrency?: number | undefined } = {}
): Effect.Effect<Array<LambdaRecordResult>, never, LargePayloadStore> =>
  Effect.map(
    Effect.forEach(event.Records, (record, index) => {
      const sequenceNumber = record.kinesis?.sequenceNumber
      return Effect.match(decodeLambdaRecord(record, index), {
        onSuccess: (decoded) =>
          decoded.map((one, member): LambdaRecordResult => ({
            _tag: "Decoded",
            index,
            sequenceNumber,
            member,
            record: one
          })),
        onFailure: (error): Array<LambdaRecordResult> => [{ _tag: "Failed", index, sequenceNumber, error }]
      })
    }, { concurrency: options.concurrency ?? 8 }),
    (all) => all.flat()
  )

/**
 * Runs `handler` on each logical record of a Lambda Kinesis event (each member of an
 * aggregate, in order) and returns the partial batch response Lambda expects: the sequence
 * number of every Kinesis record that could not be decoded or for one of whose logical
 * records the handler failed (or died) in `batchItemFailures` — once, even when several
 * members of an aggregate failed; its other members come again too. The function's event source
 * mapping must have `FunctionResponseTypes: ["ReportBatchItemFailures"]`; otherwise Lambda
 * ignores the response and a handler that returns counts the whole batch as processed.
 *
 * Lambda takes the lowest sequence number in `batchItemFailures` as its checkpoint: the
 * records before it are done, and that record and every record after it in the shard are
 * delivered again, the ones that succeeded included. Handlers must therefore be idempotent
 * (de-duplicate on `info.recordId`). A record that fails every time is retried until the
 * mapping's `MaximumRetryAttempts` / `MaximumRecordAgeInSeconds` run out, then goes to its
 * on-failure destination; `BisectBatchOnFunctionError` narrows the retried batch down to it.
 * A failed record without a sequence number is reported with an empty `itemIdentifier`,
 * which Lambda treats as the failure of the whole batch.
 *
 * Records are handled in order, one at a time (`concurrency` raises that, at the cost of
 * order). One warning is logged per event that has failed records, naming the first few.
 * Interruption (the function's timeout) is not caught.
 *
 * @example
 * ```ts
 * import { S3Client } from "@aws-sdk/client-s3"
 * import { Cause, Effect, Option } from "effect"
 * import { LargePayloadStore, RecordReader } from "cygnus-kinesis-writer/reader"
 *
 * const StoreLive = LargePayloadStore.layerS3({ client: new S3Client({}), bucket: "my-large-payload-bucket" })
 *
 * export const handler = (event: RecordReader.LambdaKinesisEvent) =>
 *   RecordReader.processLambdaEvent(event, ({ dataFile, info }) =>
 *     Effect.log(`${info.recordId} ${dataFile.filePath}`)
 *   ).pipe(Effect.provide(StoreLive), Effect.runPromise)
 * ```
 *
 * @since 0.1.0
 */
export const processLambdaEvent = <E, R>(
  event: LambdaKinesisEvent,
  handler: (record: DecodedRecord, position: LambdaRecordPosition) => Effect.Effect<unknown, E, R>,
  options: { readonly concurrency?: number | undefined } = {}
): Effect.Effect<KinesisStreamBatchResponse, never, R | LargePayloadStore> =>
  Effect.gen(function*() {
    const outcomes = yield* Effect.forEach(event.Records, (record, index) => {
      const sequenceNumber = record.kinesis?.sequenceNumber
      const failed = (cause: Cause.Cause<unknown>) =>
        // A failure or a defect fails this record; interruption stops the event.
        Cause.isInterruptedOnly(cause) ? Effect.interrupt : Effect.succeed({ index, sequenceNumber, cause })
      return decodeLambdaRecord(record, index).pipe(
        Effect.matchCauseEffect({
          onFailure: failed,
          onSuccess: (decoded) =>
            // Every member is handled; the first failure stands for the Kinesis record.
            Effect.map(
              Effect.forEach(decoded, (one, member) =>
                handler(one, { index, sequenceNumber, member }).pipe(
                  Effect.matchCauseEffect({ onSuccess: () => Effect.succeed(undefined), onFailure: failed })
                )),
              (results) => results.find((r) => r !== undefined)
            )
        })
      )
    }, { concurrency: options.concurrency ?? 1 })
    const failures = outcomes.filter((o) => o !== undefined)
    if (failures.length > 0) {
      yield* Effect.logWarning("Kinesis records failed; reported in batchItemFailures").pipe(
        Effect.annotateLogs({
          failed: failures.length,
          records: event.Records.length,
          first: failures.slice(0, 3).map((f) =>
            `#${f.index} ${f.sequenceNumber ?? "(no sequence number)"}: ${causeText(f.cause)}`
          ).join("; ")
        })
      )
    }
    return { batchItemFailures: failures.map((f) => ({ itemIdentifier: f.sequenceNumber ?? "" })) }
  })

/** The first failure or defect of a cause, in one line. */
const causeText = (cause: Cause.Cause<unknown>): string => {
  const error = Option.getOrElse(
    Cause.failureOption(cause),
    () => Option.getOrElse(Cause.dieOption(cause), () => "interrupted")
  )
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
}
