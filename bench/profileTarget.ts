/**
 * The P1 case (50 columns unless told) under `node --cpu-prof`: a child process (started by
 * `profile.ts`) that generates records, warms up, then runs `writeBatch` (or the floor loop)
 * for the profiled window and writes the window's bounds (monotonic clock, microseconds, the
 * clock of the .cpuprofile files) next to the profiles.
 *
 *   node --cpu-prof --cpu-prof-dir=DIR --import tsx bench/profileTarget.ts DIR writer|floor [workers] [records] [columns]
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { KinesisWriter } from "../src/index.js"
import { RecordGenerator } from "../src/testing.js"
import { cycle, handLoop, writerRuntime } from "./common.js"
import { dumpSourceMaps } from "./cpuProfile.js"

const dir = process.argv[2] ?? "."
const mode = process.argv[3] ?? "writer"
const workers = Number(process.argv[4] ?? "1")
const records = Number(process.argv[5] ?? "4000")
const columns = Number(process.argv[6] ?? "50")
const micros = () => Number(process.hrtime.bigint() / 1000n)

// 2,000 distinct records (P1's pool at 50 columns; 300 at 500), fewer for a smaller run (`--smoke`).
const pool = RecordGenerator.makeDataFiles(Math.min(columns >= 500 ? 300 : 2_000, records), {
  columns,
  seed: 1_000 * columns
})
if (mode === "floor") {
  for (let i = 0; i < 2; i++) handLoop(pool, true)
  const batch = cycle(pool, records)
  const start = micros()
  const wall = performance.now()
  handLoop(batch, true)
  const end = micros()
  const seconds = (performance.now() - wall) / 1000
  writeFileSync(join(dir, "window.json"), JSON.stringify({ start, end, seconds, records, mode }))
  dumpSourceMaps(dir)
  process.exit(0)
}
const runtime = writerRuntime({ compressionWorkers: workers })
const writer = await runtime.runPromise(KinesisWriter)
for (let i = 0; i < 2; i++) await runtime.runPromise(writer.writeBatch(pool))
const batch = cycle(pool, records)
const start = micros()
const wall = performance.now()
const result = await runtime.runPromise(writer.writeBatch(batch))
const end = micros()
const seconds = (performance.now() - wall) / 1000
writeFileSync(join(dir, "window.json"), JSON.stringify({ start, end, seconds, records: result.records, mode, workers }))
dumpSourceMaps(dir)
await runtime.dispose()
