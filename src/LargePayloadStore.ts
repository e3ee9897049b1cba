/**
 * The `LargePayloadStore` service: where a record too large for the stream goes (the
 * claim-check pattern). The S3 layer writes each object once with the bucket owner check,
 * server-side encryption and key prefix it is given; the in-memory layer serves tests.
 *
 * @since 0.1.0
 */
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import type { ConfigError } from "effect"
import { Config, Context, Effect, Layer } from "effect"
import { LargePayloadStoreError } from "./Errors.js"
import { tryAbortable } from "./internal/abortable.js"
import { adviseOnce, builtByLibrary } from "./internal/aws/clientAdvice.js"
import { keepAliveHandler } from "./internal/aws/httpHandler.js"
import { toStoreError } from "./internal/awsError.js"
import { optional } from "./internal/config.js"
import { Attributes, SpanNames } from "./internal/spans.js"

/**
 * Where a large payload lives.
 *
 * @since 0.1.0
 */
export interface PayloadLocation {
  readonly bucket: string
  readonly key: string
}

/**
 * Server-side encryption of large payloads: S3-managed keys (`SSE-S3`, AES256) or a KMS
 * key (`SSE-KMS`, with its key id or ARN).
 *
 * @since 0.1.0
 */
export type ServerSideEncryption =
  | { readonly _tag: "SSE-S3" }
  | { readonly _tag: "SSE-KMS"; readonly kmsKeyId: string }

/**
 * Options of {@link LargePayloadStore.layerS3}.
 *
 * @since 0.1.0
 */
export interface S3StoreOptions {
  /** The caller's client; it stays the caller's to destroy. */
  readonly client: S3Client
  readonly bucket: string
  /** Prepended to every key, e.g. `"kinesis-large/"`. Default none. */
  readonly keyPrefix?: string | undefined
  /** Sent as `ExpectedBucketOwner`, so that a bucket that changed hands is never written or read. */
  readonly expectedBucketOwner?: string | undefined
  readonly serverSideEncryption?: ServerSideEncryption | undefined
}

/**
 * Stores and fetches large payloads. `write` returns where the payload went (the store may
 * prefix the key); `read` fetches by that location.
 *
 * @since 0.1.0
 */
export class LargePayloadStore extends Context.Tag("cygnus-kinesis-writer/LargePayloadStore")<
  LargePayloadStore,
  LargePayloadStore.Service
>() {
  /**
   * The S3 store over a client the caller built.
   *
   * After its first write, the store logs once at Info when the client retries calls itself
   * (`maxAttempts` > 1, the S3 client's default is 3): the writer retries a failed write on its
   * own backoff, so the two multiply. Give the client `maxAttempts: 1`.
   *
   * @since 0.1.0
   */
  static readonly makeS3 = (options: S3StoreOptions): LargePayloadStore.Service => {
    const { bucket, client } = options
    const advise = adviseOnce("S3", client)
    const owner = options.expectedBucketOwner === undefined ? {} : { ExpectedBucketOwner: options.expectedBucketOwner }
    const sse = options.serverSideEncryption === undefined
      ? {}
      : options.serverSideEncryption._tag === "SSE-S3"
      ? { ServerSideEncryption: "AES256" as const }
      : { ServerSideEncryption: "aws:kms" as const, SSEKMSKeyId: options.serverSideEncryption.kmsKeyId }
    const locate = (key: string): PayloadLocation => ({ bucket, key: `${options.keyPrefix ?? ""}${key}` })
    return LargePayloadStore.of({
      locate,
      write: (key, bytes) => {
        const location = locate(key)
        // An interrupted upload waits for its aborted request to settle, so that a clean-up
        // that deletes the object runs after it (see internal/abortable.ts).
        return tryAbortable(
          (signal) =>
            client.send(
              new PutObjectCommand({
                Bucket: bucket,
                Key: location.key,
                Body: bytes,
                ContentLength: bytes.length,
                ContentType: "application/x-protobuf",
                ...owner,
                ...sse
              }),
              { abortSignal: signal }
            ),
          toStoreError("write", location)
        ).pipe(Effect.ensuring(advise), Effect.as(location), traced(SpanNames.storeWrite, location, bytes.length))
      },
      read: (location) =>
        Effect.tryPromise({
          try: (signal) =>
            client.send(new GetObjectCommand({ Bucket: location.bucket, Key: location.key, ...owner }), {
              abortSignal: signal
            }).then((output) => output.Body === undefined ? new Uint8Array(0) : output.Body.transformToByteArray()),
          catch: toStoreError("read", location)
        }).pipe(traced(SpanNames.storeRead, location)),
      delete: (location) =>
        tryAbortable(
          (signal) =>
            client.send(new DeleteObjectCommand({ Bucket: location.bucket, Key: location.key, ...owner }), {
              abortSignal: signal
            }),
          toStoreError("delete", location)
        ).pipe(Effect.asVoid, traced(SpanNames.storeDelete, location))
    })
  }

  /**
   * Large payloads in S3.
   *
   * @example
   * ```ts
   * import { S3Client } from "@aws-sdk/client-s3"
   * const StoreLive = LargePayloadStore.layerS3({
   *   client: new S3Client({ maxAttempts: 1 }),
   *   bucket: "my-large-payload-bucket",
   *   expectedBucketOwner: "123456789012",
   *   serverSideEncryption: { _tag: "SSE-KMS", kmsKeyId: "alias/kinesis-large" },
   *   keyPrefix: "large/"
   * })
   * ```
   *
   * @since 0.1.0
   */
  static readonly layerS3 = (options: S3StoreOptions): Layer.Layer<LargePayloadStore> =>
    Layer.succeed(LargePayloadStore, LargePayloadStore.makeS3(options))

  /**
   * Large payloads in S3, the store's settings read through Effect `Config` (the caller says
   * where each comes from; by default {@link LargePayloadStore.fromEnv}), with an S3 client
   * the layer builds (region and optional endpoint from the same settings, credentials from
   * the SDK's default chain, HTTP/1.1 keep-alive connections) and destroys when its scope closes.
   *
   * @example
   * ```ts
   * const StoreLive = LargePayloadStore.layerS3Config() // LARGE_PAYLOAD_BUCKET, AWS_REGION, …
   * ```
   *
   * @since 0.1.0
   */
  static readonly layerS3Config = (
    config: Config.Config.Wrap<S3StoreSettings> = LargePayloadStore.fromEnv
  ): Layer.Layer<LargePayloadStore, ConfigError.ConfigError> =>
    Layer.scoped(
      LargePayloadStore,
      Effect.gen(function*() {
        const settings = yield* Config.unwrap(config)
        const client = yield* Effect.acquireRelease(
          Effect.sync(() =>
            builtByLibrary(
              new S3Client({
                region: settings.region,
                requestHandler: keepAliveHandler(),
                ...(settings.endpoint === undefined ? {} : { endpoint: settings.endpoint, forcePathStyle: true })
              })
            )
          ),
          (client) => Effect.sync(() => client.destroy())
        )
        return LargePayloadStore.makeS3({
          client,
          bucket: settings.bucket,
          keyPrefix: settings.keyPrefix,
          expectedBucketOwner: settings.expectedBucketOwner,
          serverSideEncryption: settings.kmsKeyId !== undefined
            ? { _tag: "SSE-KMS", kmsKeyId: settings.kmsKeyId }
            : settings.serverSideEncryption === "SSE-S3"
            ? { _tag: "SSE-S3" }
            : undefined
        })
      })
    )

  /**
   * Where {@link LargePayloadStore.layerS3Config} reads by default: `LARGE_PAYLOAD_BUCKET`,
   * `AWS_REGION` (required); `LARGE_PAYLOAD_KEY_PREFIX`, `LARGE_PAYLOAD_EXPECTED_BUCKET_OWNER`,
   * `LARGE_PAYLOAD_KMS_KEY_ID` (SSE-KMS), `LARGE_PAYLOAD_SSE` (`SSE-S3`) and `S3_ENDPOINT`
   * (optional).
   *
   * @since 0.1.0
   */
  static readonly fromEnv: Config.Config.Wrap<S3StoreSettings> = {
    bucket: Config.string("LARGE_PAYLOAD_BUCKET"),
    region: Config.string("AWS_REGION"),
    endpoint: optional(Config.string("S3_ENDPOINT")),
    keyPrefix: optional(Config.string("LARGE_PAYLOAD_KEY_PREFIX")),
    expectedBucketOwner: optional(Config.string("LARGE_PAYLOAD_EXPECTED_BUCKET_OWNER")),
    kmsKeyId: optional(Config.string("LARGE_PAYLOAD_KMS_KEY_ID")),
    serverSideEncryption: optional(Config.literal("SSE-S3")("LARGE_PAYLOAD_SSE"))
  }

  /**
   * An in-memory store, for tests and local runs: objects live as long as the layer.
   *
   * @since 0.1.0
   */
  static readonly makeMemory = (bucket = "memory"): Effect.Effect<MemoryStore> =>
    Effect.sync(() => {
      const objects = new Map<string, Uint8Array>()
      const id = (location: PayloadLocation) => `${location.bucket}/${location.key}`
      return {
        objects: Effect.sync(() => new Map(objects)),
        service: LargePayloadStore.of({
          locate: (key) => ({ bucket, key }),
          write: (key, bytes) =>
            Effect.sync(() => {
              const location = { bucket, key }
              objects.set(id(location), Uint8Array.from(bytes))
              return location
            }),
          read: (location) =>
            Effect.suspend(() => {
              const bytes = objects.get(id(location))
              return bytes === undefined
                ? Effect.fail(
                  new LargePayloadStoreError({
                    operation: "read",
                    ...location,
                    errorName: "NoSuchKey",
                    httpStatus: 404,
                    retryable: false
                  })
                )
                : Effect.succeed(bytes)
            }),
          delete: (location) => Effect.sync(() => void objects.delete(id(location)))
        })
      }
    })

  /**
   * {@link LargePayloadStore.makeMemory} as a layer.
   *
   * @since 0.1.0
   */
  static readonly layerMemory = (bucket = "memory"): Layer.Layer<LargePayloadStore> =>
    Layer.effect(LargePayloadStore, Effect.map(LargePayloadStore.makeMemory(bucket), (m) => m.service))
}

/**
 * @since 0.1.0
 */
export declare namespace LargePayloadStore {
  /**
   * What `yield* LargePayloadStore` gives.
   *
   * @since 0.1.0
   */
  export interface Service {
    /** Where `write(key, …)` puts its payload (the store may prefix the key). */
    readonly locate: (key: string) => PayloadLocation
    readonly write: (key: string, bytes: Uint8Array) => Effect.Effect<PayloadLocation, LargePayloadStoreError>
    readonly read: (location: PayloadLocation) => Effect.Effect<Uint8Array, LargePayloadStoreError>
    readonly delete: (location: PayloadLocation) => Effect.Effect<void, LargePayloadStoreError>
  }
}

/**
 * What {@link LargePayloadStore.layerS3Config} reads.
 *
 * @since 0.1.0
 */
export interface S3StoreSettings {
  readonly bucket: string
  readonly region: string
  /** An endpoint other than AWS's (LocalStack, s3rver); path-style addressing is then used. */
  readonly endpoint?: string | undefined
  readonly keyPrefix?: string | undefined
  readonly expectedBucketOwner?: string | undefined
  /** SSE-KMS with this key id or ARN. */
  readonly kmsKeyId?: string | undefined
  /** `"SSE-S3"` for S3-managed keys (ignored when `kmsKeyId` is set). */
  readonly serverSideEncryption?: "SSE-S3" | undefined
}

/**
 * An in-memory store and a view of its objects (keyed `bucket/key`), for assertions.
 *
 * @since 0.1.0
 */
export interface MemoryStore {
  readonly service: LargePayloadStore.Service
  readonly objects: Effect.Effect<ReadonlyMap<string, Uint8Array>>
}

const traced = (name: string, location: PayloadLocation, bytes?: number) =>
  Effect.withSpan(name, {
    kind: "client",
    attributes: {
      [Attributes.bucket]: location.bucket,
      [Attributes.key]: location.key,
      ...(bytes === undefined ? {} : { [Attributes.bytes]: bytes })
    }
  })
