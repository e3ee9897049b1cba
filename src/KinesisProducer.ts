/**
 * The `KinesisProducer` service: `send` one record at a time, from any number of
 * fibers, for the life of the process. Records are collected into PutRecords calls (a call
 * goes when full or when its oldest record has waited `linger`), memory is bounded
 * (`send` waits for room), each record retries on its own and settles on its own with a
 * `RecordReceipt` or a `RecordUndeliveredError`, and closing the layer's scope delivers
 * what is buffered within `shutdownTimeout`. It runs on a `KinesisWriter`: the writer's
 * stream, settings, payload building, limits, retry settings and metrics.
 *
 * @since 0.1.0
 */
import type { Config, ConfigError, Scope, Sink, Stream } from "effect"
import { Context, Effect, Layer } from "effect"
import type {
  CompressionError,
  LargePayloadStoreError,
  ProducerClosedError,
  ProducerSinkError,
  ProducerStreamError,
  RecordUndeliveredError,
  SerializationError
} from "./Errors.js"
import type { DataFileV1 } from "./gen/cygnus/v1/data_file_pb.js"
import type { DurationOption } from "./internal/config.js"
import { ProducerDefaults, resolveProducerOptions, unwrapOptions } from "./internal/config.js"
import { engineOf } from "./internal/engine.js"
import { makeProducer } from "./internal/producer/producer.js"
import { KinesisWriter } from "./KinesisWriter.js"

/**
 * The producer's settings. Every one is optional; `KinesisProducer.defaults` lists the defaults.
 *
 * @since 0.1.0
 */
export interface KinesisProducerOptions {
  /** The longest a record waits for others to fill a call. Positive. Default 100 ms. */
  readonly linger?: DurationOption | undefined
  /** Records accepted and not yet settled (buffered, in flight, waiting to retry); `send` waits for room beyond this. Positive integer. Default 10,000. */
  readonly maxBufferedRecords?: number | undefined
  /**
   * The memory those records hold: each record's serialized size, its compressed Data and, for
   * a large record, its payload until uploaded. A record is charged an estimate from its
   * fields when `send` or the sink accepts it (twice its serialized size, until its compressed
   * size is known), then what it holds; `send` waits for room, and the sink pulls nothing,
   * while the bound is full. At least the writer's record limit. Default 64 MiB.
   */
  readonly maxBufferedBytes?: number | undefined
  /** A record not delivered this long after its `send` took room in the buffer fails with errorCode `Expired`. At least `linger`. Default 30 s. */
  readonly recordTtl?: DurationOption | undefined
  /** On scope close, the time left to deliver what is queued or buffered; then a record not yet prepared fails with `ProducerClosedError`, and what is still unsettled with `Shutdown`. Zero or more. Default 10 s. */
  readonly shutdownTimeout?: DurationOption | undefined
  /**
   * Receives each record that failed for good (also `Expired` and `Shutdown`), once, in a
   * fiber of its own. A handler that fails or dies is logged and the producer goes on; at
   * shutdown, the scope waits up to `shutdownTimeout` (at least a second) for handlers.
   */
  readonly onUndelivered?: ((undelivered: RecordUndeliveredError) => Effect.Effect<unknown, unknown>) | undefined
  /**
   * Shard-aware pacing. The producer learns the stream's shards (ListShards, again when a
   * record lands on a shard other than the one predicted, at most every 5 s), routes each
   * record to its shard by the MD5 of its partition key, and puts into a call only records
   * whose shard has room under its limits (1,000 records/s, 1 MiB/s of data plus keys): a
   * token bucket per shard, holding a tenth of a second and refilling at 90% of the limits,
   * so that no one-second window exceeds them. The others wait for their shard's refill, so
   * throttling becomes rare instead of retried. While the shard map is unknown (ListShards
   * failing, or not answering within `requestTimeout`, tried again until it answers) records
   * go unpaced, and the gauge `kinesis_producer_unpaced` is 1. Default `false`.
   */
  readonly pace?: boolean | undefined
}

/**
 * Where a record landed.
 *
 * @since 0.1.0
 */
export interface RecordReceipt {
  /** The `record_id` on the stream: the consumer's de-duplication key. */
  readonly recordId: string
  readonly shardId: string
  readonly sequenceNumber: string
  /** PutRecords attempts that carried it, the one that wrote it included. */
  readonly attempts: number
}

/**
 * What `sendStream` succeeds with: every element of the stream was delivered.
 *
 * @since 0.1.0
 */
export interface SendStreamResult {
  /** Elements delivered: every element of the stream. */
  readonly delivered: number
  /** Of those, the elements that took more than one PutRecords attempt. */
  readonly retriedRecords: number
}

/**
 * What a `send` fails with: the record was not delivered (`RecordUndeliveredError`), could
 * not be built (`SerializationError`, e.g. an empty `file_path`; `LargePayloadStoreError`
 * when S3 refused its payload; `CompressionError`), or the producer is closed
 * (`ProducerClosedError`). A build error fails that record's `send` only.
 *
 * @since 0.1.0
 */
export type SendError =
  | RecordUndeliveredError
  | SerializationError
  | CompressionError
  | LargePayloadStoreError
  | ProducerClosedError

/**
 * The producer. Build it with {@link KinesisProducer.layer} over a writer layer.
 *
 * @example
 * ```ts
 * const ProducerLive = KinesisProducer.layer({ linger: "100 millis" }).pipe(Layer.provide(WriterLive))
 *
 * const program = Effect.gen(function*() {
 *   const producer = yield* KinesisProducer
 *   const receipt = yield* producer.send(record)
 *   yield* Effect.forEach(many, producer.send, { concurrency: "unbounded", discard: true })
 *   yield* producer.flush
 *   const { delivered } = yield* producer.sendStream(Stream.fromIterable(more))
 * })
 * ```
 *
 * @since 0.1.0
 */
export class KinesisProducer extends Context.Tag("cygnus-kinesis-writer/KinesisProducer")<
  KinesisProducer,
  KinesisProducer.Service
>() {
  /**
   * Builds a producer on the `KinesisWriter` in the context; its fibers and its shutdown
   * belong to the scope. Fails with a `ConfigError.InvalidData` naming a bad option.
   *
   * @since 0.1.0
   */
  static readonly make = (
    options: KinesisProducerOptions = {}
  ): Effect.Effect<KinesisProducer.Service, ConfigError.ConfigError, KinesisWriter | Scope.Scope> =>
    Effect.gen(function*() {
      const writer = yield* KinesisWriter
      const engine = engineOf(writer)
      if (engine === undefined) {
        return yield* Effect.dieMessage(
          "KinesisProducer needs a KinesisWriter built by KinesisWriter.make or one of its layers, not a test double"
        )
      }
      const resolved = yield* resolveProducerOptions(options, engine.recordLimitBytes)
      return yield* makeProducer(engine, resolved)
    })

  /**
   * The producer as a layer, from options; needs a `KinesisWriter`. Closing the layer's
   * scope shuts the producer down (see {@link KinesisProducer.Service}).
   *
   * @example
   * ```ts
   * const ProducerLive = KinesisProducer.layer({
   *   linger: "100 millis",
   *   maxBufferedRecords: 10_000,
   *   maxBufferedBytes: 64 * 1024 * 1024,
   *   recordTtl: "30 seconds",
   *   shutdownTimeout: "10 seconds",
   *   onUndelivered: (u) => Effect.logError("dead letter", u.recordId),
   *   pace: true
   * }).pipe(Layer.provide(WriterLive))
   * ```
   *
   * @since 0.1.0
   */
  static readonly layer = (
    options: KinesisProducerOptions = {}
  ): Layer.Layer<KinesisProducer, ConfigError.ConfigError, KinesisWriter> =>
    Layer.scoped(KinesisProducer, KinesisProducer.make(options))

  /**
   * The producer as a layer, each option from where the caller says, through `Config`.
   *
   * @example
   * ```ts
   * const ProducerLive = KinesisProducer.layerConfig({
   *   linger: Config.duration("PRODUCER_LINGER"),
   *   maxBufferedRecords: Config.integer("PRODUCER_MAX_BUFFERED_RECORDS").pipe(Config.withDefault(10_000))
   * }).pipe(Layer.provide(WriterLive))
   * ```
   *
   * @since 0.1.0
   */
  static readonly layerConfig = (
    config: Config.Config.Wrap<KinesisProducerOptions>
  ): Layer.Layer<KinesisProducer, ConfigError.ConfigError, KinesisWriter> =>
    Layer.scoped(KinesisProducer, Effect.flatMap(unwrapOptions(config), KinesisProducer.make))

  /**
   * What an option left out is.
   *
   * @since 0.1.0
   */
  static readonly defaults = ProducerDefaults
}

/**
 * @since 0.1.0
 */
export declare namespace KinesisProducer {
  /**
   * What the producer offers.
   *
   * Shutdown (closing the layer's scope): `send` fails at once with `ProducerClosedError`
   * (also a `send` that was waiting for room); what is queued or outstanding is delivered
   * within `shutdownTimeout`; then a record not yet prepared fails with
   * `ProducerClosedError`, and what is still unsettled with errorCode `Shutdown`
   * (`maybeDelivered` when a call carrying it was in flight). No send waits for ever and no
   * fiber outlives the scope.
   *
   * @since 0.1.0
   */
  export interface Service {
    /** The stream records go to. */
    readonly streamName: string
    /**
     * Sends one record and waits for its settlement: a `RecordReceipt`, or the
     * {@link SendError} that says why not. Suspends while the buffer is full. Interrupting a
     * `send` once its record is accepted does not withdraw the record.
     */
    readonly send: (record: DataFileV1) => Effect.Effect<RecordReceipt, SendError>
    /**
     * Waits until every record whose `send` took room before this call (queued, being
     * prepared or buffered) has settled, without waiting for `linger`; a `send` still waiting
     * for room is not included.
     */
    readonly flush: Effect.Effect<void>
    /**
     * Sends every element, with backpressure, and completes when all have settled. An
     * element not delivered is never dropped silently: the sink then fails with a
     * `ProducerSinkError` naming every such element and its error (whether or not an
     * `onUndelivered` is configured, which receives them too, as for `send`). Once the
     * producer is closed, the sink stops pulling at the first element refused (named in the
     * error; the rest stay in the stream, as leftovers).
     *
     * A sink cannot see its upstream fail: `Stream.run` then fails with the upstream's error
     * alone, and an interrupted run returns nothing. The sink's elements still settle in the
     * producer; those that end undelivered reach `onUndelivered`, or else a log line at
     * Warning. To have them named in the run's error, use {@link Service.sendStream}.
     */
    readonly sink: Sink.Sink<void, DataFileV1, DataFileV1, ProducerSinkError>
    /**
     * Sends every element of a stream, as the sink does (it pulls nothing while the buffer is
     * full), waits until every element sent has settled, and succeeds with the counts when
     * all were delivered. Otherwise it fails with one `ProducerStreamError`, whatever ended
     * the run: the stream's own failure (`upstream`, its `Cause`), elements not delivered
     * (`undelivered`, each with its error), or the producer closing (the element refused is
     * named; nothing more is pulled). Elements that end undelivered also reach
     * `onUndelivered`, as for `send`.
     *
     * Interrupted, it stops at once: it does not wait for the elements already sent, which
     * cannot be withdrawn. They settle in the producer as any `send` does, and one that ends
     * undelivered reaches `onUndelivered`, or else a log line at Warning. The fiber's exit
     * holds the interruption and a `ProducerStreamError` (`interrupted: true`) naming the
     * elements not delivered so far and those not settled yet (`unsettled`).
     *
     * @example
     * ```ts
     * const program = Effect.gen(function*() {
     *   const producer = yield* KinesisProducer
     *   const { delivered } = yield* producer.sendStream(manifests).pipe(
     *     Effect.catchTag("ProducerStreamError", (e) =>
     *       Effect.as(Effect.logError(e.message, e.undelivered.map((u) => u.record.filePath)), 0))
     *   )
     * })
     * ```
     */
    readonly sendStream: <E, R>(
      stream: Stream.Stream<DataFileV1, E, R>
    ) => Effect.Effect<SendStreamResult, ProducerStreamError<E>, R>
  }
}
