/**
 * A fault-injecting HTTP/1.1 reverse proxy on loopback, put between a REAL AWS SDK client and
 * a REAL emulator (kinesalite, s3rver), so that the SDK's own error handling — not a test
 * double's idea of it — is what the library under test sees.
 *
 * For every request the proxy draws one fault from a seeded PRNG (mulberry32):
 *
 * | fault | what the client sees | did the server apply it? |
 * |---|---|---|
 * | `pass` | the server's answer, streamed | yes |
 * | `reset` | the socket closed before any answer (ECONNRESET) | no: never forwarded |
 * | `cutResponse` | the server's status line and headers, part of its body, then a closed socket | yes: ambiguous |
 * | `delay` | nothing for `delayMs` (past the client's timeout), then a closed socket or the late answer | forwarded first or not (`delayForwarded`) |
 * | `status500` | 500 InternalFailure (Kinesis) / InternalError (S3) | no |
 * | `status503` | 503 ServiceUnavailableException (Kinesis) / ServiceUnavailable (S3) | no |
 * | `throttle` | 400 ProvisionedThroughputExceededException or LimitExceededException (Kinesis) / 503 SlowDown (S3) | no |
 *
 * The draw order is the order in which requests arrive, so a sequential client gets the
 * same faults for the same seed; with concurrent requests the same sequence of faults is
 * dealt, to whichever request arrives first. `script` deals a fixed sequence first (for
 * regression tests), `applyTo` exempts requests (e.g. everything but PutRecords), and
 * `setFaults` changes the rates on the fly. `stats()` counts the faults dealt and keeps
 * every request that was forwarded without a complete answer reaching the client (it may
 * have been applied: Kinesis may hold the records, S3 the object).
 *
 * This is test infrastructure: plain Node and promises, no Effect. Every socket it accepts
 * or opens is closed by `stop()`. It only ever listens on, and connects to, 127.0.0.1.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http"
import { Agent, createServer, request as httpRequest } from "node:http"
import type { AddressInfo, Socket } from "node:net"
import { createServer as createNetServer } from "node:net"
import { prng } from "../../src/RecordGenerator.js"

const LOOPBACK = "127.0.0.1"

/** Every fault the proxy can deal, `pass` included. */
export const FAULT_KINDS = ["pass", "reset", "cutResponse", "delay", "status500", "status503", "throttle"] as const
export type FaultKind = (typeof FAULT_KINDS)[number]

/** Which error bodies the proxy answers with: Kinesis' JSON 1.1 protocol or S3's REST-XML. */
export type Flavour = "kinesis" | "s3"

/**
 * The probability of each fault, per request (0 to 1; their sum at most 1; the rest is
 * `pass`). Missing ones are 0.
 */
export type FaultRates = { readonly [K in Exclude<FaultKind, "pass">]?: number }

export interface FaultProxyOptions {
  /** Where `pass` goes, e.g. `"http://127.0.0.1:4567"`. Must be a loopback address. */
  readonly target: string
  /** The PRNG seed; the same seed deals the same fault sequence. */
  readonly seed: number
  readonly faults?: FaultRates | undefined
  /** The error bodies' protocol. Default `"kinesis"`. */
  readonly flavour?: Flavour | undefined
  /** How long a `delay` holds the answer, in ms: make it longer than the client's timeout. Default 1,000. */
  readonly delayMs?: number | undefined
  /**
   * Whether a `delay` forwards the request first (the server applies it: ambiguous) or
   * never does (after `delayMs` the socket is closed). A number is the probability of
   * forwarding, drawn from the same PRNG. Default 0.5.
   */
  readonly delayForwarded?: boolean | number | undefined
  /**
   * The Kinesis error code of `throttle`: one of the two, or `"mixed"` (drawn from the
   * PRNG). Default `"mixed"`.
   */
  readonly kinesisThrottle?: "ProvisionedThroughputExceededException" | "LimitExceededException" | "mixed" | undefined
  /**
   * Faults dealt, in order, to the first requests subject to faults, before the PRNG takes
   * over: a deterministic sequence for a regression test (e.g. `["cutResponse", "throttle"]`).
   */
  readonly script?: ReadonlyArray<FaultKind> | undefined
  /**
   * Only requests for which this is true are subject to faults (and draw from the PRNG);
   * the others pass. Default: every request.
   */
  readonly applyTo?: ((request: RequestInfo) => boolean) | undefined
}

/** What the proxy knows of a request. */
export interface RequestInfo {
  readonly method: string
  /** Path and query. */
  readonly path: string
  /** The Kinesis operation (from `X-Amz-Target`), when there is one. */
  readonly operation: string | undefined
}

/** A request the server may have applied although the client saw a failure. */
export interface AmbiguousRequest extends RequestInfo {
  readonly seq: number
  readonly fault: "cutResponse" | "delay"
  /** The status the server answered with (not what the client saw). */
  readonly upstreamStatus: number | undefined
}

export interface FaultProxyStats {
  /** Requests received. */
  readonly requests: number
  /** Faults dealt, by kind (`pass` included; requests outside `applyTo` count as `pass`). */
  readonly dealt: Readonly<Record<FaultKind, number>>
  /** `delay`s that forwarded the request first. */
  readonly delaysForwarded: number
  /** Requests forwarded to the target (whatever the client then saw). */
  readonly forwarded: number
  /** Forwarded requests whose answer the client did not get in full: they may have been applied. */
  readonly ambiguous: ReadonlyArray<AmbiguousRequest>
  /** Forwards that failed between proxy and target (should stay 0). */
  readonly upstreamErrors: number
  /** Every request and the fault it got, in arrival order. */
  readonly history: ReadonlyArray<RequestInfo & { readonly seq: number; readonly fault: FaultKind }>
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT`: give it to an SDK client as `endpoint`. */
  readonly endpoint: string
  readonly stats: () => FaultProxyStats
  /** Replaces the fault rates from the next request on (e.g. `{}` to stop injecting). */
  readonly setFaults: (faults: FaultRates) => void
  /** Closes the server, every client and target socket, and pending timers. Idempotent. */
  readonly stop: () => Promise<void>
}

const validateRates = (faults: FaultRates): FaultRates => {
  let sum = 0
  for (const [kind, rate] of Object.entries(faults)) {
    if (!(FAULT_KINDS as ReadonlyArray<string>).includes(kind) || kind === "pass") {
      throw new RangeError(`unknown fault ${kind}`)
    }
    if (rate === undefined) continue
    if (!(rate >= 0 && rate <= 1)) throw new RangeError(`fault rate ${kind}=${rate} is not within 0..1`)
    sum += rate
  }
  if (sum > 1 + 1e-9) throw new RangeError(`fault rates add up to ${sum} > 1`)
  return { ...faults }
}

const checkLoopback = (url: URL): void => {
  if (url.protocol !== "http:" || url.hostname !== LOOPBACK) {
    throw new Error(`FaultProxy only proxies to http://${LOOPBACK}:PORT, not ${url.href}`)
  }
}

/** Request headers for the target: hop-by-hop headers dropped, the rest (Host included: it is signed) kept. */
const forwardHeaders = (headers: IncomingHttpHeaders): OutgoingHttpHeaders => {
  const out: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    if (name === "connection" || name === "keep-alive" || name === "proxy-connection" || name === "expect") continue
    out[name] = value
  }
  return out
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  500: "Internal Server Error",
  503: "Service Unavailable"
}

/** The raw bytes of a complete response with a Content-Length (hop-by-hop and framing headers rebuilt). */
const rawResponse = (
  status: number,
  statusMessage: string | undefined,
  rawHeaders: ReadonlyArray<string>,
  body: Buffer
) => {
  const lines = [`HTTP/1.1 ${status} ${statusMessage ?? STATUS_TEXT[status] ?? "Unknown"}`]
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    const lower = name.toLowerCase()
    if (
      lower === "content-length" || lower === "transfer-encoding" || lower === "connection" || lower === "keep-alive"
    ) continue
    lines.push(`${name}: ${rawHeaders[i + 1]!}`)
  }
  lines.push(`Content-Length: ${body.length}`, "Connection: keep-alive")
  const head = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1")
  return { head, body }
}

const requestId = (rand: () => number): string => {
  let out = ""
  for (let i = 0; i < 32; i++) out += Math.floor(rand() * 16).toString(16)
  return `${out.slice(0, 8)}-${out.slice(8, 12)}-${out.slice(12, 16)}-${out.slice(16, 20)}-${out.slice(20)}`
}

const xmlError = (code: string, message: string, id: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>${id}</RequestId><HostId>fault-proxy</HostId></Error>`

/**
 * Starts the proxy on a free loopback port.
 *
 * @example
 * ```ts
 * const proxy = await startFaultProxy({ target: kinesisEndpoint, seed: 7, faults: { reset: 0.1, throttle: 0.1 } })
 * const client = makeKinesisClient(proxy.endpoint, region, { requestHandler: new NodeHttpHandler({ requestTimeout: 300, throwOnRequestTimeout: true }) })
 * // …
 * await proxy.stop()
 * ```
 */
export const startFaultProxy = async (options: FaultProxyOptions): Promise<FaultProxy> => {
  const target = new URL(options.target)
  checkLoopback(target)
  const targetPort = Number(target.port)
  const flavour = options.flavour ?? "kinesis"
  const delayMs = options.delayMs ?? 1_000
  const delayForwarded = options.delayForwarded ?? 0.5
  const kinesisThrottle = options.kinesisThrottle ?? "mixed"
  const rand = prng(options.seed)
  let rates = validateRates(options.faults ?? {})

  // State for stats and for stop().
  let requests = 0
  let forwarded = 0
  let delaysForwarded = 0
  let upstreamErrors = 0
  const dealt = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>
  const ambiguous: Array<AmbiguousRequest> = []
  const history: Array<RequestInfo & { readonly seq: number; readonly fault: FaultKind }> = []
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()
  let stopping = false
  // Keep-alive to the target; destroyed (with its sockets) on stop.
  const agent = new Agent({ keepAlive: true, maxSockets: 64 })

  const later = (ms: number, f: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer)
      f()
    }, ms)
    timers.add(timer)
  }

  const script = [...(options.script ?? [])]
  const draw = (info: RequestInfo): FaultKind => {
    if (options.applyTo !== undefined && !options.applyTo(info)) return "pass"
    const scripted = script.shift()
    if (scripted !== undefined) return scripted
    const x = rand()
    let acc = 0
    for (const kind of FAULT_KINDS) {
      if (kind === "pass") continue
      acc += rates[kind] ?? 0
      if (x < acc) return kind
    }
    return "pass"
  }

  /** Sends the request on to the target; resolves with its response (not yet read) or undefined on an upstream error. */
  const forward = (req: IncomingMessage): Promise<IncomingMessage | undefined> =>
    new Promise((resolve) => {
      forwarded++
      const upstream = httpRequest({
        host: LOOPBACK,
        port: targetPort,
        method: req.method,
        path: req.url,
        headers: forwardHeaders(req.headers),
        agent
      }, resolve)
      upstream.on("error", () => {
        upstreamErrors++
        resolve(undefined)
      })
      req.pipe(upstream)
    })

  /** Reads a whole response body. */
  const readAll = (message: IncomingMessage): Promise<Buffer | undefined> =>
    new Promise((resolve) => {
      const chunks: Array<Buffer> = []
      message.on("data", (chunk: Buffer) => chunks.push(chunk))
      message.on("end", () => resolve(Buffer.concat(chunks)))
      message.on("error", () => resolve(undefined))
      message.on("aborted", () => resolve(undefined))
    })

  const errorAnswer = (fault: "status500" | "status503" | "throttle") => {
    const id = requestId(rand)
    if (flavour === "kinesis") {
      const [status, type, message] = fault === "status500"
        ? [500, "InternalFailure", "Internal service failure (injected by FaultProxy)"] as const
        : fault === "status503"
        ? [503, "ServiceUnavailableException", "Service unavailable (injected by FaultProxy)"] as const
        : kinesisThrottle === "LimitExceededException" || (kinesisThrottle === "mixed" && rand() < 0.5)
        ? [400, "LimitExceededException", "Rate exceeded for stream (injected by FaultProxy)"] as const
        : [400, "ProvisionedThroughputExceededException", "Rate exceeded for shard (injected by FaultProxy)"] as const
      return {
        status,
        headers: {
          "Content-Type": "application/x-amz-json-1.1",
          "x-amzn-ErrorType": `${type}:`,
          "x-amzn-RequestId": id
        },
        body: JSON.stringify({ __type: type, message })
      }
    }
    const [status, code, message] = fault === "status500"
      ? [500, "InternalError", "We encountered an internal error. Please try again."] as const
      : fault === "status503"
      ? [503, "ServiceUnavailable", "Reduce your request rate."] as const
      : [503, "SlowDown", "Please reduce your request rate."] as const
    return {
      status,
      headers: { "Content-Type": "application/xml", "x-amz-request-id": id, "x-amz-id-2": "fault-proxy" },
      body: xmlError(code, message, id)
    }
  }

  const pass = async (req: IncomingMessage, res: ServerResponse) => {
    const upstream = await forward(req)
    if (upstream === undefined) return void req.socket.destroy()
    res.writeHead(
      upstream.statusCode ?? 502,
      upstream.statusMessage,
      upstream.rawHeaders.filter((_, i, all) => {
        // rawHeaders is [name, value, name, value, …]: drop the hop-by-hop pairs.
        const name = (i % 2 === 0 ? all[i] : all[i - 1])!.toLowerCase()
        return name !== "connection" && name !== "keep-alive"
      })
    )
    upstream.pipe(res)
    upstream.on("error", () => res.destroy())
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const seq = requests++
    const target = req.headers["x-amz-target"]
    const info: RequestInfo = {
      method: req.method ?? "GET",
      path: req.url ?? "/",
      operation: typeof target === "string" ? target.split(".").at(-1) : undefined
    }
    const fault = draw(info)
    dealt[fault]++
    history.push({ seq, fault, ...info })
    const socket = req.socket
    switch (fault) {
      case "pass":
        return pass(req, res)
      case "reset":
        // Before forwarding: the server never sees it.
        socket.destroy()
        return
      case "status500":
      case "status503":
      case "throttle": {
        const answer = errorAnswer(fault)
        req.resume()
        req.on("end", () => {
          res.writeHead(answer.status, { ...answer.headers, "Content-Length": Buffer.byteLength(answer.body) })
          res.end(answer.body)
        })
        return
      }
      case "cutResponse": {
        const upstream = await forward(req)
        const body = upstream === undefined ? undefined : await readAll(upstream)
        if (upstream !== undefined) {
          ambiguous.push({ seq, fault, ...info, upstreamStatus: upstream.statusCode })
        }
        if (upstream === undefined || body === undefined || socket.destroyed) return void socket.destroy()
        const { body: full, head } = rawResponse(
          upstream.statusCode ?? 200,
          upstream.statusMessage,
          upstream.rawHeaders,
          body
        )
        // Headers and half the body; with no body, half the header block (a response that never completes).
        const prefix = full.length > 0
          ? Buffer.concat([head, full.subarray(0, Math.floor(full.length / 2))])
          : head.subarray(0, Math.floor(head.length / 2))
        socket.write(prefix, () => later(5, () => socket.destroy()))
        return
      }
      case "delay": {
        const forwardFirst = typeof delayForwarded === "boolean" ? delayForwarded : rand() < delayForwarded
        if (!forwardFirst) {
          // Never forwarded: hold the request, then close the socket if the client is still there.
          req.resume()
          later(delayMs, () => socket.destroy())
          return
        }
        delaysForwarded++
        const upstream = await forward(req)
        const body = upstream === undefined ? undefined : await readAll(upstream)
        const entry: AmbiguousRequest = { seq, fault, ...info, upstreamStatus: upstream?.statusCode }
        if (upstream === undefined || body === undefined) return void socket.destroy()
        later(delayMs, () => {
          if (socket.destroyed || stopping) return
          // The client waited that long after all: it gets the (late) answer, complete.
          const { body: full, head } = rawResponse(
            upstream.statusCode ?? 200,
            upstream.statusMessage,
            upstream.rawHeaders,
            body
          )
          socket.write(Buffer.concat([head, full]))
          // Answered on the raw socket: the http server must not answer again, and must not reuse the socket.
          later(5, () => socket.destroy())
          ambiguous.splice(ambiguous.indexOf(entry), 1)
        })
        ambiguous.push(entry)
        return
      }
    }
  }

  const server = createServer((req, res) => {
    void handle(req, res).catch(() => req.socket.destroy())
  })
  server.keepAliveTimeout = 5_000
  server.on("connection", (socket: Socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    // A client reset must not become an unhandled 'error'.
    socket.on("error", () => {})
  })
  server.on("clientError", (_error, socket) => socket.destroy())

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, LOOPBACK, () => {
      server.off("error", reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port

  let stopped: Promise<void> | undefined
  return {
    endpoint: `http://${LOOPBACK}:${port}`,
    stats: () => ({
      requests,
      dealt: { ...dealt },
      delaysForwarded,
      forwarded,
      ambiguous: [...ambiguous],
      upstreamErrors,
      history: [...history]
    }),
    setFaults: (faults) => {
      rates = validateRates(faults)
    },
    stop: () => {
      stopped ??= new Promise<void>((resolve) => {
        stopping = true
        for (const timer of timers) clearTimeout(timer)
        timers.clear()
        for (const socket of sockets) socket.destroy()
        agent.destroy()
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return stopped
    }
  }
}

/** A free loopback port (nothing listens on it once this resolves, barring a race with another process). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createNetServer()
    server.once("error", reject)
    server.listen(0, LOOPBACK, () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })

/** An endpoint where nothing listens: a client gets ECONNREFUSED. */
export const refusedEndpoint = async (): Promise<string> => `http://${LOOPBACK}:${await freePort()}`
