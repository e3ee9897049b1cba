/**
 * P4's child process: the memory of one `writeBatch` of N records (default 100,000) of 50
 * columns against a zero-latency `Kinesis`. Started by p4Memory.ts as
 *
 *   node --expose-gc --trace-gc --max-old-space-size=MB --import tsx bench/memory.ts N
 *
 * The input's size is heapUsed (+ arrayBuffers) after generating the records minus before,
 * after gc. During the write, `process.memoryUsage()` is sampled every 20 ms on the main
 * thread (a timer: it runs only when the event loop turns) and the process RSS every 20 ms
 * from a worker thread (which does not wait for the main thread); `--trace-gc` prints the
 * heap before every GC, the peak a timer can miss. stdout carries the GC trace between the
 * markers; the figures go to the parent over IPC.
 */
import { Worker } from "node:worker_threads"
import { KinesisWriter } from "../src/index.js"
import { RecordGenerator } from "../src/testing.js"
import { writerRuntime } from "./common.js"

const count = Number(process.argv[2] ?? "100000")
const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc
  if (g === undefined) throw new Error("run with --expose-gc")
  g()
  g()
}
const snapshot = () => {
  const m = process.memoryUsage()
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers
  }
}

gc()
const beforeInput = snapshot()
const genStart = performance.now()
const records = RecordGenerator.makeDataFiles(count, { columns: 50, seed: 4_000_000 })
const generateSeconds = (performance.now() - genStart) / 1000
gc()
const afterInput = snapshot()

// Warm-up on a separate, small batch (1,000 records, fewer for a smaller run): JIT, and the compression worker starts.
const runtime = writerRuntime({})
const writer = await runtime.runPromise(KinesisWriter)
await runtime.runPromise(
  writer.writeBatch(RecordGenerator.makeDataFiles(Math.min(1_000, count), { columns: 50, seed: 9_000_000 }))
)
gc()
const beforeWrite = snapshot()

const rssSampler = new Worker(
  `const { parentPort } = require("node:worker_threads")
   let peak = 0, samples = 0
   const timer = setInterval(() => { const rss = process.memoryUsage.rss(); if (rss > peak) peak = rss; samples++ }, 20)
   parentPort.on("message", () => { clearInterval(timer); parentPort.postMessage({ peak, samples }) })`,
  { eval: true }
)
await new Promise((resolve) => setTimeout(resolve, 50))

const peak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0, heapPlusBuffers: 0 }
let samples = 0
let lastSample = performance.now()
let maxGapMs = 0
const sample = () => {
  const now = performance.now()
  maxGapMs = Math.max(maxGapMs, now - lastSample)
  lastSample = now
  const m = snapshot()
  samples++
  peak.rss = Math.max(peak.rss, m.rss)
  peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed)
  peak.heapTotal = Math.max(peak.heapTotal, m.heapTotal)
  peak.external = Math.max(peak.external, m.external)
  peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers)
  peak.heapPlusBuffers = Math.max(peak.heapPlusBuffers, m.heapUsed + m.arrayBuffers)
}
const timer = setInterval(sample, 20)
console.log("P4-WRITE-START")
const start = performance.now()
const result = await runtime.runPromise(writer.writeBatch(records))
const writeSeconds = (performance.now() - start) / 1000
sample()
console.log("P4-WRITE-END")
clearInterval(timer)
const rss = await new Promise<{ peak: number; samples: number }>((resolve) => {
  rssSampler.once("message", resolve)
  rssSampler.postMessage("stop")
})
await rssSampler.terminate()
const maxRss = process.resourceUsage().maxRSS * 1024

process.send?.({
  count,
  generateSeconds,
  beforeInput,
  afterInput,
  beforeWrite,
  peak,
  samples,
  maxGapMs,
  rssSampler: rss,
  maxRss,
  writeSeconds,
  result: {
    records: result.records,
    kinesisCalls: result.kinesisCalls,
    uncompressedBytes: result.uncompressedBytes,
    compressedBytes: result.compressedBytes
  },
  heapLimit: (await import("node:v8")).getHeapStatistics().heap_size_limit
})
await runtime.dispose()
process.disconnect?.()
