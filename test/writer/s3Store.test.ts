/**
 * The S3 large-payload store through the real SDK client against s3rver: what goes on the
 * wire for every write (owner check, encryption, key prefix, content type), read back, and
 * deleted.
 */
import type { S3Client } from "@aws-sdk/client-s3"
import { assert, describe, inject, it } from "@effect/vitest"
import { Effect } from "effect"
import { LargePayloadStore } from "../../src/index.js"
import { createBucket, makeS3Client } from "../support/LocalAws.js"

/** Records the headers and path of every request the client sends. */
const captureRequests = (client: S3Client) => {
  const requests: Array<{ method: string; path: string; headers: Record<string, string> }> = []
  client.middlewareStack.add(
    (next) => (args) => {
      const request = args.request as { method: string; path: string; headers: Record<string, string> }
      requests.push({ method: request.method, path: request.path, headers: { ...request.headers } })
      return next(args)
    },
    { step: "finalizeRequest", name: "captureRequests" }
  )
  return requests
}

describe("LargePayloadStore.layerS3", () => {
  it.scoped("sends the expected bucket owner, SSE-KMS with its key id, the key prefix and the content type on every write", () =>
    Effect.gen(function*() {
      const client = makeS3Client(inject("s3Endpoint"), inject("region"))
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const bucket = `sse-${Date.now().toString(36)}`
      yield* Effect.promise(() => createBucket(client, bucket))
      const requests = captureRequests(client)
      const store = LargePayloadStore.makeS3({
        client,
        bucket,
        keyPrefix: "large/",
        expectedBucketOwner: "123456789012",
        serverSideEncryption: { _tag: "SSE-KMS", kmsKeyId: "alias/kinesis-large" }
      })
      const body = new Uint8Array([1, 2, 3, 4, 5])
      const location = yield* store.write("lg-sc-stream/id-1", body)
      assert.deepStrictEqual(location, { bucket, key: "large/lg-sc-stream/id-1" })
      assert.deepStrictEqual(store.locate("lg-sc-stream/id-1"), location)
      const put = requests.find((r) => r.method === "PUT")!
      assert.strictEqual(put.path, `/${bucket}/large/lg-sc-stream/id-1`)
      assert.strictEqual(put.headers["x-amz-expected-bucket-owner"], "123456789012")
      assert.strictEqual(put.headers["x-amz-server-side-encryption"], "aws:kms")
      assert.strictEqual(put.headers["x-amz-server-side-encryption-aws-kms-key-id"], "alias/kinesis-large")
      assert.strictEqual(put.headers["content-type"], "application/x-protobuf")
      assert.deepStrictEqual(yield* store.read(location), body)
      const get = requests.find((r) => r.method === "GET")!
      assert.strictEqual(get.headers["x-amz-expected-bucket-owner"], "123456789012")
      yield* store.delete(location)
      const missing = yield* Effect.flip(store.read(location))
      assert.strictEqual(missing.errorName, "NoSuchKey")
      assert.isFalse(missing.retryable)
    }))

  it.scoped("SSE-S3 is sent as AES256 without a key id", () =>
    Effect.gen(function*() {
      const client = makeS3Client(inject("s3Endpoint"), inject("region"))
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const bucket = `sse-s3-${Date.now().toString(36)}`
      yield* Effect.promise(() => createBucket(client, bucket))
      const requests = captureRequests(client)
      yield* LargePayloadStore.makeS3({ client, bucket, serverSideEncryption: { _tag: "SSE-S3" } }).write(
        "k",
        new Uint8Array([9])
      )
      const put = requests.find((r) => r.method === "PUT")!
      assert.strictEqual(put.headers["x-amz-server-side-encryption"], "AES256")
      assert.isUndefined(put.headers["x-amz-server-side-encryption-aws-kms-key-id"])
      assert.isUndefined(put.headers["x-amz-expected-bucket-owner"])
    }))
})
