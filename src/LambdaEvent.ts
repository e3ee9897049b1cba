/**
 * Lambda Kinesis events for tests: the `KinesisStreamEvent` a function on a Kinesis event
 * source mapping receives, built from records as Lambda delivers them — each record's Data in
 * base64, its partition key, a sequence number, `approximateArrivalTimestamp` in epoch
 * seconds, `eventID` (`shardId:sequenceNumber`) and the stream's `eventSourceARN`.
 *
 * - {@link fromRecords} takes Kinesis records whose Data is already encoded (read from a
 *   stream, or recorded by `KinesisTest`).
 * - {@link fromDataFiles} encodes `DataFileV1` records as the writer does (gzip'd
 *   `DataFileEntryRecord`s, or aggregates with `aggregate: true`).
 *
 * `RecordReader.processLambdaEvent`, `decodeLambdaEvent` and `decodeLambdaRecords` read what
 * these build; so does a handler typed with `@types/aws-lambda`'s `KinesisStreamEvent`.
 *
 * @example
 * ```ts
 * import { RecordReader } from "cygnus-kinesis-writer"
 * import { LambdaEvent, RecordGenerator } from "cygnus-kinesis-writer/testing"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const event = yield* LambdaEvent.fromDataFiles(RecordGenerator.makeDataFiles(3))
 *   return yield* RecordReader.decodeLambdaEvent(event)
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Effect, Either } from "effect"
import type { CompressionError, SerializationError } from "./Errors.js"
import type { DataFileV1 } from "./gen/cygnus/v1/data_file_pb.js"
import type { DataFileInfoFields } from "./internal/codec.js"
import { DEFAULT_COMPRESSION_LEVEL, encodeRecordBatchSync, encodeRecordSync } from "./internal/codec.js"
import { partitionKeyPrefixes } from "./internal/core/partitionKey.js"

/**
 * One record of a Lambda Kinesis event, every field Lambda sets (`KinesisStreamRecord` of
 * `@types/aws-lambda`).
 *
 * @since 0.1.0
 */
export interface KinesisStreamRecord {
  readonly kinesis: {
    readonly kinesisSchemaVersion: string
    readonly partitionKey: string
    readonly sequenceNumber: string
    /** The record's Data, base64. */
    readonly data: string
    /** When Kinesis received the record, in epoch seconds (with milliseconds as the fraction). */
    readonly approximateArrivalTimestamp: number
  }
  readonly eventSource: "aws:kinesis"
  readonly eventVersion: string
  /** `shardId:sequenceNumber`. */
  readonly eventID: string
  readonly eventName: "aws:kinesis:record"
  readonly invokeIdentityArn: string
  readonly awsRegion: string
  readonly eventSourceARN: string
}

/**
 * A Lambda Kinesis event (`KinesisStreamEvent` of `@types/aws-lambda`); it is a
 * `RecordReader.LambdaKinesisEvent`.
 *
 * @since 0.1.0
 */
export interface KinesisStreamEvent {
  readonly Records: Array<KinesisStreamRecord>
}

/**
 * A Kinesis record whose Data is already encoded. Fields left out are made up as Lambda
 * would show them: the partition key `"partition-key-{index}"`, increasing sequence numbers
 * from {@link EventOptions.firstSequenceNumber}, the event's shard and arrival time.
 *
 * @since 0.1.0
 */
export interface KinesisRecordInput {
  readonly data: Uint8Array
  readonly partitionKey?: string | undefined
  readonly sequenceNumber?: string | undefined
  readonly shardId?: string | undefined
  readonly approximateArrivalTimestamp?: Date | undefined
}

/**
 * Where the event says its records come from. Every field has a default, so the same call
 * builds the same event.
 *
 * @since 0.1.0
 */
export interface EventOptions {
  /** Default `"test-stream"`; names the stream in `eventSourceARN`. */
  readonly streamName?: string | undefined
  /** Default `"us-east-1"`. */
  readonly region?: string | undefined
  /** Default `"123456789012"`; the account in `eventSourceARN` and `invokeIdentityArn`. */
  readonly accountId?: string | undefined
  /** Default `"shardId-000000000000"`, for records that name no shard. */
  readonly shardId?: string | undefined
  /**
   * The sequence number of the first record that names none; each next one is one more.
   * Default `49590338271490256608559692538361571095921575989136588898n` (56 digits, as
   * Kinesis gives them).
   */
  readonly firstSequenceNumber?: bigint | undefined
  /** Default 2026-01-01T00:00:00Z, for records that name no arrival time. */
  readonly arrivalTime?: Date | undefined
}

/**
 * The default first sequence number: 56 digits, as Kinesis gives them.
 *
 * @since 0.1.0
 */
export const defaultFirstSequenceNumber = 49590338271490256608559692538361571095921575989136588898n

const defaultArrivalTime = new Date("2026-01-01T00:00:00.000Z")

/**
 * The event Lambda would deliver for `records`, in their order.
 *
 * @example
 * ```ts
 * const event = LambdaEvent.fromRecords([{ data: encoded.data, partitionKey: "lg-orders-3-0" }])
 * ```
 *
 * @since 0.1.0
 */
export const fromRecords = (
  records: ReadonlyArray<KinesisRecordInput>,
  options: EventOptions = {}
): KinesisStreamEvent => {
  const region = options.region ?? "us-east-1"
  const accountId = options.accountId ?? "123456789012"
  const eventSourceARN = `arn:aws:kinesis:${region}:${accountId}:stream/${options.streamName ?? "test-stream"}`
  const invokeIdentityArn = `arn:aws:iam::${accountId}:role/lambda-kinesis-role`
  const first = options.firstSequenceNumber ?? defaultFirstSequenceNumber
  const arrival = options.arrivalTime ?? defaultArrivalTime
  return {
    Records: records.map((record, index) => {
      const sequenceNumber = record.sequenceNumber ?? String(first + BigInt(index))
      const shardId = record.shardId ?? options.shardId ?? "shardId-000000000000"
      return {
        kinesis: {
          kinesisSchemaVersion: "1.0",
          partitionKey: record.partitionKey ?? `partition-key-${index}`,
          sequenceNumber,
          data: Buffer.from(record.data.buffer, record.data.byteOffset, record.data.byteLength).toString("base64"),
          approximateArrivalTimestamp: (record.approximateArrivalTimestamp ?? arrival).getTime() / 1000
        },
        eventSource: "aws:kinesis",
        eventVersion: "1.0",
        eventID: `${shardId}:${sequenceNumber}`,
        eventName: "aws:kinesis:record",
        invokeIdentityArn,
        awsRegion: region,
        eventSourceARN
      }
    })
  }
}

/**
 * How {@link fromDataFiles} encodes: the info envelope of each record, as a writer with
 * these settings would write it.
 *
 * @since 0.1.0
 */
export interface DataFileOptions extends EventOptions {
  /** Default `"test-log-group"`. */
  readonly logGroupId?: string | undefined
  /** Default `"test-schema"`. */
  readonly schemaName?: string | undefined
  /** Default 16: partition keys are `{logGroupId}-{schemaName}-{bucket}-0`, as the writer's first attempt makes them. */
  readonly distributionFactor?: number | undefined
  /** Each record's `record_id`. Default: a fixed UUID per index (`00000000-0000-4000-8000-{index}`). */
  readonly recordId?: ((index: number) => string) | undefined
  /** Each record's `creation_time`, in epoch milliseconds. Default: `arrivalTime`. */
  readonly creationTime?: bigint | undefined
  /**
   * `true`: the records that share a partition key travel as one aggregated Kinesis record, as
   * a writer with `aggregation` on sends them (a record alone on its key stays a plain one).
   */
  readonly aggregate?: boolean | undefined
}

const defaultRecordId = (index: number): string => `00000000-0000-4000-8000-${String(index).padStart(12, "0")}`

/**
 * The event Lambda would deliver for `dataFiles` written by a writer: each one encoded as the
 * writer encodes it (inline; the records are not offloaded to S3 whatever their size), with
 * the partition key of its first attempt. Fails with the `SerializationError` of a record
 * that cannot be encoded (an empty `file_path`, an int64 out of range).
 *
 * @example
 * ```ts
 * const event = yield* LambdaEvent.fromDataFiles(records, { logGroupId: "lg", schemaName: "orders", aggregate: true })
 * const response = yield* RecordReader.processLambdaEvent(event, handle)
 * ```
 *
 * @since 0.1.0
 */
export const fromDataFiles = (
  dataFiles: ReadonlyArray<DataFileV1>,
  options: DataFileOptions = {}
): Effect.Effect<KinesisStreamEvent, SerializationError | CompressionError> =>
  Effect.suspend(() => {
    const parts = {
      logGroupId: options.logGroupId ?? "test-log-group",
      schemaName: options.schemaName ?? "test-schema"
    }
    const keyPrefix = partitionKeyPrefixes(parts, options.distributionFactor ?? 16)
    const recordId = options.recordId ?? defaultRecordId
    const creationTime = options.creationTime ??
      BigInt((options.arrivalTime ?? defaultArrivalTime).getTime())
    const byKey = new Map<string, Array<{ readonly dataFile: DataFileV1; readonly info: DataFileInfoFields }>>()
    const groups: Array<Array<{ readonly dataFile: DataFileV1; readonly info: DataFileInfoFields }>> = []
    dataFiles.forEach((dataFile, index) => {
      const info: DataFileInfoFields = {
        filePath: dataFile.filePath,
        creationTime,
        accountId: options.accountId ?? "123456789012",
        recordId: recordId(index),
        logGroupId: parts.logGroupId,
        schemaName: parts.schemaName
      }
      const key = `${keyPrefix(dataFile.filePath)}0`
      const group = options.aggregate === true ? byKey.get(key) : undefined
      if (group !== undefined) {
        group.push({ dataFile, info })
      } else {
        const created = [{ dataFile, info }]
        groups.push(created)
        if (options.aggregate === true) byKey.set(key, created)
      }
    })
    const records: Array<KinesisRecordInput> = []
    for (const group of groups) {
      const first = group[0]!
      const encoded = group.length === 1
        ? encodeRecordSync(first.dataFile, first.info, DEFAULT_COMPRESSION_LEVEL)
        : encodeRecordBatchSync(group, DEFAULT_COMPRESSION_LEVEL)
      if (Either.isLeft(encoded)) return Effect.fail(encoded.left)
      records.push({ data: encoded.right.data, partitionKey: `${keyPrefix(first.info.filePath)}0` })
    }
    return Effect.succeed(fromRecords(records, options))
  })
