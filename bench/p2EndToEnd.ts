/**
 * P2, end to end with real latency: 10,000 records of 50 columns through the real SDK
 * Kinesis client (NodeHttpHandler, maxAttempts 1, as test/support/LocalAws.ts makes it) to
 * kinesalite behind a proxy that adds 25 ms to every call, both in a child process; against
 * what a user writes by hand: per chunk of 500, encode + gzip as the floor loop, then one
 * PutRecordsCommand, sequentially, same endpoint, same client configuration.
 */
import type { KinesisClient } from "@aws-sdk/client-kinesis"
import { PutRecordsCommand } from "@aws-sdk/client-kinesis"
import { Layer, ManagedRuntime } from "effect"
import type { ChildProcess } from "node:child_process"
import { fork } from "node:child_process"
import { availableParallelism } from "node:os"
import { fileURLToPath } from "node:url"
import type { DataFileV1, WriteResult } from "../src/index.js"
import { Kinesis, KinesisMetrics, KinesisWriter, LargePayloadStore } from "../src/index.js"
import { partitionKey } from "../src/internal/partitionKey.js"
import { RecordGenerator } from "../src/testing.js"
import { createStream, makeKinesisClient } from "../test/support/LocalAws.js"
import {
  abortable,
  encodeByHand,
  fixed,
  int,
  median,
  quietLogs,
  ratio,
  section,
  signalOption,
  table,
  WRITER_BASE
} from "./common.js"

export const P2_RECORDS = 10_000
export const P2_DELAY_MS = 25
const P2_WARMUP = 500
const P2_RUNS = 3
/** `--smoke`: the same path at tiny sizes, one run each (the figures mean nothing). */
const SMOKE = { records: 200, warmup: 50, runs: 1 } as const

export interface P2Options {
  readonly delayMs?: number
  /** Tiny sizes: checks that the section runs, not what it measures. */
  readonly smoke?: boolean
  /** Stops the section: calls in flight are aborted, the writer disposed, the servers' process killed. */
  readonly signal?: AbortSignal | undefined
}

interface Servers {
  readonly kinesis: string
  readonly proxy: string
  readonly cpu: () => Promise<{ readonly cpu: number; readonly calls: number }>
  readonly stop: () => void
}

/** The servers' process; killed on `signal` (and by `stop`), so that it never outlives the section. */
const startServers = (delayMs: number, signal: AbortSignal | undefined): Promise<Servers> => {
  const child: ChildProcess = fork(fileURLToPath(new URL("./servers.ts", import.meta.url)), [String(delayMs)], {
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
      const { kinesis, proxy } = message as { kinesis: string; proxy: string }
      resolve({
        kinesis,
        proxy,
        cpu: () =>
          abortable(
            new Promise((done) => {
              child.once("message", (m) => done(m as { cpu: number; calls: number }))
              child.send("cpu")
            }),
            signal
          ),
        stop
      })
    })
  })
  return abortable(started, signal).catch((e: unknown) => {
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
const handWrite = async (
  client: KinesisClient,
  streamName: string,
  records: ReadonlyArray<DataFileV1>,
  signal: AbortSignal | undefined
) => {
  const creationTime = BigInt(Date.now())
  let calls = 0
  let failed = 0
  let encodeSeconds = 0
  let sendSeconds = 0
  for (let i = 0; i < records.length; i += 500) {
    const t0 = performance.now()
    const entries = records.slice(i, i + 500).map((record) => ({
      Data: encodeByHand(record, creationTime, true).data,
      PartitionKey: partitionKey(WRITER_BASE, record.filePath, 4, 0)
    }))
    const t1 = performance.now()
    const output = await client.send(
      new PutRecordsCommand({ StreamName: streamName, Records: entries }),
      signal === undefined ? {} : { abortSignal: signal }
    )
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
}

export const runP2 = async (options: P2Options = {}): Promise<P2Result> => {
  const delayMs = options.delayMs ?? P2_DELAY_MS
  const signal = options.signal
  const count = options.smoke === true ? SMOKE.records : P2_RECORDS
  const warmup = options.smoke === true ? SMOKE.warmup : P2_WARMUP
  const runs = options.smoke === true ? SMOKE.runs : P2_RUNS
  section(
    `P2 end to end: ${
      int(count)
    } records of 50 columns, real SDK client -> proxy (+${delayMs} ms per call) -> kinesalite`
  )
  console.log(
    `kinesalite and the delaying proxy run in a child process (bench/servers.ts). Client: makeKinesisClient (NodeHttpHandler,`
  )
  console.log(
    `maxAttempts 1), the same for both. Each run: a fresh 4-shard stream, a warm-up batch of ${warmup} records, then the timed`
  )
  console.log(`${int(count)} records. writeBatch: one call, default options (4 calls in flight, 1 compression worker).`)
  console.log(
    `by hand: per chunk of 500, encode + gzip (the floor loop), then one PutRecordsCommand, sequentially. ${runs} runs each, alternating.\n`
  )
  const records = RecordGenerator.makeDataFiles(count, { columns: 50, seed: 77 })
  const warm = RecordGenerator.makeDataFiles(warmup, { columns: 50, seed: 7_777_777 })
  const servers = await startServers(delayMs, signal)
  const client = makeKinesisClient(servers.proxy)
  const admin = makeKinesisClient(servers.kinesis)
  const writerRuns: Array<Run> = []
  const loopRuns: Array<Run> = []
  try {
    for (let round = 0; round < runs; round++) {
      const writerStream = `bench-p2-writer-${round}-${Date.now()}`
      await abortable(createStream(admin, writerStream, 4), signal)
      const runtime = ManagedRuntime.make(
        KinesisWriter.layer({ ...WRITER_BASE, streamName: writerStream }).pipe(
          Layer.provide(Kinesis.layer(client)),
          Layer.provide(LargePayloadStore.layerMemory()),
          Layer.provide(KinesisMetrics.layerNoop),
          Layer.provideMerge(quietLogs)
        )
      )
      try {
        const writer = await runtime.runPromise(KinesisWriter, signalOption(signal))
        await runtime.runPromise(writer.writeBatch(warm), signalOption(signal))
        let result: WriteResult | undefined
        const run = await timed(servers, count, async () => {
          result = await runtime.runPromise(writer.writeBatch(records), signalOption(signal))
          return { calls: result.kinesisCalls, failed: result.retriedRecords }
        })
        writerRuns.push(run)
      } finally {
        await runtime.dispose()
      }

      const loopStream = `bench-p2-loop-${round}-${Date.now()}`
      await abortable(createStream(admin, loopStream, 4), signal)
      await handWrite(client, loopStream, warm, signal)
      loopRuns.push(await timed(servers, count, () => handWrite(client, loopStream, records, signal)))
      console.log(
        `  run ${round + 1}: writeBatch ${int(writerRuns.at(-1)!.rate)} rec/s (${
          fixed(writerRuns.at(-1)!.seconds)
        } s), ` +
          `by hand ${int(loopRuns.at(-1)!.rate)} rec/s (${fixed(loopRuns.at(-1)!.seconds)} s)`
      )
    }
  } finally {
    client.destroy()
    admin.destroy()
    servers.stop()
  }
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
  const floorCalls = Math.ceil(count / 500)
  console.log(`\nratio writeBatch / by hand: ${ratio(writerRate, loopRate)} (target ≥ 3×)`)
  console.log(
    `A sequential loop cannot beat ${floorCalls} calls × ${delayMs} ms = ${
      fixed((floorCalls * delayMs) / 1000)
    } s of pure latency ` +
      `(${int(count / ((floorCalls * delayMs) / 1000))} rec/s) plus its encoding and the server's time per call.`
  )
  console.log(
    `server CPU-s = CPU of the kinesalite + proxy process during the run (one thread: near the run's seconds = saturated).`
  )
  const calls = loopRuns[0]!.calls
  const encodeMs = (1000 * median(loopRuns.map((r) => r.encodeSeconds ?? 0))) / calls
  const sendMs = (1000 * median(loopRuns.map((r) => r.sendSeconds ?? 0))) / calls
  const serverMs = (1000 * median(loopRuns.map((r) => r.serverCpu))) / calls
  console.log(
    `\nby hand, per call of 500 records: encode + gzip ${fixed(encodeMs, 0)} ms, then client.send ${
      fixed(sendMs, 0)
    } ms ` +
      `(= ${delayMs} ms added latency + ~${
        fixed(serverMs, 0)
      } ms of server CPU + the SDK's own work and waiting for a core).`
  )
  const writerCpu = median(writerRuns.map((r) => r.clientCpu + r.serverCpu))
  const cores = availableParallelism()
  const floorSeconds = writerCpu / cores
  const loopSeconds = median(loopRuns.map((r) => r.seconds))
  console.log(
    `CPU bound: writeBatch's ${int(count)} records cost ${
      fixed(writerCpu)
    } CPU-s (client + servers); on ${cores} cores that is at least ` +
      `${fixed(floorSeconds)} s even with no one else on the machine, i.e. at most ${
        int(count / floorSeconds)
      } rec/s = ` +
      `${ratio(loopSeconds, floorSeconds)} the loop's median; the ${delayMs} ms per call is ${
        fixed((100 * calls * delayMs) / 1000 / loopSeconds, 0)
      }% of the loop's time.`
  )
  return { writer: writerRuns, loop: loopRuns, writerRate, loopRate, delayMs }
}
