/**
 * P1, the encode path: records/s of `writeBatch` against a zero-latency in-memory `Kinesis`
 * (no-op metrics, in-memory large-payload store), against two hand-written loops over the
 * same records with no Effect: the floor (envelope message, `toBinary`, `gzipSync`) and the
 * limit (the same without gzip). Plus, at 50 columns: compression level 1 against the
 * default, 0/1/2 compression workers, and the `KinesisTest` double against a trivial layer.
 * Each measure runs in fresh child processes of its own (this file with `--p1-child`), as
 * a service runs one of them, not in turn beside the others in one heap.
 */
import type { Layer } from "effect"
import { availableParallelism } from "node:os"
import { fileURLToPath } from "node:url"
import type { DataFileV1, Kinesis, KinesisWriterOptions, WriteResult } from "../src/index.js"
import { KinesisWriter, WriterDefaults } from "../src/index.js"
import { KinesisTest, RecordGenerator } from "../src/testing.js"
import type { Candidate, Measure } from "./common.js"
import {
  cycle,
  fixed,
  handLoop,
  int,
  measureApart,
  measureGroup,
  pct,
  ratio,
  runInChild,
  secondsList,
  section,
  serveChild,
  signalOption,
  table,
  writerRuntime,
  zeroLatencyKinesis
} from "./common.js"

/** What P1 reads of a writer run's `WriteResult`. */
export type WriteFigures = Pick<WriteResult, "records" | "uncompressedBytes" | "compressedBytes" | "kinesisCalls">

export interface ColumnFigures {
  readonly columns: number
  readonly writer: Measure<WriteFigures>
  /** `last`: the bytes the loop's gzip gave. */
  readonly floor: Measure<number>
  readonly limit: Measure<number>
}

export interface P1Result {
  readonly byColumns: ReadonlyArray<ColumnFigures>
  readonly level1: Measure<WriteFigures>
  readonly workers: ReadonlyArray<{ readonly workers: number; readonly measure: Measure<WriteFigures> }>
  readonly kinesisTest: Measure<WriteFigures>
}

/** Distinct records per column count (cycled to the run size). */
const POOL: Record<number, number> = { 5: 4_000, 50: 2_000, 500: 300 }
/** `--smoke`: every measure of the 50-column group, on a tiny pool, one short round (the figures mean nothing). */
const SMOKE_POOL: Record<number, number> = { 50: 100 }

export interface P1Options {
  /** Tiny sizes: checks that the section runs, not what it measures. */
  readonly smoke?: boolean
  /** Stops the section: the process measuring is killed. */
  readonly signal?: AbortSignal | undefined
}

/** A writer built once for its configuration; the runtime is disposed after the group. */
const writerCandidate = (
  name: string,
  pool: ReadonlyArray<DataFileV1>,
  options: Partial<KinesisWriterOptions>,
  disposers: Array<() => Promise<void>>,
  kinesis: Layer.Layer<Kinesis> = zeroLatencyKinesis
): Candidate<Array<DataFileV1>, WriteResult> => {
  const runtime = writerRuntime(options, kinesis)
  disposers.push(() => runtime.dispose())
  const writer = runtime.runSync(KinesisWriter)
  // The warm-up runs are full batches: the worker pool starts on the first one.
  return {
    name,
    setup: (n) => cycle(pool, n),
    run: (batch, signal) => runtime.runPromise(writer.writeBatch(batch), signalOption(signal)),
    warmupN: pool.length,
    minN: pool.length
  }
}

const loopCandidate = (
  name: string,
  pool: ReadonlyArray<DataFileV1>,
  gzip: boolean
): Candidate<Array<DataFileV1>, number> => ({
  name,
  setup: (n) => cycle(pool, n),
  run: (records) => handLoop(records, gzip),
  warmupN: pool.length,
  minN: pool.length
})

/** The measures of a column count, by name: the three compared at every count, the variants at 50. */
const measureNames = (columns: number): Array<string> => [
  "writeBatch",
  "floor",
  "limit",
  ...(columns === 50
    ? ["level 1", "KinesisTest", ...otherWorkers().map((n) => `workers ${n}`)]
    : [])
]

/** The compression worker counts measured beside the default (0, 1 and 2 in all). */
const otherWorkers = () => [0, 1, 2].filter((n) => n !== WriterDefaults.compressionWorkers)

/** The candidate a measure's name stands for. */
const candidateFor = (
  name: string,
  pool: ReadonlyArray<DataFileV1>,
  disposers: Array<() => Promise<void>>
): Candidate<Array<DataFileV1>, WriteResult> | Candidate<Array<DataFileV1>, number> => {
  switch (name) {
    case "writeBatch":
      return writerCandidate(name, pool, {}, disposers)
    case "floor":
      return loopCandidate(name, pool, true)
    case "limit":
      return loopCandidate(name, pool, false)
    case "level 1":
      return writerCandidate(name, pool, { compressionLevel: 1 }, disposers)
    case "KinesisTest":
      return writerCandidate(name, pool, {}, disposers, KinesisTest.layer())
    default:
      return writerCandidate(name, pool, { compressionWorkers: Number(name.slice("workers ".length)) }, disposers)
  }
}

/** In a child process: one measure (`columns:name`), with the part of its `last` the parent reads. */
const measureInChild = async (spec: string, smoke: boolean): Promise<Measure<WriteFigures | number>> => {
  const [columns, name] = [Number(spec.slice(0, spec.indexOf(":"))), spec.slice(spec.indexOf(":") + 1)]
  const pool = RecordGenerator.makeDataFiles((smoke ? SMOKE_POOL : POOL)[columns]!, { columns, seed: 1_000 * columns })
  const disposers: Array<() => Promise<void>> = []
  try {
    const [m] = await measureGroup([candidateFor(name, pool, disposers)], timingOf(smoke))
    const last = m!.last as WriteResult | number
    return {
      ...m!,
      last: typeof last === "number" ? last : {
        records: last.records,
        uncompressedBytes: last.uncompressedBytes,
        compressedBytes: last.compressedBytes,
        kinesisCalls: last.kinesisCalls
      }
    }
  } finally {
    for (const dispose of disposers) await dispose()
  }
}

const timingOf = (smoke: boolean) => smoke ? { targetSeconds: 0.01, runs: 1, warmups: 0 } : {}

/** Processes per measure: two, alternating, so that the machine's load falls on all. */
const PROCESSES = { full: 2, smoke: 1 }

const perRecord = (r: WriteFigures) => ({
  uncompressed: r.uncompressedBytes / r.records,
  compressed: r.compressedBytes / r.records,
  callsPer1000: (1000 * r.kinesisCalls) / r.records
})

/** Its rate, and the seconds of its runs (each process sizes its own `n`: the first's is shown). */
const describe = (m: Measure<unknown>) => `${int(m.rate)} rec/s (n≈${int(m.n)}: ${secondsList(m.seconds)})`

export const runP1 = async (options: P1Options = {}): Promise<P1Result> => {
  section("P1 encode path: writeBatch vs hand-written loops (zero-latency Kinesis, in-memory store, no-op metrics)")
  const smoke = options.smoke === true
  const processes = smoke ? PROCESSES.smoke : PROCESSES.full
  console.log(
    `Each measure runs in ${processes} fresh process(es) of its own, started in mirrored order (so a change of load hits`
  )
  const { runs, warmups } = { runs: 3, warmups: 1, ...timingOf(smoke) }
  console.log(
    `all alike): in each, ${
      warmups + 1
    } warm-up runs (the last sizes the runs to ~1.4 s), then ${runs} timed runs; the figure`
  )
  console.log(`is the median of its ${processes * runs} timed runs. Same pre-generated records`)
  console.log(
    "(RecordGenerator.makeDataFiles, cycled) for every measure of a column count. writeBatch: one call per run,"
  )
  console.log(
    `default options (compressionWorkers ${WriterDefaults.compressionWorkers} on this machine, level -1 = 6), ` +
      "writer layer built once per configuration."
  )
  console.log(
    "floor = per record: record_id + create(DataFileEntryRecordSchema, info + standard entry) + toBinary + zlib.gzipSync;"
  )
  console.log("limit = the same loop without gzip. Both on the main thread, no Effect.")
  console.log(
    "rec/CPU-s = records per CPU-second of the whole process (main thread + workers): less sensitive to load.\n"
  )

  const byColumns: Array<ColumnFigures> = []
  let level1: Measure<WriteFigures> | undefined
  let kinesisTest: Measure<WriteFigures> | undefined
  const workers: Array<{ workers: number; measure: Measure<WriteFigures> }> = []
  const file = fileURLToPath(import.meta.url)
  for (const columns of smoke ? [50] : [5, 50, 500]) {
    const measures = await measureApart<any>(
      measureNames(columns),
      processes,
      (name) =>
        runInChild<Measure<any>>(file, [`--p1-child=${columns}:${name}`, ...(smoke ? ["--smoke"] : [])], {
          signal: options.signal
        })
    )
    options.signal?.throwIfAborted()
    if (measures === undefined) throw new Error(`a process measuring ${columns} columns gave no figures`)
    const [writer, floor, limit, ...variants] = measures
    byColumns.push({ columns, writer: writer!, floor: floor!, limit: limit! })
    console.log(
      `  ${String(columns).padStart(3)} columns: writeBatch ${describe(writer!)}, floor ${describe(floor!)}, limit ${
        describe(limit!)
      }`
    )
    for (const v of variants) console.log(`              ${v.name}: ${describe(v)}`)
    if (columns === 50) {
      level1 = variants[0]!
      kinesisTest = variants[1]!
      workers.push({ workers: WriterDefaults.compressionWorkers, measure: writer! })
      otherWorkers().forEach((n, i) => workers.push({ workers: n, measure: variants[2 + i]! }))
      workers.sort((a, b) => a.workers - b.workers)
    }
  }

  console.log(
    `\nThroughput (records/s wall clock, median of ${processes}×${runs} runs; in brackets records per CPU-second):\n`
  )
  console.log(table(
    ["columns", "writeBatch", "floor", "writer/floor", "limit", "writer/limit", "floor/limit"],
    byColumns.map((c) => [
      String(c.columns),
      `${int(c.writer.rate)} [${int(c.writer.cpuRate)}]`,
      `${int(c.floor.rate)} [${int(c.floor.cpuRate)}]`,
      `${ratio(c.writer.rate, c.floor.rate)} [${ratio(c.writer.cpuRate, c.floor.cpuRate)}]`,
      `${int(c.limit.rate)} [${int(c.limit.cpuRate)}]`,
      `${pct(c.writer.rate, c.limit.rate)} [${pct(c.writer.cpuRate, c.limit.cpuRate)}]`,
      pct(c.floor.rate, c.limit.rate)
    ])
  ))
  const c50 = byColumns.find((c) => c.columns === 50)!
  const cores = availableParallelism()
  const bound = cores * c50.floor.cpuRate
  console.log(
    `\nBound at 50 columns on this machine: writeBatch does at least the floor's work per record (serialize + gzip, ` +
      `1/${
        int(c50.floor.cpuRate)
      } CPU-s); spread perfectly over ${cores} cores with no one else running, that is at most ` +
      `${int(bound)} rec/s = ${ratio(bound, c50.floor.rate)} the floor and ${pct(bound, c50.limit.rate)} of the limit.`
  )
  const default50 = c50.writer
  const d = perRecord(default50.last)
  const variantRow = (label: string, m: Measure<WriteFigures>) => {
    const p = perRecord(m.last)
    return [
      label,
      int(m.rate),
      int(m.cpuRate),
      ratio(m.rate, default50.rate),
      fixed(p.compressed, 1),
      pct(p.compressed, d.compressed)
    ]
  }
  console.log("\nVariants at 50 columns (writeBatch, each in processes of its own, as the default):\n")
  console.log(table(
    ["configuration", "records/s", "rec/CPU-s", "vs default", "gzip B/record", "vs default"],
    [
      variantRow(`default (level -1 = 6, ${WriterDefaults.compressionWorkers} workers)`, default50),
      variantRow("compressionLevel 1", level1!),
      ...workers.filter((w) => w.workers !== WriterDefaults.compressionWorkers).map((w) =>
        variantRow(
          `compressionWorkers ${w.workers}${w.workers === 0 ? " (gzip on the main thread)" : ""}`,
          w.measure
        )
      ),
      variantRow("KinesisTest.layer() instead of the trivial layer", kinesisTest!)
    ]
  ))

  console.log(
    "\nBytes on the wire per record and Kinesis calls (from the WriteResult of the last timed run; floor = the hand loop's gzip):\n"
  )
  const bytesRow = (label: string, r: WriteFigures, floorBytes?: number) => {
    const p = perRecord(r)
    return [
      label,
      int(r.records),
      fixed(p.uncompressed, 1),
      fixed(p.compressed, 1),
      pct(p.compressed, p.uncompressed),
      floorBytes === undefined ? "" : fixed(floorBytes, 1),
      int(r.kinesisCalls),
      fixed(p.callsPer1000, 2)
    ]
  }
  console.log(table(
    [
      "columns",
      "records",
      "before gzip B/rec",
      "after gzip B/rec",
      "after/before",
      "floor gzip B/rec",
      "calls",
      "calls per 1,000 rec"
    ],
    [
      ...byColumns.map((c) => bytesRow(String(c.columns), c.writer.last, c.floor.last / c.floor.n)),
      bytesRow("50, level 1", level1!.last)
    ]
  ))
  return { byColumns, level1: level1!, workers, kinesisTest: kinesisTest! }
}

await serveChild(import.meta.url, "--p1-child", measureInChild)
