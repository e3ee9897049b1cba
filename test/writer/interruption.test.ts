import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { Kinesis, KinesisMetrics, KinesisWriter, LargePayloadStore } from "../../src/index.js"
import { RecordGenerator } from "../../src/testing.js"
import { makeKinesisClient } from "../support/LocalAws.js"
import { atInfoOrAbove, capturingLogs } from "../support/logs.js"
import { baseOptions } from "../support/writerLayers.js"

/** A loopback HTTP server that accepts requests and never answers; it reports each request and its close. */
const hangingServer = Effect.acquireRelease(
  Effect.async<
    { server: Http.Server; port: number; requests: Array<{ closed: Promise<void> }>; arrived: Promise<void> }
  >((resume) => {
    const requests: Array<{ closed: Promise<void> }> = []
    let signalArrived: () => void = () => {}
    const arrived = new Promise<void>((resolve) => signalArrived = resolve)
    const server = Http.createServer((req) => {
      requests.push({ closed: new Promise((resolve) => req.socket.once("close", () => resolve())) })
      signalArrived()
    })
    server.listen(
      0,
      "127.0.0.1",
      () => resume(Effect.succeed({ server, port: (server.address() as AddressInfo).port, requests, arrived }))
    )
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
)

describe("interruption", () => {
  it.scoped(
    "interrupting writeBatch aborts the in-flight PutRecords request through its abort signal",
    () =>
      Effect.gen(function*() {
        const hanging = yield* hangingServer
        const client = makeKinesisClient(`http://127.0.0.1:${hanging.port}`)
        yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
        const layer = KinesisWriter.layer(baseOptions).pipe(
          Layer.provide(
            Layer.mergeAll(Kinesis.layer(client), LargePayloadStore.layerMemory(), KinesisMetrics.layerNoop)
          )
        )
        const fiber = yield* Effect.fork(
          Effect.flatMap(KinesisWriter, (w) => w.writeBatch(RecordGenerator.makeDataFiles(10))).pipe(
            Effect.provide(layer)
          )
        )
        yield* Effect.promise(() => hanging.arrived)
        assert.strictEqual(hanging.requests.length, 1)
        const exit = yield* Fiber.interrupt(fiber)
        assert.isTrue(exit._tag === "Failure")
        // The abort reaches the socket: the server sees the connection closed.
        yield* Effect.promise(() => hanging.requests[0]!.closed).pipe(
          Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("request not aborted") })
        )
      }),
    { timeout: 20_000 }
  )

  it.scopedLive(
    "a PutRecords call that never answers times out after requestTimeout: aborted, retried, then named as possibly delivered",
    () =>
      Effect.gen(function*() {
        const hanging = yield* hangingServer
        const client = makeKinesisClient(`http://127.0.0.1:${hanging.port}`)
        yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
        const layer = KinesisWriter.layer({
          ...baseOptions,
          requestTimeout: "200 millis",
          maxRetries: 1,
          backoffBase: "1 millis"
        }).pipe(
          Layer.provide(
            Layer.mergeAll(Kinesis.layer(client), LargePayloadStore.layerMemory(), KinesisMetrics.layerNoop)
          )
        )
        const { logs, result } = yield* capturingLogs(
          Effect.flip(
            Effect.flatMap(KinesisWriter, (w) => w.writeBatch(RecordGenerator.makeDataFiles(5)))
          ).pipe(
            Effect.provide(layer)
          )
        )
        const error = yield* result
        assert.deepStrictEqual(atInfoOrAbove(logs), ["WARN batch ended with records not delivered"])
        if (error._tag !== "WriteBatchError" || error.cause?._tag !== "KinesisError") return assert.fail(error.message)
        assert.strictEqual(error.cause.errorName, "TimeoutError")
        assert.isTrue(error.cause.retryable)
        assert.strictEqual(error.attempts, 2)
        assert.isTrue(error.undelivered.every((u) => u.maybeDelivered && u.errorCode === "TimeoutError"))
        // Both requests reached the server and were aborted on timeout.
        assert.strictEqual(hanging.requests.length, 2)
        yield* Effect.promise(() => Promise.all(hanging.requests.map((r) => r.closed))).pipe(
          Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("requests not aborted") })
        )
      }),
    { timeout: 20_000 }
  )

  it.effect("Kinesis.make passes an abort signal that fires on interruption", () =>
    Effect.gen(function*() {
      const aborted = yield* Deferred.make<boolean>()
      const started = yield* Deferred.make<void>()
      const fakeClient = {
        send: (_command: unknown, options: { abortSignal?: AbortSignal }) => {
          Deferred.unsafeDone(started, Effect.void)
          options.abortSignal?.addEventListener("abort", () => Deferred.unsafeDone(aborted, Effect.succeed(true)))
          return new Promise(() => {})
        }
      }
      const kinesis = Kinesis.make(fakeClient as never)
      const fiber = yield* Effect.fork(
        kinesis.putRecords({ streamName: "s", records: [{ data: new Uint8Array([1]), partitionKey: "k" }] })
      )
      yield* Deferred.await(started)
      yield* Fiber.interrupt(fiber)
      assert.isTrue(yield* Deferred.await(aborted))
    }))
})
