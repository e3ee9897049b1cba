/**
 * P2's main endpoint: a loopback HTTP server that speaks just enough of the Kinesis
 * PutRecords protocol for the SDK client (AWS JSON 1.1: `POST /`,
 * `X-Amz-Target: Kinesis_20131202.PutRecords`, `application/x-amz-json-1.1`) and answers
 * every call after a fixed delay (default 25 ms) with every record written. It does no work
 * per record beyond `JSON.parse` of the body (no base64 decoding, no storage, no limits), so
 * that P2 measures the writer against latency rather than kinesalite's CPU on the same two
 * cores. It runs in a child process, so that its parsing is not on the writer's event loop;
 * it still shares the cores, so it reports its CPU time for the bench to print.
 *
 *   fork("bench/fakeKinesis.ts", [delayMs], { execArgv: ["--import", "tsx"] })
 *
 * Sends `{ endpoint }` once listening; answers `"cpu"` with its CPU time
 * (`process.cpuUsage()`) and the calls it answered; exits when the parent disconnects.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"

const delayMs = Number(process.argv[2] ?? "25")
const LOOPBACK = "127.0.0.1"
const JSON_11 = "application/x-amz-json-1.1"

let calls = 0
let sequence = 0n

const answer = (res: http.ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": JSON_11, "content-length": Buffer.byteLength(text) })
  res.end(text)
}

const server = http.createServer((req, res) => {
  const chunks: Array<Buffer> = []
  req.on("data", (chunk: Buffer) => chunks.push(chunk))
  req.on("end", () => {
    const target = req.headers["x-amz-target"]
    if (req.method !== "POST" || target !== "Kinesis_20131202.PutRecords") {
      answer(res, 400, { __type: "UnknownOperationException", message: `not served here: ${String(target)}` })
      return
    }
    let count: number
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { Records?: ReadonlyArray<unknown> }
      count = body.Records?.length ?? 0
    } catch {
      answer(res, 400, { __type: "SerializationException", message: "body is not JSON" })
      return
    }
    calls++
    setTimeout(() => {
      const records = new Array<{ SequenceNumber: string; ShardId: string }>(count)
      for (let i = 0; i < count; i++) {
        records[i] = { SequenceNumber: String(++sequence), ShardId: `shardId-00000000000${i % 4}` }
      }
      answer(res, 200, { FailedRecordCount: 0, Records: records, EncryptionType: "NONE" })
    }, delayMs)
  })
})
server.keepAliveTimeout = 60_000

await new Promise<void>((resolve, reject) => {
  server.once("error", reject)
  server.listen(0, LOOPBACK, () => resolve())
})

process.on("message", (message) => {
  if (message === "cpu") {
    const cpu = process.cpuUsage()
    process.send?.({ cpu: (cpu.user + cpu.system) / 1e6, calls })
  }
})
process.on("disconnect", () => process.exit(0))
process.send?.({ endpoint: `http://${LOOPBACK}:${(server.address() as AddressInfo).port}` })
