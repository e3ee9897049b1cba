/**
 * P4, memory: peak heap and RSS during one `writeBatch` of 100,000 records of 50 columns,
 * in a child process (bench/memory.ts) started with --expose-gc, against the in-memory size
 * of the input. Target: peak ≤ 2 × input + 50 MB.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { fixed, int, section, table } from "./common.js"

export const P4_RECORDS = 100_000
/** 100,000 records of 50 columns take ~2.8 GB of heap: the default limit (~4.2 GB here) leaves too little room. */
export const P4_MAX_OLD_SPACE_MB = 8_192
/** `--smoke`: the same child at a tiny size (the figures mean nothing). */
const SMOKE_RECORDS = 500

export interface P4Options {
  /** Tiny sizes: checks that the section runs, not what it measures. */
  readonly smoke?: boolean
  /** Stops the section: the child is killed. */
  readonly signal?: AbortSignal | undefined
}

interface Memory {
  readonly rss: number
  readonly heapUsed: number
  readonly heapTotal: number
  readonly external: number
  readonly arrayBuffers: number
}

interface ChildReport {
  readonly count: number
  readonly generateSeconds: number
  readonly beforeInput: Memory
  readonly afterInput: Memory
  readonly beforeWrite: Memory
  readonly peak: Memory & { readonly heapPlusBuffers: number }
  readonly samples: number
  readonly maxGapMs: number
  readonly rssSampler: { readonly peak: number; readonly samples: number }
  readonly maxRss: number
  readonly writeSeconds: number
  readonly result: {
    readonly records: number
    readonly kinesisCalls: number
    readonly uncompressedBytes: number
    readonly compressedBytes: number
  }
  readonly heapLimit: number
}

export interface P4Result {
  readonly inputBytes: number
  readonly targetBytes: number
  readonly peakHeapBytes: number
  readonly peakHeapPlusBuffersBytes: number
  readonly peakRssBytes: number
  readonly report: ChildReport
  readonly gcPeakHeapBytes: number
}

const MB = 1_000_000
const mb = (bytes: number) => `${fixed(bytes / MB, 0)} MB`

/** `[pid:0x…]  1234 ms: Mark-Compact 2803.4 (2850.2) -> 2790.1 (2851.0) MB, …`: heap used before and after, MB. */
const GC_LINE = /:\s+([A-Za-z -]+?)(?: \([a-z ]+\))?\s+([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/

export const runP4 = async (options: P4Options = {}): Promise<P4Result> => {
  const count = options.smoke === true ? SMOKE_RECORDS : P4_RECORDS
  const signal = options.signal
  signal?.throwIfAborted()
  section(`P4 memory: one writeBatch of ${int(count)} records of 50 columns (child process, --expose-gc)`)
  const args = [
    "--expose-gc",
    "--trace-gc",
    `--max-old-space-size=${P4_MAX_OLD_SPACE_MB}`,
    "--import",
    "tsx",
    fileURLToPath(new URL("./memory.ts", import.meta.url)),
    String(count)
  ]
  console.log(`child: node ${args.join(" ").replace(/\S*\/bench\//, "bench/")}`)
  console.log(
    `--max-old-space-size=${P4_MAX_OLD_SPACE_MB}: the input alone is ~2.8 GB of heap and the default heap limit is about 4.2 GB,`
  )
  console.log(
    `less than the target allows (2 × input + 50 MB); the larger limit lets the writer use what the target grants.`
  )
  let inWindow = false
  let gcPeak = 0
  let gcCount = 0
  let gcPauseMs = 0
  const report = await new Promise<ChildReport>((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit", "ipc"] })
    let buffered = ""
    let received: ChildReport | undefined
    child.stdout!.setEncoding("utf8")
    child.stdout!.on("data", (text: string) => {
      buffered += text
      const lines = buffered.split("\n")
      buffered = lines.pop() ?? ""
      for (const line of lines) {
        if (line.includes("P4-WRITE-START")) inWindow = true
        else if (line.includes("P4-WRITE-END")) inWindow = false
        else if (inWindow) {
          const m = GC_LINE.exec(line)
          if (m !== null) {
            gcCount++
            gcPeak = Math.max(gcPeak, Number(m[2]) * 2 ** 20)
            const pause = /MB, ([\d.]+) \//.exec(line)
            if (pause !== null) gcPauseMs += Number(pause[1])
          }
        }
      }
    })
    child.on("message", (message) => {
      received = message as ChildReport
    })
    const onAbort = () => child.kill("SIGKILL")
    signal?.addEventListener("abort", onAbort, { once: true })
    child.on("error", reject)
    child.on("exit", (code, signalName) => {
      signal?.removeEventListener("abort", onAbort)
      if (signal?.aborted === true) reject(signal.reason)
      else if (received !== undefined) resolve(received)
      else reject(new Error(`memory child exited with ${code ?? signalName}`))
    })
  })

  const inputHeap = report.afterInput.heapUsed - report.beforeInput.heapUsed
  const inputBuffers = report.afterInput.arrayBuffers - report.beforeInput.arrayBuffers
  const inputBytes = inputHeap + inputBuffers
  const targetBytes = 2 * inputBytes + 50 * MB
  const peakHeap = Math.max(report.peak.heapUsed, gcPeak)
  // The timer misses the main thread's longest stretches; the GC trace gives the heap's peak but
  // not the buffers at that moment: peak heap + peak buffers bounds the sum from above.
  const peakHeapPlusBuffers = Math.max(report.peak.heapPlusBuffers, peakHeap + report.peak.arrayBuffers)
  const peakRss = Math.max(report.rssSampler.peak, report.peak.rss)
  console.log(
    `\nrecords generated in ${fixed(report.generateSeconds, 1)} s; writeBatch took ${
      fixed(report.writeSeconds, 1)
    } s ` +
      `(${int(report.count / report.writeSeconds)} rec/s, ${int(report.result.kinesisCalls)} calls); heap limit ${
        mb(report.heapLimit)
      }`
  )
  console.log(
    `samples: main thread ${report.samples} (longest gap ${
      int(report.maxGapMs)
    } ms: the timer waits while the main thread works), ` +
      `RSS sampler thread ${report.rssSampler.samples}; ${gcCount} GCs during the write (${
        int(gcPauseMs)
      } ms of pauses)\n`
  )
  const rows: Array<Array<string>> = [
    ["input (after gc): heapUsed", mb(inputHeap), ""],
    ["input (after gc): arrayBuffers", mb(inputBuffers), ""],
    ["input = heapUsed + arrayBuffers", mb(inputBytes), ""],
    ["target: 2 × input + 50 MB", mb(targetBytes), ""],
    [
      "before the write (input + warm writer, after gc): heapUsed / arrayBuffers / RSS",
      `${mb(report.beforeWrite.heapUsed)} / ${mb(report.beforeWrite.arrayBuffers)} / ${mb(report.beforeWrite.rss)}`,
      ""
    ],
    [
      "peak heapUsed (20 ms samples and heap before each GC, --trace-gc)",
      mb(peakHeap),
      `${fixed(peakHeap / inputBytes)}× input`
    ],
    [
      "peak heapUsed + arrayBuffers (at most peak heapUsed + peak arrayBuffers)",
      mb(peakHeapPlusBuffers),
      `${fixed(peakHeapPlusBuffers / inputBytes)}× input`
    ],
    ["peak arrayBuffers (serialized and gzip'd payloads live here)", mb(report.peak.arrayBuffers), ""],
    ["peak RSS during the write (20 ms, sampler thread)", mb(peakRss), `${fixed(peakRss / inputBytes)}× input`],
    ["max RSS over the child's life (getrusage)", mb(report.maxRss), ""],
    [
      "writer's own peak: heapUsed + arrayBuffers above the state before the write",
      mb(peakHeapPlusBuffers - report.beforeWrite.heapUsed - report.beforeWrite.arrayBuffers),
      `${
        fixed((peakHeapPlusBuffers - report.beforeWrite.heapUsed - report.beforeWrite.arrayBuffers) / report.count, 0)
      } B/record`
    ],
    ["writer's own peak RSS above the state before the write", mb(peakRss - report.beforeWrite.rss), ""]
  ]
  console.log(table(["", "bytes", ""], rows))
  console.log(
    `\npeak heap (heapUsed + arrayBuffers) ${mb(peakHeapPlusBuffers)} vs target ${mb(targetBytes)}: ${
      peakHeapPlusBuffers <= targetBytes ? "within" : "OVER"
    }` +
      ` (${fixed((100 * peakHeapPlusBuffers) / targetBytes, 1)}% of the target)`
  )
  console.log(
    `peak RSS ${mb(peakRss)} vs target ${mb(targetBytes)}: ${peakRss <= targetBytes ? "within" : "OVER"} (${
      fixed((100 * peakRss) / targetBytes, 1)
    }% of the target; RSS also holds the runtime and code)`
  )
  return {
    inputBytes,
    targetBytes,
    peakHeapBytes: peakHeap,
    peakHeapPlusBuffersBytes: peakHeapPlusBuffers,
    peakRssBytes: peakRss,
    report,
    gcPeakHeapBytes: gcPeak
  }
}
