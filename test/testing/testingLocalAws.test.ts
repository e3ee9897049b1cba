/**
 * `LocalAws` (cygnus-kinesis-writer/testing): servers of its own, the streams and buckets
 * asked for, a writer over its layers that round-trips through them, and nothing left
 * listening after the scope.
 */
import { KinesisClient, ListShardsCommand } from "@aws-sdk/client-kinesis"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import type { AddressInfo } from "node:net"
import { createConnection, createServer } from "node:net"
import { KinesisMetrics, KinesisWriter, LargePayloadStore, RecordReader } from "../../src/index.js"
import { LambdaEvent, LocalAws, RecordGenerator } from "../../src/testing.js"
import { readAllRecords } from "../support/LocalAws.js"

/** Whether something accepts a TCP connection at `endpoint`. */
const accepts = (endpoint: string) =>
  Effect.async<boolean>((resume) => {
    const url = new URL(endpoint)
    const socket = createConnection(Number(url.port), url.hostname)
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(true))
    })
    socket.once("error", () => resume(Effect.succeed(false)))
  })

/** A port nothing listens on (the OS's pick, released at once). */
const freePort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

describe("LocalAws", () => {
  it.live("makes the streams and buckets asked for; a writer over its layers round-trips a batch with a large record; the servers close with the scope", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const local = yield* LocalAws.start({ streams: [{ name: "orders", shards: 2 }, "audit"], buckets: ["payloads"] })
        .pipe(Scope.extend(scope))
      const WriterLive = KinesisWriter.layer({
        streamName: "orders",
        logGroupId: "lg",
        schemaName: "orders",
        accountId: "123456789012",
        largePayloadThreshold: 4_096
      }).pipe(
        Layer.provide(Layer.merge(LocalAws.layerKinesis, LocalAws.layerStore("payloads"))),
        Layer.provide(KinesisMetrics.layerNoop),
        Layer.provide(Layer.succeed(LocalAws, local))
      )
      const records = [
        ...RecordGenerator.makeDataFiles(20),
        RecordGenerator.makeDataFile({ seed: 9, serializedBytes: 10_000 })
      ]
      const result = yield* Effect.flatMap(KinesisWriter, (w) => w.writeBatch(records)).pipe(Effect.provide(WriterLive))
      assert.strictEqual(result.largePayloads, 1)

      const client = new KinesisClient(local.kinesisClientConfig())
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy())).pipe(Scope.extend(scope))
      for (const [stream, shards] of [["orders", 2], ["audit", 4]] as const) {
        const listed = yield* Effect.promise(() => client.send(new ListShardsCommand({ StreamName: stream })))
        assert.strictEqual(listed.Shards?.length, shards, stream)
      }
      const stored = yield* Effect.promise(() => readAllRecords(client, "orders"))
      // What was on the stream, as Lambda would deliver it, read back through the bucket.
      const event = LambdaEvent.fromRecords(stored, { streamName: "orders" })
      const decoded = yield* RecordReader.decodeLambdaEvent(event).pipe(
        Effect.provide(LocalAws.layerStore("payloads").pipe(Layer.provide(Layer.succeed(LocalAws, local))))
      )
      assert.sameMembers(decoded.map((d) => d.info.recordId), [...result.recordIds])
      assert.strictEqual(decoded.filter((d) => d.largePayload !== undefined).length, 1)

      assert.isTrue(yield* accepts(local.kinesisEndpoint))
      assert.isTrue(yield* accepts(local.s3Endpoint))
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(yield* accepts(local.kinesisEndpoint))
      assert.isFalse(yield* accepts(local.s3Endpoint))
    }))

  it.live("a stream that cannot be made is a LocalAwsError naming it, and the servers started are closed", () =>
    Effect.gen(function*() {
      const [kinesisPort, s3Port] = [yield* freePort, yield* freePort]
      const scope = yield* Scope.make()
      const exit = yield* LocalAws.start({ streams: ["twice", "twice"], kinesisPort, s3Port }).pipe(
        Scope.extend(scope),
        Effect.exit
      )
      yield* Scope.close(scope, exit)
      assert.isFalse(yield* accepts(`http://127.0.0.1:${kinesisPort}`))
      assert.isFalse(yield* accepts(`http://127.0.0.1:${s3Port}`))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause : undefined
      const failure = error === undefined ? undefined : yield* Effect.flip(Effect.failCause(error))
      assert.strictEqual(failure?._tag, "LocalAwsError")
      assert.strictEqual(failure?.step, "CreateStream")
      assert.strictEqual(failure?.subject, "twice")
      assert.include(failure?.message, "ResourceInUseException")
    }))

  it.scoped("the store layer writes to and reads from the bucket made", () =>
    Effect.gen(function*() {
      const bytes = new Uint8Array([1, 2, 3, 4])
      const read = yield* Effect.gen(function*() {
        const store = yield* LargePayloadStore
        const location = yield* store.write("k/1", bytes)
        return yield* store.read(location)
      }).pipe(
        Effect.provide(
          LocalAws.layerStore("bucket-b").pipe(Layer.provideMerge(LocalAws.layer({ buckets: ["bucket-b"] })))
        )
      )
      assert.deepStrictEqual(new Uint8Array(read), bytes)
    }))
})
