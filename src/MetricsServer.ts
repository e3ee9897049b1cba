/**
 * The `MetricsServer` service: a Prometheus scrape endpoint (`GET /metrics` by default) on
 * `@effect/platform`'s `HttpServer` with the Node implementation, serving the exposition
 * text of a prom-client `Registry` — typically the one given to
 * `KinesisMetrics.layerPrometheus`. The server listens while the layer is alive and is
 * closed when the layer's scope closes; the service tells where it actually listens (useful
 * with port 0).
 *
 * @since 0.1.0
 */
import { HttpMiddleware, HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Context, Data, Effect, Layer } from "effect"
import * as Http from "node:http"
import type { Registry } from "prom-client"
import { MetricsServerError } from "./Errors.js"

/**
 * Options of {@link MetricsServer.layer}.
 *
 * @since 0.1.0
 */
export interface MetricsServerOptions {
  /** The registry whose metrics are served. */
  readonly registry: Registry
  /** TCP port to listen on; `0` picks any free port. Default 9464 (Prometheus' exporter default). */
  readonly port?: number | undefined
  /** Interface to listen on. Default `"127.0.0.1"`; `"0.0.0.0"` to be reachable from other hosts. */
  readonly host?: string | undefined
  /** Path of the scrape endpoint. Default `"/metrics"`; a leading `/` is added when missing. */
  readonly path?: string | undefined
}

/**
 * The defaults of {@link MetricsServerOptions}.
 *
 * @since 0.1.0
 */
export const MetricsServerDefaults = {
  port: 9464,
  host: "127.0.0.1",
  path: "/metrics"
} as const

/**
 * A running metrics endpoint: where it listens.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { MetricsServer } from "cygnus-kinesis-writer/prometheus"
 *
 * const logUrl = Effect.flatMap(MetricsServer, ({ url }) => Effect.log(`scrape ${url}`))
 * ```
 *
 * @since 0.1.0
 */
export class MetricsServer extends Context.Tag("cygnus-kinesis-writer/MetricsServer")<MetricsServer, {
  /** The scrape URL, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string
  /** The port actually bound (the free port picked when `0` was asked for). */
  readonly port: number
}>() {
  /**
   * Serves `GET {path}` with the registry's exposition text (status 200, `content-type` the
   * registry's `contentType`), 404 for anything else. A registry that fails to collect gives
   * a 500 with a short text body and a warning in the log; the server keeps running. The
   * server is closed when the layer's scope closes.
   *
   * Fails with a `MetricsServerError` when the server cannot listen: its message names the
   * address and the system error (`serving metrics on 127.0.0.1:9464 failed: EADDRINUSE: …`),
   * `code` holds the code, and the platform's `ServeError` is its `cause`.
   *
   * @example
   * ```ts
   * import { Layer } from "effect"
   * import { NodeRuntime } from "@effect/platform-node"
   * import { Registry } from "prom-client"
   * import { KinesisMetrics } from "cygnus-kinesis-writer"
   * import { MetricsServer } from "cygnus-kinesis-writer/prometheus"
   *
   * const registry = new Registry()
   * // The writer records into `registry` (provide `KinesisMetrics.layerPrometheus(registry)`
   * // to `KinesisWriter.layer(...)`); Prometheus scrapes it at http://127.0.0.1:9464/metrics.
   * const MetricsLive = KinesisMetrics.layerPrometheus(registry)
   * const ServerLive = MetricsServer.layer({ registry, port: 9464 })
   *
   * // Alone, for as long as the process runs:
   * Layer.launch(ServerLive).pipe(NodeRuntime.runMain)
   *
   * // Or beside the writer in the application's layer:
   * // const AppLive = Layer.mergeAll(WriterLive, ServerLive)
   * ```
   *
   * @since 0.1.0
   */
  static readonly layer = (options: MetricsServerOptions): Layer.Layer<MetricsServer, MetricsServerError> => {
    const port = options.port ?? MetricsServerDefaults.port
    const host = options.host ?? MetricsServerDefaults.host
    const path = normalizePath(options.path ?? MetricsServerDefaults.path)
    return Layer.scoped(
      MetricsServer,
      Effect.gen(function*() {
        // Scrapes are frequent and uninteresting: no span per request.
        yield* HttpServer.serveEffect(app(options.registry, path)).pipe(
          HttpMiddleware.withTracerDisabledWhenEffect(() => true)
        )
        const address = (yield* HttpServer.HttpServer).address
        if (address._tag === "UnixAddress") {
          return yield* Effect.dieMessage(`MetricsServer: expected a TCP address, got the socket ${address.path}`)
        }
        const hostname = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname
        yield* Effect.logDebug("metrics server listening").pipe(
          Effect.annotateLogs({ host: address.hostname, port: address.port, path })
        )
        return MetricsServer.of({ url: `http://${hostname}:${address.port}${path}`, port: address.port })
      })
    ).pipe(
      Layer.provide(NodeHttpServer.layer(() => Http.createServer(), { port, host })),
      // The platform's ServeError has an empty message; its cause is the listen error.
      Layer.mapError((cause) => new MetricsServerError({ host, port, code: systemCode(cause), cause }))
    )
  }
}

/** The registry could not collect its metrics. Never leaves the server: answered with a 500. */
class MetricsCollectError extends Data.TaggedError("MetricsCollectError")<{ readonly cause: unknown }> {
  override get message(): string {
    return `could not collect metrics: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** The `code` of the first error down the cause chain that has one (`EADDRINUSE`, …). */
const systemCode = (error: unknown): string | undefined => {
  let current = error
  for (let depth = 0; depth < 4 && typeof current === "object" && current !== null; depth++) {
    if ("code" in current && typeof current.code === "string") return current.code
    current = "cause" in current ? current.cause : undefined
  }
  return undefined
}

const normalizePath = (path: string): `/${string}` => path.startsWith("/") ? path as `/${string}` : `/${path}`

const app = (registry: Registry, path: `/${string}`) =>
  HttpRouter.empty.pipe(
    HttpRouter.get(path, scrape(registry)),
    Effect.catchTag("RouteNotFound", () => Effect.succeed(HttpServerResponse.text("Not Found", { status: 404 })))
  )

const scrape = (registry: Registry): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.tryPromise({
    try: () => registry.metrics(),
    catch: (cause) => new MetricsCollectError({ cause })
  }).pipe(
    Effect.map((body) => HttpServerResponse.text(body, { contentType: registry.contentType })),
    Effect.catchTag("MetricsCollectError", (error) =>
      Effect.logWarning("metrics scrape failed").pipe(
        Effect.annotateLogs({ error: error.message }),
        Effect.as(HttpServerResponse.text("Internal Server Error: could not collect metrics", { status: 500 }))
      ))
  )
