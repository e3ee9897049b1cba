/**
 * The package as users import it: each entry point of the `exports` map, from the built
 * `dist/` (built here), resolved by the package's own name; `./reader` loads with
 * prom-client, `@effect/platform-node` and worker threads unavailable; internals cannot be
 * imported; the declarations, built with `stripInternal`, are whole.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { beforeAll } from "vitest"

const root = fileURLToPath(new URL("..", import.meta.url))
const scratch = `${root}.scratch/entry-points-${process.pid}`

// Child processes run without blocking the test worker, which must keep answering vitest meanwhile.
const run = promisify(execFile)

/** Runs `code` as an ES module inside the package (so its own name resolves through `exports`), with `blocked` unavailable. */
const runInPackage = async (code: string, blocked: ReadonlyArray<string> = []): Promise<string> => {
  const file = `${scratch}/check-${Math.random().toString(36).slice(2)}.mjs`
  writeFileSync(file, code)
  writeFileSync(
    `${scratch}/hooks.mjs`,
    `const blocked = ${JSON.stringify(blocked)}
export async function resolve(specifier, context, next) {
  if (blocked.some((b) => specifier === b || specifier.startsWith(b + "/"))) {
    throw Object.assign(new Error("unavailable in this test: " + specifier), { code: "ERR_MODULE_NOT_FOUND" })
  }
  return next(specifier, context)
}`
  )
  writeFileSync(
    `${scratch}/register.mjs`,
    `import { register } from "node:module"\nregister("./hooks.mjs", import.meta.url)\n`
  )
  const { stdout } = await run(process.execPath, ["--import", `${scratch}/register.mjs`, file], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, NODE_NO_WARNINGS: "1" }
  })
  return stdout
}

describe("entry points", () => {
  beforeAll(async () => {
    mkdirSync(scratch, { recursive: true })
    await run(process.execPath, [`${root}node_modules/typescript/bin/tsc`, "-p", "tsconfig.build.json"], { cwd: root })
  }, 120_000)

  it("each entry point loads from dist/ by the package's name and exports what users import", async () => {
    const out = await runInPackage(`
const main = await import("cygnus-kinesis-writer")
const reader = await import("cygnus-kinesis-writer/reader")
const testing = await import("cygnus-kinesis-writer/testing")
const prometheus = await import("cygnus-kinesis-writer/prometheus")
console.log(JSON.stringify({
  main: Object.keys(main).sort(),
  reader: Object.keys(reader).sort(),
  testing: Object.keys(testing).sort(),
  prometheus: Object.keys(prometheus).sort()
}))`)
    const keys = JSON.parse(out) as Record<string, Array<string>>
    for (
      const name of [
        "KinesisWriter",
        "Kinesis",
        "StreamReader",
        "LargePayloadStore",
        "KinesisMetrics",
        "Compressor",
        "RecordCodec",
        "RecordReader",
        "KinesisLimits",
        "WriteBatchError",
        "DataFileV1Schema",
        "FileFormat"
      ]
    ) assert.include(keys["main"]!, name)
    // The delivery core's mutable state stays internal.
    assert.notInclude(keys["main"]!, "DeliveryLedger")
    for (
      const name of ["RecordReader", "StreamReader", "Kinesis", "LargePayloadStore", "DecodeError", "DataFileV1Schema"]
    ) {
      assert.include(keys["reader"]!, name)
    }
    assert.deepStrictEqual(keys["testing"], [
      "KinesisTest",
      "LambdaEvent",
      "LocalAws",
      "LocalAwsError",
      "RecordGenerator",
      "ShardSimulator"
    ])
    assert.includeMembers(keys["prometheus"]!, ["MetricsServer", "MetricsServerError", "PrometheusMetrics"])
    // The index carries no generated file descriptor and no internal helper.
    for (
      const name of [
        "file_cygnus_v1_data_file",
        "file_cygnus_v1_data_file_entry",
        "planCalls",
        "fnv1a32",
        "resolveWriterConfig"
      ]
    ) {
      assert.notInclude(keys["main"]!, name)
    }
  })

  it("./reader decodes a record and reads a stream with prom-client, @effect/platform-node and worker threads unavailable", async () => {
    const out = await runInPackage(
      `
import { create, toBinary } from "@bufbuild/protobuf"
import { Effect } from "effect"
import { DataFileV1Schema, LargePayloadStore, RecordCodec, RecordReader } from "cygnus-kinesis-writer/reader"
const dataFile = create(DataFileV1Schema, { filePath: "s3://b/k.parquet", recordCount: 7n })
const encoded = RecordCodec.encodeRecordSync(dataFile, {
  filePath: dataFile.filePath, creationTime: 1n, accountId: "123456789012", recordId: "r-1", logGroupId: "lg", schemaName: "s"
})
if (encoded._tag !== "Right") throw new Error("encode failed")
const decoded = await Effect.runPromise(
  RecordReader.decodeRecord(encoded.right.data).pipe(Effect.provide(LargePayloadStore.layerMemory()))
)
const { Stream } = await import("effect")
const { Kinesis, StreamReader } = await import("cygnus-kinesis-writer/reader")
const read = await Effect.runPromise(
  StreamReader.stream({ streamName: "s", from: "trim-horizon", follow: false }).pipe(
    Stream.runCollect,
    Effect.provide(Kinesis.layer({ send: () => Promise.resolve({ Shards: [] }) })),
    Effect.provide(LargePayloadStore.layerMemory())
  )
)
console.log(decoded.dataFile.filePath, decoded.info.recordId, read.length)`,
      ["prom-client", "@effect/platform-node", "node:worker_threads", "worker_threads"]
    )
    assert.strictEqual(out.trim(), "s3://b/k.parquet r-1 0")
  })

  it("./testing loads and builds Lambda events without kinesalite and s3rver; LocalAws.start then names the package to install", async () => {
    const out = await runInPackage(
      `
import { Effect } from "effect"
import { LambdaEvent, LocalAws, RecordGenerator } from "cygnus-kinesis-writer/testing"
const event = await Effect.runPromise(LambdaEvent.fromDataFiles(RecordGenerator.makeDataFiles(2)))
const error = await Effect.runPromise(Effect.flip(Effect.scoped(LocalAws.start())))
console.log(event.Records.length, error._tag, error.step, error.subject)`,
      ["kinesalite", "s3rver"]
    )
    assert.strictEqual(out.trim(), "2 LocalAwsError import kinesalite")
  })

  it("the package's internals cannot be imported", async () => {
    const out = await runInPackage(`
for (const path of ["cygnus-kinesis-writer/internal/codec.js", "cygnus-kinesis-writer/internal/writer.js", "cygnus-kinesis-writer/dist/index.js"]) {
  try {
    await import(path)
    console.log("imported " + path)
  } catch (e) {
    console.log(e.code)
  }
}`)
    assert.deepStrictEqual(out.trim().split("\n"), [
      "ERR_PACKAGE_PATH_NOT_EXPORTED",
      "ERR_PACKAGE_PATH_NOT_EXPORTED",
      "ERR_PACKAGE_PATH_NOT_EXPORTED"
    ])
  })

  it(
    "the declarations built with stripInternal compile with skipLibCheck off, as does a program importing every entry point through them, and declare every value each entry point exports",
    async () => {
      // .ci/check-dts.mjs (npm run check:dts) exits 1 naming each problem, which fails the run.
      const { stdout } = await run(process.execPath, [".ci/check-dts.mjs"], { cwd: root, encoding: "utf8" })
      assert.match(stdout, /^check:dts ok: \d+ declaration files/)
    },
    300_000
  )
})
