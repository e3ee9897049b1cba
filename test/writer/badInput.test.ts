/**
 * Credentials refused, through the real SDK clients: s3rver checks signatures (its only key
 * pair is S3RVER/S3RVER); for Kinesis, whose emulator accepts any key, a loopback server
 * answers as Kinesis does to an unknown access key.
 */
import { assert, describe, inject, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { Kinesis, KinesisMetrics, KinesisWriter, LargePayloadStore } from "../../src/index.js"
import { RecordGenerator } from "../../src/testing.js"
import { createBucket, makeKinesisClient, makeS3Client } from "../support/LocalAws.js"

const region = inject("region")
const badCredentials = { credentials: { accessKeyId: "AKIDNOTKNOWN", secretAccessKey: "wrong-secret" } }

/** A loopback server that refuses every request as Kinesis refuses an unknown access key. */
const refusingKinesis = Effect.acquireRelease(
  Effect.async<Http.Server>((resume) => {
    const server = Http.createServer((req, res) => {
      req.resume()
      req.on("end", () => {
        res.writeHead(400, {
          "content-type": "application/x-amz-json-1.1",
          "x-amzn-ErrorType": "UnrecognizedClientException"
        })
        res.end(
          JSON.stringify({
            __type: "UnrecognizedClientException",
            message: "The security token included in the request is invalid."
          })
        )
      })
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
)

describe("credentials refused", () => {
  it.scoped("Kinesis refusing the credentials fails the batch at once with a non-retryable KinesisError naming it", () =>
    Effect.gen(function*() {
      const server = yield* refusingKinesis
      const client = makeKinesisClient(
        `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        region,
        badCredentials
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const layer = KinesisWriter.layer({
        streamName: "s",
        logGroupId: "lg",
        schemaName: "sc",
        accountId: "123456789012"
      }).pipe(
        Layer.provide(Layer.mergeAll(Kinesis.layer(client), LargePayloadStore.layerMemory(), KinesisMetrics.layerNoop))
      )
      const error = yield* Effect.flip(
        Effect.flatMap(KinesisWriter, (w) => w.writeBatch(RecordGenerator.makeDataFiles(3)))
      ).pipe(
        Effect.provide(layer)
      )
      if (error._tag !== "WriteBatchError" || error.cause?._tag !== "KinesisError") return assert.fail(error.message)
      assert.strictEqual(error.cause.errorName, "UnrecognizedClientException")
      assert.strictEqual(error.cause.httpStatus, 400)
      assert.isFalse(error.cause.retryable)
      assert.strictEqual(error.attempts, 1)
      assert.strictEqual(error.undelivered.length, 3)
      assert.isTrue(error.undelivered.every((u) => !u.maybeDelivered))
      assert.include(error.message, "UnrecognizedClientException")
    }))

  it.scoped("S3 refusing the credentials is a LargePayloadStoreError naming the AWS error and the record, with nothing sent", () =>
    Effect.gen(function*() {
      const good = makeS3Client(inject("s3Endpoint"), region)
      const bad = makeS3Client(inject("s3Endpoint"), region, badCredentials)
      yield* Effect.addFinalizer(() => Effect.sync(() => (good.destroy(), bad.destroy())))
      const bucket = `creds-${Date.now().toString(36)}`
      yield* Effect.promise(() => createBucket(good, bucket))
      const layer = KinesisWriter.layer({
        streamName: "s",
        logGroupId: "lg",
        schemaName: "sc",
        accountId: "123456789012",
        largePayloadThreshold: 1_000
      }).pipe(
        Layer.provide(Layer.mergeAll(
          Kinesis.layer(makeKinesisClient("http://127.0.0.1:9", region)),
          LargePayloadStore.layerS3({ client: bad, bucket }),
          KinesisMetrics.layerNoop
        ))
      )
      const error = yield* Effect.flip(
        Effect.flatMap(KinesisWriter, (w) =>
          w.writeBatch([
            RecordGenerator.makeDataFile({ seed: 1, columns: 2 }),
            RecordGenerator.makeDataFile({ seed: 2, serializedBytes: 3_000 })
          ]))
      ).pipe(Effect.provide(layer))
      if (error._tag !== "LargePayloadStoreError") return assert.fail(error.message)
      assert.include(["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"], error.errorName)
      assert.strictEqual(error.httpStatus, 403)
      assert.isFalse(error.retryable)
      assert.strictEqual(error.recordIndex, 1)
      assert.include(error.message, bucket)
    }))
})
