/**
 * Local AWS for .ci/user-path.sh: kinesalite + s3rver (test/support/LocalAws.ts) with the
 * stream and the bucket the README's quick start names, so that the quick start runs
 * UNCHANGED, configured only by the environment a user would set for any AWS program:
 *
 *   AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_S3, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
 *
 * One thing the environment cannot change is the transport: `new KinesisClient({})` sends
 * over HTTP/2 (NodeHttp2Handler, for SubscribeToShard) and kinesalite only speaks HTTP/1.1.
 * So Kinesis is served through a small cleartext HTTP/2 (h2c) front that forwards each
 * request to kinesalite over HTTP/1.1: the client under test keeps its production transport.
 * S3 clients default to HTTP/1.1, and a loopback IP endpoint is addressed path-style by the
 * SDK's S3 endpoint rules, so s3rver is used directly.
 *
 *   npx tsx .ci/user-path/servers.ts ENV_FILE
 *
 * Writes the variables to ENV_FILE (as `export NAME=value` lines, written to a temporary
 * name and renamed, so the file appears complete) once the stream is ACTIVE and the bucket
 * exists, then serves until SIGTERM or SIGINT, and stops everything before exiting.
 */
import { rename, writeFile } from "node:fs/promises"
import * as http from "node:http"
import * as http2 from "node:http2"
import type { AddressInfo } from "node:net"
import {
  createBucket,
  createStream,
  LOCAL_CREDENTIALS,
  makeKinesisClient,
  makeS3Client,
  startLocalAws
} from "../../test/support/LocalAws.js"

/** The names in the README's quick start (examples/quickstart.ts). */
const STREAM = "my-kinesis-stream"
const BUCKET = "my-large-payload-bucket"
const SHARDS = 2

/** Headers HTTP/2 forbids (RFC 9113 §8.2.2); Node throws if a response carries one. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "http2-settings"])

/** A cleartext HTTP/2 server forwarding every request to an HTTP/1.1 server at `target`. */
const startH2cFront = async (target: URL): Promise<{ readonly endpoint: string; readonly close: () => Promise<void> }> => {
  const agent = new http.Agent({ keepAlive: true })
  const server = http2.createServer((req, res) => {
    const headers: http.OutgoingHttpHeaders = {}
    for (const [name, value] of Object.entries(req.headers)) {
      if (!name.startsWith(":") && !HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value
    }
    headers["host"] ??= req.headers[":authority"]
    const upstream = http.request(
      { agent, host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
      (answer) => {
        const out: http.OutgoingHttpHeaders = {}
        for (const [name, value] of Object.entries(answer.headers)) {
          if (!HOP_BY_HOP.has(name) && value !== undefined) out[name] = value
        }
        res.writeHead(answer.statusCode ?? 502, out)
        answer.pipe(res)
      }
    )
    upstream.on("error", (error) => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" })
      res.end(`h2c front: ${error.message}`)
    })
    req.pipe(upstream)
  })
  const sessions = new Set<http2.ServerHttp2Session>()
  server.on("session", (session) => {
    sessions.add(session)
    session.on("close", () => sessions.delete(session))
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        for (const session of sessions) session.destroy()
        agent.destroy()
        server.close(() => resolve())
      })
  }
}

const main = async () => {
  const envFile = process.argv[2]
  if (envFile === undefined) throw new Error("usage: servers.ts ENV_FILE")

  const aws = await startLocalAws()
  const front = await startH2cFront(new URL(aws.kinesisEndpoint)).catch(async (error: unknown) => {
    await aws.stop()
    throw error
  })
  let stopping: Promise<void> | undefined
  const stop = () => (stopping ??= Promise.allSettled([front.close(), aws.stop()]).then(() => undefined))
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => void stop().then(() => process.exit(0)))
  }

  try {
    const kinesis = makeKinesisClient(aws.kinesisEndpoint, aws.region)
    const s3 = makeS3Client(aws.s3Endpoint, aws.region)
    await createStream(kinesis, STREAM, SHARDS)
    await createBucket(s3, BUCKET)
    kinesis.destroy()
    s3.destroy()

    const env = {
      AWS_REGION: aws.region,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_KINESIS: front.endpoint,
      AWS_ENDPOINT_URL_S3: aws.s3Endpoint,
      // For the runner's own checks, not for the SDK.
      USER_PATH_KINESALITE: aws.kinesisEndpoint,
      USER_PATH_STREAM: STREAM,
      USER_PATH_BUCKET: BUCKET
    }
    const text = Object.entries(env).map(([k, v]) => `export ${k}=${v}\n`).join("")
    await writeFile(`${envFile}.tmp`, text)
    await rename(`${envFile}.tmp`, envFile)
    console.log(`servers ready: kinesis (h2c) ${front.endpoint} -> kinesalite ${aws.kinesisEndpoint}, s3 ${aws.s3Endpoint}`)
  } catch (error) {
    await stop()
    throw error
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
