/**
 * `npm run bench`: the benchmarks of the writer, one run, each figure beside its baseline
 * and their ratio, then the targets. Nothing here passes or fails on a figure: it prints
 * figures. A section that fails, or runs past its time bound, is stopped and reported, the
 * run goes on with the next one, and the exit code is 1.
 *
 *   npm run bench                                  # everything (~19 minutes at load 2-3; at most 33: every section has a time bound)
 *   npm run bench -- --smoke                       # every section at tiny sizes (~3 minutes): it runs, the figures mean nothing
 *   npm run bench -- --only p1,profile             # some sections: p1 p2 p3 p4 p5 p6 p7 tls profile micro
 *   npm run bench -- --only p3 --p3-distribution-factor 16
 *   npm run bench -- --only p2 --p2-delay-ms 200
 *   npm run bench -- --only p2 --p2-fidelity       # P2 also on kinesalite (one round; may pass the bound when loaded)
 *   npm run bench -- --only profile --profile-columns 500   # the profile at another column count (default 50)
 *   npm run bench -- --only micro                  # the encode path step by step (not in the default run)
 *
 * `--smoke` is the CI check: it exits non-zero when a section fails or hits its bound, and
 * ends with `bench smoke: N sections completed`.
 */
import { execFileSync } from "node:child_process"
import { Worker } from "node:worker_threads"
import { fixed, int, loadNote, machine, pct, ratio, table } from "./common.js"
import { runMicro } from "./micro.js"
import type { P1Result } from "./p1Encode.js"
import { runP1 } from "./p1Encode.js"
import type { P2Result } from "./p2EndToEnd.js"
import { runP2 } from "./p2EndToEnd.js"
import type { P3Result } from "./p3Throttling.js"
import { runP3 } from "./p3Throttling.js"
import type { P4Result } from "./p4Memory.js"
import { runP4 } from "./p4Memory.js"
import type { P5Result } from "./p5Producer.js"
import { runP5 } from "./p5Producer.js"
import type { AggregationResult } from "./p6Aggregation.js"
import { runAggregation } from "./p6Aggregation.js"
import type { P7Result } from "./p7SharedStream.js"
import { p7TargetRows, runP7 } from "./p7SharedStream.js"
import { runProfile } from "./profile.js"
import type { TlsResult } from "./tlsConnections.js"
import { runTls } from "./tlsConnections.js"

// The AWS SDK's NodeVersionSupportWarning (its releases after January 2027 need Node 22) is
// the SDK's notice to whoever runs it on Node 20, not a figure: off for the bench and the
// children it forks, unless the caller set the switch the SDK reads.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true"

const DEFAULT_SECTIONS = ["p1", "p2", "p3", "p4", "p5", "p6", "p7", "tls", "profile"] as const
const ALL_SECTIONS = [...DEFAULT_SECTIONS, "micro"] as const
type Section = (typeof ALL_SECTIONS)[number]

/**
 * Seconds each section may run, in a full run and in `--smoke`. At a load average of 2-3 on
 * the shared 2 cores (BENCHMARKS.md) a full default run takes ~19 minutes: P1 ~200 s, P2
 * ~60 s, P3 ~20 s, P4 ~70 s (36 s of it generating the input), P5 ~145 s, P6 ~330 s, P7
 * ~320 s (13 runs of a 12 s window, each with its drain), TLS ~10 s, profile ~13 s; the comparisons run each path in fresh child processes of its own,
 * and pay their start-up. The full bounds, plus {@link GRACE_SECONDS} for each stopped
 * section, sum to 1,930 s, so that even a run where every section hangs ends within 33 minutes; what a
 * section leaves unused of its bound goes to the next one. On a much busier machine the
 * longest sections hit their bounds (and say so) rather than stretch the run. A smoke run
 * takes about 3 minutes (P7 ~60 s at load 6); its bounds are 2-3 times a section's smoke time, so that only a hang
 * hits them.
 */
const BOUNDS: Record<Section, { readonly full: number; readonly smoke: number }> = {
  p1: { full: 330, smoke: 60 },
  p2: { full: 90, smoke: 30 },
  p3: { full: 55, smoke: 15 },
  p4: { full: 90, smoke: 30 },
  p5: { full: 240, smoke: 75 },
  p6: { full: 480, smoke: 180 },
  p7: { full: 480, smoke: 150 },
  tls: { full: 90, smoke: 30 },
  profile: { full: 30, smoke: 30 },
  micro: { full: 60, smoke: 20 }
}
/** After a bound is hit: how long the section gets to close its servers, workers and children. */
const GRACE_SECONDS = 5

const argValue = (name: string): string | undefined => {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : process.argv.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1)
}
const smoke = process.argv.includes("--smoke")
const only = argValue("--only")
const requested = only === undefined ? [...DEFAULT_SECTIONS] : only.split(",").map((s) => s.trim())
const unknown = requested.filter((s) => !(ALL_SECTIONS as ReadonlyArray<string>).includes(s))
if (unknown.length > 0) {
  console.error(`unknown section(s): ${unknown.join(", ")}; known: ${ALL_SECTIONS.join(" ")}`)
  process.exit(2)
}
const selected = new Set<Section>(requested as Array<Section>)
const distributionFactor = argValue("--p3-distribution-factor")
const delayMs = argValue("--p2-delay-ms")
const p2Fidelity = process.argv.includes("--p2-fidelity")
const profileColumns = argValue("--profile-columns")

const git = (args: ReadonlyArray<string>): string => {
  try {
    return execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
  } catch {
    return "unknown"
  }
}
const commit = `${git(["rev-parse", "--short", "HEAD"])}${
  git(["status", "--porcelain", "--", "src"]) === "" ? "" : " (src/ modified)"
}`

const m = machine()
const started = new Date()
const command = `${process.env["npm_lifecycle_event"] === "bench" ? "npm run bench" : "tsx --expose-gc bench/run.ts"}${
  process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""
}`
console.log("# cygnus-kinesis-writer benchmarks")
console.log("")
console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB.toFixed(1)} GiB, ${m.platform}`)
console.log(`node:    ${m.node}; effect 3.22.4; @bufbuild/protobuf 2.17.0`)
console.log(`command: ${command}`)
console.log(`commit:  ${commit}`)
console.log(`date:    ${started.toISOString()}`)
console.log(
  `start:   ${loadNote()} (a shared machine: others' work competes for the same cores; each section prints the load)`
)

if (smoke) {
  console.log("mode:    --smoke: every section at tiny sizes; it checks that they run, the figures mean nothing")
}

const bound = (section: Section) => (smoke ? BOUNDS[section].smoke : BOUNDS[section].full)
const order = ALL_SECTIONS.filter((s) => selected.has(s))

// The last resort, for what the bounds cannot stop (the main thread stuck in a synchronous
// loop, so that no timer runs): a thread that kills the process past the sum of the bounds.
const deadlineSeconds = order.reduce((n, s) => n + bound(s) + GRACE_SECONDS, 5)
const watchdog = new Worker(
  `const { workerData } = require("node:worker_threads")
   setTimeout(() => {
     require("node:fs").writeSync(2, "\\nbench: still running " + workerData.seconds + " s after the start, past every section's bound: killed\\n")
     process.kill(process.pid, "SIGKILL")
   }, workerData.seconds * 1000)`,
  { eval: true, workerData: { seconds: deadlineSeconds } }
)
watchdog.unref()

type Outcome = { readonly _tag: "completed" } | { readonly _tag: "bound"; readonly seconds: number } | {
  readonly _tag: "failed"
  readonly error: unknown
}
const outcomes = new Map<Section, Outcome>()
let unhandled = 0
process.on("unhandledRejection", (reason) => {
  // A stopped section's leftovers may reject later: report it, fail the run, do not crash it.
  unhandled++
  console.error(
    `bench: unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`
  )
})

const sleep = (ms: number) => {
  let timer: NodeJS.Timeout | undefined
  const promise = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms)
  })
  return { promise, clear: () => clearTimeout(timer) }
}

/** Seconds earlier sections left of their bounds: the next section may use them too. */
let saved = 0

/**
 * Runs one section under its time bound (its own, plus what earlier sections left unused:
 * the run as a whole never exceeds the sum of the bounds): a timer (cleared when the section
 * ends) that, when it fires first, prints the bound and aborts the section's signal; the
 * section then gets {@link GRACE_SECONDS} to release what it holds before the run moves on.
 */
const runSection = async <A>(section: Section, body: (signal: AbortSignal) => Promise<A>): Promise<A | undefined> => {
  const label = section === "profile" || section === "micro" ? section : section.toUpperCase()
  const seconds = Math.floor(bound(section) + saved)
  saved = 0
  const controller = new AbortController()
  const start = performance.now()
  const timer = sleep(seconds * 1000)
  const work = Promise.resolve().then(() => body(controller.signal))
  try {
    const first = await Promise.race([work.then((value) => ({ value })), timer.promise])
    if (first !== "timeout") {
      const used = (performance.now() - start) / 1000
      saved = Math.max(0, seconds - used)
      outcomes.set(section, { _tag: "completed" })
      console.log(`\n${label}: completed in ${used.toFixed(1)} s (time bound ${seconds} s)`)
      return first.value
    }
    console.log(`\n${label}: time bound of ${seconds} s hit — section stopped`)
    outcomes.set(section, { _tag: "bound", seconds })
    controller.abort(new Error(`${label}: time bound of ${seconds} s hit`))
    const grace = sleep(GRACE_SECONDS * 1000)
    const settled = await Promise.race([work.then(() => "done", () => "done"), grace.promise])
    grace.clear()
    if (settled === "timeout") console.log(`${label}: still running ${GRACE_SECONDS} s after it was stopped; moving on`)
    return undefined
  } catch (error) {
    outcomes.set(section, { _tag: "failed", error })
    console.log(`\n${label}: failed — ${error instanceof Error ? error.message : String(error)}`)
    if (error instanceof Error && error.stack !== undefined) console.error(error.stack)
    return undefined
  } finally {
    timer.clear()
  }
}

let p1: P1Result | undefined
let p2: P2Result | undefined
let p3: P3Result | undefined
let p4: P4Result | undefined
let p5: P5Result | undefined
let p6: AggregationResult | undefined
let p7: P7Result | undefined
let tls: TlsResult | undefined
for (const section of order) {
  switch (section) {
    case "p1":
      p1 = await runSection(section, (signal) => runP1({ smoke, signal }))
      break
    case "p2":
      p2 = await runSection(
        section,
        (signal) =>
          runP2({
            smoke,
            signal,
            fidelity: p2Fidelity,
            ...(delayMs === undefined ? {} : { delayMs: Number(delayMs) })
          })
      )
      break
    case "p3":
      p3 = await runSection(section, (signal) =>
        runP3({
          signal,
          ...(smoke ? { seconds: 2, batch: 100 } : {}),
          ...(distributionFactor === undefined ? {} : { distributionFactor: Number(distributionFactor) })
        }))
      break
    case "p4":
      p4 = await runSection(section, (signal) => runP4({ smoke, signal }))
      break
    case "p5":
      // P5 prints its own figures and targets (throughput vs writeBatch, latency, peak RSS).
      p5 = await runSection(section, (signal) => runP5({ smoke, signal }))
      break
    case "p6":
      // P6 prints its own figures: aggregated vs not vs the hand loop, at 5, 20, 50 and 500 columns,
      // what 1,000 records cost to put, and the crossover of aggregation's CPU.
      p6 = await runSection(section, (signal) => runAggregation({ smoke, signal }))
      break
    case "p7":
      // P7 prints its own tables: N producers sharing one simulated stream, in one process and across processes.
      p7 = await runSection(section, (signal) => runP7({ smoke, signal }))
      break
    case "tls":
      // TLS prints its own table: calls/s and TLS sessions of the SDK's default client and ours.
      tls = await runSection(section, (signal) => runTls({ smoke, signal }))
      break
    case "profile":
      await runSection(section, (signal) =>
        runProfile({
          smoke,
          signal,
          columns: profileColumns === undefined ? undefined : Number(profileColumns)
        }))
      break
    case "micro":
      await runSection(section, async () => runMicro())
      break
  }
}

const rows: Array<Array<string>> = []
const verdict = (ok: boolean) => (ok ? "meets" : "below")
if (p1 !== undefined) {
  const c = p1.byColumns.find((x) => x.columns === 50)
  if (c !== undefined) {
    rows.push([
      "P1 writeBatch vs floor, 50 columns, wall",
      `${int(c.writer.rate)} vs ${int(c.floor.rate)} rec/s`,
      ratio(c.writer.rate, c.floor.rate),
      "≥ 1.5×",
      verdict(c.writer.rate / c.floor.rate >= 1.5)
    ])
  }
  for (const x of p1.byColumns) {
    rows.push([
      `P1 records per CPU-second vs floor, ${x.columns} columns`,
      `${int(x.writer.cpuRate)} vs ${int(x.floor.cpuRate)}`,
      ratio(x.writer.cpuRate, x.floor.cpuRate),
      "≥ 0.95×",
      verdict(x.writer.cpuRate / x.floor.cpuRate >= 0.95)
    ])
  }
}
if (p2 !== undefined) {
  rows.push([
    `P2 writeBatch vs sequential loop, ${p2.delayMs} ms/call (loopback endpoint)`,
    `${int(p2.writerRate)} vs ${int(p2.loopRate)} rec/s`,
    ratio(p2.writerRate, p2.loopRate),
    "≥ 2×",
    verdict(p2.writerRate / p2.loopRate >= 2)
  ])
  if (p2.fidelity !== undefined) {
    rows.push([
      `P2 fidelity: the same on kinesalite (not a target)`,
      `${int(p2.fidelity.writerRate)} vs ${int(p2.fidelity.loopRate)} rec/s`,
      ratio(p2.fidelity.writerRate, p2.fidelity.loopRate),
      "—",
      "—"
    ])
  }
}
if (p3 !== undefined) {
  rows.push(
    [
      `P3 goodput, ${p3.seconds} s simulated (distributionFactor ${p3.distributionFactor})`,
      `${int(p3.writtenInWindow)} of ${int(p3.capacity)} rec (${p3.capacityBy} limit)`,
      pct(p3.writtenInWindow, p3.capacity),
      "≥ 95%",
      verdict(p3.share >= 0.95)
    ],
    [
      "P3 records lost",
      `${int(p3.lost)} (delivered ${int(p3.delivered)}, named ${int(p3.named)})`,
      int(p3.lost),
      "0",
      verdict(p3.lost === 0)
    ]
  )
}
if (p4 !== undefined) {
  const mb = (bytes: number) => `${fixed(bytes / 1e6, 0)} MB`
  rows.push(
    [
      "P4 peak heap (heapUsed + arrayBuffers)",
      `${mb(p4.peakHeapPlusBuffersBytes)} vs input ${mb(p4.inputBytes)}`,
      `${(p4.peakHeapPlusBuffersBytes / p4.inputBytes).toFixed(2)}× input`,
      `≤ ${mb(p4.targetBytes)}`,
      verdict(p4.peakHeapPlusBuffersBytes <= p4.targetBytes)
    ],
    [
      "P4 peak RSS",
      `${mb(p4.peakRssBytes)} vs input ${mb(p4.inputBytes)}`,
      `${(p4.peakRssBytes / p4.inputBytes).toFixed(2)}× input`,
      `≤ ${mb(p4.targetBytes)}`,
      verdict(p4.peakRssBytes <= p4.targetBytes)
    ]
  )
}
if (p5?.throughput !== undefined) {
  const t = p5.throughput
  rows.push([
    "P5 producer.send from 1,000 fibers vs one writeBatch",
    `${int(t.producerRate)} vs ${int(t.writeBatchRate)} rec/s`,
    ratio(t.producerRate, t.writeBatchRate),
    "≥ 0.8×",
    verdict(t.ratio >= 0.8)
  ])
}
if (p5?.latency !== undefined) {
  const l = p5.latency
  rows.push([
    `P5 send-to-receipt p50 / p99 (linger ${l.lingerMs} ms, ${l.callLatencyMs} ms calls)`,
    `${fixed(l.p50Ms, 1)} / ${fixed(l.p99Ms, 1)} ms`,
    "",
    `p99 ≤ ${int(l.targetMs)} ms`,
    verdict(l.p99Ms <= l.targetMs)
  ])
}
for (
  const [label, m] of [
    ["P5 peak RSS over idle, offered 10× a 2-shard stream", p5?.memory],
    [`  the same with a heap limit of ${int(p5?.memorySized?.heapLimitMb ?? 0)} MB`, p5?.memorySized]
  ] as const
) {
  if (m === undefined) continue
  rows.push([
    label,
    `${fixed(m.overIdle / 1e6, 1)} MB`,
    ratio(m.overIdle, m.bound),
    `≤ ${fixed(m.bound / 1e6, 0)} MB`,
    verdict(m.overIdle <= m.bound)
  ])
}
if (p6 !== undefined) {
  rows.push(
    ["P6 aggregated vs loop, 5 columns, wall", "", ratio(p6.rateVsLoop5, 1), "≥ 3×", verdict(p6.rateVsLoop5 >= 3)],
    [
      "P6 aggregated vs loop, 5 columns, bytes",
      "",
      ratio(p6.bytesVsLoop5, 1),
      "≤ 0.6×",
      verdict(p6.bytesVsLoop5 <= 0.6)
    ],
    [
      "P6 aggregated, 5 columns, PUT payload units per 1,000 records",
      fixed(p6.payloadUnitsPer1000At5, 1),
      "",
      "≤ 20",
      verdict(p6.payloadUnitsPer1000At5 <= 20)
    ],
    [
      `P6 aggregation (defaults) vs plain writer, records per CPU-second, lowest (${p6.cpuRateVsWriterMin.columns} columns)`,
      "",
      ratio(p6.cpuRateVsWriterMin.ratio, 1),
      "≥ 1×",
      verdict(p6.cpuRateVsWriterMin.ratio >= 1)
    ]
  )
}
for (const t of p7 === undefined ? [] : p7TargetRows(p7)) rows.push([t.label, t.measured, "", t.target, verdict(t.ok)])
for (const b of tls?.byConcurrency ?? []) {
  rows.push([
    `TLS PutRecords calls/s, Kinesis.layerClient vs the SDK's default client, concurrency ${b.concurrency}`,
    `${int(b.ours)} vs ${int(b.sdkDefault)} calls/s`,
    ratio(b.ours, b.sdkDefault),
    "≥ 1×",
    verdict(b.ours >= b.sdkDefault)
  ])
}
if (rows.length > 0) {
  console.log(`\n## Targets   [${loadNote()}]\n`)
  console.log(table(["target", "measured", "ratio", "target", "vs target"], rows))
}
console.log(`\ntotal ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s`)

const completed = order.filter((s) => outcomes.get(s)?._tag === "completed")
const problems = order.flatMap((s) => {
  const o = outcomes.get(s)
  if (o === undefined) return [`${s} did not run`]
  if (o._tag === "bound") return [`${s} hit its time bound of ${o.seconds} s`]
  if (o._tag === "failed") return [`${s} failed`]
  return []
})
if (unhandled > 0) problems.push(`${unhandled} unhandled rejection(s)`)
const name = smoke ? "bench smoke" : "bench"
console.log(
  problems.length === 0
    ? `${name}: ${completed.length} section${completed.length === 1 ? "" : "s"} completed`
    : `${name}: ${completed.length} of ${order.length} sections completed; ${problems.join(", ")}`
)
process.exitCode = problems.length === 0 ? 0 : 1

// Every section closes what it opened (servers, worker threads, child processes): the
// process ends here. If something was left open all the same, say what and end anyway.
setTimeout(() => {
  const open = process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap" && r !== "Timeout")
  console.error(`bench: still alive 5 s after the run, handles left open: ${open.join(", ") || "unknown"}; exiting`)
  process.exit(1)
}, 5_000).unref()
