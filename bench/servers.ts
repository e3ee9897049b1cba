/**
 * The P2 servers, in a child process so that their CPU does not run on the measured main
 * thread: kinesalite (in-memory, as test/support/LocalAws.ts starts it) and, in front of
 * it, a tiny HTTP proxy that holds every call for a fixed delay (default 25 ms) before
 * forwarding it.
 *
 *   fork("bench/servers.ts", [delayMs], { execArgv: ["--import", "tsx"] })
 *
 * Sends `{ kinesis, proxy }` (endpoints) once listening; answers `"cpu"` with its CPU time
 * (`process.cpuUsage()`); exits when the parent disconnects.
 */
import kinesalite from "kinesalite"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

const delayMs = Number(process.argv[2] ?? "25")
const LOOPBACK = "127.0.0.1"

const listen = (server: http.Server): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, LOOPBACK, () => resolve((server.address() as AddressInfo).port))
  })

const kinesis = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 10_000 })
const kinesisPort = await listen(kinesis)

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
let calls = 0
const proxy = http.createServer((req, res) => {
  const chunks: Array<Buffer> = []
  req.on("data", (chunk: Buffer) => chunks.push(chunk))
  req.on("end", () => {
    calls++
    setTimeout(() => {
      const upstream = http.request(
        { host: LOOPBACK, port: kinesisPort, method: req.method, path: req.url, headers: req.headers, agent },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers)
          answer.pipe(res)
        }
      )
      upstream.on("error", (error) => {
        res.writeHead(502, { "content-type": "text/plain" })
        res.end(String(error))
      })
      upstream.end(Buffer.concat(chunks))
    }, delayMs)
  })
})
proxy.keepAliveTimeout = 60_000
const proxyPort = await listen(proxy)

process.on("message", (message) => {
  if (message === "cpu") {
    const cpu = process.cpuUsage()
    process.send?.({ cpu: (cpu.user + cpu.system) / 1e6, calls })
  }
})
process.on("disconnect", () => process.exit(0))
process.send?.({ kinesis: `http://${LOOPBACK}:${kinesisPort}`, proxy: `http://${LOOPBACK}:${proxyPort}` })
