/**
 * P6, aggregation (issue 13, item 5): what packing the records that share a partition key
 * into one Kinesis record buys, at 5, 20, 50 and 500 columns. For each column count, three
 * encoders over the same pre-generated records:
 *
 * - `loop`: a hand loop per record, no Effect: the envelope as a message, `toBinary`,
 *   `zlib.gzipSync` (what bench/p1Encode.ts calls the floor);
 * - `writer`: `writeBatch`, aggregation off (the default), zero-latency Kinesis;
 * - `aggregated`: `writeBatch` with `aggregation: {}` (the defaults).
 *
 * Figures per logical record: bytes of Data on the stream, CPU µs of the whole process
 * (`process.cpuUsage`: main thread and compression workers), Kinesis records per 1,000, and
 * wall rate. Then goodput on the shard simulator (4 shards, Kinesis' real limits, simulated
 * time as in bench/p3Throttling.ts): logical records/s delivered, writer vs aggregated.
 *
 * Each encoder of a column count runs in fresh child processes of its own (this file with
 * `--p6-child`), as a service runs one of them, not in turn beside the others in one heap.
 *
 * Run alone: `npx tsx --expose-gc bench/p6Aggregation.ts [--smoke]` (about 3 minutes; smoke about 40 s).
 */
import { Chunk, Clock, Effect, Fiber, Layer, ManagedRuntime, Option, TestClock, TestContext } from "effect"
import * as os from "node:os"
import { fileURLToPath } from "node:url"
import type { DataFileV1, KinesisWriterOptions, WriteResult } from "../src/index.js"
import { KinesisMetrics, KinesisWriter, LargePayloadStore } from "../src/index.js"
import { RecordGenerator, ShardSimulator } from "../src/testing.js"
import {
  cycle,
  gc,
  handLoop,
  int,
  isMain,
  median,
  quietLogs,
  runApart,
  runInChild,
  serveChild,
  WRITER_BASE,
  zeroLatencyKinesis
} from "./common.js"

const COLUMNS = [5, 20, 50, 500] as const

export interface EncoderFigures {
  readonly name: "loop" | "writer" | "aggregated"
  /** Logical records per second, wall clock (median of the rounds). */
  readonly rate: number
  /** CPU µs of the whole process per logical record (median). */
  readonly cpuMicros: number
  /** Bytes of Data on the stream per logical record. */
  readonly bytes: number
  /** Kinesis records per 1,000 logical records. */
  readonly kinesisPer1000: number
}

export interface ColumnFigures {
  readonly columns: number
  readonly loop: EncoderFigures
  readonly writer: EncoderFigures
  readonly aggregated: EncoderFigures
  /** Logical records/s delivered on the shard simulator. */
  readonly goodput: { readonly writer: number; readonly aggregated: number }
}

export interface AggregationResult {
  readonly smoke: boolean
  readonly byColumns: ReadonlyArray<ColumnFigures>
  /** At 5 columns: aggregated wall rate / loop wall rate (target ≥ 3). */
  readonly rateVsLoop5: number
  /** At 5 columns: aggregated bytes / loop bytes (target ≤ 0.6). */
  readonly bytesVsLoop5: number
}

interface Encoder {
  readonly name: EncoderFigures["name"]
  readonly run: (records: Array<DataFileV1>) => Promise<{ bytes: number; kinesisRecords: number }>
  readonly dispose: () => Promise<void>
}

const writerEncoder = (name: "writer" | "aggregated", options: Partial<KinesisWriterOptions>): Encoder => {
  const runtime = ManagedRuntime.make(
    KinesisWriter.layer({ ...WRITER_BASE, ...options }).pipe(
      Layer.provide(zeroLatencyKinesis),
      Layer.provide(LargePayloadStore.layerMemory()),
      Layer.provide(KinesisMetrics.layerNoop),
      Layer.provideMerge(quietLogs)
    )
  )
  const writer = runtime.runSync(KinesisWriter)
  return {
    name,
    run: (records) =>
      runtime.runPromise(writer.writeBatch(records)).then((r: WriteResult) => ({
        bytes: r.compressedBytes,
        kinesisRecords: r.kinesisRecords
      })),
    dispose: () => runtime.dispose()
  }
}

const loopEncoder: Encoder = {
  name: "loop",
  run: async (records) => ({ bytes: handLoop(records, true), kinesisRecords: records.length }),
  dispose: async () => {}
}

/** What one process measured of one encoder. */
interface EncoderRuns {
  /** Logical records/s of each timed run. */
  readonly rates: ReadonlyArray<number>
  /** CPU µs of the whole process per logical record, of each timed run. */
  readonly cpuMicros: ReadonlyArray<number>
  readonly bytes: number
  readonly kinesisPer1000: number
}

/** In a child process: two warm-up runs on the pool (the JIT settles), then `rounds` timed runs of `n` records. */
const measureEncoder = async (
  encoder: Encoder,
  pool: ReadonlyArray<DataFileV1>,
  n: number,
  rounds: number
): Promise<EncoderRuns> => {
  for (let i = 0; i < 2; i++) await encoder.run([...pool])
  const batch = cycle(pool, n)
  const rates: Array<number> = []
  const cpuMicros: Array<number> = []
  let out = { bytes: 0, kinesisRecords: 0 }
  for (let round = 0; round < rounds; round++) {
    gc()
    const cpu = process.cpuUsage()
    const start = performance.now()
    out = await encoder.run(batch)
    const seconds = (performance.now() - start) / 1000
    const used = process.cpuUsage(cpu)
    rates.push(n / seconds)
    cpuMicros.push((used.user + used.system) / n)
  }
  return { rates, cpuMicros, bytes: out.bytes / n, kinesisPer1000: (1000 * out.kinesisRecords) / n }
}

/** The encoders of a column count, each measured in fresh child processes of its own. */
const ENCODERS = ["loop", "writer", "aggregated"] as const satisfies ReadonlyArray<EncoderFigures["name"]>

/** Distinct records of a column count (cycled to the run size). */
const poolOf = (columns: number, smoke: boolean) =>
  RecordGenerator.makeDataFiles(smoke ? (columns === 500 ? 60 : 500) : columns === 500 ? 300 : 2_000, {
    columns,
    seed: 600 + columns
  })

/** Smoke: gzip on the calling thread (no worker pool to start): the harness runs, the figures are rough. */
const encoderOf = (name: EncoderFigures["name"], smoke: boolean): Encoder => {
  const workers = smoke ? { compressionWorkers: 0 } : {}
  switch (name) {
    case "loop":
      return loopEncoder
    case "writer":
      return writerEncoder("writer", workers)
    case "aggregated":
      return writerEncoder("aggregated", { ...workers, aggregation: {} })
  }
}

/** In a child process: one encoder (`columns:name:n`), measured. */
const measureInChild = async (spec: string, smoke: boolean): Promise<EncoderRuns> => {
  const [columns, name, n] = spec.split(":") as [string, EncoderFigures["name"], string]
  const encoder = encoderOf(name, smoke)
  try {
    return await measureEncoder(encoder, poolOf(Number(columns), smoke), Number(n), smoke ? 1 : 3)
  } finally {
    await encoder.dispose()
  }
}

/**
 * The encoders of a column count, each in `processes` child processes of its own: per
 * encoder, the medians of the timed runs of all its processes. The runs' size `n`: the
 * loop's time on the pool, measured here, sizes them to about `targetSeconds` of the loop,
 * within [pool, maxN].
 */
const measure = async (
  columns: number,
  pool: ReadonlyArray<DataFileV1>,
  options: {
    readonly smoke: boolean
    readonly targetSeconds: number
    readonly maxN: number
    readonly signal: AbortSignal | undefined
  }
): Promise<Array<EncoderFigures>> => {
  handLoop([...pool], true)
  const start = performance.now()
  handLoop([...pool], true)
  const loopSeconds = (performance.now() - start) / 1000
  const n = Math.max(
    pool.length,
    Math.min(options.maxN, Math.round((pool.length * options.targetSeconds) / loopSeconds))
  )
  const file = fileURLToPath(import.meta.url)
  const byName = await runApart<EncoderRuns>(
    ENCODERS,
    options.smoke ? 1 : 2,
    (name) =>
      runInChild<EncoderRuns>(file, [`--p6-child=${columns}:${name}:${n}`, ...(options.smoke ? ["--smoke"] : [])], {
        signal: options.signal
      })
  )
  options.signal?.throwIfAborted()
  if (byName === undefined) throw new Error(`a process measuring ${columns} columns gave no figures`)
  return ENCODERS.map((name) => {
    const runs = byName.get(name)!
    return {
      name,
      rate: median(runs.flatMap((r) => r.rates)),
      cpuMicros: median(runs.flatMap((r) => r.cpuMicros)),
      bytes: runs[0]!.bytes,
      kinesisPer1000: runs[0]!.kinesisPer1000
    }
  })
}

/** The test clock in whole milliseconds (the writer's creation time is a BigInt of it). */
const wholeMillis = (inner: Clock.Clock): Clock.Clock => ({
  [Clock.ClockTypeId]: Clock.ClockTypeId,
  unsafeCurrentTimeMillis: () => Math.floor(inner.unsafeCurrentTimeMillis()),
  currentTimeMillis: Effect.map(inner.currentTimeMillis, Math.floor),
  unsafeCurrentTimeNanos: () => inner.unsafeCurrentTimeNanos(),
  currentTimeNanos: inner.currentTimeNanos,
  sleep: (duration) => inner.sleep(duration)
})

const realPause = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 1)))

/**
 * Logical records/s delivered on a 4-shard simulator over `seconds` of simulated time: one
 * fiber writes batches of `batchSize` as fast as the writer returns; the driver advances the test
 * clock whenever the writer waits (its backoff), so CPU work takes no simulated time.
 * Delivered records over the simulated time it took (the last batch's tail included, at
 * least 1 s); the run stops at `seconds` simulated or `wallSeconds` of real time, whichever
 * comes first, so it is time-bounded on a slow machine (then the figure covers fewer
 * simulated seconds).
 */
const goodput = async (
  pool: ReadonlyArray<DataFileV1>,
  options: Partial<KinesisWriterOptions>,
  seconds: number,
  batchSize: number,
  wallSeconds: number
): Promise<number> => {
  // gzip on the calling thread: CPU takes no simulated time anyway, and the worker pool's
  // start timeout would run on the test clock.
  // The simulator answers at once, so a call's timeout never fires; but a finished call's
  // timeout stays among TestClock.sleeps() until its instant. A timeout of an hour keeps
  // those apart from the writer's backoff (capped at 10 s), the only sleeps advanced to.
  const layer = KinesisWriter.layer({ ...WRITER_BASE, compressionWorkers: 0, requestTimeout: "1 hour", ...options })
    .pipe(
      Layer.provideMerge(ShardSimulator.layer({ shards: 4, seed: 1 })),
      Layer.provide(LargePayloadStore.layerMemory()),
      Layer.provide(KinesisMetrics.layerNoop),
      Layer.provideMerge(quietLogs)
    )
  const program = Effect.gen(function*() {
    const writer = yield* KinesisWriter
    let stop = false
    let offset = 0
    let delivered = 0
    const wallDeadline = performance.now() + wallSeconds * 1000
    const producer = Effect.gen(function*() {
      while (!stop) {
        const batch = Array.from({ length: batchSize }, (_, i) => pool[(offset + i) % pool.length]!)
        offset += batch.length
        const result = yield* Effect.either(writer.writeBatch(batch))
        if (result._tag === "Right") delivered += result.right.records
        else if (result.left._tag === "WriteBatchError") delivered += result.left.delivered
        // Let the driver see the clock between batches.
        yield* Effect.yieldNow()
        if ((yield* Clock.currentTimeMillis) >= seconds * 1000 || performance.now() > wallDeadline) stop = true
      }
    })
    const fiber = yield* Effect.fork(Effect.withClock(producer, wholeMillis(yield* Effect.clock)))
    for (;;) {
      const exit = yield* Fiber.poll(fiber)
      if (Option.isSome(exit)) {
        if (exit.value._tag === "Failure") return yield* Effect.failCause(exit.value.cause)
        break
      }
      const now = yield* Clock.currentTimeMillis
      const sleeps = Chunk.toReadonlyArray(yield* TestClock.sleeps()).filter((s) => s < now + 600_000)
      if (sleeps.length === 0) {
        // The producer is encoding (real time): let it run.
        yield* realPause
        continue
      }
      yield* TestClock.adjust(Math.max(0, Math.min(...sleeps) - now))
    }
    const end = yield* Clock.currentTimeMillis
    // Kinesis meters whole seconds: a run that ended within its first second had that second.
    return delivered / Math.max(1, end / 1000)
  }).pipe(Effect.scoped, Effect.provide(layer), Effect.provide(TestContext.TestContext))
  return Effect.runPromise(program)
}

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd()
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

/** Runs P6 and prints its tables; `smoke` runs a few records of each case (about 40 s). */
export const runAggregation = async (
  options: { readonly smoke?: boolean; readonly signal?: AbortSignal | undefined } = {}
): Promise<AggregationResult> => {
  const smoke = options.smoke ?? false
  const started = performance.now()
  const [l1, l5] = os.loadavg()
  console.log(
    `\n## P6 aggregation${smoke ? " (smoke)" : ""}   [load ${l1?.toFixed(2)} / ${
      l5?.toFixed(2)
    } on ${os.cpus().length} cores, Node ${process.version}]\n`
  )
  const byColumns: Array<ColumnFigures> = []
  for (const columns of COLUMNS) {
    options.signal?.throwIfAborted()
    const pool = poolOf(columns, smoke)
    const t = performance.now()
    // Records per timed run: ~0.5-1 s of the loop in a full run.
    const [loop, writer, aggregated] = await measure(
      columns,
      pool,
      {
        smoke,
        signal: options.signal,
        ...(smoke ? { targetSeconds: 0.2, maxN: 1_000 } : { targetSeconds: 1, maxN: 30_000 })
      }
    )
    const simSeconds = smoke ? 1 : 10
    // Batches of 1,000 (100 at 500 columns: ~1.7 MB, about what 4 shards take in half a second).
    const batchSize = columns === 500 ? 100 : 1_000
    const t0 = performance.now()
    const goodputs = {
      writer: await goodput(pool, {}, simSeconds, batchSize, smoke ? 1 : 8),
      aggregated: await goodput(pool, { aggregation: {} }, simSeconds, batchSize, smoke ? 1 : 8)
    }
    console.log(
      `  ${columns} columns: encoders ${((t0 - t) / 1000).toFixed(1)} s, simulator ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s`
    )
    byColumns.push({ columns, loop: loop!, writer: writer!, aggregated: aggregated!, goodput: goodputs })
  }
  const row = (c: ColumnFigures, e: EncoderFigures, goodput?: number) => [
    `${c.columns}`,
    e.name,
    int(e.rate),
    `${(e.rate / c.loop.rate).toFixed(2)}×`,
    e.cpuMicros.toFixed(1),
    e.bytes.toFixed(1),
    `${(e.bytes / c.loop.bytes).toFixed(2)}×`,
    e.kinesisPer1000.toFixed(1),
    goodput === undefined ? "" : int(goodput)
  ]
  console.log(
    `Same records for every encoder of a column count; each encoder in ${
      smoke ? "1 process" : "2 fresh processes"
    } of its own, ${smoke ? "1 timed run" : "3 timed runs in each, the median"}; ` +
      "writeBatch with default options (2 compression workers, level 6), zero-latency Kinesis. CPU = process.cpuUsage " +
      "(all threads) per record. Goodput: 4-shard simulator, Kinesis' limits, batches of 1,000 (100 at 500 columns), " +
      `up to ${smoke ? 1 : 10} s simulated (or ${smoke ? 1 : 8} s of wall time).\n`
  )
  console.log(table(
    ["columns", "encoder", "rec/s", "vs loop", "CPU µs/rec", "B/rec", "vs loop", "Kinesis rec/1,000", "goodput rec/s"],
    byColumns.flatMap((c) => [
      row(c, c.loop),
      row(c, c.writer, c.goodput.writer),
      row(c, c.aggregated, c.goodput.aggregated)
    ])
  ))
  const c5 = byColumns[0]!
  const rateVsLoop5 = c5.aggregated.rate / c5.loop.rate
  const bytesVsLoop5 = c5.aggregated.bytes / c5.loop.bytes
  console.log(
    `\nTargets at 5 columns: aggregated ${rateVsLoop5.toFixed(2)}× the loop's wall rate (≥ 3×: ${
      rateVsLoop5 >= 3 ? "met" : "not met"
    }), ${bytesVsLoop5.toFixed(2)}× its bytes (≤ 0.6×: ${bytesVsLoop5 <= 0.6 ? "met" : "not met"}). ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s.`
  )
  return { smoke, byColumns, rateVsLoop5, bytesVsLoop5 }
}

await serveChild(import.meta.url, "--p6-child", measureInChild)
if (isMain(import.meta.url)) await runAggregation({ smoke: process.argv.includes("--smoke") })
