/**
 * P6, aggregation (issues 13 and 22): what packing the records bound for one shard into one
 * Kinesis record buys, at 5, 20, 50 and 500 columns. For each column count, encoders over
 * the same pre-generated records:
 *
 * - `loop`: a hand loop per record, no Effect: the envelope as a message, `toBinary`,
 *   `zlib.gzipSync` (what bench/p1Encode.ts calls the floor);
 * - `writer`: `writeBatch`, aggregation off (the default);
 * - `aggregated`: `writeBatch` with `aggregation: {}` (the defaults: records of
 *   `maxMemberBytes` or more travel plain);
 * - `aggregated-all`: `writeBatch` aggregating every record (`maxMemberBytes` unbounded),
 *   for the crossover.
 *
 * The writers write to a zero-latency Kinesis whose ListShards answers 4 shards (so records
 * are aggregated by predicted shard) and which bills each Kinesis record it receives: PUT
 * payload units (25 KB each, data plus partition key) and on-demand bytes (rounded up to
 * 1 KB), per 1,000 logical records.
 *
 * Figures per logical record: bytes of Data on the stream, CPU µs of the whole process
 * (`process.cpuUsage`: main thread and compression workers), Kinesis records, PUT payload
 * units and on-demand KB per 1,000, and wall rate. Then goodput on the shard simulator (4
 * shards, Kinesis' real limits, simulated time as in bench/p3Throttling.ts): logical
 * records/s delivered, writer vs aggregated. Then the crossover: records per CPU-second of
 * the plain writer, aggregation by default and aggregation of every record, at 5 to 400
 * columns, beside the records' serialized size: where aggregating every record falls below
 * the plain writer is where `aggregation.maxMemberBytes` belongs.
 *
 * Each encoder of a column count runs in fresh child processes of its own (this file with
 * `--p6-child`), as a service runs one of them, not in turn beside the others in one heap.
 *
 * Run alone: `npx tsx --expose-gc bench/p6Aggregation.ts [--smoke]` (about 5 minutes; smoke about 60 s).
 */
import { toBinary } from "@bufbuild/protobuf"
import { Chunk, Clock, Effect, Fiber, Layer, ManagedRuntime, Option, TestClock, TestContext } from "effect"
import * as os from "node:os"
import { fileURLToPath } from "node:url"
import type { DataFileV1, KinesisWriterOptions, PutRecordsResultEntry, WriteResult } from "../src/index.js"
import {
  AggregationDefaults,
  DataFileV1Schema,
  Kinesis,
  KinesisMetrics,
  KinesisWriter,
  LargePayloadStore
} from "../src/index.js"
import { onDemandBilledBytes, putPayloadUnits } from "../src/internal/core/payloadUnits.js"
import { evenShards, ShardMap } from "../src/internal/core/routing.js"
import { KinesisTest, RecordGenerator, ShardSimulator } from "../src/testing.js"
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
  WRITER_BASE
} from "./common.js"

const COLUMNS = [5, 20, 50, 500] as const

/** Column counts of the crossover: those of {@link COLUMNS} below 500, and these, measured for it alone. */
const CROSSOVER_ONLY = [100, 200, 400] as const

/** Column counts whose billing the section prints (issue 22). */
const BILLED = [5, 50, 500] as const

/** The target at 5 columns: PUT payload units per 1,000 logical records, aggregated (0.02 per record). */
const UNITS_TARGET_5 = 20

type EncoderName = "loop" | "writer" | "aggregated" | "aggregated-all"

export interface EncoderFigures {
  readonly name: EncoderName
  /** Logical records per second, wall clock (median of the rounds). */
  readonly rate: number
  /** CPU µs of the whole process per logical record (median). */
  readonly cpuMicros: number
  /** Bytes of Data on the stream per logical record. */
  readonly bytes: number
  /** Kinesis records per 1,000 logical records. */
  readonly kinesisPer1000: number
  /** PUT payload units per 1,000 logical records (provisioned streams); 0 for the loop, which puts nothing. */
  readonly payloadUnitsPer1000: number
  /** Bytes an on-demand stream bills per 1,000 logical records (each record rounded up to 1 KB). */
  readonly onDemandBytesPer1000: number
}

export interface ColumnFigures {
  readonly columns: number
  readonly loop: EncoderFigures
  readonly writer: EncoderFigures
  readonly aggregated: EncoderFigures
  /** Logical records/s delivered on the shard simulator. */
  readonly goodput: { readonly writer: number; readonly aggregated: number }
}

/** One column count of the crossover: records per CPU-second of each writer. */
export interface CrossoverFigures {
  readonly columns: number
  /** Mean serialized `DataFileV1` of the records, bytes. */
  readonly serializedBytes: number
  readonly writer: number
  readonly aggregated: number
  readonly aggregatedAll: number
}

export interface AggregationResult {
  readonly smoke: boolean
  readonly byColumns: ReadonlyArray<ColumnFigures>
  readonly crossover: ReadonlyArray<CrossoverFigures>
  /** At 5 columns: aggregated wall rate / loop wall rate (target ≥ 3). */
  readonly rateVsLoop5: number
  /** At 5 columns: aggregated bytes / loop bytes (target ≤ 0.6). */
  readonly bytesVsLoop5: number
  /** At 5 columns: PUT payload units per 1,000 logical records, aggregated (target ≤ 20). */
  readonly payloadUnitsPer1000At5: number
  /** The least of aggregated (default) / plain writer, records per CPU-second, over every column count (target ≥ 1). */
  readonly cpuRateVsWriterMin: { readonly ratio: number; readonly columns: number }
}

/** What a run put on the stream: its bytes, Kinesis records and their bill. */
interface RunOutput {
  readonly bytes: number
  readonly kinesisRecords: number
  readonly payloadUnits: number
  readonly onDemandBytes: number
}

interface Encoder {
  readonly name: EncoderName
  readonly run: (records: Array<DataFileV1>) => Promise<RunOutput>
  readonly dispose: () => Promise<void>
}

/** What a billing Kinesis has received since it was last read. */
interface Bill {
  units: number
  onDemandBytes: number
}

const WRITTEN: PutRecordsResultEntry = { _tag: "Written", shardId: "shardId-000000000000", sequenceNumber: "1" }

/**
 * A zero-latency Kinesis of 4 shards that bills each record it receives: every record is
 * answered as written (one routed by an explicit hash key on its shard, so that the writer
 * sees its aggregates land where it predicted), nothing is kept.
 */
const billingKinesis = (bill: Bill): Layer.Layer<Kinesis> => {
  const shards = evenShards(4)
  const map = new ShardMap(shards)
  return Layer.succeed(
    Kinesis,
    Kinesis.of({
      putRecords: (request) =>
        Effect.sync(() =>
          request.records.map((r): PutRecordsResultEntry => {
            const bytes = r.data.length + Buffer.byteLength(r.partitionKey, "utf8")
            bill.units += putPayloadUnits(bytes)
            bill.onDemandBytes += onDemandBilledBytes(bytes)
            return r.explicitHashKey === undefined
              ? WRITTEN
              : { ...WRITTEN, shardId: map.shardOf(BigInt(r.explicitHashKey))! }
          })
        ),
      describeStreamSummary: (streamName) => Effect.succeed({ streamName, status: "ACTIVE", openShardCount: 4 }),
      listShards: () => Effect.succeed(shards),
      ...KinesisTest.unreadable("bench double")
    })
  )
}

const writerEncoder = (name: EncoderName, options: Partial<KinesisWriterOptions>): Encoder => {
  const bill: Bill = { units: 0, onDemandBytes: 0 }
  const runtime = ManagedRuntime.make(
    KinesisWriter.layer({ ...WRITER_BASE, ...options }).pipe(
      Layer.provide(billingKinesis(bill)),
      Layer.provide(LargePayloadStore.layerMemory()),
      Layer.provide(KinesisMetrics.layerNoop),
      Layer.provideMerge(quietLogs)
    )
  )
  const writer = runtime.runSync(KinesisWriter)
  return {
    name,
    run: (records) => {
      bill.units = 0
      bill.onDemandBytes = 0
      return runtime.runPromise(writer.writeBatch(records)).then((r: WriteResult) => ({
        bytes: r.compressedBytes,
        kinesisRecords: r.kinesisRecords,
        payloadUnits: bill.units,
        onDemandBytes: bill.onDemandBytes
      }))
    },
    dispose: () => runtime.dispose()
  }
}

const loopEncoder: Encoder = {
  name: "loop",
  run: async (records) => ({
    bytes: handLoop(records, true),
    kinesisRecords: records.length,
    payloadUnits: 0,
    onDemandBytes: 0
  }),
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
  readonly payloadUnitsPer1000: number
  readonly onDemandBytesPer1000: number
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
  let out: RunOutput = { bytes: 0, kinesisRecords: 0, payloadUnits: 0, onDemandBytes: 0 }
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
  return {
    rates,
    cpuMicros,
    bytes: out.bytes / n,
    kinesisPer1000: (1000 * out.kinesisRecords) / n,
    payloadUnitsPer1000: (1000 * out.payloadUnits) / n,
    onDemandBytesPer1000: (1000 * out.onDemandBytes) / n
  }
}

/** Distinct records of a column count (cycled to the run size). */
const poolOf = (columns: number, smoke: boolean) =>
  RecordGenerator.makeDataFiles(smoke ? (columns >= 200 ? 60 : 500) : columns >= 200 ? 300 : 2_000, {
    columns,
    seed: 600 + columns
  })

/** Smoke: gzip on the calling thread (no worker pool to start): the harness runs, the figures are rough. */
const encoderOf = (name: EncoderName, smoke: boolean): Encoder => {
  const workers = smoke ? { compressionWorkers: 0 } : {}
  switch (name) {
    case "loop":
      return loopEncoder
    case "writer":
      return writerEncoder(name, workers)
    case "aggregated":
      return writerEncoder(name, { ...workers, aggregation: {} })
    case "aggregated-all":
      return writerEncoder(name, { ...workers, aggregation: { maxMemberBytes: Number.MAX_SAFE_INTEGER } })
  }
}

/** In a child process: one encoder (`columns:name:n`), measured. */
const measureInChild = async (spec: string, smoke: boolean): Promise<EncoderRuns> => {
  const [columns, name, n] = spec.split(":") as [string, EncoderName, string]
  const encoder = encoderOf(name, smoke)
  try {
    return await measureEncoder(encoder, poolOf(Number(columns), smoke), Number(n), smoke ? 1 : 3)
  } finally {
    await encoder.dispose()
  }
}

/**
 * `encoders` of a column count, each in `processes` child processes of its own (one in a
 * smoke run): per encoder, the medians of the timed runs of all its processes. The runs'
 * size `n`: the loop's time on the pool, measured here, sizes them to about `targetSeconds`
 * of the loop, within [pool, maxN].
 */
const measure = async <N extends EncoderName>(
  columns: number,
  pool: ReadonlyArray<DataFileV1>,
  encoders: ReadonlyArray<N>,
  options: {
    readonly smoke: boolean
    readonly processes: number
    readonly targetSeconds: number
    readonly maxN: number
    readonly signal: AbortSignal | undefined
  }
): Promise<Record<N, EncoderFigures>> => {
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
    encoders,
    options.smoke ? 1 : options.processes,
    (name) =>
      runInChild<EncoderRuns>(file, [`--p6-child=${columns}:${name}:${n}`, ...(options.smoke ? ["--smoke"] : [])], {
        signal: options.signal
      })
  )
  options.signal?.throwIfAborted()
  if (byName === undefined) throw new Error(`a process measuring ${columns} columns gave no figures`)
  const figures = {} as Record<N, EncoderFigures>
  for (const name of encoders) {
    const runs = byName.get(name)!
    figures[name] = {
      name,
      rate: median(runs.flatMap((r) => r.rates)),
      cpuMicros: median(runs.flatMap((r) => r.cpuMicros)),
      bytes: runs[0]!.bytes,
      kinesisPer1000: runs[0]!.kinesisPer1000,
      payloadUnitsPer1000: runs[0]!.payloadUnitsPer1000,
      onDemandBytesPer1000: runs[0]!.onDemandBytesPer1000
    }
  }
  return figures
}

/** A column count's line of the crossover, from the CPU µs per record of each writer. */
const crossoverOf = (
  columns: number,
  pool: ReadonlyArray<DataFileV1>,
  writer: EncoderFigures,
  aggregated: EncoderFigures,
  all: EncoderFigures
): CrossoverFigures => ({
  columns,
  serializedBytes: serializedBytes(pool),
  writer: 1e6 / writer.cpuMicros,
  aggregated: 1e6 / aggregated.cpuMicros,
  aggregatedAll: 1e6 / all.cpuMicros
})

/** Mean serialized `DataFileV1` of a pool, bytes. */
const serializedBytes = (pool: ReadonlyArray<DataFileV1>): number =>
  pool.reduce((n, r) => n + toBinary(DataFileV1Schema, r).length, 0) / pool.length

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

/** Runs P6 and prints its tables; `smoke` runs a few records of each case (about 60 s). */
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
  // Records per timed run: ~0.5-1 s of the loop in a full run.
  const sizes = smoke ? { targetSeconds: 0.2, maxN: 1_000 } : { targetSeconds: 1, maxN: 30_000 }
  const byColumns: Array<ColumnFigures> = []
  const crossover: Array<CrossoverFigures> = []
  for (const columns of COLUMNS) {
    options.signal?.throwIfAborted()
    const pool = poolOf(columns, smoke)
    const t = performance.now()
    const common = { smoke, signal: options.signal, ...sizes }
    const { aggregated, loop, writer } = await measure(columns, pool, ["loop", "writer", "aggregated"] as const, {
      ...common,
      processes: 2
    })
    const all = columns === 500
      ? undefined
      : (await measure(columns, pool, ["aggregated-all"] as const, { ...common, processes: 1 }))["aggregated-all"]
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
    byColumns.push({ columns, loop, writer, aggregated, goodput: goodputs })
    if (all !== undefined) crossover.push(crossoverOf(columns, pool, writer, aggregated, all))
  }
  for (const columns of CROSSOVER_ONLY) {
    options.signal?.throwIfAborted()
    const pool = poolOf(columns, smoke)
    const common = {
      smoke,
      signal: options.signal,
      ...(smoke ? sizes : { targetSeconds: 0.5, maxN: 10_000 })
    }
    const { aggregated, writer } = await measure(columns, pool, ["writer", "aggregated"] as const, {
      ...common,
      processes: 2
    })
    const { "aggregated-all": all } = await measure(columns, pool, ["aggregated-all"] as const, {
      ...common,
      processes: 1
    })
    crossover.push(crossoverOf(columns, pool, writer, aggregated, all))
  }
  crossover.sort((a, b) => a.columns - b.columns)
  return report(smoke, byColumns, crossover, started)
}

/** Prints P6's tables and targets. */
const report = (
  smoke: boolean,
  byColumns: ReadonlyArray<ColumnFigures>,
  crossover: ReadonlyArray<CrossoverFigures>,
  started: number
): AggregationResult => {
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
      "writeBatch with default options (2 compression workers, level 6), a zero-latency Kinesis of 4 shards. " +
      "CPU = process.cpuUsage (all threads) per record. Goodput: 4-shard simulator, Kinesis' limits, " +
      `batches of 1,000 (100 at 500 columns), up to ${smoke ? 1 : 10} s simulated (or ${
        smoke ? 1 : 8
      } s of wall time).\n`
  )
  console.log(table(
    ["columns", "encoder", "rec/s", "vs loop", "CPU µs/rec", "B/rec", "vs loop", "Kinesis rec/1,000", "goodput rec/s"],
    byColumns.flatMap((c) => [
      row(c, c.loop),
      row(c, c.writer, c.goodput.writer),
      row(c, c.aggregated, c.goodput.aggregated)
    ])
  ))
  console.log(
    "\nWhat 1,000 logical records cost to put, as the stream received them (the timed runs above): " +
      "PUT payload units (provisioned: each record, data plus partition key, in 25 KB units) and " +
      "on-demand KB (each record rounded up to 1 KB).\n"
  )
  console.log(table(
    ["columns", "PUT units, plain", "aggregated", "vs plain", "on-demand KB, plain", "aggregated", "vs plain"],
    byColumns.filter((c) => (BILLED as ReadonlyArray<number>).includes(c.columns)).map((c) => [
      `${c.columns}`,
      c.writer.payloadUnitsPer1000.toFixed(1),
      c.aggregated.payloadUnitsPer1000.toFixed(1),
      `${(c.aggregated.payloadUnitsPer1000 / c.writer.payloadUnitsPer1000).toFixed(3)}×`,
      (c.writer.onDemandBytesPer1000 / 1024).toFixed(0),
      (c.aggregated.onDemandBytesPer1000 / 1024).toFixed(0),
      `${(c.aggregated.onDemandBytesPer1000 / c.writer.onDemandBytesPer1000).toFixed(3)}×`
    ])
  ))
  console.log(
    `\nThe crossover: logical records per CPU-second (process.cpuUsage, all threads), plain writer, ` +
      `aggregation with default settings (records of ${AggregationDefaults.maxMemberBytes} serialized bytes or more ` +
      `travel plain) and aggregation of every record; 100-400 columns with ${
        smoke ? "1 process" : "2 processes"
      } for the plain writer and the default, 1 for every record.\n`
  )
  console.log(table(
    ["columns", "serialized B", "plain rec/CPU-s", "default", "vs plain", "every record", "vs plain"],
    crossover.map((c) => [
      `${c.columns}`,
      int(c.serializedBytes),
      int(c.writer),
      int(c.aggregated),
      `${(c.aggregated / c.writer).toFixed(2)}×`,
      int(c.aggregatedAll),
      `${(c.aggregatedAll / c.writer).toFixed(2)}×`
    ])
  ))
  const c5 = byColumns[0]!
  const rateVsLoop5 = c5.aggregated.rate / c5.loop.rate
  const bytesVsLoop5 = c5.aggregated.bytes / c5.loop.bytes
  const payloadUnitsPer1000At5 = c5.aggregated.payloadUnitsPer1000
  const ratios = [
    ...crossover.map((c) => ({ columns: c.columns, ratio: c.aggregated / c.writer })),
    ...byColumns.filter((c) => !crossover.some((x) => x.columns === c.columns)).map((c) => ({
      columns: c.columns,
      ratio: c.writer.cpuMicros / c.aggregated.cpuMicros
    }))
  ]
  const cpuRateVsWriterMin = ratios.reduce((a, b) => (b.ratio < a.ratio ? b : a))
  console.log(
    `\nTargets at 5 columns: aggregated ${rateVsLoop5.toFixed(2)}× the loop's wall rate (≥ 3×: ${
      rateVsLoop5 >= 3 ? "met" : "not met"
    }), ${bytesVsLoop5.toFixed(2)}× its bytes (≤ 0.6×: ${bytesVsLoop5 <= 0.6 ? "met" : "not met"}), ` +
      `${payloadUnitsPer1000At5.toFixed(1)} PUT payload units per 1,000 records (≤ ${UNITS_TARGET_5}: ${
        payloadUnitsPer1000At5 <= UNITS_TARGET_5 ? "met" : "not met"
      }). Aggregation by default vs the plain writer, records per CPU-second, at its lowest: ${
        cpuRateVsWriterMin.ratio.toFixed(2)
      }× at ${cpuRateVsWriterMin.columns} columns (≥ 1×: ${cpuRateVsWriterMin.ratio >= 1 ? "met" : "not met"}). ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s.`
  )
  return { smoke, byColumns, crossover, rateVsLoop5, bytesVsLoop5, payloadUnitsPer1000At5, cpuRateVsWriterMin }
}

await serveChild(import.meta.url, "--p6-child", measureInChild)
if (isMain(import.meta.url)) await runAggregation({ smoke: process.argv.includes("--smoke") })
