/**
 * The fault proxy (test/support/FaultProxy.ts) on its own, then every fault it deals seen
 * through the REAL AWS SDK clients in front of the real kinesalite and s3rver: the error the
 * SDK throws is mapped by the library's own `toKinesisError` / `toStoreError` and must get
 * the `errorName` and `retryable` the writer's retry decision relies on. For each fault the
 * test also reads the server's state directly (not through the proxy) to pin down whether
 * the request was applied: an ambiguous fault (cut response, delay after forwarding) leaves
 * the record on the stream / the object in S3 although the client saw a failure.
 *
 * The SDK cases run on the live clock (`it.live`): real sockets and real timeouts.
 */
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  PutRecordsCommand
} from "@aws-sdk/client-kinesis"
import type { KinesisClient } from "@aws-sdk/client-kinesis"
import { HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3"
import { assert, describe, it } from "@effect/vitest"
import { NodeHttpHandler } from "@smithy/node-http-handler"
import type { NodeHttpHandlerOptions } from "@smithy/types"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import type { IncomingMessage } from "node:http"
import { createServer, request as httpRequest } from "node:http"
import type { AddressInfo } from "node:net"
import { Kinesis, KinesisError, LargePayloadStore, LargePayloadStoreError } from "../../src/index.js"
import { toKinesisError, toStoreError } from "../../src/internal/awsError.js"
import type { FaultKind, FaultProxy, FaultProxyOptions, FaultRates } from "../support/FaultProxy.js"
import { freePort, refusedEndpoint, startFaultProxy } from "../support/FaultProxy.js"
import { createBucket, createStream, makeKinesisClient, makeS3Client } from "../support/LocalAws.js"
import { localClients, uniqueName } from "../support/names.js"

// ---------------------------------------------------------------------------------------------
// The raw proxy, against a tiny echo server.
// ---------------------------------------------------------------------------------------------

/** A loopback server that answers every request with the sha256 and length of its body, and counts requests. */
const startEcho = async () => {
  let hits = 0
  const server = createServer((req, res) => {
    hits++
    const hash = createHash("sha256")
    let length = 0
    req.on("data", (chunk: Buffer) => {
      hash.update(chunk)
      length += chunk.length
    })
    req.on("end", () => {
      const body = JSON.stringify({ sha256: hash.digest("hex"), length, path: req.url, pad: "x".repeat(2_000) })
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) })
      res.end(body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits: () => hits,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

type RawOutcome =
  | { readonly _tag: "Answer"; readonly status: number; readonly body: string }
  | { readonly _tag: "Error"; readonly code: string; readonly afterMs: number }

/** One request with node's own client (no keep-alive), and what came of it. */
const rawRequest = (endpoint: string, body: Buffer, timeoutMs = 2_000): Promise<RawOutcome> =>
  new Promise((resolve) => {
    const start = Date.now()
    const url = new URL(endpoint)
    const req = httpRequest({
      host: url.hostname,
      port: url.port,
      method: "POST",
      path: "/echo",
      headers: { "Content-Length": body.length }
    }, (res: IncomingMessage) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on(
        "end",
        () => resolve({ _tag: "Answer", status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() })
      )
      res.on(
        "error",
        (e: NodeJS.ErrnoException) => resolve({ _tag: "Error", code: e.code ?? e.message, afterMs: Date.now() - start })
      )
    })
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error("client timeout"), { code: "CLIENT_TIMEOUT" })))
    req.on(
      "error",
      (e: NodeJS.ErrnoException) => resolve({ _tag: "Error", code: e.code ?? e.message, afterMs: Date.now() - start })
    )
    req.end(body)
  })

const faultsOf = (proxy: FaultProxy) => proxy.stats().history.map((h) => h.fault)

describe("FaultProxy (raw HTTP)", () => {
  it("pass streams request and response bodies unchanged (1 MiB body)", async () => {
    const echo = await startEcho()
    const proxy = await startFaultProxy({ target: echo.endpoint, seed: 1 })
    try {
      const body = Buffer.alloc(1_048_576, 7)
      const outcome = await rawRequest(proxy.endpoint, body)
      assert.strictEqual(outcome._tag, "Answer")
      if (outcome._tag !== "Answer") return
      const parsed = JSON.parse(outcome.body) as { sha256: string; length: number; path: string }
      assert.strictEqual(parsed.length, body.length)
      assert.strictEqual(parsed.sha256, createHash("sha256").update(body).digest("hex"))
      assert.strictEqual(parsed.path, "/echo")
      assert.deepStrictEqual(proxy.stats().dealt.pass, 1)
    } finally {
      await proxy.stop()
      await echo.stop()
    }
  })

  it("the same seed deals the same faults to sequential requests; another seed deals others; the rates are honoured", async () => {
    const echo = await startEcho()
    const faults: FaultRates = { reset: 0.1, status500: 0.1, status503: 0.1, throttle: 0.1 }
    const run = async (seed: number) => {
      const proxy = await startFaultProxy({ target: echo.endpoint, seed, faults })
      try {
        for (let i = 0; i < 150; i++) await rawRequest(proxy.endpoint, Buffer.from(`request ${i}`))
        return { faults: faultsOf(proxy), stats: proxy.stats() }
      } finally {
        await proxy.stop()
      }
    }
    try {
      const a = await run(42)
      const b = await run(42)
      const c = await run(43)
      assert.deepStrictEqual(a.faults, b.faults)
      assert.notDeepEqual(a.faults, c.faults)
      assert.strictEqual(a.stats.requests, 150)
      const { dealt } = a.stats
      assert.strictEqual(Object.values(dealt).reduce((x, y) => x + y, 0), 150)
      // 60% pass expected: 90 of 150, well within 60..120; each fault expected 15.
      assert.isTrue(dealt.pass >= 60 && dealt.pass <= 120, `pass ${dealt.pass}`)
      for (const kind of ["reset", "status500", "status503", "throttle"] as const) {
        assert.isTrue(dealt[kind] >= 3 && dealt[kind] <= 35, `${kind} ${dealt[kind]}`)
      }
      // Only `pass` reaches the target.
      assert.strictEqual(a.stats.forwarded, dealt.pass)
      assert.strictEqual(a.stats.ambiguous.length, 0)
    } finally {
      await echo.stop()
    }
  })

  it("reset and error answers never reach the target; cutResponse and a forwarded delay do, and are remembered as ambiguous", async () => {
    const echo = await startEcho()
    const proxy = await startFaultProxy({ target: echo.endpoint, seed: 9, delayMs: 400 })
    try {
      const deal = async (faults: FaultRates) => {
        proxy.setFaults(faults)
        const before = echo.hits()
        const outcome = await rawRequest(proxy.endpoint, Buffer.from("payload"), 200)
        return { outcome, reachedTarget: echo.hits() - before }
      }
      const reset = await deal({ reset: 1 })
      assert.deepStrictEqual([reset.outcome._tag, reset.reachedTarget], ["Error", 0])
      assert.strictEqual(reset.outcome._tag === "Error" && reset.outcome.code, "ECONNRESET")

      for (const [fault, status] of [["status500", 500], ["status503", 503], ["throttle", 400]] as const) {
        const answer = await deal({ [fault]: 1 })
        assert.strictEqual(answer.reachedTarget, 0, fault)
        assert.strictEqual(answer.outcome._tag === "Answer" && answer.outcome.status, status, fault)
      }

      const cut = await deal({ cutResponse: 1 })
      assert.strictEqual(cut.reachedTarget, 1)
      assert.strictEqual(cut.outcome._tag === "Error" && cut.outcome.code, "ECONNRESET")

      const stats = proxy.stats()
      assert.deepStrictEqual(stats.ambiguous.map((a) => [a.fault, a.upstreamStatus]), [["cutResponse", 200]])
      assert.deepStrictEqual(
        stats.history.map((h) => h.fault),
        ["reset", "status500", "status503", "throttle", "cutResponse"] satisfies Array<FaultKind>
      )
    } finally {
      await proxy.stop()
      await echo.stop()
    }
  })

  it("delay holds the answer past the client's timeout, forwarded first or not; a client that waits long enough gets the late answer", async () => {
    const echo = await startEcho()
    const forwarded = await startFaultProxy({
      target: echo.endpoint,
      seed: 3,
      delayMs: 400,
      delayForwarded: true,
      faults: { delay: 1 }
    })
    const held = await startFaultProxy({
      target: echo.endpoint,
      seed: 3,
      delayMs: 400,
      delayForwarded: false,
      faults: { delay: 1 }
    })
    try {
      const a = await rawRequest(forwarded.endpoint, Buffer.from("a"), 150)
      assert.strictEqual(a._tag === "Error" && a.code, "CLIENT_TIMEOUT")
      assert.strictEqual(echo.hits(), 1, "forwarded before the delay")
      assert.strictEqual(forwarded.stats().ambiguous.length, 1)

      const b = await rawRequest(held.endpoint, Buffer.from("b"), 150)
      assert.strictEqual(b._tag === "Error" && b.code, "CLIENT_TIMEOUT")
      assert.strictEqual(echo.hits(), 1, "held, never forwarded")
      assert.strictEqual(held.stats().ambiguous.length, 0)

      // Waiting past delayMs: the forwarded delay answers late (no longer ambiguous); the held one closes the socket.
      const late = await rawRequest(forwarded.endpoint, Buffer.from("late"), 2_000)
      assert.strictEqual(late._tag, "Answer")
      assert.isTrue(late._tag === "Answer" && late.status === 200)
      assert.strictEqual(
        forwarded.stats().ambiguous.length,
        1,
        "only the first one, whose client gave up, stays ambiguous"
      )
      const closed = await rawRequest(held.endpoint, Buffer.from("closed"), 2_000)
      assert.isTrue(
        closed._tag === "Error" && closed.code === "ECONNRESET" && closed.afterMs >= 350,
        JSON.stringify(closed)
      )
      assert.strictEqual(echo.hits(), 2)
    } finally {
      await forwarded.stop()
      await held.stop()
      await echo.stop()
    }
  })

  it("stop closes held sockets and pending timers at once, and the port refuses connections afterwards; no handle is left", async () => {
    const handles = () =>
      process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap" || r === "TCPServerWrap").length
    const echo = await startEcho()
    const before = handles()
    const proxy = await startFaultProxy({ target: echo.endpoint, seed: 5, delayMs: 30_000, faults: { delay: 1 } })
    try {
      // One pass first: it leaves keep-alive sockets on both sides of the proxy.
      proxy.setFaults({})
      assert.strictEqual((await rawRequest(proxy.endpoint, Buffer.from("pass")))._tag, "Answer")
      proxy.setFaults({ delay: 1 })
      const pending = rawRequest(proxy.endpoint, Buffer.from("held"), 60_000)
      await new Promise((resolve) => setTimeout(resolve, 50))
      const start = Date.now()
      await proxy.stop()
      const outcome = await pending
      assert.isTrue(Date.now() - start < 1_000, "stop did not wait for the 30 s delay")
      assert.strictEqual(outcome._tag === "Error" && outcome.code, "ECONNRESET")
      const after = await rawRequest(proxy.endpoint, Buffer.from("after"), 1_000)
      assert.strictEqual(after._tag === "Error" && after.code, "ECONNREFUSED")
      await proxy.stop() // idempotent
      // Neither the proxy's sockets (client side, target side) nor its server nor its timers remain.
      await new Promise((resolve) => setTimeout(resolve, 20))
      assert.isAtMost(handles(), before, `handles left: ${process.getActiveResourcesInfo().join(", ")}`)
    } finally {
      await echo.stop()
    }
  })

  it("refuses a non-loopback target and rates that add up to more than 1; freePort gives a refused port", async () => {
    let error: unknown
    await startFaultProxy({ target: "http://localhost:1", seed: 1 }).catch((e) => error = e)
    assert.match(String(error), /only proxies to http:\/\/127\.0\.0\.1/)
    error = undefined
    await startFaultProxy({ target: "http://127.0.0.1:1", seed: 1, faults: { reset: 0.6, delay: 0.6 } }).catch((e) =>
      error = e
    )
    assert.match(String(error), /add up to/)
    const outcome = await rawRequest(`http://127.0.0.1:${await freePort()}`, Buffer.from("x"), 1_000)
    assert.strictEqual(outcome._tag === "Error" && outcome.code, "ECONNREFUSED")
  })
})

// ---------------------------------------------------------------------------------------------
// Every fault through the real SDK clients, classified by the library.
// ---------------------------------------------------------------------------------------------

const { kinesis: directKinesis, kinesisEndpoint, region, s3: directS3, s3Endpoint } = localClients()

const REQUEST_TIMEOUT = 300
const DELAY = 1_000

/**
 * What the tests give the SDK: a 300 ms request timeout that THROWS. With
 * @smithy/node-http-handler 4.14, `requestTimeout` alone only logs a warning (see the test
 * below); `throwOnRequestTimeout: true` makes it a `TimeoutError` (code `ETIMEDOUT`).
 */
const handler = (options: NodeHttpHandlerOptions = {}) =>
  new NodeHttpHandler({
    connectionTimeout: 1_000,
    requestTimeout: REQUEST_TIMEOUT,
    throwOnRequestTimeout: true,
    ...options
  })

/** A proxy for one test, stopped when the test's scope closes. */
const proxy = (options: Omit<FaultProxyOptions, "seed"> & { readonly seed?: number }) =>
  Effect.acquireRelease(
    Effect.promise(() => startFaultProxy({ seed: 1, delayMs: DELAY, ...options })),
    (p) => Effect.promise(() => p.stop())
  )

const kinesisVia = (endpoint: string, options: NodeHttpHandlerOptions = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => makeKinesisClient(endpoint, region, { requestHandler: handler(options) })),
    (client) => Effect.sync(() => client.destroy())
  )

const s3Via = (endpoint: string) =>
  Effect.acquireRelease(
    Effect.sync(() => makeS3Client(endpoint, region, { requestHandler: handler() })),
    (client) => Effect.sync(() => client.destroy())
  )

/** The error an SDK call throws (the test fails if it succeeds). */
const thrown = (thunk: () => Promise<unknown>): Effect.Effect<unknown> =>
  Effect.tryPromise({ try: thunk, catch: (error) => error }).pipe(
    Effect.flip,
    Effect.orDieWith(() => new Error("expected the SDK call to fail, but it succeeded"))
  )

/** The SDK error's shape, for failure messages. */
const shape = (error: unknown): string => {
  const e = error as { name?: unknown; code?: unknown; message?: unknown; $metadata?: { httpStatusCode?: unknown } }
  return JSON.stringify({
    name: e.name,
    code: e.code,
    httpStatusCode: e.$metadata?.httpStatusCode,
    message: String(e.message).slice(0, 100)
  })
}

const newStream = Effect.gen(function*() {
  const name = uniqueName("fp-stream")
  yield* Effect.promise(() => createStream(directKinesis, name, 1))
  return name
})

const newBucket = Effect.gen(function*() {
  const name = uniqueName("fp-bucket")
  yield* Effect.promise(() => createBucket(directS3, name))
  return name
})

/** Records on a 1-shard stream, read directly from kinesalite. */
const recordsOn = (stream: string): Effect.Effect<number> =>
  Effect.promise(async () => {
    const shards = await directKinesis.send(new ListShardsCommand({ StreamName: stream }))
    const shardId = shards.Shards?.[0]?.ShardId ?? ""
    const it = await directKinesis.send(
      new GetShardIteratorCommand({ StreamName: stream, ShardId: shardId, ShardIteratorType: "TRIM_HORIZON" })
    )
    const got = await directKinesis.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator }))
    return got.Records?.length ?? 0
  })

const objectExists = (bucket: string, key: string): Effect.Effect<boolean> =>
  Effect.promise(() => directS3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(() => true, () => false))

const putRecords = (client: KinesisClient, stream: string) => () =>
  client.send(
    new PutRecordsCommand({ StreamName: stream, Records: [{ Data: new Uint8Array([1, 2, 3]), PartitionKey: "pk" }] })
  )

interface Expected {
  /** What the SDK throws, in words, for the test title. */
  readonly what: string
  readonly errorName: string
  readonly httpStatus: number | undefined
  /** Whether the server applied the request although the client saw a failure. */
  readonly applied: boolean
}

interface Case {
  readonly fault: string
  readonly faults: FaultRates
  readonly options?: Partial<FaultProxyOptions>
  readonly kinesis: Expected
  readonly s3: Expected
}

/** A reset can hit the client while it still writes the body: EPIPE then, ECONNRESET otherwise. */
const accepted = (errorName: string): ReadonlyArray<string> =>
  errorName === "ECONNRESET" ? ["ECONNRESET", "EPIPE"] : [errorName]

/** What the library reads of each fault; the SDK error's full shape is in the titles. */
const CASES: ReadonlyArray<Case> = [
  {
    fault: "reset before forwarding",
    faults: { reset: 1 },
    kinesis: {
      what: "Error name TimeoutError, code ECONNRESET, 'socket hang up', no status",
      errorName: "ECONNRESET",
      httpStatus: undefined,
      applied: false
    },
    s3: {
      what: "Error name TimeoutError, code ECONNRESET (EPIPE for a body still being written), no status",
      errorName: "ECONNRESET",
      httpStatus: undefined,
      applied: false
    }
  },
  {
    fault: "answer cut after the headers",
    faults: { cutResponse: 1 },
    kinesis: {
      what:
        "Error name Error, code ECONNRESET, 'aborted … Deserialization error', $metadata.httpStatusCode 200 — APPLIED",
      errorName: "ECONNRESET",
      httpStatus: 200,
      applied: true
    },
    // PutObject answers with no body: the cut falls inside the header block, so no status reached the SDK.
    s3: {
      what: "Error name TimeoutError, code ECONNRESET, 'socket hang up', no status — APPLIED",
      errorName: "ECONNRESET",
      httpStatus: undefined,
      applied: true
    }
  },
  {
    fault: "delay past the request timeout, forwarded first",
    faults: { delay: 1 },
    options: { delayForwarded: true },
    kinesis: {
      what: "Error name TimeoutError, code ETIMEDOUT, no status — APPLIED",
      errorName: "ETIMEDOUT",
      httpStatus: undefined,
      applied: true
    },
    s3: {
      what: "Error name TimeoutError, code ETIMEDOUT, no status — APPLIED",
      errorName: "ETIMEDOUT",
      httpStatus: undefined,
      applied: true
    }
  },
  {
    fault: "delay past the request timeout, never forwarded",
    faults: { delay: 1 },
    options: { delayForwarded: false },
    kinesis: {
      what: "Error name TimeoutError, code ETIMEDOUT, no status",
      errorName: "ETIMEDOUT",
      httpStatus: undefined,
      applied: false
    },
    s3: {
      what: "Error name TimeoutError, code ETIMEDOUT, no status",
      errorName: "ETIMEDOUT",
      httpStatus: undefined,
      applied: false
    }
  },
  {
    fault: "500",
    faults: { status500: 1 },
    kinesis: {
      what: "KinesisServiceException name InternalFailure, $fault server, status 500",
      errorName: "InternalFailure",
      httpStatus: 500,
      applied: false
    },
    s3: {
      what: "S3ServiceException name InternalError, $fault server, status 500",
      errorName: "InternalError",
      httpStatus: 500,
      applied: false
    }
  },
  {
    fault: "503",
    faults: { status503: 1 },
    kinesis: {
      what: "KinesisServiceException name ServiceUnavailableException, $fault server, status 503",
      errorName: "ServiceUnavailableException",
      httpStatus: 503,
      applied: false
    },
    s3: {
      what: "S3ServiceException name ServiceUnavailable, $fault server, status 503",
      errorName: "ServiceUnavailable",
      httpStatus: 503,
      applied: false
    }
  },
  {
    fault: "throttling",
    faults: { throttle: 1 },
    options: { kinesisThrottle: "ProvisionedThroughputExceededException" },
    kinesis: {
      what: "ProvisionedThroughputExceededException, $fault client, status 400",
      errorName: "ProvisionedThroughputExceededException",
      httpStatus: 400,
      applied: false
    },
    s3: {
      what: "S3ServiceException name SlowDown, $fault server, status 503",
      errorName: "SlowDown",
      httpStatus: 503,
      applied: false
    }
  },
  {
    fault: "throttling (stream-level)",
    faults: { throttle: 1 },
    options: { kinesisThrottle: "LimitExceededException" },
    kinesis: {
      what: "LimitExceededException, $fault client, status 400",
      errorName: "LimitExceededException",
      httpStatus: 400,
      applied: false
    },
    s3: { what: "S3ServiceException name SlowDown, status 503", errorName: "SlowDown", httpStatus: 503, applied: false }
  }
]

describe("faults through the real AWS SDK, classified by the library", () => {
  for (const c of CASES) {
    it.scopedLive(`Kinesis PutRecords, ${c.fault}: ${c.kinesis.what} → ${c.kinesis.errorName}, retryable`, () =>
      Effect.gen(function*() {
        const stream = yield* newStream
        const p = yield* proxy({ target: kinesisEndpoint, faults: c.faults, ...c.options })
        const client = yield* kinesisVia(p.endpoint)
        const cause = yield* thrown(putRecords(client, stream))
        const error = toKinesisError("PutRecords", stream)(cause)
        assert.include(accepted(c.kinesis.errorName), error.errorName, shape(cause))
        assert.strictEqual(error.retryable, true, shape(cause))
        assert.strictEqual(error.httpStatus, c.kinesis.httpStatus, shape(cause))
        assert.strictEqual(error.cause, cause)
        // The service the writer uses maps it the same way.
        const viaService = yield* Kinesis.make(client).putRecords({
          streamName: stream,
          records: [{ data: new Uint8Array([4]), partitionKey: "pk" }]
        }).pipe(Effect.flip)
        assert.instanceOf(viaService, KinesisError)
        assert.include(accepted(c.kinesis.errorName), viaService.errorName)
        assert.isTrue(viaService.retryable)
        // Give a held delay time to end, then read the stream directly.
        if (c.faults.delay !== undefined) yield* Effect.sleep(DELAY)
        assert.strictEqual(yield* recordsOn(stream), c.kinesis.applied ? 2 : 0, "records applied by the server")
        assert.strictEqual(p.stats().ambiguous.length, c.kinesis.applied ? 2 : 0)
      }))

    it.scopedLive(`S3 PutObject, ${c.fault}: ${c.s3.what} → ${c.s3.errorName}, retryable`, () =>
      Effect.gen(function*() {
        const bucket = yield* newBucket
        const p = yield* proxy({ target: s3Endpoint, flavour: "s3", faults: c.faults, ...c.options })
        const client = yield* s3Via(p.endpoint)
        const location = { bucket, key: "large/object-1" }
        const cause = yield* thrown(() =>
          client.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: location.key,
              Body: new Uint8Array(20_000).fill(1),
              ContentLength: 20_000
            })
          )
        )
        const error = toStoreError("write", location)(cause)
        assert.include(accepted(c.s3.errorName), error.errorName, shape(cause))
        assert.strictEqual(error.retryable, true, shape(cause))
        assert.strictEqual(error.httpStatus, c.s3.httpStatus, shape(cause))
        // The store the writer uses maps it the same way.
        const viaStore = yield* LargePayloadStore.makeS3({ client, bucket }).write(
          "large/object-2",
          new Uint8Array(10).fill(2)
        ).pipe(Effect.flip)
        assert.instanceOf(viaStore, LargePayloadStoreError)
        assert.include(accepted(c.s3.errorName), viaStore.errorName)
        assert.isTrue(viaStore.retryable)
        if (c.faults.delay !== undefined) yield* Effect.sleep(DELAY)
        assert.strictEqual(yield* objectExists(bucket, "large/object-1"), c.s3.applied, "object stored by the server")
        assert.strictEqual(yield* objectExists(bucket, "large/object-2"), c.s3.applied)
      }))
  }

  it.scopedLive("a large-payload read (GetObject) cut mid-body: the store's read fails with a retryable ECONNRESET", () =>
    Effect.gen(function*() {
      const bucket = yield* newBucket
      yield* Effect.promise(() =>
        directS3.send(new PutObjectCommand({ Bucket: bucket, Key: "big", Body: new Uint8Array(200_000).fill(3) }))
      )
      const p = yield* proxy({ target: s3Endpoint, flavour: "s3", faults: { cutResponse: 1 } })
      const client = yield* s3Via(p.endpoint)
      const error = yield* LargePayloadStore.makeS3({ client, bucket }).read({ bucket, key: "big" }).pipe(Effect.flip)
      assert.deepStrictEqual([error.errorName, error.retryable, error.operation], ["ECONNRESET", true, "read"])
    }))

  it.scopedLive("a non-fault 400 passes through: ResourceNotFoundException, not retryable", () =>
    Effect.gen(function*() {
      const p = yield* proxy({ target: kinesisEndpoint, faults: {} })
      const client = yield* kinesisVia(p.endpoint)
      const stream = uniqueName("fp-missing")
      const cause = yield* thrown(putRecords(client, stream))
      const error = toKinesisError("PutRecords", stream)(cause)
      assert.deepStrictEqual([error.errorName, error.httpStatus, error.retryable], [
        "ResourceNotFoundException",
        400,
        false
      ], shape(cause))
      assert.strictEqual(p.stats().dealt.pass, 1)
    }))

  it.scopedLive("a non-fault 404 passes through: NoSuchBucket, not retryable", () =>
    Effect.gen(function*() {
      const p = yield* proxy({ target: s3Endpoint, flavour: "s3", faults: {} })
      const client = yield* s3Via(p.endpoint)
      const error = yield* LargePayloadStore.makeS3({ client, bucket: uniqueName("fp-nobucket") }).write(
        "k",
        new Uint8Array(1)
      ).pipe(Effect.flip)
      assert.deepStrictEqual([error.errorName, error.httpStatus, error.retryable], ["NoSuchBucket", 404, false])
    }))

  it.scopedLive("connection refused: ECONNREFUSED, retryable, for Kinesis and S3", () =>
    Effect.gen(function*() {
      const endpoint = yield* Effect.promise(refusedEndpoint)
      const kinesis = yield* kinesisVia(endpoint)
      const cause = yield* thrown(putRecords(kinesis, "fp-refused"))
      const error = toKinesisError("PutRecords", "fp-refused")(cause)
      assert.deepStrictEqual(
        [error.errorName, error.httpStatus, error.retryable],
        ["ECONNREFUSED", undefined, true],
        shape(cause)
      )
      const s3 = yield* s3Via(endpoint)
      const storeError = yield* LargePayloadStore.makeS3({ client: s3, bucket: "fp-refused" }).write(
        "k",
        new Uint8Array(1)
      ).pipe(Effect.flip)
      assert.deepStrictEqual([storeError.errorName, storeError.retryable], ["ECONNREFUSED", true])
    }))

  it.scopedLive("an idle-socket timeout (socketTimeout instead of requestTimeout): TimeoutError with no code, retryable", () =>
    Effect.gen(function*() {
      const stream = yield* newStream
      const p = yield* proxy({ target: kinesisEndpoint, faults: { delay: 1 }, delayForwarded: false })
      const client = yield* Effect.acquireRelease(
        Effect.sync(() =>
          makeKinesisClient(p.endpoint, region, {
            requestHandler: new NodeHttpHandler({ socketTimeout: REQUEST_TIMEOUT })
          })
        ),
        (c) => Effect.sync(() => c.destroy())
      )
      const cause = yield* thrown(putRecords(client, stream))
      assert.strictEqual((cause as { code?: unknown }).code, undefined, shape(cause))
      const error = toKinesisError("PutRecords", stream)(cause)
      assert.deepStrictEqual([error.errorName, error.retryable], ["TimeoutError", true], shape(cause))
    }))

  it.scopedLive("requestTimeout WITHOUT throwOnRequestTimeout only warns: the call outlives it and succeeds when the late answer comes", () =>
    Effect.gen(function*() {
      const stream = yield* newStream
      const p = yield* proxy({ target: kinesisEndpoint, faults: { delay: 1 }, delayForwarded: true, delayMs: 700 })
      const warnings: Array<string> = []
      const logger = {
        debug: () => {},
        info: () => {},
        warn: (m: unknown) => void warnings.push(String(m)),
        error: () => {}
      }
      const client = yield* Effect.acquireRelease(
        Effect.sync(() =>
          makeKinesisClient(p.endpoint, region, {
            requestHandler: new NodeHttpHandler({ requestTimeout: REQUEST_TIMEOUT, logger })
          })
        ),
        (c) => Effect.sync(() => c.destroy())
      )
      const start = Date.now()
      const output = yield* Effect.promise(putRecords(client, stream))
      assert.strictEqual(output.FailedRecordCount ?? 0, 0)
      assert.isTrue(Date.now() - start >= 600, "the answer came after the delay, not the timeout")
      assert.isTrue(
        warnings.some((w) => w.includes("exceeded the configured 300 ms requestTimeout")),
        warnings.join("\n")
      )
    }))
})
