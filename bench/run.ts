/**
 * `npm run bench`: the benchmarks of the writer, one run, each figure beside its baseline
 * and their ratio, then the targets. Nothing here passes or fails: it prints figures.
 *
 *   npm run bench                                  # everything (~5 minutes)
 *   npm run bench -- --only p1,profile             # some sections: p1 p2 p3 p4 profile micro
 *   npm run bench -- --only p3 --p3-distribution-factor 16
 *   npm run bench -- --only p2 --p2-delay-ms 200
 *   npm run bench -- --only micro                  # the encode path step by step (not in the default run)
 */
import { execFileSync } from "node:child_process"
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
import { runProfile } from "./profile.js"

const DEFAULT_SECTIONS = ["p1", "p2", "p3", "p4", "profile"] as const
type Section = (typeof DEFAULT_SECTIONS)[number] | "micro"

const argValue = (name: string): string | undefined => {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : process.argv.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1)
}
const only = argValue("--only")
const selected = new Set<Section>(
  only === undefined ? DEFAULT_SECTIONS : (only.split(",").map((s) => s.trim()) as Array<Section>)
)
const distributionFactor = argValue("--p3-distribution-factor")
const delayMs = argValue("--p2-delay-ms")

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

let p1: P1Result | undefined
let p2: P2Result | undefined
let p3: P3Result | undefined
let p4: P4Result | undefined
if (selected.has("p1")) p1 = await runP1()
if (selected.has("p2")) p2 = await runP2(delayMs === undefined ? {} : { delayMs: Number(delayMs) })
if (selected.has("p3")) {
  p3 = await runP3(distributionFactor === undefined ? {} : { distributionFactor: Number(distributionFactor) })
}
if (selected.has("p4")) p4 = await runP4()
if (selected.has("profile")) await runProfile()
if (selected.has("micro")) runMicro()

const rows: Array<Array<string>> = []
const verdict = (ok: boolean) => (ok ? "meets" : "below")
if (p1 !== undefined) {
  const c = p1.byColumns.find((x) => x.columns === 50)!
  const vsFloor = c.writer.rate / c.floor.rate
  const vsLimit = c.writer.rate / c.limit.rate
  rows.push(
    [
      "P1 writeBatch vs floor, 50 columns",
      `${int(c.writer.rate)} vs ${int(c.floor.rate)} rec/s`,
      ratio(c.writer.rate, c.floor.rate),
      "≥ 2×",
      verdict(vsFloor >= 2)
    ],
    [
      "P1 writeBatch vs limit, 50 columns",
      `${int(c.writer.rate)} vs ${int(c.limit.rate)} rec/s`,
      pct(c.writer.rate, c.limit.rate),
      "≥ 80%",
      verdict(vsLimit >= 0.8)
    ]
  )
}
if (p2 !== undefined) {
  rows.push([
    `P2 writeBatch vs sequential loop, ${p2.delayMs} ms/call`,
    `${int(p2.writerRate)} vs ${int(p2.loopRate)} rec/s`,
    ratio(p2.writerRate, p2.loopRate),
    "≥ 3×",
    verdict(p2.writerRate / p2.loopRate >= 3)
  ])
}
if (p3 !== undefined) {
  rows.push(
    [
      `P3 goodput, 60 s simulated (distributionFactor ${p3.distributionFactor})`,
      `${int(p3.writtenInWindow)} of ${int(p3.capacity)} rec (${p3.capacityBy} limit)`,
      pct(p3.writtenInWindow, p3.capacity),
      "≥ 90%",
      verdict(p3.share >= 0.9)
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
if (rows.length > 0) {
  console.log(`\n## Targets   [${loadNote()}]\n`)
  console.log(table(["target", "measured", "ratio", "target", "vs target"], rows))
}
console.log(`\ntotal ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s`)
