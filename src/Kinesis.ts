/**
 * The `Kinesis` service: the part of Kinesis Data Streams the library needs — PutRecords,
 * DescribeStreamSummary and ListShards for the writer and the producer's pacing;
 * GetShardIterator, GetRecords and ListShards for the `StreamReader` — over
 * `@aws-sdk/client-kinesis` or a test double.
 *
 * @since 0.1.0
 */
import type {
  GetShardIteratorCommandInput,
  KinesisClientConfig,
  ListShardsCommandOutput,
  Shard
} from "@aws-sdk/client-kinesis"
import {
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  PutRecordsCommand
} from "@aws-sdk/client-kinesis"
import type { ConfigError } from "effect"
import { Config, Context, Effect, Layer, Option } from "effect"
import { KinesisError } from "./Errors.js"
import { adviseOnce } from "./internal/aws/clientAdvice.js"
import { requestHandlerFor } from "./internal/aws/httpHandler.js"
import { toKinesisError } from "./internal/awsError.js"
import { Attributes, SpanNames } from "./internal/spans.js"

/**
 * One record of a PutRecords call. Kinesis routes it by the MD5 of its partition key, or, when
 * it has one, by its explicit hash key: the shard whose hash-key range holds that key takes it.
 *
 * @example
 * ```ts
 * // The first shard of any stream: its range starts at 0.
 * const entry: PutRecordsEntry = { data: new Uint8Array([1]), partitionKey: "k", explicitHashKey: "0" }
 * ```
 *
 * @since 0.1.0
 */
export interface PutRecordsEntry {
  readonly data: Uint8Array
  readonly partitionKey: string
  /**
   * The hash key that routes the record instead of its partition key's (`ExplicitHashKey`):
   * the decimal text of an integer in [0, 2^128), as the API takes it. Kinesis refuses the
   * call when it is anything else.
   */
  readonly explicitHashKey?: string | undefined
}

/**
 * The outcome of one record of a PutRecords call, in request order: a shard and sequence
 * number when it was written, an error code (`ProvisionedThroughputExceededException`,
 * `InternalFailure`, `KMSThrottlingException`, …) when it was not.
 *
 * @since 0.1.0
 */
export type PutRecordsResultEntry =
  | { readonly _tag: "Written"; readonly shardId: string; readonly sequenceNumber: string }
  | { readonly _tag: "Failed"; readonly errorCode: string; readonly errorMessage?: string | undefined }

/**
 * A PutRecords request.
 *
 * @since 0.1.0
 */
export interface PutRecordsRequest {
  readonly streamName: string
  /** When set, the stream is addressed by ARN (cross-account writes). */
  readonly streamArn?: string | undefined
  readonly records: ReadonlyArray<PutRecordsEntry>
}

/**
 * What the writer reads of a stream when it is told to honour the stream's record limit.
 *
 * @since 0.1.0
 */
export interface StreamSummary {
  readonly streamName: string
  readonly status: string
  readonly openShardCount: number
  /** The stream's largest record (data plus partition key), in KiB; absent on endpoints that do not report it. */
  readonly maxRecordSizeInKiB?: number | undefined
}

/**
 * One shard of a stream and the hash keys it owns: a record whose partition key's MD5 (read
 * as an unsigned 128-bit big-endian integer) is in [startingHashKey, endingHashKey] goes to
 * it. A closed shard (split or merged away) takes no more writes; the open shards cover every
 * hash key.
 *
 * A shard made by a reshard names its parents: the shard it was split from
 * (`parentShardId`), or the two it was merged from (`parentShardId` and
 * `adjacentParentShardId`). A reader reads the parents to their end before it. A field
 * ListShards did not give is absent.
 *
 * @since 0.1.0
 */
export interface ShardRange {
  readonly shardId: string
  readonly startingHashKey: bigint
  readonly endingHashKey: bigint
  readonly open: boolean
  readonly parentShardId?: string | undefined
  readonly adjacentParentShardId?: string | undefined
  /** The sequence number of the shard's first record. */
  readonly startingSequenceNumber?: string | undefined
  /** The sequence number after which the shard ends; present exactly when the shard is closed. */
  readonly endingSequenceNumber?: string | undefined
}

/**
 * Where a shard iterator starts: at the oldest record kept (`TrimHorizon`), after the newest
 * (`Latest`), at the first record that arrived at or after a time, or at / after a sequence
 * number of the shard.
 *
 * @since 0.1.0
 */
export type ShardIteratorStart =
  | { readonly _tag: "TrimHorizon" }
  | { readonly _tag: "Latest" }
  | { readonly _tag: "AtTimestamp"; readonly timestamp: Date }
  | { readonly _tag: "AtSequenceNumber"; readonly sequenceNumber: string }
  | { readonly _tag: "AfterSequenceNumber"; readonly sequenceNumber: string }

/**
 * A GetShardIterator request.
 *
 * @since 0.1.0
 */
export interface GetShardIteratorRequest {
  readonly streamName: string
  /** When set, the stream is addressed by ARN (cross-account reads). */
  readonly streamArn?: string | undefined
  readonly shardId: string
  readonly start: ShardIteratorStart
}

/**
 * A GetRecords request. `streamName` names the stream in errors; the iterator says the rest.
 *
 * @since 0.1.0
 */
export interface GetRecordsRequest {
  readonly streamName: string
  /** When set, passed on as `StreamARN` (cross-account reads). */
  readonly streamArn?: string | undefined
  readonly shardIterator: string
  /** At most this many records (1–10 000; Kinesis' default is 10 000). */
  readonly limit?: number | undefined
}

/**
 * One Kinesis record as GetRecords gives it.
 *
 * @since 0.1.0
 */
export interface KinesisRecord {
  readonly sequenceNumber: string
  readonly partitionKey: string
  readonly data: Uint8Array
  readonly approximateArrivalTimestamp?: Date | undefined
}

/**
 * A GetRecords answer: the records, in order; the iterator for the next call, absent when
 * the shard is closed and read to its end; how far behind the shard's newest record the
 * answer is (0: at the tip).
 *
 * @since 0.1.0
 */
export interface GetRecordsResult {
  readonly records: ReadonlyArray<KinesisRecord>
  readonly nextShardIterator: string | undefined
  readonly millisBehindLatest: number | undefined
}

/**
 * Kinesis Data Streams, narrowed to what the writer needs. Every call fails with a
 * `KinesisError` whose `retryable` flag drives the writer's retries; interrupting a call
 * aborts its HTTP request.
 *
 * @since 0.1.0
 */
export class Kinesis extends Context.Tag("cygnus-kinesis-writer/Kinesis")<Kinesis, Kinesis.Service>() {
  /**
   * The service over an SDK client. The client stays the caller's to configure and destroy.
   *
   * After its first call, the service logs once at Info what would cost the client: the SDK's
   * default handler, which opens a new HTTP/2 session (a TCP connection and a TLS handshake)
   * per call, and SDK retries (`maxAttempts` > 1), which multiply the writer's own. Each line
   * says the fix.
   *
   * @since 0.1.0
   */
  static readonly make = (client: KinesisClient): Kinesis.Service => {
    const advise = adviseOnce("Kinesis", client)
    const advised = <A, E>(call: Effect.Effect<A, E>): Effect.Effect<A, E> => Effect.ensuring(call, advise)
    return Kinesis.of({
      putRecords: (request) =>
        Effect.tryPromise({
          try: (signal) =>
            client.send(
              new PutRecordsCommand({
                ...(request.streamArn === undefined
                  ? { StreamName: request.streamName }
                  : { StreamARN: request.streamArn }),
                Records: request.records.map((r) =>
                  r.explicitHashKey === undefined
                    ? { Data: r.data, PartitionKey: r.partitionKey }
                    : { Data: r.data, PartitionKey: r.partitionKey, ExplicitHashKey: r.explicitHashKey }
                )
              }),
              { abortSignal: signal }
            ),
          catch: toKinesisError("PutRecords", request.streamName)
        }).pipe(
          advised,
          Effect.flatMap((output) => resultEntries(request, output.Records)),
          Effect.withSpan(SpanNames.putRecords, {
            kind: "client",
            attributes: { [Attributes.streamName]: request.streamName, [Attributes.records]: request.records.length }
          })
        ),
      describeStreamSummary: (streamName, streamArn) =>
        Effect.tryPromise({
          try: (signal) =>
            client.send(
              new DescribeStreamSummaryCommand(
                streamArn === undefined ? { StreamName: streamName } : { StreamARN: streamArn }
              ),
              { abortSignal: signal }
            ),
          catch: toKinesisError("DescribeStreamSummary", streamName)
        }).pipe(
          advised,
          Effect.map(({ StreamDescriptionSummary: s }) => ({
            streamName,
            status: s?.StreamStatus ?? "UNKNOWN",
            openShardCount: s?.OpenShardCount ?? 0,
            maxRecordSizeInKiB: s?.MaxRecordSizeInKiB
          })),
          Effect.withSpan(SpanNames.describeStreamSummary, {
            kind: "client",
            attributes: { [Attributes.streamName]: streamName }
          })
        ),
      listShards: (streamName, streamArn) => {
        // A page after the first is named by its NextToken alone: ListShards refuses a
        // NextToken beside a StreamName (or StreamARN).
        const page = (nextToken: string | undefined) =>
          Effect.tryPromise({
            try: (signal) =>
              client.send(
                new ListShardsCommand(
                  nextToken !== undefined
                    ? { NextToken: nextToken }
                    : streamArn === undefined
                    ? { StreamName: streamName }
                    : { StreamARN: streamArn }
                ),
                { abortSignal: signal }
              ),
            catch: toKinesisError("ListShards", streamName)
          }).pipe(advised)
        return Effect.gen(function*() {
          const shards: Array<ShardRange> = []
          let nextToken: string | undefined = undefined
          for (let pages = 0; pages < MAX_LIST_SHARDS_PAGES; pages++) {
            const output: ListShardsCommandOutput = yield* page(nextToken)
            for (const shard of output.Shards ?? []) {
              const range = shardRange(shard)
              if (range !== undefined) shards.push(range)
            }
            nextToken = output.NextToken
            if (nextToken === undefined || nextToken === "") return shards
          }
          return yield* Effect.fail(
            new KinesisError({
              operation: "ListShards",
              streamName,
              errorName: "TooManyPages",
              retryable: false,
              cause: new Error(`ListShards answered more than ${MAX_LIST_SHARDS_PAGES} pages`)
            })
          )
        }).pipe(
          Effect.withSpan(SpanNames.listShards, { kind: "client", attributes: { [Attributes.streamName]: streamName } })
        )
      },
      getShardIterator: (request) =>
        Effect.tryPromise({
          try: (signal) =>
            client.send(new GetShardIteratorCommand(shardIteratorInput(request)), { abortSignal: signal }),
          catch: toKinesisError("GetShardIterator", request.streamName)
        }).pipe(
          Effect.flatMap(({ ShardIterator }) =>
            ShardIterator === undefined
              ? Effect.fail(invalidResponse("GetShardIterator", request.streamName, "no ShardIterator"))
              : Effect.succeed(ShardIterator)
          ),
          Effect.withSpan(SpanNames.getShardIterator, {
            kind: "client",
            attributes: { [Attributes.streamName]: request.streamName, [Attributes.shardId]: request.shardId }
          })
        ),
      getRecords: (request) =>
        Effect.tryPromise({
          try: (signal) =>
            client.send(
              new GetRecordsCommand({
                ShardIterator: request.shardIterator,
                ...(request.limit === undefined ? {} : { Limit: request.limit }),
                ...(request.streamArn === undefined ? {} : { StreamARN: request.streamArn })
              }),
              { abortSignal: signal }
            ),
          catch: toKinesisError("GetRecords", request.streamName)
        }).pipe(
          Effect.map((output): GetRecordsResult => ({
            records: (output.Records ?? []).map((r) => ({
              sequenceNumber: r.SequenceNumber ?? "",
              partitionKey: r.PartitionKey ?? "",
              data: r.Data ?? new Uint8Array(0),
              approximateArrivalTimestamp: r.ApproximateArrivalTimestamp
            })),
            nextShardIterator: output.NextShardIterator ?? undefined,
            millisBehindLatest: output.MillisBehindLatest
          })),
          Effect.withSpan(SpanNames.getRecords, {
            kind: "client",
            attributes: { [Attributes.streamName]: request.streamName }
          })
        )
    })
  }

  /**
   * A layer over a client the caller built and owns.
   *
   * Give the client `maxAttempts: 1`: the writer retries the records that failed itself, and
   * the SDK's own retries would multiply its schedule. And give it a handler that keeps its
   * connections: the Kinesis client's default opens a new HTTP/2 session, a TCP connection
   * and a TLS handshake, for every call. The service says so once, at Info, when either is
   * missing ({@link Kinesis.make}); {@link Kinesis.layerClient} builds such a client for you.
   *
   * @example
   * ```ts
   * import { KinesisClient } from "@aws-sdk/client-kinesis"
   * import { NodeHttpHandler } from "@smithy/node-http-handler"
   * const KinesisLive = Kinesis.layer(
   *   new KinesisClient({ region: "eu-west-1", maxAttempts: 1, requestHandler: new NodeHttpHandler() })
   * )
   * ```
   *
   * @since 0.1.0
   */
  static readonly layer = (client: KinesisClient): Layer.Layer<Kinesis> => Layer.succeed(Kinesis, Kinesis.make(client))

  /**
   * A layer that builds its own client, destroyed when the layer's scope closes: `config` is
   * the SDK's `KinesisClientConfig`, with `maxAttempts: 1` unless it says otherwise, and
   * HTTP/1.1 keep-alive connections (at most 50 per endpoint, as many as calls in flight)
   * instead of the SDK's new HTTP/2 session per call. The same client serves AWS, LocalStack
   * and kinesalite.
   *
   * `config.requestHandler` may be a handler, used as it is, or `NodeHttpHandler` options,
   * laid over the keep-alive defaults: `{ httpsAgent: { ca } }` trusts a private CA,
   * `{ requestTimeout: 5_000 }` bounds each request.
   *
   * @example
   * ```ts
   * const KinesisLive = Kinesis.layerClient({ region: "eu-west-1" })
   * ```
   *
   * @since 0.1.0
   */
  static readonly layerClient = (config: KinesisClientConfig = {}): Layer.Layer<Kinesis> =>
    Layer.scoped(
      Kinesis,
      Effect.acquireRelease(
        Effect.sync(() =>
          new KinesisClient({ maxAttempts: 1, ...config, requestHandler: requestHandlerFor(config.requestHandler) })
        ),
        (client) => Effect.sync(() => client.destroy())
      ).pipe(Effect.map(Kinesis.make))
    )

  /**
   * {@link Kinesis.layerClient} with the region and an optional endpoint read through Effect
   * `Config`: the caller says where each comes from; by default `AWS_REGION` and
   * `KINESIS_ENDPOINT` ({@link Kinesis.fromEnv}). Credentials come from the SDK's default chain.
   *
   * @example
   * ```ts
   * const KinesisLive = Kinesis.layerConfig({ region: Config.string("ORDERS_REGION"), endpoint: Config.succeed(undefined) })
   * ```
   *
   * @since 0.1.0
   */
  static readonly layerConfig = (
    config: Config.Config.Wrap<KinesisClientOptions> = Kinesis.fromEnv
  ): Layer.Layer<Kinesis, ConfigError.ConfigError> =>
    Layer.unwrapEffect(
      Effect.map(Config.unwrap(config), ({ endpoint, region }) =>
        Kinesis.layerClient({ region, ...(endpoint === undefined ? {} : { endpoint }) }))
    )

  /**
   * Where {@link Kinesis.layerConfig} reads by default: `AWS_REGION` and, optionally,
   * `KINESIS_ENDPOINT`.
   *
   * @since 0.1.0
   */
  static readonly fromEnv: Config.Config.Wrap<KinesisClientOptions> = {
    region: Config.string("AWS_REGION"),
    endpoint: Config.map(Config.option(Config.string("KINESIS_ENDPOINT")), Option.getOrUndefined)
  }
}

/**
 * @since 0.1.0
 */
export declare namespace Kinesis {
  /**
   * What `yield* Kinesis` gives.
   *
   * @since 0.1.0
   */
  export interface Service {
    /** One PutRecords call. A per-record failure is an outcome, not an error. */
    readonly putRecords: (
      request: PutRecordsRequest
    ) => Effect.Effect<ReadonlyArray<PutRecordsResultEntry>, KinesisError>
    /** One DescribeStreamSummary call, by name, or by ARN when one is given (cross-account). */
    readonly describeStreamSummary: (
      streamName: string,
      streamArn?: string
    ) => Effect.Effect<StreamSummary, KinesisError>
    /**
     * Every shard of the stream, open or closed (ListShards, all pages), by name, or by ARN
     * when one is given.
     */
    readonly listShards: (
      streamName: string,
      streamArn?: string
    ) => Effect.Effect<ReadonlyArray<ShardRange>, KinesisError>
    /** One GetShardIterator call: an iterator into one shard, valid for 5 minutes. */
    readonly getShardIterator: (request: GetShardIteratorRequest) => Effect.Effect<string, KinesisError>
    /**
     * One GetRecords call. An iterator older than 5 minutes fails with `errorName`
     * `ExpiredIteratorException`; reading a shard more than 5 times a second, or more than
     * 2 MB a second, with `ProvisionedThroughputExceededException`.
     */
    readonly getRecords: (request: GetRecordsRequest) => Effect.Effect<GetRecordsResult, KinesisError>
  }
}

/**
 * What {@link Kinesis.layerConfig} reads.
 *
 * @since 0.1.0
 */
export interface KinesisClientOptions {
  readonly region: string
  /** An endpoint other than AWS's, e.g. LocalStack's. */
  readonly endpoint?: string | undefined
}

/**
 * The most pages one ListShards load reads: 100,000 shards at the default page size of 1,000,
 * beyond any stream's quota, so that an endpoint that keeps answering a next page cannot
 * hold the load for ever.
 */
const MAX_LIST_SHARDS_PAGES = 100

const resultEntries = (
  request: PutRecordsRequest,
  records:
    | ReadonlyArray<
      {
        SequenceNumber?: string | undefined
        ShardId?: string | undefined
        ErrorCode?: string | undefined
        ErrorMessage?: string | undefined
      }
    >
    | undefined
): Effect.Effect<ReadonlyArray<PutRecordsResultEntry>, KinesisError> =>
  records === undefined || records.length !== request.records.length
    ? Effect.fail(
      new KinesisError({
        operation: "PutRecords",
        streamName: request.streamName,
        errorName: "InvalidResponse",
        retryable: true,
        cause: new Error(`PutRecords answered ${records?.length ?? 0} results for ${request.records.length} records`)
      })
    )
    : Effect.succeed(
      records.map((r): PutRecordsResultEntry =>
        r.ErrorCode === undefined && r.SequenceNumber !== undefined
          ? { _tag: "Written", shardId: r.ShardId ?? "", sequenceNumber: r.SequenceNumber }
          : { _tag: "Failed", errorCode: r.ErrorCode ?? "UnknownError", errorMessage: r.ErrorMessage }
      )
    )

const invalidResponse = (operation: string, streamName: string, detail: string): KinesisError =>
  new KinesisError({
    operation,
    streamName,
    errorName: "InvalidResponse",
    retryable: true,
    cause: new Error(`${operation} answered with ${detail}`)
  })

const shardIteratorInput = (request: GetShardIteratorRequest): GetShardIteratorCommandInput => {
  const stream = request.streamArn === undefined
    ? { StreamName: request.streamName }
    : { StreamARN: request.streamArn }
  const base = { ...stream, ShardId: request.shardId }
  switch (request.start._tag) {
    case "TrimHorizon":
      return { ...base, ShardIteratorType: "TRIM_HORIZON" }
    case "Latest":
      return { ...base, ShardIteratorType: "LATEST" }
    case "AtTimestamp":
      return { ...base, ShardIteratorType: "AT_TIMESTAMP", Timestamp: request.start.timestamp }
    case "AtSequenceNumber":
      return { ...base, ShardIteratorType: "AT_SEQUENCE_NUMBER", StartingSequenceNumber: request.start.sequenceNumber }
    case "AfterSequenceNumber":
      return {
        ...base,
        ShardIteratorType: "AFTER_SEQUENCE_NUMBER",
        StartingSequenceNumber: request.start.sequenceNumber
      }
  }
}

/** A shard as ListShards describes it; closed when its sequence number range has an end. */
const shardRange = (shard: Shard): ShardRange | undefined => {
  const start = shard.HashKeyRange?.StartingHashKey
  const end = shard.HashKeyRange?.EndingHashKey
  if (shard.ShardId === undefined || start === undefined || end === undefined) return undefined
  const optional = {
    parentShardId: shard.ParentShardId,
    adjacentParentShardId: shard.AdjacentParentShardId,
    startingSequenceNumber: shard.SequenceNumberRange?.StartingSequenceNumber,
    endingSequenceNumber: shard.SequenceNumberRange?.EndingSequenceNumber
  }
  try {
    return {
      shardId: shard.ShardId,
      startingHashKey: BigInt(start),
      endingHashKey: BigInt(end),
      open: shard.SequenceNumberRange?.EndingSequenceNumber === undefined,
      // Only what ListShards gave: a shard without parents has no parent fields at all.
      ...Object.fromEntries(Object.entries(optional).filter(([, value]) => value !== undefined))
    }
  } catch {
    return undefined
  }
}
