/**
 * The `cygnus-kinesis` command line as a user gets it: the package packed (`npm pack`, which
 * builds it), the tarball installed with its peers into a fresh folder (once for this file),
 * and the installed bin run as a subprocess against kinesalite and s3rver.
 */
import { toJson, toJsonString } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile, spawn } from "node:child_process"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { afterAll, beforeAll } from "vitest"
import { DataFileV1Schema } from "../src/index.js"
import { RecordGenerator } from "../src/testing.js"
import { createBucket, createStream, LOCAL_CREDENTIALS, readAllRecords } from "./support/LocalAws.js"
import { localClients, uniqueName } from "./support/names.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const { kinesis, kinesisEndpoint, region, s3, s3Endpoint } = localClients()

/** The peers a user installs beside the package, at the versions this repository tests with. */
const PEERS = ["effect", "@effect/platform", "@effect/platform-node", "@aws-sdk/client-kinesis", "@aws-sdk/client-s3"]

let folder = ""
let bin = ""

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), "cygnus-cli-"))
  const run = promisify(execFile)
  // npm pack runs prepack, which builds dist/ from src/.
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", folder], { cwd: root })
  const tarball = join(folder, (JSON.parse(stdout) as Array<{ filename: string }>)[0]!.filename)
  const manifest = JSON.parse(await readFile(join(root, "package.json"), "utf8")) as {
    devDependencies: Record<string, string>
  }
  await writeFile(join(folder, "package.json"), JSON.stringify({ name: "cli-user", private: true, type: "module" }))
  await run("npm", [
    "install",
    "--no-audit",
    "--no-fund",
    "--prefer-offline",
    tarball,
    ...PEERS.map((name) => `${name}@${manifest.devDependencies[name]}`)
  ], { cwd: folder })
  bin = join(folder, "node_modules", ".bin", "cygnus-kinesis")
}, 300_000)

afterAll(() => rm(folder, { recursive: true, force: true }))

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs the installed bin with the SDK's usual environment pointed at the local servers. */
const cli = (args: ReadonlyArray<string>, input?: string) =>
  Effect.async<Run>((resume, signal) => {
    const child = spawn(bin, args, {
      cwd: folder,
      signal,
      env: {
        ...process.env,
        AWS_REGION: region,
        AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey
      }
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += chunk))
    child.stderr.on("data", (chunk) => (stderr += chunk))
    child.on("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    child.stdin.end(input ?? "")
  })

const endpoints = ["--endpoint", kinesisEndpoint, "--s3-endpoint", s3Endpoint]
const writer = ["--log-group-id", "lg-cli", "--schema-name", "orders", "--account-id", "123456789012"]

const newStream = (shards: number) =>
  Effect.promise(async () => {
    const name = uniqueName("cli")
    await createStream(kinesis, name, shards)
    return name
  })

/** Seeded records, and one whose serialized size sends it to S3. */
const records = () => [
  ...RecordGenerator.makeDataFiles(30, { columns: 5, seed: 21 }),
  RecordGenerator.makeDataFile({ seed: 22, serializedBytes: 1_000_000 })
]

const jsonLines = (text: string) =>
  text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>)

/** No stack trace: a frame line would start with "    at ". */
const assertNoStack = (stderr: string) => assert.notMatch(stderr, /^\s+at /m)

describe("cygnus-kinesis, installed from the packed tarball", () => {
  it.live("send then tail --no-follow --format json round-trips every record, the S3-offloaded one included", () =>
    Effect.gen(function*() {
      const stream = yield* newStream(3)
      const bucket = uniqueName("cli")
      yield* Effect.promise(() => createBucket(s3, bucket))
      const sent = records()
      const file = join(folder, `${stream}.jsonl`)
      yield* Effect.promise(() => writeFile(file, sent.map((r) => toJsonString(DataFileV1Schema, r)).join("\n")))

      const send = yield* cli(["send", "--stream", stream, "--bucket", bucket, "--file", file, ...endpoints, ...writer])
      assert.strictEqual(send.code, 0, send.stderr)
      assert.include(send.stdout, `delivered ${sent.length} of ${sent.length} record(s) to ${stream}`)

      const tail = yield* cli(["tail", "--stream", stream, "--no-follow", "--format", "json", ...endpoints])
      assert.strictEqual(tail.code, 0, tail.stderr)
      const read = jsonLines(tail.stdout)
      assert.strictEqual(read.length, sent.length)
      const byPath = new Map(read.map((r) => [r.filePath as string, r]))
      for (const record of sent) {
        const line = byPath.get(record.filePath)
        assert.isDefined(line, record.filePath)
        assert.deepStrictEqual(line!.dataFile, toJson(DataFileV1Schema, record))
        assert.strictEqual(line!.logGroupId, "lg-cli")
        assert.strictEqual(line!.schemaName, "orders")
        assert.match(line!.shardId as string, /^shardId-/)
      }
      const large = read.filter((r) => r.large !== null)
      assert.deepStrictEqual(large.map((r) => (r.large as { bucket: string }).bucket), [bucket])
    }))

  it.live("inspect decodes every record of a Lambda event, and exits 1 naming the record it cannot decode", () =>
    Effect.gen(function*() {
      const stream = yield* newStream(1)
      const sent = RecordGenerator.makeDataFiles(3, { columns: 3, seed: 31 })
      const send = yield* cli(
        ["send", "--stream", stream, "--bucket", "unused", ...endpoints, ...writer],
        sent.map((r) => toJsonString(DataFileV1Schema, r)).join("\n")
      )
      assert.strictEqual(send.code, 0, send.stderr)
      const stored = yield* Effect.promise(() => readAllRecords(kinesis, stream))
      const event = {
        Records: stored.map((r) => ({
          eventID: `${r.shardId}:${r.sequenceNumber}`,
          kinesis: { data: Buffer.from(r.data).toString("base64"), sequenceNumber: r.sequenceNumber }
        }))
      }
      const good = join(folder, `${stream}-event.json`)
      yield* Effect.promise(() => writeFile(good, JSON.stringify(event)))
      const ok = yield* cli(["inspect", "--lambda-event", good, "--format", "json", ...endpoints])
      assert.strictEqual(ok.code, 0, ok.stderr)
      const decoded = jsonLines(ok.stdout)
      assert.deepStrictEqual(decoded.map((r) => r.dataFile), sent.map((r) => toJson(DataFileV1Schema, r)))
      assert.deepStrictEqual(decoded.map((r) => r.sequenceNumber), stored.map((r) => r.sequenceNumber))
      assert.deepStrictEqual(decoded.map((r) => r.shardId), stored.map((r) => r.shardId))

      const bad = join(folder, `${stream}-bad.json`)
      const corrupt = { kinesis: { data: Buffer.from("not gzip").toString("base64"), sequenceNumber: "4242" } }
      yield* Effect.promise(() => writeFile(bad, JSON.stringify({ Records: [...event.Records, corrupt] })))
      const failed = yield* cli(["inspect", "--lambda-event", bad, "--format", "json", ...endpoints])
      assert.strictEqual(failed.code, 1)
      assert.strictEqual(jsonLines(failed.stdout).filter((r) => r.error === undefined).length, sent.length)
      assert.include(failed.stderr, "1 of 4 record(s) could not be decoded")
      assert.include(failed.stderr, "#3, sequence number 4242")
      assertNoStack(failed.stderr)
    }))

  it.live("send names a bad line by its number, delivers every record after it, and exits 1", () =>
    Effect.gen(function*() {
      const stream = yield* newStream(1)
      const [first, second] = RecordGenerator.makeDataFiles(2, { columns: 2, seed: 41 }).map((r) =>
        toJsonString(DataFileV1Schema, r)
      )
      const deadLetter = join(folder, `${stream}-dead.jsonl`)
      const run = yield* cli(
        ["send", "--stream", stream, "--bucket", "unused", "--dead-letter", deadLetter, ...endpoints, ...writer],
        [first, "{\"filePath\": 7}", second].join("\n")
      )
      assert.strictEqual(run.code, 1)
      assert.include(run.stderr, "line 2: not a DataFileV1")
      assert.include(run.stdout, "delivered 2 of 2 record(s)")
      const dead = jsonLines(yield* Effect.promise(() => readFile(deadLetter, "utf8")))
      assert.deepStrictEqual(dead.map((d) => d.line), [2])
      assertNoStack(run.stderr)
    }))

  it.live("a wrong flag exits 2 and a missing stream exits 1, each with one line saying what is wrong", () =>
    Effect.gen(function*() {
      const wrongFlag = yield* cli(["describe", "--stram", "orders", ...endpoints])
      assert.strictEqual(wrongFlag.code, 2)
      assert.deepStrictEqual(wrongFlag.stderr.trim().split("\n"), [
        "The flag '--stram' is not recognized. Did you mean '--stream'?"
      ])

      const missing = yield* cli(["describe", "--stream", "no-such-stream", ...endpoints])
      assert.strictEqual(missing.code, 1)
      const lines = missing.stderr.trim().split("\n")
      assert.strictEqual(lines.length, 1, missing.stderr)
      assert.include(lines[0], "no-such-stream")
      assert.include(lines[0], "ResourceNotFoundException")

      const notBase64 = yield* cli(["inspect", "--data", "***", ...endpoints])
      assert.strictEqual(notBase64.code, 2)
      assert.strictEqual(notBase64.stderr, "cygnus-kinesis: --data is not base64\n")

      const verbose = yield* cli(["describe", "--stream", "no-such-stream", "--verbose", ...endpoints])
      assert.strictEqual(verbose.code, 1)
      assert.isAbove(verbose.stderr.trim().split("\n").length, 1)
    }))

  it.live("--help on every command shows an example", () =>
    Effect.gen(function*() {
      for (const command of ["tail", "inspect", "send", "describe"]) {
        const help = yield* cli([command, "--help"])
        assert.strictEqual(help.code, 0, help.stderr)
        assert.include(help.stdout, `Example:\n\n  cygnus-kinesis ${command} --`, command)
      }
    }))
})
