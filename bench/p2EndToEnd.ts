/**
 * P2, end to end with real latency: 10,000 records of 50 columns through the real SDK
 * Kinesis client (NodeHttpHandler, maxAttempts 1, as test/support/LocalAws.ts makes it) to a
 * loopback PutRecords endpoint that answers after 25 ms and does no work per record
 * (bench/fakeKinesis.ts, a child process); against what a user writes by hand: per chunk of
 * 500, encode + gzip as the floor loop, then one PutRecordsCommand, sequentially, same
 * endpoint, same client configuration. With `--p2-fidelity` (not in the default run: it does
 * not fit the section's time bound on a loaded machine), a second figure: one round of the
 * same on kinesalite behind a proxy that adds the same delay (bench/servers.ts); kinesalite's
 * CPU on the same cores bounds that one, so it is not the target.
 */
import type { KinesisClient } from "@aws-sdk/client-kinesis"
import { PutRecordsCommand } from "@aws-sdk/client-kinesis"
import { Layer, ManagedRuntime } from "effect"
import type { ChildProcess } from "node:child_process"
import { fork } from "node:child_process"
import { availableParallelism } from "node:os"
import { fileURLToPath } from "node:url"
import type { DataFileV1 } from "../src/index.js"
import { Kinesis, KinesisMetrics, KinesisWriter, LargePayloadStore, WriterDefaults } from "../src/index.js"
import { partitionKey } from "../src/internal/core/partitionKey.js"
import { RecordGenerator } from "../src/testing.js"
import { createStream, makeKinesisClient } from "../test/support/LocalAws.js"
import {
  encodeByHand,
  fixed,
  int,
  median,
  quietLogs,
  ratio,
  runApart,
  runInChild,
  section,
  serveChild,
  table,
  WRITER_BASE
} from "./common.js"

export const P2_RECORDS = 10_000
export const P2_DELAY_MS = 25
const P2_WARMUP = 500
/** Processes per path, and timed runs in each (after an untimed one). */
const P2_PROCESSES = 2
const P2_RUNS = 2
/** `--smoke`: the same path at tiny sizes, one run each (the figures mean nothing). */
const SMOKE = { records: 200, warmup: 50, processes: 1, runs: 1 } as const
/** Records of the kinesalite ("fidelity") round. */
const P2_FIDELITY_RECORDS = 5_000

export interface P2Options {
  readonly delayMs?: number
  /** Also one round on kinesalite (default false; `--p2-fidelity`): a second, labelled figure. */
  readonly fidelity?: boolean
  /** Tiny sizes: checks that the section runs, not what it measures. */
  readonly smoke?: boolean
  /** Stops the section: the process measuring is killed (its endpoint process follows). */
  readonly signal?: AbortSignal | undefined
}

/** A server process: its endpoint for the SDK client (and for creating streams), its CPU time, and how to stop it. */
interface Servers {
  /** Where the measured client sends. */
  readonly endpoint: string
  /** Where streams are created (kinesalite itself, not its proxy); undefined when any stream name is served. */
  readonly admin: string | undefined
  readonly cpu: () => Promise<{ readonly cpu: number; readonly calls: number }>
  readonly stop: () => void
}

type Target = "fake" | "kinesalite"

/**
 * The servers' process (bench/fakeKinesis.ts, or bench/servers.ts: kinesalite behind the
 * delaying proxy); killed by `stop`, and it exits when this process goes.
 */
const startServers = (target: Target, delayMs: number): Promise<Servers> => {
  const file = target === "fake" ? "./fakeKinesis.ts" : "./servers.ts"
  const child: ChildProcess = fork(fileURLToPath(new URL(file, import.meta.url)), [String(delayMs)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  const stop = () => {
    child.removeAllListeners("exit")
    if (child.connected) child.disconnect()
    if (child.exitCode === null && child.signalCode === null) child.kill()
  }
  const started = new Promise<Servers>((resolve, reject) => {
    child.once("error", reject)
    child.once("exit", (code) => reject(new Error(`servers exited early with ${code}`)))
    child.once("message", (message) => {
      const m = message as { endpoint?: string; kinesis?: string; proxy?: string }
      resolve({
        endpoint: m.endpoint ?? m.proxy!,
        admin: m.kinesis,
        cpu: () =>
          new Promise((done) => {
            child.once("message", (m) => done(m as { cpu: number; calls: number }))
            child.send("cpu")
          }),
        stop
      })
    })
  })
  return started.catch((e: unknown) => {
    stop()
    throw e
  })
}

interface Run {
  /** By hand only: wall seconds encoding, and inside client.send (SDK + 25 ms + server). */
  readonly encodeSeconds?: number | undefined
  readonly sendSeconds?: number | undefined
  readonly seconds: number
  readonly rate: number
  readonly calls: number
  readonly failed: number
  /** CPU seconds the servers' process spent during the run. */
  readonly serverCpu: number
  /** CPU seconds this process spent during the run (main thread + compression worker). */
  readonly clientCpu: number
}

const timed = async (
  servers: Servers,
  count: number,
  body: () => Promise<{ calls: number; failed: number; encodeSeconds?: number; sendSeconds?: number }>
): Promise<Run> => {
  const serverBefore = await servers.cpu()
  const cpu = process.cpuUsage()
  const start = performance.now()
  const { calls, encodeSeconds, failed, sendSeconds } = await body()
  const seconds = (performance.now() - start) / 1000
  const used = process.cpuUsage(cpu)
  const serverAfter = await servers.cpu()
  return {
    encodeSeconds,
    sendSeconds,
    seconds,
    rate: count / seconds,
    calls,
    failed,
    serverCpu: serverAfter.cpu - serverBefore.cpu,
    clientCpu: (used.user + used.system) / 1e6
  }
}

/** What a user writes by hand: per chunk of 500, encode + gzip, one PutRecords call, one after another. */
const handWrite = async (client: KinesisClient, streamName: string, records: ReadonlyArray<DataFileV1>) => {
  const creationTime = BigInt(Date.now())
  let calls = 0
  let failed = 0
  let encodeSeconds = 0
  let sendSeconds = 0
  for (let i = 0; i < records.length; i += 500) {
    const t0 = performance.now()
    const entries = records.slice(i, i + 500).map((record) => ({
      Data: encodeByHand(record, creationTime, true).data,
      PartitionKey: partitionKey(WRITER_BASE, record.filePath, WriterDefaults.distributionFactor, 0)
    }))
    const t1 = performance.now()
    const output = await client.send(new PutRecordsCommand({ StreamName: streamName, Records: entries }))
    sendSeconds += (performance.now() - t1) / 1000
    encodeSeconds += (t1 - t0) / 1000
    calls++
    failed += output.FailedRecordCount ?? 0
  }
  return { calls, failed, encodeSeconds, sendSeconds }
}

export interface P2Result {
  readonly writer: ReadonlyArray<Run>
  readonly loop: ReadonlyArray<Run>
  readonly writerRate: number
  readonly loopRate: number
  readonly delayMs: number
  /** The same comparison on kinesalite (one round), when it ran. */
  readonly fidelity?: { readonly writerRate: number; readonly loopRate: number } | undefined
}

/** The two paths P2 compares. */
type P2Path = "writeBatch" | "by hand"

/**
 * In a child process: runs of one path on servers and a stream of its own for `target` (one
 * writer for all its runs), each after a warm-up batch: one untimed (the JIT settles), then
 * `runs` timed. The records: the first `count` of P2's (the same in every process).
 */
const runPath = async (
  target: Target,
  path: P2Path,
  options: { readonly delayMs: number; readonly count: number; readonly runs: number; readonly smoke: boolean }
): Promise<Array<Run>> => {
  const { count, delayMs } = options
  const records = RecordGenerator.makeDataFiles(options.smoke ? SMOKE.records : P2_RECORDS, { columns: 50, seed: 77 })
    .slice(0, count)
  const warm = RecordGenerator.makeDataFiles(options.smoke ? SMOKE.warmup : P2_WARMUP, { columns: 50, seed: 7_777_777 })
  const servers = await startServers(target, delayMs)
  const client = makeKinesisClient(servers.endpoint)
  const admin = servers.admin === undefined ? undefined : makeKinesisClient(servers.admin)
  const streamName = `bench-p2-${path === "writeBatch" ? "writer" : "loop"}-${Date.now()}`
  const runtime = ManagedRuntime.make(
    KinesisWriter.layer({ ...WRITER_BASE, streamName }).pipe(
      Layer.provide(Kinesis.layer(client)),
      Layer.provide(LargePayloadStore.layerMemory()),
      Layer.provide(KinesisMetrics.layerNoop),
      Layer.provideMerge(quietLogs)
    )
  )
  try {
    if (admin !== undefined) await createStream(admin, streamName, 4)
    const once: () => Promise<Run> = path === "by hand"
      ? async () => {
        await handWrite(client, streamName, warm)
        return timed(servers, count, () => handWrite(client, streamName, records))
      }
      : async () => {
        const writer = await runtime.runPromise(KinesisWriter)
        await runtime.runPromise(writer.writeBatch(warm))
        return timed(servers, count, async () => {
          const result = await runtime.runPromise(writer.writeBatch(records))
          return { calls: result.kinesisCalls, failed: result.retriedRecords }
        })
      }
    await once()
    const runs: Array<Run> = []
    for (let run = 0; run < options.runs; run++) runs.push(await once())
    return runs
  } finally {
    await runtime.dispose()
    client.destroy()
    admin?.destroy()
    servers.stop()
  }
}

/**
 * Each path on servers of `target` in `processes` fresh processes of its own, writeBatch and
 * by hand alternating, each process giving `runs` timed runs after an untimed one.
 */
const compare = async (
  target: Target,
  options: {
    readonly delayMs: number
    readonly count: number
    readonly processes: number
    readonly runs: number
    readonly smoke: boolean
    readonly signal: AbortSignal | undefined
  }
) => {
  const { count, delayMs, signal } = options
  const file = fileURLToPath(import.meta.url)
  const byPath = await runApart<Array<Run>>(
    ["writeBatch", "by hand"] satisfies Array<P2Path>,
    options.processes,
    (path) =>
      runInChild<Array<Run>>(
        file,
        [`--p2-child=${target}:${path}:${delayMs}:${count}:${options.runs}`, ...(options.smoke ? ["--smoke"] : [])],
        { signal }
      )
  )
  signal?.throwIfAborted()
  if (byPath === undefined) throw new Error(`a process of the ${target} comparison gave no figures`)
  const writerRuns = byPath.get("writeBatch")!.flat()
  const loopRuns = byPath.get("by hand")!.flat()
  writerRuns.forEach((w, i) => {
    const l = loopRuns[i]!
    console.log(
      `  ${target} run ${i + 1}: writeBatch ${int(w.rate)} rec/s (${fixed(w.seconds)} s), by hand ${
        int(l.rate)
      } rec/s (${fixed(l.seconds)} s)`
    )
  })
  const writerRate = median(writerRuns.map((r) => r.rate))
  const loopRate = median(loopRuns.map((r) => r.rate))
  const row = (label: string, runs: ReadonlyArray<Run>, rate: number) => [
    label,
    int(rate),
    fixed(median(runs.map((r) => r.seconds))),
    String(runs[0]!.calls),
    String(runs.reduce((n, r) => n + r.failed, 0)),
    fixed(median(runs.map((r) => r.clientCpu))),
    fixed(median(runs.map((r) => r.serverCpu)))
  ]
  console.log("")
  console.log(table(
    ["", "records/s (median)", "seconds", "calls", "failed/retried", "client CPU-s", "server CPU-s"],
    [row("writeBatch", writerRuns, writerRate), row("by hand, sequential", loopRuns, loopRate)]
  ))
  return { writerRuns, loopRuns, writerRate, loopRate }
}

export const runP2 = async (options: P2Options = {}): Promise<P2Result> => {
  const delayMs = options.delayMs ?? P2_DELAY_MS
  const signal = options.signal
  const smoke = options.smoke === true
  const count = smoke ? SMOKE.records : P2_RECORDS
  const warmup = smoke ? SMOKE.warmup : P2_WARMUP
  const runs = smoke ? SMOKE.runs : P2_RUNS
  const processes = smoke ? SMOKE.processes : P2_PROCESSES
  const fidelityCount = smoke ? SMOKE.records : P2_FIDELITY_RECORDS
  section(
    `P2 end to end: ${
      int(count)
    } records of 50 columns, real SDK client -> loopback PutRecords endpoint (+${delayMs} ms per call)`
  )
  console.log(
    `The endpoint (bench/fakeKinesis.ts, a child process) speaks PutRecords (AWS JSON 1.1), parses the body and answers`
  )
  console.log(
    `every record written after ${delayMs} ms: no work per record, so the figure is the writer against latency, not against`
  )
  console.log(
    `a server on the same cores. Client: makeKinesisClient (NodeHttpHandler, maxAttempts 1), the same for both. Each run:`
  )
  console.log(
    `a warm-up batch of ${warmup} records, then the timed ${
      int(count)
    } records. writeBatch: one call, default options (4 calls in`
  )
  console.log(
    `flight, 2 compression workers). by hand: per chunk of 500, encode + gzip (the floor loop), then one PutRecordsCommand,`
  )
  console.log(
    `sequentially. Each path in ${processes} fresh processes of its own (each with its own endpoint process), alternating;`
  )
  console.log(`in each, one untimed run, then ${runs} timed: ${processes * runs} runs each.\n`)
  const main = await compare("fake", { delayMs, count, processes, runs, smoke, signal })
  const { loopRate, loopRuns, writerRate, writerRuns } = main
  const floorCalls = Math.ceil(count / 500)
  console.log(`\nratio writeBatch / by hand: ${ratio(writerRate, loopRate)} (target ≥ 2×)`)
  const serverCpu = median(writerRuns.map((r) => r.serverCpu))
  console.log(
    `server CPU-s = CPU of the endpoint's process during the run: ${fixed(serverCpu, 3)} s for writeBatch's ${
      int(count)
    } records ` +
      `(${fixed((100 * serverCpu) / median(writerRuns.map((r) => r.clientCpu)), 1)}% of the client's CPU).`
  )
  console.log(
    `A sequential loop cannot beat ${floorCalls} calls × ${delayMs} ms = ${
      fixed((floorCalls * delayMs) / 1000)
    } s of pure latency ` +
      `(${int(count / ((floorCalls * delayMs) / 1000))} rec/s) plus its encoding and the SDK's time per call.`
  )
  const calls = loopRuns[0]!.calls
  const encodeMs = (1000 * median(loopRuns.map((r) => r.encodeSeconds ?? 0))) / calls
  const sendMs = (1000 * median(loopRuns.map((r) => r.sendSeconds ?? 0))) / calls
  console.log(
    `by hand, per call of 500 records: encode + gzip ${fixed(encodeMs, 0)} ms, then client.send ${
      fixed(sendMs, 0)
    } ms ` +
      `(= ${delayMs} ms added latency + the SDK's own work + the server's parsing + waiting for a core).`
  )
  const writerCpu = median(writerRuns.map((r) => r.clientCpu + r.serverCpu))
  const cores = availableParallelism()
  const floorSeconds = writerCpu / cores
  const loopSeconds = median(loopRuns.map((r) => r.seconds))
  console.log(
    `CPU bound: writeBatch's ${int(count)} records cost ${
      fixed(writerCpu)
    } CPU-s (client + server); on ${cores} cores that is at least ` +
      `${fixed(floorSeconds)} s even with no one else on the machine, i.e. at most ${
        int(count / floorSeconds)
      } rec/s = ` +
      `${ratio(loopSeconds, floorSeconds)} the loop's median.`
  )

  let fidelity: P2Result["fidelity"]
  // Off by default (`--p2-fidelity`): at load ~11 the whole section took 65 s with it, past its
  // 50 s bound, the kinesalite round ~20 s of that; and kinesalite's CPU makes it a figure of kinesalite.
  if (options.fidelity === true) {
    console.log(
      `\nFidelity (a second figure, not the target): the same on kinesalite behind a proxy that adds ${delayMs} ms ` +
        `(bench/servers.ts), ${int(fidelityCount)} records, one run each. kinesalite validates and stores every record`
    )
    console.log(
      `on the same 2 cores, so its CPU (server CPU-s) bounds both sides: this is what the first P2 measured.\n`
    )
    const f = await compare("kinesalite", { delayMs, count: fidelityCount, processes: 1, runs: 1, smoke, signal })
    console.log(`\nfidelity ratio writeBatch / by hand on kinesalite: ${ratio(f.writerRate, f.loopRate)}`)
    fidelity = { writerRate: f.writerRate, loopRate: f.loopRate }
  }
  return { writer: writerRuns, loop: loopRuns, writerRate, loopRate, delayMs, fidelity }
}

await serveChild(import.meta.url, "--p2-child", (spec, smoke) => {
  const [target, path, delayMs, count, runs] = spec.split(":") as [Target, P2Path, string, string, string]
  return runPath(target, path, { delayMs: Number(delayMs), count: Number(count), runs: Number(runs), smoke })
})
