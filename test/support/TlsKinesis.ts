/**
 * A Kinesis endpoint over TLS on loopback, as real AWS is reached: `node:http2`'s secure server
 * with `allowHTTP1`, so that it speaks HTTP/2 and HTTP/1.1 (ALPN chooses), and counts the TLS
 * sessions clients open. It answers PutRecords (AWS JSON 1.1, `X-Amz-Target:
 * Kinesis_20131202.PutRecords`) with one success per record, DescribeStreamSummary with one
 * open shard, and ListShards with that shard.
 *
 * The certificate is made when the server starts (`openssl req -x509`, a key and a
 * self-signed certificate for 127.0.0.1 and localhost); clients trust it through `ca`.
 *
 * Test and bench infrastructure: plain async functions, as test/support/LocalAws.ts.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as http2 from "node:http2"
import type { AddressInfo, Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** A self-signed certificate for 127.0.0.1 and localhost, and its key (PEM). */
export interface TestCertificate {
  readonly cert: string
  readonly key: string
}

/** Makes a certificate with the `openssl` on PATH; fails saying so when there is none. */
export const makeCertificate = (): TestCertificate => {
  const dir = mkdtempSync(join(tmpdir(), "tls-kinesis-"))
  try {
    execFileSync("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem")
    ], { stdio: ["ignore", "ignore", "pipe"] })
    return { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8") }
  } catch (error) {
    throw new Error(`the TLS test endpoint needs openssl on PATH to make its certificate: ${String(error)}`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A running endpoint. */
export interface TlsKinesis {
  /** `https://127.0.0.1:PORT` */
  readonly endpoint: string
  /** The certificate clients must trust (PEM). */
  readonly ca: string
  /** TLS sessions opened so far (one per connection: a handshake each). */
  readonly tlsSessions: () => number
  /** Of those, the ones on which ALPN chose HTTP/2. */
  readonly http2Sessions: () => number
  /** PutRecords calls answered so far. */
  readonly putRecordsCalls: () => number
  /** The most PutRecords calls the server held at once. */
  readonly peakInFlight: () => number
  readonly close: () => Promise<void>
}

const SHARD = "shardId-000000000000"
const json = { "content-type": "application/x-amz-json-1.1" }

/**
 * Starts the endpoint on a free loopback port. `delayMs` holds each PutRecords answer that
 * long (default 0), so that calls overlap as they do against a distant region.
 */
export const startTlsKinesis = async (
  options: { readonly delayMs?: number; readonly certificate?: TestCertificate } = {}
): Promise<TlsKinesis> => {
  const certificate = options.certificate ?? makeCertificate()
  const delayMs = options.delayMs ?? 0
  let tlsSessions = 0
  let http2Sessions = 0
  let calls = 0
  let inFlight = 0
  let peak = 0
  let sequence = 0n
  const answer = (target: string, body: string): { readonly status: number; readonly body: unknown } => {
    switch (target) {
      case "Kinesis_20131202.PutRecords": {
        const records = (JSON.parse(body) as { Records?: ReadonlyArray<unknown> }).Records ?? []
        return {
          status: 200,
          body: {
            FailedRecordCount: 0,
            Records: records.map(() => ({ ShardId: SHARD, SequenceNumber: String(++sequence) }))
          }
        }
      }
      case "Kinesis_20131202.DescribeStreamSummary": {
        const name = (JSON.parse(body) as { StreamName?: string }).StreamName ?? "stream"
        return {
          status: 200,
          body: { StreamDescriptionSummary: { StreamName: name, StreamStatus: "ACTIVE", OpenShardCount: 1 } }
        }
      }
      case "Kinesis_20131202.ListShards":
        return {
          status: 200,
          body: {
            Shards: [{
              ShardId: SHARD,
              HashKeyRange: { StartingHashKey: "0", EndingHashKey: (2n ** 128n - 1n).toString() },
              SequenceNumberRange: { StartingSequenceNumber: "0" }
            }]
          }
        }
      default:
        return { status: 400, body: { __type: "UnknownOperationException", message: `no ${target}` } }
    }
  }
  const server = http2.createSecureServer(
    { key: certificate.key, cert: certificate.cert, allowHTTP1: true },
    (req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (chunk: Buffer) => chunks.push(chunk))
      req.on("end", () => {
        const target = String(req.headers["x-amz-target"] ?? "")
        const put = target === "Kinesis_20131202.PutRecords"
        if (put) {
          calls++
          peak = Math.max(peak, ++inFlight)
        }
        const reply = answer(target, Buffer.concat(chunks).toString("utf8"))
        const send = () => {
          if (put) inFlight--
          res.writeHead(reply.status, json)
          res.end(JSON.stringify(reply.body))
        }
        if (put && delayMs > 0) setTimeout(send, delayMs)
        else send()
      })
    }
  )
  const sockets = new Set<Socket>()
  server.on("secureConnection", (socket: Socket & { alpnProtocol?: string | false }) => {
    tlsSessions++
    if (socket.alpnProtocol === "h2") http2Sessions++
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `https://127.0.0.1:${port}`,
    ca: certificate.cert,
    tlsSessions: () => tlsSessions,
    http2Sessions: () => http2Sessions,
    putRecordsCalls: () => calls,
    peakInFlight: () => peak,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      })
  }
}
