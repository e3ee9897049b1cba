/**
 * Shared pieces of the benchmarks: the machine, the load, timing with warm-up and medians,
 * the zero-latency `Kinesis` layer, the hand-written baselines (floor and limit) and
 * formatting. Nothing here asserts anything: the benchmarks print figures and ratios.
 */
import { create, toBinary } from "@bufbuild/protobuf"
import type { Layer } from "effect"
import { Effect, Layer as L, Logger, LogLevel, ManagedRuntime } from "effect"
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import * as os from "node:os"
import { pathToFileURL } from "node:url"
import * as Zlib from "node:zlib"
import type { DataFileV1, KinesisWriterOptions, PutRecordsResultEntry } from "../src/index.js"
import {
  DataFileEntryRecordSchema,
  DataFileVersion,
  Kinesis,
  KinesisMetrics,
  KinesisWriter,
  LargePayloadStore
} from "../src/index.js"
import { KinesisTest } from "../src/testing.js"

// ---------------------------------------------------------------------------------------------
// Machine and load
// ---------------------------------------------------------------------------------------------

export const machine = () => {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    memoryGiB: os.totalmem() / 2 ** 30,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`
  }
}

/** `load 1.23 / 1.10 / 0.90 (1/5/15 min) on 2 cores`. */
export const loadNote = (): string => {
  const [a, b, c] = os.loadavg()
  return `load ${(a ?? 0).toFixed(2)} / ${(b ?? 0).toFixed(2)} / ${
    (c ?? 0).toFixed(2)
  } (1/5/15 min) on ${os.cpus().length} cores`
}

// ---------------------------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------------------------

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** A full collection, when the process runs with `--expose-gc` (the bench does); nothing otherwise. */
export const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc
  if (g !== undefined) g()
}

/** The records of a pool, cycled to `n` (same objects, reused: generation stays out of the timed region). */
export const cycle = <A>(pool: ReadonlyArray<A>, n: number): Array<A> =>
  Array.from({ length: n }, (_, i) => pool[i % pool.length]!)

export interface Measure<R> {
  readonly name: string
  /** Records per run. */
  readonly n: number
  /** Records per second (wall clock) of each timed run. */
  readonly rates: ReadonlyArray<number>
  /** Seconds (wall clock) of each timed run. */
  readonly seconds: ReadonlyArray<number>
  /** Median of `rates`. */
  readonly rate: number
  /** Median records per CPU-second of the whole process (all threads: main and workers), a figure less sensitive to load. */
  readonly cpuRate: number
  /** What the last timed run returned. */
  readonly last: R
}

export interface Candidate<I, R> {
  readonly name: string
  /** Builds a run's input of `n` records, outside the timed region. */
  readonly setup: (n: number) => I
  /** `signal`: the group's, for a run that can stop midway (the writer's runtime). */
  readonly run: (input: I, signal?: AbortSignal) => Promise<R> | R
  /** Records of each of the two warm-up runs (the second calibrates `n`). */
  readonly warmupN: number
  readonly minN?: number
  readonly maxN?: number
}

const timeOnce = async <I, R>(candidate: Candidate<I, R>, n: number, signal: AbortSignal | undefined) => {
  signal?.throwIfAborted()
  const input = candidate.setup(n)
  gc()
  const cpu = process.cpuUsage()
  const start = performance.now()
  const result = await candidate.run(input, signal)
  const seconds = (performance.now() - start) / 1000
  const used = process.cpuUsage(cpu)
  return { seconds, cpuSeconds: (used.user + used.system) / 1e6, result }
}

/**
 * Each candidate warms up (two runs of `warmupN` records; the second calibrates `n` so that
 * one run lasts about `targetSeconds`), then `runs` rounds run every candidate once, in turn,
 * so that a change of load on the machine hits all of them alike; the median of each. The
 * sections call it with one candidate per child process ({@link measureApart}).
 */
export const measureGroup = async (
  candidates: ReadonlyArray<Candidate<any, any>>,
  options: {
    readonly targetSeconds?: number
    readonly runs?: number
    /** Runs of `warmupN` records before the one that calibrates `n` (default 1). */
    readonly warmups?: number
    readonly signal?: AbortSignal | undefined
  } = {}
): Promise<Array<Measure<any>>> => {
  const signal = options.signal
  const target = options.targetSeconds ?? 1.4
  const sized: Array<
    {
      candidate: Candidate<any, any>
      n: number
      rates: Array<number>
      cpuRates: Array<number>
      seconds: Array<number>
      last: unknown
    }
  > = []
  for (const candidate of candidates) {
    for (let i = 0; i < (options.warmups ?? 1); i++) await timeOnce(candidate, candidate.warmupN, signal)
    const calibration = await timeOnce(candidate, candidate.warmupN, signal)
    const estimate = candidate.warmupN / calibration.seconds
    const n = Math.max(
      candidate.minN ?? 100,
      Math.min(candidate.maxN ?? 1_000_000, Math.round((estimate * target) / 100) * 100)
    )
    sized.push({ candidate, n, rates: [], cpuRates: [], seconds: [], last: calibration.result })
  }
  for (let round = 0; round < (options.runs ?? 3); round++) {
    for (const s of sized) {
      const t = await timeOnce(s.candidate, s.n, signal)
      s.rates.push(s.n / t.seconds)
      s.cpuRates.push(s.n / t.cpuSeconds)
      s.seconds.push(t.seconds)
      s.last = t.result
    }
  }
  return sized.map((s) => ({
    name: s.candidate.name,
    n: s.n,
    rates: s.rates,
    seconds: s.seconds,
    rate: median(s.rates),
    cpuRate: median(s.cpuRates),
    last: s.last
  }))
}

// ---------------------------------------------------------------------------------------------
// Measuring apart: each path in processes of its own
// ---------------------------------------------------------------------------------------------

/** How a child process hands back its figures: one line of JSON after this prefix. */
const CHILD_JSON = "BENCH-CHILD-JSON "
/** Set in the environment of a child process started by {@link runInChild}. */
const CHILD_ENV = "BENCH_MEASURING_CHILD"

// A child of runInChild exits when its parent goes, killed or not: it must not go on
// measuring, loading the machine, with no one to read its figures.
if (process.env[CHILD_ENV] === "1" && process.channel !== undefined) {
  process.channel.unref()
  process.on("disconnect", () => process.exit(1))
}

/** In a child process: hands `figures` to the parent (see {@link runInChild}). */
export const reportToParent = (figures: unknown): void => {
  console.log(CHILD_JSON + JSON.stringify(figures ?? null))
}

/** The module at `moduleUrl` (its `import.meta.url`) is the one the process runs, not one it imports. */
export const isMain = (moduleUrl: string): boolean =>
  process.argv[1] !== undefined && moduleUrl === pathToFileURL(process.argv[1]).href

/**
 * In a child process {@link runInChild} started as `file --flag=spec` (or `--flag`), where
 * `moduleUrl` is that file's: measures with `measure(spec, smoke)`, reports the figures to the
 * parent and exits. Anywhere else it does nothing.
 */
export const serveChild = async (
  moduleUrl: string,
  flag: string,
  measure: (spec: string, smoke: boolean) => Promise<unknown>
): Promise<void> => {
  if (!isMain(moduleUrl)) return
  const arg = process.argv.find((a) => a === flag || a.startsWith(`${flag}=`))
  if (arg === undefined) return
  reportToParent(await measure(arg.slice(flag.length + 1), process.argv.includes("--smoke")))
  process.exit(0)
}

/**
 * Runs `file` in a fresh child process, with this process's runtime flags plus `flags`, and
 * `args`; the figures it reported with {@link reportToParent}, or undefined (and why). What
 * else it printed is shown. `signal` kills it; it exits by itself if this process goes.
 */
export const runInChild = <A>(
  file: string,
  args: ReadonlyArray<string>,
  options: { readonly flags?: ReadonlyArray<string>; readonly signal?: AbortSignal | undefined } = {}
): Promise<A | undefined> =>
  new Promise((resolve) => {
    const signal = options.signal
    if (signal?.aborted === true) return resolve(undefined)
    const which = `${file.slice(file.lastIndexOf("/") + 1)} ${args.join(" ")}`
    const child = spawn(process.execPath, [...process.execArgv, ...(options.flags ?? []), file, ...args], {
      stdio: ["ignore", "pipe", "inherit", "ipc"],
      env: { ...process.env, [CHILD_ENV]: "1" }
    })
    const kill = () => child.kill("SIGKILL")
    signal?.addEventListener("abort", kill, { once: true })
    let settled = false
    const settle = (figures: A | undefined, why?: string) => {
      if (settled) return
      settled = true
      signal?.removeEventListener("abort", kill)
      if (why !== undefined && signal?.aborted !== true) console.log(`a child process (${which}) ${why}`)
      resolve(figures)
    }
    let out = ""
    child.stdout!.setEncoding("utf8")
    child.stdout!.on("data", (chunk: string) => {
      out += chunk
    })
    child.on("error", (e) => settle(undefined, `could not run: ${String(e)}`))
    child.on("close", (code, killedBy) => {
      const lines = out.split("\n")
      const report = lines.find((l) => l.startsWith(CHILD_JSON))
      const rest = lines.filter((l) => !l.startsWith(CHILD_JSON)).join("\n").trimEnd()
      if (rest !== "" && signal?.aborted !== true) console.log(rest)
      if (report === undefined) return settle(undefined, `gave no figures (exit code ${code}, signal ${killedBy})`)
      try {
        settle((JSON.parse(report.slice(CHILD_JSON.length)) as A | null) ?? undefined)
      } catch {
        settle(undefined, `reported figures that do not parse (exit code ${code}, signal ${killedBy})`)
      }
    })
  })

/**
 * Runs `one` for each of `names`, `processes` times, in mirrored order (A B C, then C B A,
 * ...) so that a change of load falls on all alike, and the first names (the ones compared)
 * run next to each other in every pass; `one` measures a name in a fresh child
 * process ({@link runInChild}). Paths timed in turn in one process run each in the heap and
 * JIT state the others left: the writer ran 10-15% slower beside the hand loop than alone,
 * the loop faster, and the producer slower beside `writeBatch`. What each process gave, by
 * name; undefined if one gave nothing.
 */
export const runApart = async <A>(
  names: ReadonlyArray<string>,
  processes: number,
  one: (name: string) => Promise<A | undefined>
): Promise<Map<string, Array<A>> | undefined> => {
  const byName = new Map<string, Array<A>>(names.map((name) => [name, []]))
  for (let p = 0; p < processes; p++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[p % 2 === 0 ? i : names.length - 1 - i]!
      const figures = await one(name)
      if (figures === undefined) return undefined
      byName.get(name)!.push(figures)
    }
  }
  return byName
}

/**
 * Measures candidates apart ({@link runApart}): `measureOne` measures one candidate in a
 * child process, as {@link measureGroup} does, and gives its `Measure`. Per candidate:
 * `rates` and `seconds` are the timed runs of all its processes (each process sizes its own
 * `n`), `rate` their median, `cpuRate` the median of its processes'; `n` and `last` are its
 * first process's.
 */
export const measureApart = async <R>(
  names: ReadonlyArray<string>,
  processes: number,
  measureOne: (name: string) => Promise<Measure<R> | undefined>
): Promise<Array<Measure<R>> | undefined> => {
  const byName = await runApart(names, processes, measureOne)
  if (byName === undefined) return undefined
  return names.map((name) => {
    const measures = byName.get(name)!
    const rates = measures.flatMap((m) => m.rates)
    return {
      ...measures[0]!,
      rates,
      seconds: measures.flatMap((m) => m.seconds),
      rate: median(rates),
      cpuRate: median(measures.map((m) => m.cpuRate))
    }
  })
}

// ---------------------------------------------------------------------------------------------
// The writer under test
// ---------------------------------------------------------------------------------------------

export const WRITER_BASE = {
  streamName: "bench-stream",
  logGroupId: "bench-log-group",
  schemaName: "bench-schema",
  accountId: "123456789012"
} as const satisfies KinesisWriterOptions

const WRITTEN: PutRecordsResultEntry = { _tag: "Written", shardId: "shardId-000000000000", sequenceNumber: "1" }

/** A zero-latency `Kinesis`: every record of every call is answered as written, nothing is kept. */
export const zeroLatencyKinesis: Layer.Layer<Kinesis> = L.succeed(
  Kinesis,
  Kinesis.of({
    putRecords: (request) => Effect.sync(() => request.records.map(() => WRITTEN)),
    describeStreamSummary: (streamName) => Effect.succeed({ streamName, status: "ACTIVE", openShardCount: 4 }),
    listShards: () => Effect.succeed([]),
    ...KinesisTest.unreadable("bench double")
  })
)

/** Only errors of the writer's logs (retries and failed calls log warnings). */
export const quietLogs = Logger.minimumLogLevel(LogLevel.Error)

/** A writer runtime over a `Kinesis` layer, the in-memory store and no-op metrics, built once. */
export const writerRuntime = (
  options: Partial<KinesisWriterOptions>,
  kinesis: Layer.Layer<Kinesis> = zeroLatencyKinesis
) =>
  ManagedRuntime.make(
    KinesisWriter.layer({ ...WRITER_BASE, ...options }).pipe(
      L.provide(kinesis),
      L.provide(LargePayloadStore.layerMemory()),
      L.provide(KinesisMetrics.layerNoop),
      L.provideMerge(quietLogs)
    )
  )

// ---------------------------------------------------------------------------------------------
// Baselines: what a user writes by hand, no Effect
// ---------------------------------------------------------------------------------------------

export interface EncodedByHand {
  readonly data: Uint8Array
  readonly uncompressedSize: number
}

/**
 * One record as a user encodes it by hand: a `record_id`, the whole envelope as a message
 * (`create` with info + standard entry), `toBinary`, and `zlib.gzipSync` (when `gzip`).
 */
export const encodeByHand = (record: DataFileV1, creationTime: bigint, gzip: boolean, level = -1): EncodedByHand => {
  const envelope = create(DataFileEntryRecordSchema, {
    dataFileInfo: {
      filePath: record.filePath,
      creationTime,
      accountId: WRITER_BASE.accountId,
      recordId: randomUUID(),
      logGroupId: WRITER_BASE.logGroupId,
      schemaName: WRITER_BASE.schemaName
    },
    dataFileEntry: { entry: { case: "standard", value: { version: DataFileVersion.V1, dataFileV1: record } } }
  })
  const bytes = toBinary(DataFileEntryRecordSchema, envelope)
  return { data: gzip ? Zlib.gzipSync(bytes, { level }) : bytes, uncompressedSize: bytes.length }
}

/** The floor (gzip) or the limit (no gzip) loop over `records`; returns the bytes produced. */
export const handLoop = (records: ReadonlyArray<DataFileV1>, gzip: boolean): number => {
  const creationTime = BigInt(Date.now())
  let bytes = 0
  for (const record of records) bytes += encodeByHand(record, creationTime, gzip).data.length
  return bytes
}

// ---------------------------------------------------------------------------------------------
// Stopping a section
// ---------------------------------------------------------------------------------------------

/** `{ signal }` for `runPromise`, or nothing. */
export const signalOption = (
  signal: AbortSignal | undefined
): { readonly signal?: AbortSignal } => (signal === undefined ? {} : { signal })

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

export const int = (n: number): string => Math.round(n).toLocaleString("en-US")
export const fixed = (n: number, digits = 2): string => n.toFixed(digits)
export const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`
export const pct = (a: number, b: number): string => `${((100 * a) / b).toFixed(1)}%`

/** A plain text table, columns right-aligned but the first. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd()
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

export const section = (title: string): void => {
  console.log(`\n## ${title}   [${loadNote()}]\n`)
}

/** `1.23 s, 1.19 s, 1.31 s` */
export const secondsList = (xs: ReadonlyArray<number>): string => xs.map((s) => `${s.toFixed(2)} s`).join(", ")
