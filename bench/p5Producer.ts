/**
 * P5, the producer: `KinesisProducer.send` one record at a time from many fibers.
 *
 * (a) Throughput: 10,000 records of 50 columns sent one at a time by 1,000 fibers (each
 *     sends its share one after another) through the producer, against one `writeBatch` of
 *     the same records, both over the zero-latency accept-all double. Target ≥ 0.8×. Each
 *     path runs in fresh child processes of its own, alternating, as a service runs one of
 *     them: rounds of the two interleaved in one process run each in the other's heap and
 *     JIT state, which made the writer 5-15% faster and the producer 5-10% slower than alone.
 * (b) Latency: send-to-receipt p50/p99 at no throttling, over a double that answers every
 *     call after a fixed 25 ms (real clock), linger 100 ms, records offered at a steady pace.
 *     Target p99 ≤ linger + 2 call latencies.
 * (c) Memory: peak RSS while 1,000 fibers offer 10× what a 2-shard simulated stream takes
 *     (ShardSimulator, real clock), maxBufferedBytes 8 MiB, for 40 s: long enough for V8's
 *     first full collection under its default heap limit. Target ≤ maxBufferedBytes + 50 MB
 *     over the idle process. Each run is a fresh child process (nothing left from (a), (b) or
 *     other sections): once with V8's defaults (the target's figure), once with a heap limit
 *     of 256 MB (`--max-old-space-size`, as a service sized for its container runs), since
 *     V8 lets garbage grow to a multiple of the live heap before collecting it, and that
 *     multiple, not the producer, sets the peak of the first.
 *
 * Every part has a time bound; nothing passes or fails: it prints figures.
 *
 *   npx tsx --expose-gc bench/p5Producer.ts [--smoke] [--only=a,b,c]
 */
import { Duration, Effect, Fiber, Layer, ManagedRuntime } from "effect"
import { fileURLToPath } from "node:url"
import v8 from "node:v8"
import type { DataFileV1, PutRecordsResultEntry } from "../src/index.js"
import { Kinesis, KinesisMetrics, KinesisProducer, KinesisWriter, LargePayloadStore } from "../src/index.js"
import { KinesisTest, RecordGenerator, ShardSimulator } from "../src/testing.js"
import {
  cycle,
  fixed,
  gc,
  int,
  isMain,
  median,
  quietLogs,
  ratio,
  runApart,
  runInChild,
  section,
  serveChild,
  table,
  WRITER_BASE,
  zeroLatencyKinesis
} from "./common.js"

export interface P5Throughput {
  readonly records: number
  readonly fibers: number
  /** Timed rounds per process, after its warm-up rounds. */
  readonly rounds: number
  /** Records/s of each process: the median of its timed rounds, in the order the processes ran. */
  readonly producerRates: ReadonlyArray<number>
  readonly writeBatchRates: ReadonlyArray<number>
  /** The median over the processes. */
  readonly producerRate: number
  readonly writeBatchRate: number
  /** producerRate / writeBatchRate. */
  readonly ratio: number
}

export interface P5Latency {
  readonly records: number
  readonly offeredPerSecond: number
  readonly lingerMs: number
  readonly callLatencyMs: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  /** linger + 2 call latencies. */
  readonly targetMs: number
}

export interface P5Memory {
  readonly seconds: number
  readonly maxBufferedBytes: number
  readonly idleRss: number
  readonly peakRss: number
  /** peakRss - idleRss. */
  readonly overIdle: number
  /** Peak RSS of each 10 s of the offered load (of each half, in smoke mode): flat when the later ones are no higher. */
  readonly windowPeaks: ReadonlyArray<number>
  /** Heap used plus array buffers after a full GC, at the end of the load, over the same before it. */
  readonly liveGrowth: number
  /** V8's heap limit of the run, in MB: its default, or the one given. */
  readonly heapLimitMb: number
  /** maxBufferedBytes + 50 MB. */
  readonly bound: number
  readonly capacityPerSecond: number
  readonly offeredPerSecond: number
  readonly deliveredPerSecond: number
  readonly delivered: number
  readonly failed: number
}

export interface P5Result {
  readonly smoke: boolean
  readonly throughput: P5Throughput | undefined
  readonly latency: P5Latency | undefined
  /** (c) under V8's default heap limit: the target's figure. */
  readonly memory: P5Memory | undefined
  /** (c) with a heap limit of `SIZED_HEAP_MB`. */
  readonly memorySized: P5Memory | undefined
}

const MB = 1_000_000
/** This file, which the parts' child processes run. */
const self = fileURLToPath(import.meta.url)
const smokeArg = (smoke: boolean) => smoke ? ["--smoke"] : []
const MiB = 2 ** 20
const COLUMNS = 50
const WRITTEN: PutRecordsResultEntry = { _tag: "Written", shardId: "shardId-000000000000", sequenceNumber: "1" }

/**
 * The producer over a writer over `kinesis`, with the in-memory store and no-op metrics.
 * Unpaced: these endpoints answer every record on one shard and serve no shard map, and P5
 * measures the producer's own cost (P7 measures pacing).
 */
const producerRuntime = (
  kinesis: Layer.Layer<Kinesis>,
  producer: Parameters<typeof KinesisProducer.layer>[0] = {}
) =>
  ManagedRuntime.make(
    KinesisProducer.layer({ pace: false, ...producer }).pipe(
      Layer.provideMerge(KinesisWriter.layer({ ...WRITER_BASE })),
      Layer.provide(kinesis),
      Layer.provide(LargePayloadStore.layerMemory()),
      Layer.provide(KinesisMetrics.layerNoop),
      Layer.provideMerge(quietLogs)
    )
  )

/** `records` sent by `fibers` fibers, each sending its share one after another. */
const sendAll = (producer: KinesisProducer.Service, records: ReadonlyArray<DataFileV1>, fibers: number) =>
  Effect.forEach(
    Array.from({ length: fibers }, (_, f) => f),
    (f) =>
      Effect.gen(function*() {
        for (let i = f; i < records.length; i += fibers) yield* producer.send(records[i]!)
      }),
    { concurrency: "unbounded", discard: true }
  )

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

// ---------------------------------------------------------------------------------------------
// (a) throughput
// ---------------------------------------------------------------------------------------------

/** The two paths of (a). */
type ThroughputPath = "producer" | "writeBatch"

/** (a)'s sizes: records, sending fibers, processes per path, warm-up and timed rounds per process. */
const throughputPlan = (smoke: boolean) => ({
  n: smoke ? 500 : 10_000,
  // At least a call's worth in flight: fewer senders would wait for linger, not for the producer.
  fibers: smoke ? 500 : 1_000,
  processes: smoke ? 1 : 3,
  warmUps: smoke ? 1 : 2,
  rounds: smoke ? 1 : 3
})

/**
 * (a) for one path in this process: warm-up rounds (the compression worker starts, the JIT
 * settles), then timed rounds; the records/s of each timed round.
 */
const runThroughputRounds = async (path: ThroughputPath, smoke: boolean): Promise<ReadonlyArray<number>> => {
  const { fibers, n, rounds, warmUps } = throughputPlan(smoke)
  const bound = Duration.seconds(smoke ? 6 : 120)
  const records = cycle(
    RecordGenerator.makeDataFiles(Math.min(n, smoke ? 250 : 2_000), { columns: COLUMNS, seed: 555 }),
    n
  )
  const runtime = producerRuntime(zeroLatencyKinesis)
  try {
    const run: Effect.Effect<unknown, unknown> = path === "producer"
      ? sendAll(await runtime.runPromise(KinesisProducer), records, fibers)
      : (await runtime.runPromise(KinesisWriter)).writeBatch(records)
    const timed = async (): Promise<number> => {
      gc()
      const start = performance.now()
      await runtime.runPromise(Effect.timeoutFail(run, { duration: bound, onTimeout: () => "timed out" }))
      return n / ((performance.now() - start) / 1000)
    }
    for (let i = 0; i < warmUps; i++) await timed()
    const rates: Array<number> = []
    for (let i = 0; i < rounds; i++) rates.push(await timed())
    return rates
  } finally {
    await runtime.dispose()
  }
}

const runThroughput = async (smoke: boolean, signal: AbortSignal | undefined): Promise<P5Throughput | undefined> => {
  const { fibers, n, processes, rounds } = throughputPlan(smoke)
  const byPath = await runApart<ReadonlyArray<number>>(
    ["writeBatch", "producer"] satisfies Array<ThroughputPath>,
    processes,
    (path) =>
      runInChild<ReadonlyArray<number>>(self, [`--throughput-child=${path}`, ...smokeArg(smoke)], { signal }).then((
        rates
      ) => rates === undefined || rates.length === 0 ? undefined : rates)
  )
  if (byPath === undefined) {
    console.log("(a) did not finish: a process gave no figures")
    return undefined
  }
  const producerRates = byPath.get("producer")!.map(median)
  const writeBatchRates = byPath.get("writeBatch")!.map(median)
  const producerRate = median(producerRates)
  const writeBatchRate = median(writeBatchRates)
  return {
    records: n,
    fibers,
    rounds,
    producerRates,
    writeBatchRates,
    producerRate,
    writeBatchRate,
    ratio: producerRate / writeBatchRate
  }
}

// ---------------------------------------------------------------------------------------------
// (b) latency
// ---------------------------------------------------------------------------------------------

const LINGER_MS = 100
const CALL_MS = 25

/** Every call answers after `CALL_MS` (real clock), every record written. */
const slowKinesis: Layer.Layer<Kinesis> = Layer.succeed(
  Kinesis,
  Kinesis.of({
    putRecords: (request) => Effect.as(Effect.sleep(CALL_MS), request.records.map(() => WRITTEN)),
    describeStreamSummary: (streamName) => Effect.succeed({ streamName, status: "ACTIVE", openShardCount: 4 }),
    listShards: () => Effect.succeed([]),
    ...KinesisTest.unreadable("bench double")
  })
)

const runLatency = async (smoke: boolean): Promise<P5Latency | undefined> => {
  const n = smoke ? 300 : 3_000
  const perSecond = 1_000
  const tickMs = 10
  const perTick = (perSecond * tickMs) / 1_000
  const records = RecordGenerator.makeDataFiles(n, { columns: COLUMNS, seed: 777 })
  const runtime = producerRuntime(slowKinesis, { linger: Duration.millis(LINGER_MS) })
  try {
    const producer = await runtime.runPromise(KinesisProducer)
    // Warm-up: a few records through the whole path.
    await runtime.runPromise(sendAll(producer, records.slice(0, 50), 50))
    const latencies: Array<number> = []
    const timedSend = (record: DataFileV1) =>
      Effect.suspend(() => {
        const start = performance.now()
        return Effect.map(producer.send(record), () => {
          latencies.push(performance.now() - start)
        })
      })
    // Paced: `perTick` sends forked every `tickMs`, each timed from its call to its receipt.
    const program = Effect.gen(function*() {
      const fibers = []
      for (let i = 0; i < n; i += perTick) {
        for (const record of records.slice(i, i + perTick)) fibers.push(yield* Effect.fork(timedSend(record)))
        yield* Effect.sleep(tickMs)
      }
      for (const fiber of fibers) yield* fiber.await
    })
    await runtime.runPromise(Effect.timeoutFail(program, {
      duration: Duration.seconds(smoke ? 4 : 60),
      onTimeout: () => "timed out"
    }))
    const sorted = [...latencies].sort((a, b) => a - b)
    return {
      records: latencies.length,
      offeredPerSecond: perSecond,
      lingerMs: LINGER_MS,
      callLatencyMs: CALL_MS,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted[sorted.length - 1] ?? Number.NaN,
      targetMs: LINGER_MS + 2 * CALL_MS
    }
  } catch (e) {
    console.log(`(b) did not finish: ${String(e)}`)
    return undefined
  } finally {
    await runtime.dispose()
  }
}

// ---------------------------------------------------------------------------------------------
// (c) memory under overload
// ---------------------------------------------------------------------------------------------

const SHARDS = 2
/** The simulated shards' limits, a tenth of Kinesis' so that 10× their capacity is well within what one process prepares. */
const SCALE = 0.1
const MAX_BUFFERED_BYTES = 8 * MiB
const SENDERS = 1_000

const runMemory = async (smoke: boolean): Promise<P5Memory | undefined> => {
  const seconds = smoke ? 2 : 40
  const windowMs = smoke ? 1_000 : 10_000
  const pool = RecordGenerator.makeDataFiles(smoke ? 500 : 2_000, { columns: COLUMNS, seed: 999 })
  const recordsPerSecondPerShard = ShardSimulator.Defaults.recordsPerSecondPerShard * SCALE
  const bytesPerSecondPerShard = Math.round(ShardSimulator.Defaults.bytesPerSecondPerShard * SCALE)
  // The simulated stream stands for a remote service: it keeps no history, or the records it
  // stored would be counted as the producer's memory.
  const simulated = ShardSimulator.layer({
    shards: SHARDS,
    recordsPerSecondPerShard,
    bytesPerSecondPerShard,
    history: false
  })
  const runtime = ManagedRuntime.make(
    // No time to deliver the buffer at the end: the figures are read before, the rest is dropped.
    // Unpaced, as at every commit P5 compares with: the bound under test is the buffer's, not the pace's.
    KinesisProducer.layer({
      maxBufferedBytes: MAX_BUFFERED_BYTES,
      linger: "100 millis",
      shutdownTimeout: 0,
      pace: false
    }).pipe(
      Layer.provideMerge(KinesisWriter.layer({ ...WRITER_BASE })),
      Layer.provideMerge(simulated),
      Layer.provide(LargePayloadStore.layerMemory()),
      Layer.provide(KinesisMetrics.layerNoop),
      Layer.provideMerge(quietLogs)
    )
  )
  let sampler: NodeJS.Timeout | undefined
  try {
    const writer = await runtime.runPromise(KinesisWriter)
    const producer = await runtime.runPromise(KinesisProducer)
    // Bytes per record on the stream, to know the stream's capacity in records/s.
    const sample = await runtime.runPromise(writer.prepare(pool.slice(0, 500)))
    const bytesPerRecord = sample.records.reduce((n, r) => n + r.data.length + r.partitionKeyPrefix.length + 2, 0) /
      sample.records.length
    const capacity = SHARDS * Math.min(recordsPerSecondPerShard, bytesPerSecondPerShard / bytesPerRecord)
    const offered = 10 * capacity
    const intervalMs = (1_000 * SENDERS) / offered
    gc()
    await new Promise((resolve) => setTimeout(resolve, 50))
    gc()
    const idleRss = process.memoryUsage().rss
    let peakRss = idleRss
    const windowPeaks = Array.from({ length: Math.ceil((seconds * 1_000) / windowMs) }, () => idleRss)
    const samplingFrom = performance.now()
    sampler = setInterval(() => {
      const rss = process.memoryUsage().rss
      peakRss = Math.max(peakRss, rss)
      const window = Math.min(windowPeaks.length - 1, Math.floor((performance.now() - samplingFrom) / windowMs))
      windowPeaks[window] = Math.max(windowPeaks[window]!, rss)
    }, 20)
    const counts = { delivered: 0, failed: 0 }
    let stop = false
    let live = 0
    gc()
    const idle = process.memoryUsage()
    const idleLive = idle.heapUsed + idle.arrayBuffers
    // Each sender offers one record every `intervalMs` (together `offered` records/s) and
    // waits for its settlement; a send waiting for room is an offer the producer refuses.
    const sender = (s: number) =>
      Effect.gen(function*() {
        let k = s
        yield* Effect.sleep(Math.floor((s / SENDERS) * intervalMs))
        while (!stop) {
          const start = performance.now()
          const result = yield* Effect.either(producer.send(pool[k % pool.length]!))
          k += SENDERS
          if (result._tag === "Right") counts.delivered++
          else counts.failed++
          const left = intervalMs - (performance.now() - start)
          if (left > 0) yield* Effect.sleep(left)
        }
      })
    const started = performance.now()
    const program = Effect.gen(function*() {
      const fibers = yield* Effect.forEach(Array.from({ length: SENDERS }, (_, s) => s), (s) => Effect.fork(sender(s)))
      yield* Effect.sleep(Duration.seconds(seconds))
      stop = true
      // What is live at the end, buffer full: heap and buffers after a full GC.
      gc()
      const m = process.memoryUsage()
      live = m.heapUsed + m.arrayBuffers
      // The senders stop where they are: the buffer is full, and waiting for it to drain at
      // 10× overload would measure the drain, not the bound.
      yield* Fiber.interruptAll(fibers)
    })
    await runtime.runPromise(
      Effect.timeoutFail(program, { duration: Duration.seconds(seconds + 40), onTimeout: () => "timed out" })
    )
    const elapsed = (performance.now() - started) / 1000
    clearInterval(sampler)
    return {
      seconds: elapsed,
      maxBufferedBytes: MAX_BUFFERED_BYTES,
      idleRss,
      peakRss,
      overIdle: peakRss - idleRss,
      liveGrowth: live - idleLive,
      windowPeaks,
      heapLimitMb: v8.getHeapStatistics().heap_size_limit / MB,
      bound: MAX_BUFFERED_BYTES + 50 * MB,
      capacityPerSecond: capacity,
      offeredPerSecond: offered,
      deliveredPerSecond: counts.delivered / elapsed,
      delivered: counts.delivered,
      failed: counts.failed
    }
  } catch (e) {
    console.log(`(c) did not finish: ${String(e)}`)
    return undefined
  } finally {
    if (sampler !== undefined) clearInterval(sampler)
    await runtime.dispose()
  }
}

/** The heap limit of (c)'s second run, in MB. */
const SIZED_HEAP_MB = 256
const printMemory = (runs: ReadonlyArray<readonly [string, P5Memory | undefined]>) => {
  const first = runs.find(([, m]) => m !== undefined)?.[1]
  if (first === undefined) return
  console.log(
    `(c) ${int(SENDERS)} fibers offer ${
      int(first.offeredPerSecond)
    } records/s, 10× what ${SHARDS} simulated shards take (limits ${
      int(ShardSimulator.Defaults.recordsPerSecondPerShard * SCALE)
    } records/s and ${int(ShardSimulator.Defaults.bytesPerSecondPerShard * SCALE)} B/s per shard: ~${
      int(first.capacityPerSecond)
    } records/s), maxBufferedBytes ${fixed(first.maxBufferedBytes / MiB, 0)} MiB, ${
      fixed(first.seconds, 1)
    } s (real clock), each run in a fresh process:\n`
  )
  const rows = runs.flatMap(([name, m]) =>
    m === undefined ? [] : [[
      name,
      `${int(m.heapLimitMb)} MB`,
      `${fixed(m.idleRss / MB, 1)} MB`,
      `${fixed(m.overIdle / MB, 1)} MB`,
      `≤ ${fixed(m.bound / MB, 1)} MB`,
      m.windowPeaks.map((p) => fixed((p - m.idleRss) / MB, 0)).join(" / "),
      `${fixed(m.liveGrowth / MB, 1)} MB`,
      int(m.deliveredPerSecond),
      int(m.failed)
    ]]
  )
  console.log(table([
    "V8 heap",
    "heap limit",
    "idle RSS",
    "peak over idle",
    "bound",
    "peak over idle per window (MB)",
    "live at end",
    "delivered/s",
    "sends failed"
  ], rows))
  console.log(
    "\n  windows of 10 s (of 1 s in smoke mode); live at end: heap + buffers after a full GC, over the same at idle"
  )
}

// ---------------------------------------------------------------------------------------------
// The section
// ---------------------------------------------------------------------------------------------

export const runP5 = async (
  options: {
    readonly smoke?: boolean
    readonly parts?: ReadonlyArray<"a" | "b" | "c">
    /** Stops the child processes of (a) and (c). */
    readonly signal?: AbortSignal | undefined
  } = {}
): Promise<P5Result> => {
  const smoke = options.smoke ?? false
  const parts = new Set(options.parts ?? ["a", "b", "c"])
  section(`P5 the producer: send one at a time from many fibers${smoke ? " (smoke)" : ""}`)

  // (c) in child processes of their own: RSS does not shrink back after (a) and (b), or after
  // other sections, so their high-water mark would hide it.
  const signal = options.signal
  const memory = parts.has("c")
    ? await runInChild<P5Memory>(self, ["--memory-child", ...smokeArg(smoke)], { signal })
    : undefined
  const memorySized = parts.has("c")
    ? await runInChild<P5Memory>(self, ["--memory-child", ...smokeArg(smoke)], {
      flags: [`--max-old-space-size=${SIZED_HEAP_MB}`],
      signal
    })
    : undefined
  signal?.throwIfAborted()
  const throughput = parts.has("a") ? await runThroughput(smoke, signal) : undefined
  signal?.throwIfAborted()
  if (throughput !== undefined) {
    console.log(
      `(a) ${int(throughput.records)} records of ${COLUMNS} columns, sent one at a time by ${
        int(throughput.fibers)
      } fibers, against one writeBatch of the same records (zero-latency accept-all double, default options); each path in ${throughput.producerRates.length} fresh processes of its own, alternating, each the median of ${throughput.rounds} timed rounds after its warm-up:\n`
    )
    console.log(table(["path", "records/s (median)", "per process", "ms/record"], [
      [
        "producer.send",
        int(throughput.producerRate),
        throughput.producerRates.map(int).join(", "),
        fixed(1_000 / throughput.producerRate, 3)
      ],
      [
        "writeBatch",
        int(throughput.writeBatchRate),
        throughput.writeBatchRates.map(int).join(", "),
        fixed(1_000 / throughput.writeBatchRate, 3)
      ]
    ]))
    console.log(
      `\n  producer / writeBatch = ${
        ratio(throughput.producerRate, throughput.writeBatchRate)
      } (target ≥ 0.80×); pair by pair ${
        throughput.producerRates.map((r, i) => ratio(r, throughput.writeBatchRates[i]!)).join(", ")
      }\n`
    )
  }

  const latency = parts.has("b") ? await runLatency(smoke) : undefined
  if (latency !== undefined) {
    console.log(
      `(b) send-to-receipt latency, ${int(latency.records)} records offered at ${
        int(latency.offeredPerSecond)
      }/s, linger ${latency.lingerMs} ms, every call answered after ${latency.callLatencyMs} ms (real clock):\n`
    )
    console.log(table(["p50", "p99", "max", "target p99"], [[
      `${fixed(latency.p50Ms, 1)} ms`,
      `${fixed(latency.p99Ms, 1)} ms`,
      `${fixed(latency.maxMs, 1)} ms`,
      `≤ ${latency.targetMs} ms`
    ]]))
    console.log(`\n  p99 / target = ${ratio(latency.p99Ms, latency.targetMs)}\n`)
  }

  printMemory([["defaults", memory], [`--max-old-space-size=${SIZED_HEAP_MB}`, memorySized]])
  return { smoke, throughput, latency, memory, memorySized }
}

await serveChild(import.meta.url, "--memory-child", (_, smoke) => runMemory(smoke))
await serveChild(
  import.meta.url,
  "--throughput-child",
  (path, smoke) =>
    runThroughputRounds(path as ThroughputPath, smoke).catch((e) => {
      console.log(`(a) ${path} did not finish: ${String(e)}`)
      return null
    })
)
if (isMain(import.meta.url)) {
  const only = process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length)
  await runP5({
    smoke: process.argv.includes("--smoke"),
    ...(only === undefined ? {} : { parts: only.split(",") as Array<"a" | "b" | "c"> })
  })
}
