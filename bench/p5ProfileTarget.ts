/**
 * P5 (a) taken apart: the producer (1,000 fibers sending 10,000 records one at a time)
 * against one writeBatch of the same records, over the zero-latency double.
 *
 *   node --cpu-prof --cpu-prof-dir=DIR --import tsx bench/p5ProfileTarget.ts DIR producer|writer
 *       3 timed rounds after 2 warm-ups; writes the window and the source maps beside the
 *       profile (P5_HEAP=1: a sampling heap profile of the window too, in DIR/heap.json;
 *       P5_CALLS=1: the size of each call and the milliseconds since the one before)
 *   npx tsx bench/p5ProfileTarget.ts DIR --summary
 *       self time of the window by where the code lives, and the top functions
 *   node --expose-gc --import tsx bench/p5ProfileTarget.ts DIR compare|alone-producer|alone-writer
 *       compare: P5_ROUNDS (7) pairs of rounds, interleaved in this process: records/s,
 *       main-thread active time, CPU time of every thread and GC pauses per record (CPU time
 *       and GC are less at the mercy of the machine's load than records/s); alone-*: the
 *       same figures for rounds of one path only, as P5 measures them (each path in a process
 *       of its own: interleaved, each round runs in the heap and JIT state the other left)
 *   node --import tsx bench/p5ProfileTarget.ts DIR ops
 *       Effect operations per record (every fiber's, counted by a supervisor): a figure
 *       the load does not move
 */
import { Effect, Layer, ManagedRuntime, RuntimeFlags, Supervisor } from "effect"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Kinesis, KinesisMetrics, KinesisProducer, KinesisWriter, LargePayloadStore } from "../src/index.js"
import { KinesisTest, RecordGenerator } from "../src/testing.js"
import { cycle, fixed, gc, int, quietLogs, table, WRITER_BASE, zeroLatencyKinesis } from "./common.js"
import { dumpSourceMaps, SourceResolver, summarize } from "./cpuProfile.js"

const dir = process.argv[2] ?? "."
const mode = process.argv[3] ?? "producer"
const n = Number(process.argv[4] ?? "10000")
const micros = () => Number(process.hrtime.bigint() / 1000n)

if (mode === "--summary") {
  const window = JSON.parse(readFileSync(join(dir, "window.json"), "utf8"))
  const resolver = SourceResolver.fromFile(join(dir, "sourcemaps.json"))
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).sort()) {
    const s = summarize(join(dir, file), { from: window.start, to: window.end }, 40, resolver)
    if (s.busyMs < 0.02 * s.windowMs) continue
    console.log(
      `${file}: ${window.mode} ${window.records} records in ${fixed(window.seconds)} s; busy ${int(s.busyMs)} of ${
        int(s.windowMs)
      } ms`
    )
    console.log(
      table(["where", "self ms", "share"], s.groups.map((g) => [g.group, int(g.selfMs), `${fixed(100 * g.share, 1)}%`]))
    )
    console.log(
      table(
        ["top", "source", "self ms", "share"],
        s.top.map((t) => [t.name, t.where, int(t.selfMs), `${fixed(100 * t.share, 1)}%`])
      )
    )
  }
  process.exit(0)
}

const calls: Array<[number, number]> = []
const loggingKinesis = Layer.succeed(
  Kinesis,
  Kinesis.of({
    putRecords: (request) =>
      Effect.sync(() => {
        calls.push([performance.now(), request.records.length])
        return request.records.map(() =>
          ({ _tag: "Written", shardId: "shardId-000000000000", sequenceNumber: "1" }) as const
        )
      }),
    describeStreamSummary: (streamName) => Effect.succeed({ streamName, status: "ACTIVE", openShardCount: 4 }),
    listShards: () => Effect.succeed([]),
    ...KinesisTest.unreadable("bench double")
  })
)
/** `ops` mode: every Effect operation of every fiber, counted through the runtime's OpSupervision hook. */
let ops = 0
class OpCounter extends Supervisor.AbstractSupervisor<void> {
  get value() {
    return Effect.void
  }
  override onEffect() {
    ops++
  }
}
const counting = mode === "ops"
  ? Layer.merge(Supervisor.addSupervisor(new OpCounter()), RuntimeFlags.enableOpSupervision)
  : Layer.empty
const runtime = ManagedRuntime.make(
  KinesisProducer.layer({}).pipe(
    Layer.provideMerge(counting),
    Layer.provideMerge(KinesisWriter.layer({ ...WRITER_BASE })),
    Layer.provide(process.env.P5_CALLS === "1" ? loggingKinesis : zeroLatencyKinesis),
    Layer.provide(LargePayloadStore.layerMemory()),
    Layer.provide(KinesisMetrics.layerNoop),
    Layer.provideMerge(quietLogs)
  )
)
const records = cycle(RecordGenerator.makeDataFiles(2_000, { columns: 50, seed: 555 }), n)
const producer = await runtime.runPromise(KinesisProducer)
const writer = await runtime.runPromise(KinesisWriter)
const fibers = 1_000
const viaProducer = Effect.forEach(
  Array.from({ length: fibers }, (_, f) => f),
  (f) =>
    Effect.gen(function*() {
      for (let i = f; i < records.length; i += fibers) yield* producer.send(records[i]!)
    }),
  { concurrency: "unbounded", discard: true }
)
if (mode === "ops") {
  for (let round = 0; round < 2; round++) {
    ops = 0
    await runtime.runPromise(writer.writeBatch(records))
    const w = ops
    ops = 0
    await runtime.runPromise(viaProducer)
    console.log(`Effect operations per record: writeBatch ${fixed(w / n, 1)}, producer ${fixed(ops / n, 1)}`)
  }
  await runtime.dispose()
  process.exit(0)
}
if (mode === "compare" || mode.startsWith("alone-")) {
  const rounds = Number(process.env.P5_ROUNDS ?? "7")
  const { PerformanceObserver } = await import("node:perf_hooks")
  let gcMs = 0
  const kinds = new Map<number, [number, number]>()
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcMs += e.duration
      const kind = (e as unknown as { detail: { kind: number } }).detail.kind
      const k = kinds.get(kind) ?? [0, 0]
      k[0]++
      k[1] += e.duration
      kinds.set(kind, k)
    }
  }).observe({ entryTypes: ["gc"] })
  const one = async (e: Effect.Effect<unknown, unknown>) => {
    gc()
    await new Promise((r) => setTimeout(r, 20))
    gcMs = 0
    if (process.env.P5_GCKINDS === "1") {
      console.log([...kinds.entries()].map(([k, [c, ms]]) => `kind ${k}: ${c}× ${fixed(ms, 0)} ms`).join("; "))
    }
    kinds.clear()
    const elu0 = performance.eventLoopUtilization()
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    await runtime.runPromise(e)
    const wall = performance.now() - t0
    const c = process.cpuUsage(c0)
    const elu = performance.eventLoopUtilization(elu0)
    await new Promise((r) => setTimeout(r, 0))
    return {
      rate: n / (wall / 1000),
      activeUs: (elu.active * 1000) / n,
      cpuUs: (c.user + c.system) / n,
      gcUs: (gcMs * 1000) / n
    }
  }
  const w: Array<{ rate: number; activeUs: number; cpuUs: number; gcUs: number }> = []
  const p: Array<{ rate: number; activeUs: number; cpuUs: number; gcUs: number }> = []
  const paths = mode === "alone-producer" ? [p] : mode === "alone-writer" ? [w] : [w, p]
  const round = (path: typeof w) => one(path === w ? writer.writeBatch(records) : viaProducer)
  for (const path of paths) await round(path)
  for (let i = 0; i < rounds; i++) {
    for (const path of paths) path.push(await round(path))
  }
  const med = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
  for (const [label, rounds] of [["writer  ", w], ["producer", p]] as const) {
    if (rounds.length === 0) continue
    console.log(
      `${label} rate ${int(med(rounds.map((x) => x.rate)))}/s  main-thread active ${
        fixed(med(rounds.map((x) => x.activeUs)), 1)
      } µs/record, cpu (all threads) ${fixed(med(rounds.map((x) => x.cpuUs)), 1)} µs/record, gc ${
        fixed(med(rounds.map((x) => x.gcUs)), 1)
      } µs/record`
    )
  }
  if (paths.length === 2) {
    console.log(
      `ratio of medians ${fixed(med(p.map((x) => x.rate)) / med(w.map((x) => x.rate)), 3)}; per-pair ratios ${
        p.map((x, i) => fixed(x.rate / w[i]!.rate, 2)).join(" ")
      }`
    )
  }
  await runtime.dispose()
  process.exit(0)
}
const run: Effect.Effect<unknown, unknown> = mode === "producer" ? viaProducer : writer.writeBatch(records)
for (let i = 0; i < 2; i++) await runtime.runPromise(run)
const heap = process.env.P5_HEAP === "1"
const { Session } = await import("node:inspector/promises")
const session = new Session()
if (heap) {
  session.connect()
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: 4096,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true
  } as never)
}
calls.length = 0
const cpu0 = process.cpuUsage()
const start = micros()
const wall = performance.now()
const rounds = 3
for (let i = 0; i < rounds; i++) await runtime.runPromise(run)
const end = micros()
const seconds = (performance.now() - wall) / 1000
const cpu = process.cpuUsage(cpu0)
if (process.env.P5_CALLS === "1") {
  let prev = calls[0]?.[0] ?? 0
  console.log(
    calls.map(([t, n]) => {
      const s = `${n}@+${Math.round(t - prev)}`
      prev = t
      return s
    }).join(" ")
  )
}
console.log(
  `cpu user ${int(cpu.user / 1000)} ms sys ${int(cpu.system / 1000)} ms (all threads) wall ${int(seconds * 1000)} ms`
)
if (heap) {
  const { profile } = (await session.post("HeapProfiler.stopSampling")) as any
  writeFileSync(join(dir, "heap.json"), JSON.stringify(profile))
}
dumpSourceMaps(dir)
writeFileSync(join(dir, "window.json"), JSON.stringify({ start, end, seconds, records: n * rounds, mode }))
console.log(`${mode}: ${int((n * rounds) / seconds)} records/s`)
await runtime.dispose()
