/**
 * Connections over TLS, as real AWS is reached: a loopback endpoint speaking HTTP/2 and
 * HTTP/1.1 (test/support/TlsKinesis.ts) counts the TLS sessions each client opens. The
 * library's own client layers reuse their connections: 100 PutRecords calls open at most one
 * session per call in flight, plus one. The SDK's default Kinesis client opens one per call,
 * and a service over such a client says so, once, at Info.
 */
import { KinesisClient } from "@aws-sdk/client-kinesis"
import { S3Client } from "@aws-sdk/client-s3"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import { readFileSync } from "node:fs"
import { Kinesis, KinesisMetrics, KinesisProducer, KinesisWriter, LargePayloadStore } from "../../src/index.js"
import { adviceFor, adviseOnce, builtByLibrary } from "../../src/internal/aws/clientAdvice.js"
import { keepAliveHandler, MAX_SOCKETS } from "../../src/internal/aws/httpHandler.js"
import { RecordGenerator } from "../../src/testing.js"
import { createBucket, createStream, makeKinesisClient, makeS3Client } from "../support/LocalAws.js"
import { atInfoOrAbove, capturingLogs } from "../support/logs.js"
import { injected, uniqueName } from "../support/names.js"
import type { TlsKinesis } from "../support/TlsKinesis.js"
import { startTlsKinesis } from "../support/TlsKinesis.js"
import { baseOptions } from "../support/writerLayers.js"

const CALLS = 100
const region = "us-east-1"
const credentials = { accessKeyId: "test", secretAccessKey: "test" }

/** The endpoint for one test; each answer held 2 ms, so that concurrent calls overlap. */
const tlsKinesis = Effect.acquireRelease(
  Effect.promise(() => startTlsKinesis({ delayMs: 2 })),
  (server) => Effect.promise(() => server.close())
)

/** The library's own client layer, pointed at the endpoint and trusting its certificate. */
const ourKinesis = (server: TlsKinesis) =>
  Kinesis.layerClient({
    endpoint: server.endpoint,
    region,
    credentials,
    requestHandler: { httpsAgent: { ca: server.ca } }
  })

/** The SDK's default Kinesis handler (a new HTTP/2 session per call), trusting the certificate. */
const sdkDefaultClient = (server: TlsKinesis) =>
  new KinesisClient({
    endpoint: server.endpoint,
    region,
    credentials,
    requestHandler: { disableConcurrentStreams: true, nodeHttp2ConnectOptions: { ca: server.ca } }
  })

const writerOver = (kinesis: Layer.Layer<Kinesis>) =>
  KinesisWriter.layer(baseOptions).pipe(
    Layer.provide(kinesis),
    Layer.provide(LargePayloadStore.layerMemory()),
    Layer.provide(KinesisMetrics.layerNoop)
  )

/** One small batch: one PutRecords call. */
const batch = (i: number) => RecordGenerator.makeDataFiles(3, { seed: i, columns: 2 })

/** The endpoint's sessions stay within the calls it held at once, plus one. */
const assertReused = (server: TlsKinesis, calls: number) => {
  assert.isAtLeast(server.putRecordsCalls(), calls)
  assert.isAtMost(
    server.tlsSessions(),
    server.peakInFlight() + 1,
    `${server.tlsSessions()} TLS sessions for ${server.putRecordsCalls()} calls, at most ${server.peakInFlight()} in flight`
  )
}

describe("connections over TLS: the library's clients reuse them", () => {
  it.scopedLive("100 writeBatch calls in sequence through Kinesis.layerClient open at most 2 TLS sessions", () =>
    Effect.gen(function*() {
      const server = yield* tlsKinesis
      const { logs, result } = yield* capturingLogs(
        Effect.flatMap(
          KinesisWriter,
          (writer) =>
            Effect.forEach(Array.from({ length: CALLS }, (_, i) => i), (i) => writer.writeBatch(batch(i)), {
              discard: true
            })
        ).pipe(Effect.provide(writerOver(ourKinesis(server))))
      )
      assertReused(server, CALLS)
      assert.strictEqual(server.peakInFlight(), 1)
      assert.isAtMost(server.tlsSessions(), 2)
      assert.strictEqual(server.http2Sessions(), 0, "the library's client speaks HTTP/1.1")
      assert.isTrue(Either.isRight(result))
      assert.deepStrictEqual(atInfoOrAbove(logs), [], "a client the library built needs no advice")
    }))

  it.scopedLive("100 writeBatch calls 4 at a time open at most one TLS session per call in flight, plus one", () =>
    Effect.gen(function*() {
      const server = yield* tlsKinesis
      yield* Effect.flatMap(
        KinesisWriter,
        (writer) =>
          Effect.forEach(Array.from({ length: CALLS }, (_, i) => i), (i) => writer.writeBatch(batch(i)), {
            concurrency: 4,
            discard: true
          })
      ).pipe(Effect.provide(writerOver(ourKinesis(server))))
      assertReused(server, CALLS)
      assert.isAtMost(server.tlsSessions(), 5)
    }))

  it.scopedLive("the producer's calls for 100 records sent one after another open at most one TLS session per call in flight, plus one", () =>
    Effect.gen(function*() {
      const server = yield* tlsKinesis
      const producer = KinesisProducer.layer({ linger: "1 millis" }).pipe(Layer.provide(writerOver(ourKinesis(server))))
      yield* Effect.flatMap(KinesisProducer, (p) =>
        Effect.forEach(
          Array.from({ length: CALLS }, (_, i) => RecordGenerator.makeDataFile({ seed: i, columns: 2 })),
          (record) => p.send(record),
          { discard: true }
        )).pipe(Effect.provide(producer))
      assertReused(server, CALLS)
    }))

  it.scopedLive("the producer under 400 concurrent sends opens at most one TLS session per call in flight, plus one, plus one for pacing's ListShards", () =>
    Effect.gen(function*() {
      const server = yield* tlsKinesis
      const producer = KinesisProducer.layer({ linger: "1 millis" }).pipe(Layer.provide(writerOver(ourKinesis(server))))
      yield* Effect.flatMap(KinesisProducer, (p) =>
        Effect.forEach(
          Array.from({ length: 400 }, (_, i) => RecordGenerator.makeDataFile({ seed: i, columns: 2 })),
          (record) => p.send(record),
          { concurrency: "unbounded", discard: true }
        )).pipe(Effect.provide(producer))
      // peakInFlight counts PutRecords calls; pacing's ListShards, made as the producer starts,
      // may hold a session of its own while the first calls go.
      assert.isAtMost(server.tlsSessions(), server.peakInFlight() + 2)
    }))
})

describe("connections over TLS: a client the caller built", () => {
  it.scopedLive("the SDK's default Kinesis client opens a TLS session per call, and Kinesis.layer says so once, at Info, with the fix", () =>
    Effect.gen(function*() {
      const server = yield* tlsKinesis
      const client = sdkDefaultClient(server)
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const { logs, result } = yield* capturingLogs(
        Effect.flatMap(
          KinesisWriter,
          (writer) =>
            Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) => writer.writeBatch(batch(i)), {
              discard: true
            })
        ).pipe(Effect.provide(writerOver(Kinesis.layer(client))))
      )
      assert.strictEqual(server.putRecordsCalls(), 10)
      assert.strictEqual(server.tlsSessions(), 10, "one TLS session per call")
      assert.strictEqual(server.http2Sessions(), 10)
      // The client has the SDK's default maxAttempts (3): both pieces of advice, each once.
      assert.isTrue(Either.isRight(result))
      const advice = atInfoOrAbove(logs)
      assert.strictEqual(advice.length, 2)
      assert.match(advice[0]!, /^INFO The Kinesis client opens a new HTTP\/2 session for every call/)
      assert.match(advice[0]!, /requestHandler: new NodeHttpHandler\(\)/)
      assert.match(advice[1]!, /^INFO The Kinesis client retries each call itself \(maxAttempts: 3\)/)
      assert.match(advice[1]!, /maxAttempts: 1\./)
    }))

  it.scopedLive("a caller's client with a keep-alive handler and maxAttempts: 1 gets no advice", () =>
    Effect.gen(function*() {
      const server = yield* tlsKinesis
      const client = new KinesisClient({
        endpoint: server.endpoint,
        region,
        credentials,
        maxAttempts: 1,
        requestHandler: keepAliveHandler({ httpsAgent: { ca: server.ca } })
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const { logs, result } = yield* capturingLogs(
        Effect.flatMap(
          KinesisWriter,
          (writer) => Effect.forEach([0, 1, 2], (i) => writer.writeBatch(batch(i)), { discard: true })
        ).pipe(
          Effect.provide(writerOver(Kinesis.layer(client)))
        )
      )
      assert.isTrue(Either.isRight(result))
      assert.deepStrictEqual(atInfoOrAbove(logs), [])
      assert.strictEqual(server.tlsSessions(), 1)
    }))

  it.live("a caller's S3 client with SDK retries: the store says once that retries multiply", () =>
    Effect.gen(function*() {
      // Nothing listens on port 9: every write fails fast, and the advice follows the first.
      const client = new S3Client({
        endpoint: "http://127.0.0.1:9",
        region,
        credentials,
        forcePathStyle: true,
        maxAttempts: 2,
        retryMode: "standard"
      })
      const store = LargePayloadStore.makeS3({ client, bucket: "b" })
      const { logs } = yield* capturingLogs(
        Effect.forEach([1, 2, 3], (i) => Effect.either(store.write(`k${i}`, new Uint8Array([i]))), { discard: true })
      )
      client.destroy()
      const advice = atInfoOrAbove(logs)
      assert.strictEqual(advice.length, 1)
      assert.match(advice[0]!, /^INFO The S3 client retries each call itself \(maxAttempts: 2\)/)
    }))

  it.effect("advice is given once per service, and never for a client the library built with its own settings", () =>
    Effect.gen(function*() {
      const callers = { config: { maxAttempts: () => Promise.resolve(3) } }
      const libraries = builtByLibrary({ config: { maxAttempts: () => Promise.resolve(3) } })
      const advise = adviseOnce("S3", callers)
      const { logs } = yield* capturingLogs(
        Effect.all([advise, advise, adviseOnce("S3", libraries), adviseOnce("S3", libraries)])
      )
      assert.deepStrictEqual(atInfoOrAbove(logs).map((l) => l.slice(0, 43)), [
        "INFO The S3 client retries each call itself"
      ])
    }))

  it("advice: none for a keep-alive client with maxAttempts 1; the S3 fix names the S3 layer", () => {
    assert.deepStrictEqual(adviceFor("Kinesis", { sessionPerCall: false, maxAttempts: 1 }), [])
    assert.deepStrictEqual(adviceFor("Kinesis", { sessionPerCall: false, maxAttempts: undefined }), [])
    assert.match(adviceFor("S3", { sessionPerCall: true, maxAttempts: 1 })[0]!, /LargePayloadStore\.layerS3Config/)
    assert.isAbove(MAX_SOCKETS, 4)
  })
})

/** The `credentials` line of README.md's emulator snippet. */
const readmeEmulatorCredentials = () => {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8")
  const section = readme.slice(readme.indexOf("## Local emulators"))
  const match = /const credentials = \{ accessKeyId: "([^"]+)", secretAccessKey: "([^"]+)" \}/.exec(section)
  assert.isNotNull(match, "README.md's emulator snippet has a credentials line")
  return { accessKeyId: match![1]!, secretAccessKey: match![2]! }
}

describe("the README's emulator snippet", () => {
  it.scopedLive("its credentials and the library's client layers write to kinesalite and s3rver", () =>
    Effect.gen(function*() {
      const credentials = readmeEmulatorCredentials()
      const kinesisEndpoint = injected("kinesisEndpoint")
      const s3Endpoint = injected("s3Endpoint")
      const stream = uniqueName("readme-emulator")
      const bucket = uniqueName("readme-emulator")
      yield* Effect.promise(async () => {
        const kinesis = makeKinesisClient(kinesisEndpoint, region)
        const s3 = makeS3Client(s3Endpoint, region)
        await createStream(kinesis, stream, 1)
        await createBucket(s3, bucket)
        kinesis.destroy()
        s3.destroy()
      })
      const s3 = new S3Client({ endpoint: s3Endpoint, region, credentials, forcePathStyle: true, maxAttempts: 1 })
      yield* Effect.addFinalizer(() => Effect.sync(() => s3.destroy()))
      const layer = Layer.merge(
        Kinesis.layerClient({ endpoint: kinesisEndpoint, region, credentials }),
        LargePayloadStore.layerS3({ client: s3, bucket })
      )
      const [written, location] = yield* Effect.all([
        Effect.flatMap(
          Kinesis,
          (k) => k.putRecords({ streamName: stream, records: [{ data: new Uint8Array([1]), partitionKey: "k" }] })
        ),
        Effect.flatMap(LargePayloadStore, (store) => store.write("readme", new Uint8Array([1, 2, 3])))
      ]).pipe(Effect.provide(layer))
      assert.strictEqual(written[0]?._tag, "Written")
      assert.deepStrictEqual(location, { bucket, key: "readme" })
    }))
})
