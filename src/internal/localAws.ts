/**
 * kinesalite and s3rver in-process on loopback, as scoped resources: what `LocalAws` (the
 * testing entry) and the repository's own tests and demo start. Both emulators are optional
 * peer dependencies imported when a server is started, so the testing entry loads without them.
 *
 * kinesalite 3.3.3 differs from Kinesis in ways worth knowing: its per-record limit counts
 * Data alone (not the partition key); it has no 5 MiB per-call check (only a 7 MiB body
 * limit, answered with a bare 413 the SDK names "Unknown"); DescribeStreamSummary has no
 * MaxRecordSizeInKiB; ListShards never paginates; its default limit is 10 open shards for
 * the whole server (raised here).
 */
// The typings of two untyped packages, for whatever compiles this file (tsc drops the reference from declarations).
// eslint-disable-next-line @typescript-eslint/triple-slash-reference
/// <reference path="./vendor.d.ts" />
import { CreateStreamCommand, DescribeStreamSummaryCommand } from "@aws-sdk/client-kinesis"
import type { KinesisClient, KinesisClientConfig } from "@aws-sdk/client-kinesis"
import { CreateBucketCommand } from "@aws-sdk/client-s3"
import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3"
import type { Scope } from "effect"
import { Clock, Data, Duration, Effect, Schedule } from "effect"
import * as Fs from "node:fs/promises"
import type { Server } from "node:http"
import type { AddressInfo } from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { keepAliveHandler } from "./aws/httpHandler.js"

/**
 * The emulators could not be started, or a stream or bucket could not be made on them.
 *
 * @since 0.1.0
 */
export class LocalAwsError extends Data.TaggedError("LocalAwsError")<{
  /** What failed: loading a package, starting a server, or making a stream or bucket. */
  readonly step: "import" | "kinesalite" | "s3rver" | "CreateStream" | "CreateBucket"
  /** The package, stream or bucket concerned. */
  readonly subject: string
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `local AWS ${this.step} failed for ${this.subject}: ${this.detail}`
  }
}

/**
 * s3rver accepts only its own key pair when it checks signatures; kinesalite only checks that
 * a SigV4 header is there, so the same pair serves both.
 */
export const LOCAL_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const

export const LOCAL_REGION = "us-east-1"

const LOOPBACK = "127.0.0.1"

/** The AWS error name (`ResourceInUseException`, …) before the message, when there is one. */
const errorText = (cause: unknown): string =>
  cause instanceof Error
    ? cause.name === "Error" || cause.name === "" ? cause.message : `${cause.name}: ${cause.message}`
    : String(cause)

/** Imports an optional peer dependency, or names the package to install. */
const importPeer = <A>(name: string, load: () => Promise<A>): Effect.Effect<A, LocalAwsError> =>
  Effect.tryPromise({
    try: load,
    catch: (cause) =>
      new LocalAwsError({
        step: "import",
        subject: name,
        detail: `cannot load it (${errorText(cause)}); install it as a dev dependency: npm install -D ${name}`,
        cause
      })
  })

const listen = (server: Server, port: number): Effect.Effect<AddressInfo, Error> =>
  Effect.async<AddressInfo, Error>((resume) => {
    const onError = (error: Error) => resume(Effect.fail(error))
    server.once("error", onError)
    server.listen(port, LOOPBACK, () => {
      server.off("error", onError)
      resume(Effect.succeed(server.address() as AddressInfo))
    })
  })

/** Closes a server and the sockets clients keep alive, so that it closes at once. */
const close = (server: Server, close: (done: (error?: Error) => void) => void): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    server.closeAllConnections()
    close(() => resume(Effect.void))
  })

/** kinesalite on a loopback port; its store is in memory (no `path`: its native LevelDB is never loaded). */
export const startKinesalite = (port: number): Effect.Effect<string, LocalAwsError, Scope.Scope> =>
  Effect.gen(function*() {
    const { default: kinesalite } = yield* importPeer("kinesalite", () => import("kinesalite"))
    const server = yield* Effect.acquireRelease(
      Effect.sync(() => kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 10_000 })),
      // kinesalite's close(cb) closes its store, then the HTTP server.
      (server) => close(server, (done) => server.close(done))
    )
    const address = yield* listen(server, port).pipe(
      Effect.mapError((cause) =>
        new LocalAwsError({ step: "kinesalite", subject: `port ${port}`, detail: errorText(cause), cause })
      )
    )
    return `http://${LOOPBACK}:${address.port}`
  })

/** s3rver on a loopback port, over a fresh temporary directory removed with the scope. */
export const startS3rver = (port: number): Effect.Effect<string, LocalAwsError, Scope.Scope> =>
  Effect.gen(function*() {
    const { default: S3rver } = yield* importPeer("s3rver", () => import("s3rver"))
    const fail = (cause: unknown) =>
      new LocalAwsError({ step: "s3rver", subject: `port ${port}`, detail: errorText(cause), cause })
    const directory = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => Fs.mkdtemp(Path.join(Os.tmpdir(), "local-aws-s3rver-")), catch: fail }),
      (directory) => Effect.promise(() => Fs.rm(directory, { recursive: true, force: true }))
    )
    const s3 = new S3rver({ address: LOOPBACK, port, directory, silent: true, configureBuckets: [] })
    const address = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => s3.run(), catch: fail }),
      () =>
        s3.httpServer === undefined
          ? Effect.void
          : close(s3.httpServer, (done) => void s3.close().then(() => done(), done))
    )
    return `http://${LOOPBACK}:${address.port}`
  })

/** The SDK configuration of a Kinesis client for kinesalite, which speaks HTTP/1.1 only: the library's keep-alive handler. */
export const kinesisClientConfig = (endpoint: string, region: string): KinesisClientConfig => ({
  endpoint,
  region,
  credentials: LOCAL_CREDENTIALS,
  maxAttempts: 1,
  requestHandler: keepAliveHandler()
})

/** The SDK configuration of an S3 client for s3rver: addressed by IP, so path-style. */
export const s3ClientConfig = (endpoint: string, region: string): S3ClientConfig => ({
  endpoint,
  region,
  credentials: LOCAL_CREDENTIALS,
  forcePathStyle: true,
  maxAttempts: 1
})

/**
 * Creates a stream and waits until it is ACTIVE, polling every `poll` for at most `timeout`
 * of real time (a `TestClock` in the context neither stalls nor hurries it).
 */
export const createStream = (
  client: KinesisClient,
  name: string,
  shardCount: number,
  timeout: Duration.DurationInput = "10 seconds",
  poll: Duration.DurationInput = "20 millis"
): Effect.Effect<void, LocalAwsError> => {
  const fail = (cause: unknown) =>
    new LocalAwsError({ step: "CreateStream", subject: name, detail: errorText(cause), cause })
  const active = Effect.tryPromise({
    try: (signal) => client.send(new DescribeStreamSummaryCommand({ StreamName: name }), { abortSignal: signal }),
    catch: fail
  }).pipe(
    Effect.flatMap((summary) => {
      const status = summary.StreamDescriptionSummary?.StreamStatus
      return status === "ACTIVE" ? Effect.void : Effect.fail(new NotActive({ status }))
    }),
    Effect.retry({ schedule: Schedule.spaced(poll), while: (e) => e._tag === "NotActive" })
  )
  return Effect.tryPromise({
    try: (signal) =>
      client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shardCount }), { abortSignal: signal }),
    catch: fail
  }).pipe(
    Effect.zipRight(active),
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => fail(`the stream is not ACTIVE after ${Duration.format(timeout)}`)
    }),
    Effect.catchTag("NotActive", (e) => Effect.fail(fail(`unexpected status ${String(e.status)}`))),
    Effect.withClock(Clock.make())
  )
}

class NotActive extends Data.TaggedError("NotActive")<{ readonly status: string | undefined }> {}

/** Creates a bucket. */
export const createBucket = (client: S3Client, name: string): Effect.Effect<void, LocalAwsError> =>
  Effect.tryPromise({
    try: (signal) => client.send(new CreateBucketCommand({ Bucket: name }), { abortSignal: signal }),
    catch: (cause) => new LocalAwsError({ step: "CreateBucket", subject: name, detail: errorText(cause), cause })
  })
