/**
 * P7, many producers on one stream: N producers, each its own `KinesisWriter` +
 * `KinesisProducer` stack (default settings but what a run names), share one simulated
 * stream of 2 shards (`ShardSimulator`, Kinesis' limits: 1,000 records/s and 1 MiB/s per
 * shard, live clock). Together they are offered 1.5× the stream's capacity for 12 s, in
 * 5-column records, each `send` awaited by one of a fixed set of sender fibers, so that a
 * producer's backpressure holds its callers back (p7Load.ts).
 *
 * (a) In one process: N = 1, 2, 4 producers over one simulator, with default settings and
 *     with pacing the other way (`pace: false` when the default paces, `pace: true` when it
 *     does not), so that the table shows what pacing buys.
 * (b) Across processes: the stream served over loopback HTTP by a process of its own
 *     (p7Stream.ts), N = 1, 2, 4, 8 producer processes (p7Producer.ts), each with a real SDK
 *     client, default settings. Then the same with one producer offered 3× each other's load:
 *     the others should keep their max-min fair share.
 *
 * Per run: goodput (receipts within the window over capacity × window), throttled share
 * (records the stream refused for its limits over records it received, the drain after the
 * window included), Jain's fairness index over the producers' receipts in the window, records
 * failed for good by throttling (their last error `ProvisionedThroughputExceededException`, or
 * `Expired` after it), every record failed, and the p99 of send-to-receipt latency. Targets:
 * goodput ≥ 90%, throttled ≤ 5%, Jain ≥ 0.9, none failed for good by throttling.
 *
 * Nothing passes or fails: it prints figures.
 *
 *   npx tsx --expose-gc bench/run.ts --only p7 [--smoke]
 */
import { Context, Effect, Layer } from "effect"
import type { ChildProcess } from "node:child_process"
import { fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import type { KinesisProducerOptions } from "../src/index.js"
import { Kinesis, KinesisProducer, KinesisWriter } from "../src/index.js"
import { ShardSimulator } from "../src/testing.js"
import { fixed, int, pct, quietLogs, section, signalOption, table, writerRuntime } from "./common.js"
import type { OfferWindow, ProducerFigures } from "./p7Load.js"
import {
  fairShares,
  jain,
  makeOffer,
  P7_COLUMNS,
  percentile,
  producerStack,
  recordPool,
  SENDER_SECONDS
} from "./p7Load.js"
import type { ProducerCommand } from "./p7Producer.js"

const SHARDS = 2
/** The offer, in multiples of the stream's capacity. */
const OVERLOAD = 1.5
/** The heavy producer's offer, in multiples of each other one's. */
const HEAVY = 3
/** From the stacks ready to the window's start (then rounded up to a whole second). */
const LEAD_MS = 500

/** The issue's targets, for N = 1, 2 and 4, in one process and across processes. */
export const P7Targets = { goodput: 0.9, throttled: 0.05, jain: 0.9, failedByThrottling: 0 } as const

/** One run's producer settings. */
interface Mode {
  readonly label: string
  readonly options: KinesisProducerOptions
}

type Shape = "even" | "heavy"

/** What one run gave: each producer's figures and what the stream received. */
interface RunFigures {
  readonly n: number
  readonly mode: string
  readonly shape: Shape
  readonly producers: ReadonlyArray<ProducerFigures>
  readonly totals: Totals
  /** From the window's end to the last send settled (or the drain's bound); across processes, to the last figures back. */
  readonly drainMs: number
}

type Totals = Pick<ShardSimulator.SimulatorTotals, "attempted" | "written" | "throttled">

/** What the stream received between two readings of its totals. */
const since = (before: Totals, after: Totals): Totals => ({
  attempted: after.attempted - before.attempted,
  written: after.written - before.written,
  throttled: after.throttled - before.throttled
})

/** One row of a table, from a run. */
export interface P7Row {
  readonly scope: "one process" | "processes"
  readonly shape: Shape
  readonly n: number
  readonly mode: string
  /** Sends started over the offers due. */
  readonly offeredShare: number
  readonly goodput: number
  readonly throttledShare: number
  /** Over every producer ("even"), over all but the heavy one ("heavy"). */
  readonly jain: number
  readonly failedByThrottling: number
  /** Sends that ended without a receipt, any cause. */
  readonly failed: number
  /** Sends still open at the end of the drain. */
  readonly unsettled: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** From the window's end to the last send settled. */
  readonly drainMs: number
  /** Each producer's receipts in the window over its max-min fair share. */
  readonly ofFairShare: ReadonlyArray<number>
  readonly failedByCode: Readonly<Record<string, number>>
  readonly misses: ReadonlyArray<string>
}

export interface P7Result {
  readonly smoke: boolean
  readonly windowSeconds: number
  /** Records per second the stream takes. */
  readonly capacity: number
  readonly rows: ReadonlyArray<P7Row>
}

const plan = (smoke: boolean) => ({
  windowMs: smoke ? 2_000 : 12_000,
  // Past the default recordTtl (30 s): what is still open then has outlived it.
  drainMs: smoke ? 15_000 : 35_000,
  inProcess: smoke ? [1, 2] : [1, 2, 4],
  processes: smoke ? [1, 2] : [1, 2, 4, 8],
  heavy: smoke ? [2] : [2, 4, 8]
})

/** The default settings, and pacing the other way. */
const modes = (smoke: boolean): ReadonlyArray<Mode> => {
  const paced = Boolean(KinesisProducer.defaults.pace)
  const base = { label: `defaults (pace ${paced ? "on" : "off"})`, options: {} }
  return smoke ? [base] : [base, { label: `pace: ${!paced}`, options: { pace: !paced } }]
}

/** Each producer's offer, records/s: an even split of 1.5× capacity, or one producer offered 3× each other's. */
const ratesOf = (n: number, shape: Shape, capacity: number): Array<number> => {
  const unit = (OVERLOAD * capacity) / (shape === "even" ? n : n - 1 + HEAVY)
  return Array.from({ length: n }, (_, i) => (shape === "heavy" && i === 0 ? HEAVY * unit : unit))
}

const seedOf = (producer: number) => 1 + 10_000 * producer
const wholeSecondAfter = (ms: number) => Math.ceil(ms / 1000) * 1000

/**
 * Records per second the stream takes: its shards times the lower of a shard's two limits,
 * in records of the size the writer makes of the offered ones (data plus partition key).
 */
const measureCapacity = async (): Promise<{ readonly capacity: number; readonly bytesPerRecord: number }> => {
  const runtime = writerRuntime({})
  try {
    const writer = await runtime.runPromise(KinesisWriter)
    const batch = await runtime.runPromise(writer.prepare(recordPool(seedOf(0)).slice(0, 500)))
    const bytesPerRecord = batch.records.reduce((n, r) => n + r.data.length + r.partitionKeyPrefix.length + 2, 0) /
      batch.records.length
    const perShard = Math.min(
      ShardSimulator.Defaults.recordsPerSecondPerShard,
      ShardSimulator.Defaults.bytesPerSecondPerShard / bytesPerRecord
    )
    return { capacity: SHARDS * perShard, bytesPerRecord }
  } finally {
    await runtime.dispose()
  }
}

// ---------------------------------------------------------------------------------------------
// (a) in one process
// ---------------------------------------------------------------------------------------------

const runInProcess = (
  rates: ReadonlyArray<number>,
  mode: Mode,
  windowMs: number,
  drainMs: number
): Effect.Effect<Omit<RunFigures, "n" | "mode" | "shape">, unknown> =>
  Effect.gen(function*() {
    const simulator = yield* ShardSimulator.make({ shards: SHARDS, history: false })
    const kinesis = Layer.succeed(Kinesis, simulator.kinesis)
    const offers = yield* Effect.forEach(rates, (rate, i) =>
      Effect.flatMap(
        Layer.build(producerStack(kinesis, mode.options)),
        (context) => makeOffer(Context.get(context, KinesisProducer), { rate, seed: seedOf(i) })
      ))
    const before = yield* simulator.state.totals
    const window = { startAt: wholeSecondAfter(Date.now() + LEAD_MS), windowMs, drainMs }
    const figures = yield* Effect.forEach(offers, (offer) => offer(window), { concurrency: "unbounded" })
    return {
      producers: figures,
      totals: since(before, yield* simulator.state.totals),
      drainMs: Date.now() - window.startAt - windowMs
    }
  }).pipe(Effect.scoped, Effect.provide(quietLogs))

// ---------------------------------------------------------------------------------------------
// (b) across processes
// ---------------------------------------------------------------------------------------------

interface Message {
  readonly kind: string
  readonly message?: string
}

/** The next message of `kind` from `child`; rejects on its `error` message or its exit. */
const nextMessage = <A extends Message>(child: ChildProcess, kind: string): Promise<A> =>
  new Promise((resolve, reject) => {
    const done = () => {
      child.off("message", onMessage)
      child.off("exit", onExit)
    }
    const onMessage = (m: Message) => {
      if (m.kind === kind) {
        done()
        resolve(m as A)
      } else if (m.kind === "error") {
        done()
        reject(new Error(`a P7 child process failed: ${m.message ?? "no message"}`))
      }
    }
    const onExit = (code: number | null, signal: string | null) => {
      done()
      reject(new Error(`a P7 child process exited (code ${code}, signal ${signal})`))
    }
    child.on("message", onMessage)
    child.once("exit", onExit)
  })

const request = <A extends Message>(child: ChildProcess, command: unknown, reply: string): Promise<A> => {
  const answer = nextMessage<A>(child, reply)
  child.send(command as object)
  return answer
}

const forkChild = (file: string): ChildProcess =>
  fork(fileURLToPath(new URL(file, import.meta.url)), [], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })

const stopChild = (child: ChildProcess) => {
  child.removeAllListeners("exit")
  if (child.connected) child.disconnect()
  if (child.exitCode === null && child.signalCode === null) child.kill()
}

/** The stream's process and `producers` producer processes, up and waiting; `stop` ends them all. */
const startProcesses = async (producers: number, signal: AbortSignal | undefined) => {
  const stream = forkChild("./p7Stream.ts")
  const children = Array.from({ length: producers }, () => forkChild("./p7Producer.ts"))
  const stop = () => [stream, ...children].forEach(stopChild)
  signal?.addEventListener("abort", stop, { once: true })
  try {
    const [listening] = await Promise.all([
      nextMessage<Message & { readonly endpoint: string }>(stream, "listening"),
      ...children.map((child) => nextMessage(child, "up"))
    ])
    return { endpoint: listening.endpoint, stream, children, stop }
  } catch (e) {
    stop()
    throw e
  }
}

type Processes = Awaited<ReturnType<typeof startProcesses>>

const runAcrossProcesses = async (
  processes: Processes,
  rates: ReadonlyArray<number>,
  mode: Mode,
  windowMs: number,
  drainMs: number
): Promise<Omit<RunFigures, "n" | "mode" | "shape">> => {
  const { children, endpoint, stream } = processes
  await request(stream, { kind: "reset", shards: SHARDS }, "reset")
  const used = children.slice(0, rates.length)
  await Promise.all(used.map((child, i) =>
    request(
      child,
      {
        kind: "prepare",
        endpoint,
        options: mode.options,
        plan: { rate: rates[i]!, seed: seedOf(i) }
      } satisfies ProducerCommand,
      "prepared"
    )
  ))
  const totals = () =>
    request<Message & { readonly totals: Totals }>(stream, { kind: "totals" }, "totals").then((m) => m.totals)
  const before = await totals()
  const window: OfferWindow = { startAt: wholeSecondAfter(Date.now() + LEAD_MS), windowMs, drainMs }
  const figures = await Promise.all(used.map((child) =>
    request<Message & { readonly figures: ProducerFigures }>(
      child,
      { kind: "go", window } satisfies ProducerCommand,
      "figures"
    )
  ))
  const drained = Date.now() - window.startAt - windowMs
  return { producers: figures.map((f) => f.figures), totals: since(before, await totals()), drainMs: drained }
}

// ---------------------------------------------------------------------------------------------
// Figures and tables
// ---------------------------------------------------------------------------------------------

const summarize = (
  scope: P7Row["scope"],
  run: RunFigures,
  capacity: number,
  windowMs: number
): P7Row => {
  const producers = run.producers
  const sum = (f: (p: ProducerFigures) => number) => producers.reduce((a, p) => a + f(p), 0)
  const windowCapacity = (capacity * windowMs) / 1000
  const receipts = producers.map((p) => p.deliveredInWindow)
  const fair = fairShares(producers.map((p) => p.due), windowCapacity)
  const failedByCode: Record<string, number> = {}
  for (const p of producers) {
    for (const [code, count] of Object.entries(p.undelivered)) failedByCode[code] = (failedByCode[code] ?? 0) + count
    if (p.refused > 0) {
      failedByCode["refused (other errors)"] = (failedByCode["refused (other errors)"] ?? 0) + p.refused
    }
  }
  const latencies = producers.flatMap((p) => p.latenciesMs).sort((a, b) => a - b)
  const row = {
    scope,
    shape: run.shape,
    n: run.n,
    mode: run.mode,
    offeredShare: sum((p) => p.offered) / sum((p) => p.due),
    goodput: sum((p) => p.deliveredInWindow) / windowCapacity,
    throttledShare: run.totals.attempted === 0 ? 0 : run.totals.throttled / run.totals.attempted,
    jain: jain(run.shape === "heavy" ? receipts.slice(1) : receipts),
    failedByThrottling: sum((p) => p.failedByThrottling),
    failed: Object.values(failedByCode).reduce((a, x) => a + x, 0),
    unsettled: sum((p) => p.unsettled),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    drainMs: run.drainMs,
    ofFairShare: receipts.map((x, i) => x / fair[i]!),
    failedByCode
  }
  const othersLowest = Math.min(...row.ofFairShare.slice(1))
  const misses = [
    row.goodput < P7Targets.goodput ? "goodput" : undefined,
    row.throttledShare > P7Targets.throttled ? "throttled" : undefined,
    row.jain < P7Targets.jain ? "Jain" : undefined,
    row.failedByThrottling > P7Targets.failedByThrottling ? "failed by throttling" : undefined,
    run.shape === "heavy" && othersLowest < P7Targets.jain ? "others' share" : undefined
  ].filter((m) => m !== undefined)
  return { ...row, misses }
}

const seconds = (ms: number) => (Number.isNaN(ms) ? "—" : ms < 1_000 ? `${int(ms)} ms` : `${fixed(ms / 1_000, 2)} s`)
const verdictOf = (row: P7Row) => (row.misses.length === 0 ? "meets" : `misses: ${row.misses.join(", ")}`)

const printRuns = (rows: ReadonlyArray<P7Row>) => {
  const heavy = rows[0]?.shape === "heavy"
  console.log(table(
    [
      "N",
      "producer settings",
      "offered",
      "goodput",
      "throttled",
      heavy ? "Jain (others)" : "Jain",
      ...(heavy ? ["others' lowest / fair", "heavy / fair"] : []),
      "failed for good by throttling",
      "failed (all)",
      "send→receipt p50 / p99",
      "vs targets"
    ],
    rows.map((r) => [
      String(r.n),
      r.mode,
      pct(r.offeredShare, 1),
      pct(r.goodput, 1),
      pct(r.throttledShare, 1),
      fixed(r.jain, 2),
      ...(heavy ? [`${fixed(Math.min(...r.ofFairShare.slice(1)), 2)}×`, `${fixed(r.ofFairShare[0]!, 2)}×`] : []),
      int(r.failedByThrottling),
      `${int(r.failed)}${r.unsettled > 0 ? ` (+${int(r.unsettled)} open)` : ""}`,
      `${seconds(r.p50Ms)} / ${seconds(r.p99Ms)}`,
      verdictOf(r)
    ])
  ))
  console.log(
    `\n  targets: goodput ≥ ${pct(P7Targets.goodput, 1)}, throttled ≤ ${pct(P7Targets.throttled, 1)}, Jain ≥ ${
      fixed(P7Targets.jain, 2)
    }, ${P7Targets.failedByThrottling} failed for good by throttling${
      heavy ? `; the others each ≥ ${fixed(P7Targets.jain, 2)}× their fair share` : ""
    }`
  )
  console.log(`  drain after the window: ${rows.map((r) => seconds(r.drainMs)).join(", ")}`)
  for (const r of rows.filter((r) => r.failed > 0)) {
    const codes = Object.entries(r.failedByCode).sort((a, b) => b[1] - a[1])
    console.log(`  failed, N = ${r.n}, ${r.mode}: ${codes.map(([code, count]) => `${code} ${int(count)}`).join(", ")}`)
  }
  if (heavy) {
    console.log("  each producer's receipts in the window / its max-min fair share (the heavy one first):")
    for (const r of rows) console.log(`    N = ${r.n}: ${r.ofFairShare.map((x) => `${fixed(x, 2)}×`).join("  ")}`)
  }
  console.log("")
}

/** The rows of the run's Targets table: default settings, N ≤ 4, and the heavy runs. */
export const p7TargetRows = (result: P7Result) =>
  result.rows.filter((r) => r.mode.startsWith("defaults") && (r.n <= 4 || r.shape === "heavy")).map((r) => ({
    label: `P7 ${r.scope}, N = ${r.n}${r.shape === "heavy" ? ", one offered 3×" : ""}: goodput / throttled / Jain${
      r.shape === "heavy" ? " (others)" : ""
    } / failed by throttling`,
    measured: `${pct(r.goodput, 1)} / ${pct(r.throttledShare, 1)} / ${fixed(r.jain, 2)} / ${int(r.failedByThrottling)}`,
    target: `≥ ${pct(P7Targets.goodput, 1)} / ≤ ${pct(P7Targets.throttled, 1)} / ≥ ${fixed(P7Targets.jain, 2)} / 0`,
    ok: r.misses.length === 0
  }))

// ---------------------------------------------------------------------------------------------
// The section
// ---------------------------------------------------------------------------------------------

const printSetup = (smoke: boolean, capacity: number, bytesPerRecord: number, windowMs: number) => {
  console.log(
    `Stream: ShardSimulator, ${SHARDS} shards, 1,000 records/s and 1 MiB/s per shard (live clock); records of ${P7_COLUMNS} columns, ${
      fixed(bytesPerRecord, 0)
    } B on the stream (data + key): capacity ${int(capacity)} records/s.`
  )
  console.log(
    `Offer: ${OVERLOAD}× capacity (${int(OVERLOAD * capacity)} records/s) for ${
      windowMs / 1000
    } s, split evenly, or one producer offered ${HEAVY}× each other's. Each producer`
  )
  console.log(
    `has as many sender fibers as it is offered records in ${SENDER_SECONDS} s, each awaiting its send to the receipt: offers due while`
  )
  console.log(
    "all are busy wait on the callers' side (\"offered\" = sends started / offers due). After the window, the sends"
  )
  console.log(
    "still open are awaited (the drain); throttled share = refused for the shard limits / records the stream received,"
  )
  console.log(
    "drain included; goodput = receipts within the window / (capacity × window); Jain over the producers' receipts."
  )
  if (smoke) console.log("Smoke: the figures mean nothing.")
  console.log("")
}

const took = (since: number) => `${fixed((performance.now() - since) / 1000, 0)} s`

/** (a): each N, each mode, in this process. */
const partA = async (
  smoke: boolean,
  capacity: number,
  signal: AbortSignal | undefined,
  summary: (run: RunFigures) => P7Row
) => {
  const { drainMs, inProcess, windowMs } = plan(smoke)
  const started = performance.now()
  const rows: Array<P7Row> = []
  for (const n of inProcess) {
    for (const mode of modes(smoke)) {
      signal?.throwIfAborted()
      const run = await Effect.runPromise(
        runInProcess(ratesOf(n, "even", capacity), mode, windowMs, drainMs),
        signalOption(signal)
      )
      rows.push(summary({ ...run, n, mode: mode.label, shape: "even" }))
    }
  }
  console.log(`(a) N producers in one process, over one simulator (${took(started)}):\n`)
  printRuns(rows)
  return rows
}

/** (b): each N, evenly and with one heavy producer, in processes; default settings. */
const partB = async (
  smoke: boolean,
  capacity: number,
  signal: AbortSignal | undefined,
  summary: (run: RunFigures) => P7Row
) => {
  const { drainMs, heavy, processes, windowMs } = plan(smoke)
  let started = performance.now()
  const children = await startProcesses(Math.max(...processes, ...heavy), signal)
  const rows: Array<P7Row> = []
  try {
    const [base] = modes(smoke)
    for (const [shape, ns] of [["even", processes], ["heavy", heavy]] as const) {
      const part: Array<P7Row> = []
      for (const n of ns) {
        signal?.throwIfAborted()
        const run = await runAcrossProcesses(children, ratesOf(n, shape, capacity), base!, windowMs, drainMs)
        part.push(summary({ ...run, n, mode: base!.label, shape }))
      }
      console.log(
        shape === "even"
          ? `(b) N producer processes, each a real SDK client, over one stream served on loopback HTTP (${
            took(started)
          }, the processes' start included):\n`
          : `(b) the same, one producer offered ${HEAVY}× each other's load (${took(started)}):\n`
      )
      printRuns(part)
      for (const row of part) rows.push(row)
      started = performance.now()
    }
  } finally {
    children.stop()
  }
  return rows
}

/** The section: (a), then (b); prints its tables and gives every run's row. `signal` stops it (children killed). */
export const runP7 = async (
  options: { readonly smoke?: boolean; readonly signal?: AbortSignal | undefined } = {}
): Promise<P7Result> => {
  const smoke = options.smoke ?? false
  const signal = options.signal
  const { windowMs } = plan(smoke)
  section(`P7 many producers on one stream${smoke ? " (smoke)" : ""}`)
  const { bytesPerRecord, capacity } = await measureCapacity()
  printSetup(smoke, capacity, bytesPerRecord, windowMs)
  const summary = (scope: P7Row["scope"]) => (run: RunFigures) => summarize(scope, run, capacity, windowMs)
  const inOne = await partA(smoke, capacity, signal, summary("one process"))
  const across = await partB(smoke, capacity, signal, summary("processes"))
  return { smoke, windowSeconds: windowMs / 1000, capacity, rows: [...inOne, ...across] }
}
