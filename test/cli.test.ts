/**
 * The `cygnus-kinesis` command line as a user gets it: the package built and packed
 * (`npm pack`), the tarball installed with its peers into a fresh folder (once for this
 * file), and the installed bin run as a subprocess against kinesalite and s3rver.
 */
import { toJson, toJsonString } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import { Array as Arr, Effect } from "effect"
import { execFile, spawn } from "node:child_process"
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { afterAll, beforeAll } from "vitest"
import { DataFileV1Schema, RecordCodec } from "../src/index.js"
import { LambdaEvent, RecordGenerator } from "../src/testing.js"
import { createBucket, createStream, LOCAL_CREDENTIALS } from "./support/LocalAws.js"
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
  // The package as `npm pack` makes it (its "files", package.json, README), built into a copy
  // of its own: other test files build and read the repository's dist/ at the same time.
  const stage = join(folder, "package")
  for (const path of ["package.json", "README.md", "proto", "src"]) {
    await cp(join(root, path), join(stage, path), { recursive: true })
  }
  await run(process.execPath, [
    join(root, "node_modules/typescript/bin/tsc"),
    "-p",
    join(root, "tsconfig.build.json"),
    "--outDir",
    join(stage, "dist")
  ], { cwd: root })
  const { stdout } = await run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", folder], {
    cwd: stage
  })
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
  RecordGenerator.makeDataFile({ seed: 1_000, serializedBytes: 1_000_000 })
]

const jsonLines = (text: string) =>
  text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>)

/** No stack trace: a frame line would start with "    at ". */
const assertNoStack = (stderr: string) => assert.notMatch(stderr, /^\s+at /m)

// Each test runs the bin a few times; a Node process that loads the SDK and Effect takes
// seconds on a loaded machine, so the tests run side by side, each with room to finish.
const TIMEOUT = 180_000

describe.concurrent("cygnus-kinesis, installed from the packed tarball", () => {
  it.live(
    "send then tail --no-follow --format json round-trips every record, the S3-offloaded one included",
    () =>
      Effect.gen(function*() {
        const stream = yield* newStream(3)
        const bucket = uniqueName("cli")
        yield* Effect.promise(() => createBucket(s3, bucket))
        const sent = records()
        const file = join(folder, `${stream}.jsonl`)
        yield* Effect.promise(() => writeFile(file, sent.map((r) => toJsonString(DataFileV1Schema, r)).join("\n")))

        const send = yield* cli([
          "send",
          "--stream",
          stream,
          "--bucket",
          bucket,
          "--file",
          file,
          ...endpoints,
          ...writer
        ])
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
      }),
    TIMEOUT
  )

  it.live(
    "inspect decodes every record of a Lambda event, and exits 1 naming the record it cannot decode",
    () =>
      Effect.gen(function*() {
        const sent = RecordGenerator.makeDataFiles(3, { columns: 3, seed: 31 })
        const encoded = yield* Effect.forEach(sent, (dataFile, i) =>
          RecordCodec.encodeRecord(dataFile, {
            filePath: dataFile.filePath,
            creationTime: 1_765_000_000_000n + BigInt(i),
            accountId: "123456789012",
            recordId: `00000000-0000-4000-8000-00000000000${i}`,
            logGroupId: "lg-cli",
            schemaName: "orders"
          }))
        // The event as Lambda delivers it, made by the testing helper, with one record that is not ours.
        const built = LambdaEvent.fromRecords(
          [...encoded.map((e) => ({ data: e.data })), { data: new TextEncoder().encode("not gzip") }],
          { shardId: "shardId-000000000002" }
        )
        const sequenceNumber = (i: number) => built.Records[i]!.kinesis.sequenceNumber
        const event = join(folder, "lambda-event.json")
        yield* Effect.promise(() => writeFile(event, JSON.stringify(built)))

        const run = yield* cli(["inspect", "--lambda-event", event, "--format", "json", ...endpoints])
        assert.strictEqual(run.code, 1)
        const [decoded, failed] = Arr.partition(jsonLines(run.stdout), (r) => r.error !== undefined)
        assert.deepStrictEqual(decoded.map((r) => r.dataFile), sent.map((r) => toJson(DataFileV1Schema, r)))
        assert.deepStrictEqual(decoded.map((r) => r.sequenceNumber), [0, 1, 2].map(sequenceNumber))
        assert.deepStrictEqual(decoded.map((r) => r.shardId), Array(3).fill("shardId-000000000002"))
        assert.deepStrictEqual(
          decoded.map((r) => r.recordId),
          sent.map((_, i) => `00000000-0000-4000-8000-00000000000${i}`)
        )
        assert.deepStrictEqual(failed.map((r) => r.sequenceNumber), [sequenceNumber(3)])
        assert.include(run.stderr, "1 of 4 record(s) could not be decoded")
        assert.include(run.stderr, `#3, sequence number ${sequenceNumber(3)} (Gunzip)`)
        assertNoStack(run.stderr)
      }),
    TIMEOUT
  )

  it.live(
    "send names a bad line by its number, delivers every record after it, and exits 1",
    () =>
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
      }),
    TIMEOUT
  )

  it.live(
    "a wrong flag or bad input exits 2 and a missing stream exits 1, each with one line saying what is wrong",
    () =>
      Effect.gen(function*() {
        const [wrongFlag, missing, notBase64, verbose] = yield* Effect.all([
          cli(["describe", "--stram", "orders", ...endpoints]),
          cli(["describe", "--stream", "no-such-stream", ...endpoints]),
          cli(["inspect", "--data", "***", ...endpoints]),
          cli(["describe", "--stream", "no-such-stream", "--verbose", ...endpoints])
        ], { concurrency: "unbounded" })
        assert.strictEqual(wrongFlag.code, 2)
        assert.deepStrictEqual(wrongFlag.stderr.trim().split("\n"), [
          "The flag '--stram' is not recognized. Did you mean '--stream'?"
        ])

        assert.strictEqual(missing.code, 1)
        const lines = missing.stderr.trim().split("\n")
        assert.strictEqual(lines.length, 1, missing.stderr)
        assert.include(lines[0], "no-such-stream")
        assert.include(lines[0], "ResourceNotFoundException")

        assert.strictEqual(notBase64.code, 2)
        assert.strictEqual(notBase64.stderr, "cygnus-kinesis: --data is not base64\n")

        // --verbose adds the full cause to the same line.
        assert.strictEqual(verbose.code, 1)
        assert.strictEqual(verbose.stderr.split("\n")[0], lines[0])
        assert.isAbove(verbose.stderr.trim().split("\n").length, 1)
      }),
    TIMEOUT
  )

  it.live("--help on every command shows an example", () =>
    Effect.gen(function*() {
      const commands = ["tail", "inspect", "send", "describe"]
      const helps = yield* Effect.forEach(commands, (command) => cli([command, "--help"]), { concurrency: "unbounded" })
      for (const [i, help] of helps.entries()) {
        assert.strictEqual(help.code, 0, help.stderr)
        assert.include(help.stdout, `Example:\n\n  cygnus-kinesis ${commands[i]} --`, commands[i])
      }
    }), TIMEOUT)
})
