import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { Counter, Gauge, Registry } from "prom-client"
import { KinesisMetrics } from "../../src/KinesisMetrics.js"
import * as KinesisTest from "../../src/KinesisTest.js"
import { KinesisWriter } from "../../src/KinesisWriter.js"
import { LargePayloadStore } from "../../src/LargePayloadStore.js"
import { MetricsServer } from "../../src/MetricsServer.js"
import * as RecordGenerator from "../../src/RecordGenerator.js"

interface Scraped {
  readonly status: number
  readonly contentType: string | null
  readonly body: string
}

/** A real HTTP GET; the body is read in full so that the connection goes back idle. */
const get = (url: string): Effect.Effect<Scraped, unknown> =>
  Effect.tryPromise({
    try: (signal) =>
      fetch(url, { signal }).then((response) =>
        response.text().then((body) => ({
          status: response.status,
          contentType: response.headers.get("content-type"),
          body
        }))
      ),
    catch: (cause) => cause
  })

/** The value of the sample line `series value` in an exposition text, if there is one. */
const sample = (body: string, series: string): number | undefined => {
  const line = body.split("\n").find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

/** The code of the network error under a failed `fetch` (undici wraps it in a TypeError). */
const errorCode = (error: unknown): unknown =>
  error instanceof Error && error.cause instanceof Error && "code" in error.cause ? error.cause.code : undefined

describe("MetricsServer", () => {
  it.scoped("serves the registry's exposition text with its content type on GET /metrics", () => {
    const registry = new Registry()
    const counter = new Counter({ name: "test_jobs_total", help: "jobs", labelNames: ["queue"], registers: [registry] })
    counter.inc({ queue: "q1" }, 7)
    return Effect.gen(function*() {
      const server = yield* MetricsServer
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
      assert.notStrictEqual(server.port, 0)
      assert.isTrue(server.url.endsWith(`:${server.port}/metrics`))
      const response = yield* get(server.url)
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.contentType, registry.contentType)
      assert.strictEqual(registry.contentType, "text/plain; version=0.0.4; charset=utf-8")
      assert.include(response.body, "# TYPE test_jobs_total counter")
      assert.include(response.body, `test_jobs_total{queue="q1"} 7\n`)
    }).pipe(Effect.provide(MetricsServer.layer({ registry, port: 0 })))
  })

  it.scoped("serves a custom path and answers 404 for any other path", () => {
    const registry = new Registry()
    return Effect.gen(function*() {
      const { port, url } = yield* MetricsServer
      assert.strictEqual(url, `http://127.0.0.1:${port}/prom`)
      assert.strictEqual((yield* get(url)).status, 200)
      assert.strictEqual((yield* get(`http://127.0.0.1:${port}/metrics`)).status, 404)
      assert.strictEqual((yield* get(`http://127.0.0.1:${port}/`)).status, 404)
      assert.strictEqual((yield* get(`http://127.0.0.1:${port}/prom/x`)).status, 404)
    }).pipe(Effect.provide(MetricsServer.layer({ registry, port: 0, path: "prom" })))
  })

  it.scoped("answers 500 when the registry fails to collect, and keeps serving", () => {
    const registry = new Registry()
    let failing = true
    new Gauge({
      name: "test_flaky",
      help: "fails to collect while `failing`",
      registers: [registry],
      collect() {
        if (failing) throw new Error("collector down")
        this.set(1)
      }
    })
    return Effect.gen(function*() {
      const { url } = yield* MetricsServer
      const failed = yield* get(url)
      assert.strictEqual(failed.status, 500)
      assert.notInclude(failed.body, "test_flaky")
      failing = false
      const recovered = yield* get(url)
      assert.strictEqual(recovered.status, 200)
      assert.strictEqual(sample(recovered.body, "test_flaky"), 1)
    }).pipe(Effect.provide(MetricsServer.layer({ registry, port: 0 })))
  })

  it.scoped("closes the server when the layer's scope closes: the port refuses connections", () =>
    Effect.gen(function*() {
      const url = yield* Effect.scoped(
        Effect.gen(function*() {
          const context = yield* Layer.build(MetricsServer.layer({ registry: new Registry(), port: 0 }))
          const { url } = Context.get(context, MetricsServer)
          assert.strictEqual((yield* get(url)).status, 200)
          return url
        })
      )
      const error = yield* Effect.flip(get(url))
      assert.strictEqual(errorCode(error), "ECONNREFUSED")
    }))

  it.scoped("a port in use fails the layer with a MetricsServerError that names the address and EADDRINUSE", () =>
    Effect.gen(function*() {
      const taken = Context.get(
        yield* Layer.build(MetricsServer.layer({ registry: new Registry(), port: 0 })),
        MetricsServer
      )
      const error = yield* Effect.flip(
        Effect.scoped(Layer.build(MetricsServer.layer({ registry: new Registry(), port: taken.port })))
      )
      assert.strictEqual(error._tag, "MetricsServerError")
      assert.strictEqual(error.code, "EADDRINUSE")
      assert.strictEqual(error.port, taken.port)
      assert.match(
        error.message,
        new RegExp(`^serving metrics on 127\\.0\\.0\\.1:${taken.port} failed: EADDRINUSE: \\S`)
      )
      assert.notInclude(error.message, "\n")
    }))

  it.scoped("scrapes during a write and the counters moved", () => {
    const registry = new Registry()
    // The second PutRecords call scrapes the endpoint while the batch is in flight.
    let scrapeUrl: string | undefined
    let during: Scraped | undefined
    const script: KinesisTest.PutRecordsScript = (call) =>
      call.index === 1 && scrapeUrl !== undefined
        ? get(scrapeUrl).pipe(
          Effect.orDie,
          Effect.tap((scraped) => {
            during = scraped
          }),
          Effect.zipRight(KinesisTest.acceptAll(call))
        )
        : KinesisTest.acceptAll(call)
    const WriterLive = KinesisWriter.layer({
      streamName: "s",
      logGroupId: "lg",
      schemaName: "sc",
      accountId: "123456789012"
    }).pipe(
      Layer.provide(
        Layer.mergeAll(
          KinesisTest.layer(script),
          LargePayloadStore.layerMemory(),
          KinesisMetrics.layerPrometheus(registry)
        )
      )
    )
    return Effect.gen(function*() {
      const { url } = yield* MetricsServer
      const writer = yield* KinesisWriter
      scrapeUrl = url

      const before = yield* get(url)
      assert.strictEqual(before.status, 200)
      for (
        const series of [
          "kinesis_write_attempts_total",
          "kinesis_write_success_total",
          "kinesis_write_latency_seconds_count"
        ]
      ) {
        assert.include([undefined, 0], sample(before.body, `${series}{stream_name="s"}`), series)
      }

      const result = yield* writer.writeBatch(RecordGenerator.makeDataFiles(1_200, { columns: 10 }))
      assert.strictEqual(result.records, 1_200)
      assert.strictEqual(result.kinesisCalls, 3)
      assert.strictEqual(during?.status, 200)
      assert.include([undefined, 0, 1, 2], sample(during?.body ?? "", `kinesis_write_attempts_total{stream_name="s"}`))

      const after = yield* get(url)
      assert.strictEqual(after.status, 200)
      assert.include(after.body, `kinesis_write_attempts_total{stream_name="s"} 3\n`)
      assert.include(after.body, `kinesis_write_success_total{stream_name="s"} 3\n`)
      assert.strictEqual(sample(after.body, `kinesis_write_latency_seconds_count{stream_name="s"}`), 3)
      assert.strictEqual(sample(after.body, `kinesis_failed_records_total{stream_name="s"}`) ?? 0, 0)
    }).pipe(Effect.provide(Layer.merge(WriterLive, MetricsServer.layer({ registry, port: 0 }))))
  })
})
