/**
 * Real AWS-protocol servers for a test or a script: [kinesalite](https://github.com/mhart/kinesalite)
 * (Kinesis) and [s3rver](https://github.com/jamhall/s3rver) (S3) started in-process on free
 * loopback ports, with the streams and buckets you name already made, and closed with the
 * scope. Both are optional peer dependencies, loaded when the servers start:
 * `npm install -D kinesalite@^3.3.3 s3rver@^3.7.1`.
 *
 * @example
 * ```ts
 * import { KinesisMetrics, KinesisWriter } from "cygnus-kinesis-writer"
 * import { LocalAws } from "cygnus-kinesis-writer/testing"
 * import { Layer } from "effect"
 *
 * const WriterLive = KinesisWriter.layer({ streamName: "orders", logGroupId: "lg", schemaName: "orders", accountId: "123456789012" }).pipe(
 *   Layer.provide(Layer.merge(LocalAws.layerKinesis, LocalAws.layerStore("orders-payloads"))),
 *   Layer.provide(KinesisMetrics.layerNoop),
 *   Layer.provideMerge(LocalAws.layer({ streams: ["orders"], buckets: ["orders-payloads"] }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { KinesisClient } from "@aws-sdk/client-kinesis"
import type { KinesisClientConfig } from "@aws-sdk/client-kinesis"
import { S3Client } from "@aws-sdk/client-s3"
import type { S3ClientConfig } from "@aws-sdk/client-s3"
import type { Scope } from "effect"
import { Context, Effect, Layer } from "effect"
import type { LocalAwsError } from "./internal/localAws.js"
import {
  createBucket,
  createStream,
  kinesisClientConfig,
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  s3ClientConfig,
  startKinesalite,
  startS3rver
} from "./internal/localAws.js"
import { Kinesis } from "./Kinesis.js"
import type { S3StoreOptions } from "./LargePayloadStore.js"
import { LargePayloadStore } from "./LargePayloadStore.js"

export {
  /**
   * The servers could not start, an optional peer dependency is missing, or a stream or
   * bucket could not be made: `step`, `subject` and `detail` say which and why.
   *
   * @since 0.1.0
   */
  LocalAwsError
} from "./internal/localAws.js"

/**
 * A stream to make: its name, or its name and shard count (default 4).
 *
 * @since 0.1.0
 */
export type LocalStream = string | { readonly name: string; readonly shards: number }

/**
 * What to start and make.
 *
 * @since 0.1.0
 */
export interface LocalAwsOptions {
  /** Streams to make, each ACTIVE before the servers are handed over. */
  readonly streams?: ReadonlyArray<LocalStream> | undefined
  /** Buckets to make. */
  readonly buckets?: ReadonlyArray<string> | undefined
  /** kinesalite's port; default 0, a free one. */
  readonly kinesisPort?: number | undefined
  /** s3rver's port; default 0, a free one. */
  readonly s3Port?: number | undefined
}

/**
 * @since 0.1.0
 */
export declare namespace LocalAws {
  /**
   * The running servers: where they listen and clients for them.
   *
   * @since 0.1.0
   */
  export interface Service {
    readonly kinesisEndpoint: string
    readonly s3Endpoint: string
    readonly region: string
    /** `S3RVER` / `S3RVER`: the only pair s3rver accepts; kinesalite accepts it too. */
    readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string }
    /**
     * The configuration of a Kinesis client for kinesalite (HTTP/1.1 keep-alive, `maxAttempts: 1`),
     * with `overrides` spread last. Each call makes its own request handler, so each client can
     * be destroyed on its own.
     */
    readonly kinesisClientConfig: (overrides?: KinesisClientConfig) => KinesisClientConfig
    /** The configuration of an S3 client for s3rver (path-style, `maxAttempts: 1`), with `overrides` spread last. */
    readonly s3ClientConfig: (overrides?: S3ClientConfig) => S3ClientConfig
    /** Makes another stream on the running kinesalite, ACTIVE when this succeeds. */
    readonly createStream: (stream: LocalStream) => Effect.Effect<void, LocalAwsError>
    /** Makes another bucket on the running s3rver. */
    readonly createBucket: (bucket: string) => Effect.Effect<void, LocalAwsError>
  }
}

/**
 * The running local servers. Build with {@link LocalAws.layer}, or {@link LocalAws.start} in
 * a scope.
 *
 * @since 0.1.0
 */
export class LocalAws extends Context.Tag("cygnus-kinesis-writer/LocalAws")<LocalAws, LocalAws.Service>() {
  /**
   * Starts kinesalite and s3rver on loopback, makes the streams and buckets asked for, and
   * closes both servers (and removes s3rver's temporary directory) when the scope closes.
   * Fails with a `LocalAwsError` naming the missing package, the server that could not
   * listen, or the stream or bucket that could not be made.
   *
   * @example
   * ```ts
   * const program = Effect.scoped(Effect.gen(function*() {
   *   const local = yield* LocalAws.start({ streams: [{ name: "orders", shards: 2 }], buckets: ["payloads"] })
   *   const kinesis = new KinesisClient(local.kinesisClientConfig())
   * }))
   * ```
   *
   * @since 0.1.0
   */
  static readonly start = (
    options: LocalAwsOptions = {}
  ): Effect.Effect<LocalAws.Service, LocalAwsError, Scope.Scope> =>
    Effect.gen(function*() {
      const [kinesisEndpoint, s3Endpoint] = yield* Effect.all(
        [startKinesalite(options.kinesisPort ?? 0), startS3rver(options.s3Port ?? 0)],
        { concurrency: 2 }
      )
      const withKinesis = <A, E>(use: (client: KinesisClient) => Effect.Effect<A, E>) =>
        Effect.acquireUseRelease(
          Effect.sync(() => new KinesisClient(kinesisClientConfig(kinesisEndpoint, LOCAL_REGION))),
          use,
          (client) => Effect.sync(() => client.destroy())
        )
      const withS3 = <A, E>(use: (client: S3Client) => Effect.Effect<A, E>) =>
        Effect.acquireUseRelease(
          Effect.sync(() => new S3Client(s3ClientConfig(s3Endpoint, LOCAL_REGION))),
          use,
          (client) => Effect.sync(() => client.destroy())
        )
      const service = LocalAws.of({
        kinesisEndpoint,
        s3Endpoint,
        region: LOCAL_REGION,
        credentials: LOCAL_CREDENTIALS,
        kinesisClientConfig: (overrides = {}) => ({
          ...kinesisClientConfig(kinesisEndpoint, LOCAL_REGION),
          ...overrides
        }),
        s3ClientConfig: (overrides = {}) => ({ ...s3ClientConfig(s3Endpoint, LOCAL_REGION), ...overrides }),
        createStream: (stream) =>
          withKinesis((client) =>
            typeof stream === "string"
              ? createStream(client, stream, 4)
              : createStream(client, stream.name, stream.shards)
          ),
        createBucket: (bucket) => withS3((client) => createBucket(client, bucket))
      })
      yield* Effect.forEach(options.streams ?? [], service.createStream, { discard: true })
      yield* Effect.forEach(options.buckets ?? [], service.createBucket, { discard: true })
      return service
    })

  /**
   * {@link LocalAws.start} as a layer: the servers live as long as the layer.
   *
   * @since 0.1.0
   */
  static readonly layer = (options: LocalAwsOptions = {}): Layer.Layer<LocalAws, LocalAwsError> =>
    Layer.scoped(LocalAws, LocalAws.start(options))

  /**
   * The `Kinesis` service over a client for the running kinesalite, destroyed with the layer.
   *
   * @since 0.1.0
   */
  static readonly layerKinesis: Layer.Layer<Kinesis, never, LocalAws> = Layer.unwrapEffect(
    Effect.map(LocalAws, (local) => Kinesis.layerClient(local.kinesisClientConfig()))
  )

  /**
   * The S3 `LargePayloadStore` on a bucket of the running s3rver (make it with
   * `buckets`), over a client destroyed with the layer.
   *
   * @since 0.1.0
   */
  static readonly layerStore = (
    bucket: string,
    options: Omit<S3StoreOptions, "client" | "bucket"> = {}
  ): Layer.Layer<LargePayloadStore, never, LocalAws> =>
    Layer.unwrapScoped(
      Effect.flatMap(LocalAws, (local) =>
        Effect.acquireRelease(
          Effect.sync(() => new S3Client(local.s3ClientConfig())),
          (client) => Effect.sync(() => client.destroy())
        )).pipe(Effect.map((client) => LargePayloadStore.layerS3({ ...options, client, bucket })))
    )
}
