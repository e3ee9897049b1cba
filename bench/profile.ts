/**
 * The P1 case at 50 columns (`--profile-columns N` for another count) under `node --cpu-prof`,
 * in child processes: `writeBatch` with the default compression workers, `writeBatch` with gzip on the main thread
 * (compressionWorkers 0), and the floor loop. Only the samples of the timed window count
 * (module loading, record generation and warm-up are left out); tsx's transformed positions
 * are mapped back to source lines. Prints busy time per thread, microseconds per record by
 * where the code lives, and the top self-time functions.
 */
import { fork } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { WriterDefaults } from "../src/index.js"
import { fixed, int, section, table } from "./common.js"
import type { ProfileSummary } from "./cpuProfile.js"
import { busyTimeline, SourceResolver, summarize } from "./cpuProfile.js"

interface Window {
  readonly start: number
  readonly end: number
  readonly seconds: number
  readonly records: number
}

export interface ProfileCase {
  readonly label: string
  readonly records: number
  readonly seconds: number
  /** By thread: "main", "worker 1", … (tsx's idle loader thread left out). */
  readonly threads: ReadonlyArray<
    { readonly thread: string; readonly summary: ProfileSummary; readonly timeline: ReadonlyArray<number> }
  >
}

const SLICES = 20

const RECORDS = 4_000
/** Records per case by column count: about a second of the floor's work each. */
const RECORDS_BY_COLUMNS = (columns: number): number =>
  columns <= 50 ? RECORDS : Math.max(200, Math.round((RECORDS * 50) / columns / 100) * 100)
/** `--smoke`: two of the children (one per mode of profileTarget.ts) at a tiny size (the figures mean nothing). */
const SMOKE_RECORDS = 100

export interface ProfileOptions {
  /** Tiny sizes: checks that the section runs, not what it measures. */
  readonly smoke?: boolean
  /** Stops the section: the child in progress is killed, its directory removed. */
  readonly signal?: AbortSignal | undefined
  /** Columns of the records (default 50, P1's middle case). */
  readonly columns?: number | undefined
}

const runCase = async (
  label: string,
  args: ReadonlyArray<string>,
  records: number,
  columns: number,
  signal: AbortSignal | undefined
): Promise<ProfileCase> => {
  const dir = mkdtempSync(join(tmpdir(), "cygnus-bench-prof-"))
  try {
    const target = fileURLToPath(new URL("./profileTarget.ts", import.meta.url))
    await new Promise<void>((resolve, reject) => {
      signal?.throwIfAborted()
      const child = fork(target, [dir, ...args, String(records), String(columns)], {
        execArgv: ["--cpu-prof", `--cpu-prof-dir=${dir}`, "--import", "tsx"],
        stdio: ["ignore", "inherit", "inherit", "ipc"]
      })
      const onAbort = () => child.kill("SIGKILL")
      signal?.addEventListener("abort", onAbort, { once: true })
      child.on("error", reject)
      child.on("exit", (code) => {
        signal?.removeEventListener("abort", onAbort)
        if (signal?.aborted === true) reject(signal.reason)
        else if (code === 0) resolve()
        else reject(new Error(`profile child exited with ${code}`))
      })
    })
    const window = JSON.parse(readFileSync(join(dir, "window.json"), "utf8")) as Window
    const resolver = SourceResolver.fromFile(join(dir, "sourcemaps.json"))
    const threads: Array<{ thread: string; summary: ProfileSummary; timeline: Array<number> }> = []
    // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main thread.
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).sort()) {
      const threadId = Number(file.split(".").at(-3))
      const summary = summarize(join(dir, file), { from: window.start, to: window.end }, 15, resolver)
      if (threadId !== 0 && summary.busyMs < 0.02 * summary.windowMs) continue // tsx's module-loader thread, idle
      const timeline = busyTimeline(join(dir, file), { from: window.start, to: window.end }, SLICES)
      threads.push({ thread: threadId === 0 ? "main" : `worker (thread ${threadId})`, summary, timeline })
    }
    return { label, records: window.records, seconds: window.seconds, threads }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const print = (c: ProfileCase): void => {
  console.log(
    `\n### ${c.label}: ${int(c.records)} records in ${fixed(c.seconds)} s = ${
      int(c.records / c.seconds)
    } rec/s while profiled\n`
  )
  console.log(`busy % of each thread in each 1/${SLICES} of the window (when it worked, when it waited):`)
  for (const { thread, timeline } of c.threads) {
    console.log(`  ${thread.padEnd(19)} ${timeline.map((b) => String(Math.round(100 * b)).padStart(3)).join(" ")}`)
  }
  console.log("")
  for (const { summary, thread } of c.threads) {
    const perRecord = (ms: number) => fixed((1000 * ms) / c.records, 1)
    console.log(
      `${thread}: busy ${int(summary.busyMs)} ms of ${int(summary.windowMs)} ms (${
        fixed((100 * summary.busyMs) / summary.windowMs, 0)
      }%), ` +
        `${perRecord(summary.busyMs)} µs CPU per record`
    )
    console.log(table(
      ["where", "self ms", "µs/record", "share of busy"],
      summary.groups.map((g) => [g.group, int(g.selfMs), perRecord(g.selfMs), `${fixed(100 * g.share, 1)}%`])
    ))
    console.log("")
    console.log(table(
      ["top self time", "source", "self ms", "µs/record", "share"],
      summary.top.slice(0, thread === "main" ? 15 : 5).map((t) => [
        t.name,
        t.where,
        int(t.selfMs),
        perRecord(t.selfMs),
        `${fixed(100 * t.share, 1)}%`
      ])
    ))
    console.log("")
  }
}

export const runProfile = async (options: ProfileOptions = {}): Promise<ReadonlyArray<ProfileCase>> => {
  const columns = options.columns ?? 50
  const records = options.smoke === true ? SMOKE_RECORDS : RECORDS_BY_COLUMNS(columns)
  section(`Profile of the P1 case at ${columns} columns (node --cpu-prof, timed window only)`)
  console.log(
    `${int(records)} records of ${columns} columns per case, after 2 warm-up batches; child processes started with`
  )
  console.log(
    "`node --cpu-prof --cpu-prof-dir=<tmp> --import tsx bench/profileTarget.ts <tmp> writer|floor workers records columns`."
  )
  const cases: Array<ProfileCase> = []
  const all = [
    [`writeBatch, default (${WriterDefaults.compressionWorkers} compression workers)`, [
      "writer",
      String(WriterDefaults.compressionWorkers)
    ]],
    ["writeBatch, compressionWorkers 0 (everything on the main thread)", ["writer", "0"]],
    // The floor has no workers: its "0" only keeps the positions of the arguments after it.
    ["floor loop (create + toBinary + gzipSync per record)", ["floor", "0"]]
  ] as const
  if (options.smoke === true) {
    // One child per mode of profileTarget.ts (writer, floor), side by side: each spends seconds
    // loading modules, and these profiles mean nothing anyway. Printed in order.
    const smokeCases = await Promise.all(
      [all[0], all[2]].map(([label, args]) => runCase(label, args, records, columns, options.signal))
    )
    smokeCases.forEach(print)
    return smokeCases
  }
  for (const [label, args] of all) {
    const c = await runCase(label, args, records, columns, options.signal)
    print(c)
    cases.push(c)
  }
  return cases
}
