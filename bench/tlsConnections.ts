/**
 * TLS: PutRecords calls per second over TLS on loopback, through the `Kinesis` service, with
 * the SDK's default Kinesis handler (a new HTTP/2 session, so a TCP connection and a TLS
 * handshake, per call) against the client `Kinesis.layerClient` builds (HTTP/1.1
 * keep-alive), and, for the record of the choice, one shared HTTP/2 session
 * (`disableConcurrentStreams: false`). The endpoint (test/support/TlsKinesis.ts, HTTP/2 and
 * HTTP/1.1) runs in a child process (bench/tlsServer.ts) and counts the TLS sessions.
 *
 * Each client makes its calls in sequence, then 4 at a time; the clients take turns, in
 * rounds, and the median round is printed. Loopback makes a handshake as cheap as it can be:
 * against a region 20-80 ms away each new session also costs two more round trips.
 */
import { KinesisClient } from "@aws-sdk/client-kinesis"
import { NodeHttp2Handler } from "@smithy/node-http-handler"
import { Effect, Layer, ManagedRuntime } from "effect"
import { fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Kinesis } from "../src/index.js"
import { fixed, int, loadNote, median, quietLogs, ratio, section, table } from "./common.js"

/** What the section returns to bench/run.ts: calls/s of ours over the SDK default's, per concurrency. */
export interface TlsResult {
  readonly byConcurrency: ReadonlyArray<{
    readonly concurrency: number
    readonly sdkDefault: number
    readonly ours: number
    readonly http2Shared: number
  }>
}

const region = "us-east-1"
const credentials = { accessKeyId: "bench", secretAccessKey: "bench" }
const RECORDS_PER_CALL = 10
const records = Array.from({ length: RECORDS_PER_CALL }, (_, i) => ({
  data: new Uint8Array(1_000).fill(i),
  partitionKey: `key-${i}`
}))

interface Endpoint {
  readonly endpoint: string
  readonly ca: string
}
interface Counts {
  readonly tlsSessions: number
  readonly calls: number
}

/** The three clients; `destroy` closes the two the caller owns (the layer closes its own). */
const clients = (server: Endpoint) => {
  const sdkDefault = new KinesisClient({
    endpoint: server.endpoint,
    region,
    credentials,
    maxAttempts: 1,
    // The SDK's default handler for Kinesis, and the test CA.
    requestHandler: { disableConcurrentStreams: true, nodeHttp2ConnectOptions: { ca: server.ca } }
  })
  const http2Shared = new KinesisClient({
    endpoint: server.endpoint,
    region,
    credentials,
    maxAttempts: 1,
    requestHandler: new NodeHttp2Handler({
      disableConcurrentStreams: false,
      nodeHttp2ConnectOptions: { ca: server.ca }
    })
  })
  return {
    layers: {
      sdkDefault: Kinesis.layer(sdkDefault),
      ours: Kinesis.layerClient({
        endpoint: server.endpoint,
        region,
        credentials,
        requestHandler: { httpsAgent: { ca: server.ca } }
      }),
      http2Shared: Kinesis.layer(http2Shared)
    },
    destroy: () => {
      sdkDefault.destroy()
      http2Shared.destroy()
    }
  }
}
type Variant = keyof ReturnType<typeof clients>["layers"]
const VARIANTS: ReadonlyArray<Variant> = ["sdkDefault", "ours", "http2Shared"]
const LABELS: Record<Variant, string> = {
  sdkDefault: "SDK default (HTTP/2, a session per call)",
  ours: "Kinesis.layerClient (HTTP/1.1 keep-alive)",
  http2Shared: "one shared HTTP/2 session"
}

/** `calls` PutRecords calls, `concurrency` at a time: calls per second. */
const measure = (calls: number, concurrency: number) =>
  Effect.gen(function*() {
    const kinesis = yield* Kinesis
    const put = kinesis.putRecords({ streamName: "bench", records })
    yield* put // a first call, outside the clock: the client resolves its configuration
    const start = performance.now()
    yield* Effect.forEach(Array.from({ length: calls }), () => put, { concurrency, discard: true })
    return calls / ((performance.now() - start) / 1000)
  })

export const runTls = async (
  options: { readonly smoke: boolean; readonly signal: AbortSignal }
): Promise<TlsResult> => {
  const calls = options.smoke ? 20 : 120
  const rounds = options.smoke ? 1 : 3
  const concurrencies = [1, 4]
  section(
    `TLS — PutRecords calls/s over TLS on loopback, ${RECORDS_PER_CALL} records of 1 KB a call, ${calls} calls per client per round, ${rounds} round(s)`
  )
  const child = fork(fileURLToPath(new URL("./tlsServer.ts", import.meta.url)), [], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  const stop = () => child.connected && child.disconnect()
  options.signal.addEventListener("abort", stop, { once: true })
  try {
    const server = await new Promise<Endpoint>((resolve, reject) => {
      child.once("message", (m) => resolve(m as Endpoint))
      child.once("exit", (code) => reject(new Error(`the TLS endpoint exited (${code})`)))
    })
    const counts = () =>
      new Promise<Counts>((resolve) => {
        child.once("message", (m) => resolve(m as Counts))
        child.send("count")
      })
    const made = clients(server)
    const layers = made.layers
    const rates = new Map<string, Array<number>>()
    const sessions = new Map<string, number>()
    for (let round = 0; round < rounds; round++) {
      for (const concurrency of concurrencies) {
        for (const variant of VARIANTS) {
          options.signal.throwIfAborted()
          const runtime = ManagedRuntime.make(Layer.merge(layers[variant], quietLogs))
          const before = await counts()
          const rate = await runtime.runPromise(measure(calls, concurrency), { signal: options.signal })
          const after = await counts()
          await runtime.dispose()
          const key = `${variant}/${concurrency}`
          rates.set(key, [...(rates.get(key) ?? []), rate])
          sessions.set(key, after.tlsSessions - before.tlsSessions)
        }
      }
    }
    made.destroy()
    const rate = (variant: Variant, concurrency: number) => median(rates.get(`${variant}/${concurrency}`) ?? [0])
    console.log(`[${loadNote()}]\n`)
    console.log(
      table(
        ["client", "concurrency", "calls/s", "vs SDK default", `TLS sessions for ${calls + 1} calls`],
        concurrencies.flatMap((c) =>
          VARIANTS.map((v) => [
            LABELS[v],
            String(c),
            int(rate(v, c)),
            ratio(rate(v, c), rate("sdkDefault", c)),
            int(sessions.get(`${v}/${c}`) ?? 0)
          ])
        )
      )
    )
    const byConcurrency = concurrencies.map((concurrency) => ({
      concurrency,
      sdkDefault: rate("sdkDefault", concurrency),
      ours: rate("ours", concurrency),
      http2Shared: rate("http2Shared", concurrency)
    }))
    console.log(
      `\nours vs the SDK default: ${
        byConcurrency.map((b) => `${fixed(b.ours / b.sdkDefault)}× at concurrency ${b.concurrency}`).join(", ")
      }`
    )
    return { byConcurrency }
  } finally {
    options.signal.removeEventListener("abort", stop)
    stop()
  }
}
