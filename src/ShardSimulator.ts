/**
 * A `Kinesis` layer that simulates a provisioned stream of N shards, for tests and
 * benchmarks that need what no scripted double gives: Kinesis' own routing and write limits,
 * and seeded, reproducible faults.
 *
 * - Routing: the MD5 of a record's partition key (UTF-8), read as an unsigned 128-bit
 *   big-endian integer, is its hash key, unless the record names one (`explicitHashKey`); the
 *   record goes to the shard whose hash-key range holds it. The N shards split [0, 2^128) evenly, as CreateStream does: shard i starts at
 *   `floor(i · 2^128 / N)`.
 * - Write limits per shard: `recordsPerSecondPerShard` records (1,000) and
 *   `bytesPerSecondPerShard` bytes of data plus partition key (1 MiB) per second, counted in a
 *   fixed per-second window aligned on whole seconds of Effect's `Clock` (as AWS meters it;
 *   under `TestClock`, `TestClock.adjust("1 second")` opens the next window). A record over
 *   either limit fails alone with `ProvisionedThroughputExceededException` while the call
 *   succeeds, and uses no capacity.
 * - ListShards answers the shard map above, every shard open.
 * - Request validation as Kinesis does it, before anything else: 1–500 records per call,
 *   partition keys of 1–256 characters, explicit hash keys in [0, 2^128) written in decimal,
 *   at most 1 MiB per record (data plus key) and 10 MiB per call; otherwise the call fails whole with a non-retryable `ValidationException`.
 * - Seeded faults (mulberry32 from `seed`; never `Math.random`): per record, an
 *   `InternalFailure` with probability `recordFailureRate`; per call, with the probabilities
 *   of `callFaults`, a throttled call (`LimitExceededException` or `ThrottlingException`,
 *   HTTP 400, nothing written), a server error (`InternalFailure`, HTTP 500) or a timeout
 *   (`TimeoutError`, no HTTP status), all `retryable`. A server error or a timeout is
 *   ambiguous with probability `ambiguousWriteRate`: the server error wrote a prefix of the
 *   call's records before failing, the timeout wrote the whole call (subject to the limits)
 *   and its answer was lost, so that a retry writes duplicates. Every call is answered at
 *   once: the simulator never sleeps.
 *
 * The same seed and the same sequence of calls (at the same clock times) give the same
 * outcomes. {@link ShardSimulatorState} shows what the stream holds and what each call met.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { KinesisMetrics, KinesisWriter, LargePayloadStore } from "cygnus-kinesis-writer"
 * import { ShardSimulator } from "cygnus-kinesis-writer/testing"
 *
 * const layer = KinesisWriter.layer({ streamName: "s", logGroupId: "lg", schemaName: "orders", accountId: "123456789012" }).pipe(
 *   Layer.provideMerge(ShardSimulator.layer({ shards: 4, seed: 7, recordFailureRate: 0.02, callFaults: { timeout: 0.05, ambiguousWriteRate: 0.5 } })),
 *   Layer.provideMerge(LargePayloadStore.layerMemory()),
 *   Layer.provideMerge(KinesisMetrics.layerNoop)
 * )
 * const program = Effect.gen(function*() {
 *   const state = yield* ShardSimulator.ShardSimulatorState
 *   return (yield* state.totals).throttled
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer } from "effect"
import { KinesisError } from "./Errors.js"
import { KinesisLimits } from "./internal/core/limits.js"
import { partitionKeyLength } from "./internal/core/partitionKey.js"
import type { HashKeyRange } from "./internal/core/routing.js"
import {
  evenShards,
  evenStartingHashKeys,
  hashKeyOf,
  lastStartAtMost,
  parseExplicitHashKey,
  routingHashKey,
  shardIdOf,
  ShardMap
} from "./internal/core/routing.js"
import { prng } from "./internal/prng.js"
import type { PutRecordsEntry, PutRecordsRequest, PutRecordsResultEntry } from "./Kinesis.js"
import { Kinesis } from "./Kinesis.js"
import { unreadable } from "./KinesisTest.js"

/**
 * The limits and defaults of a simulated stream: Kinesis' own write limits per shard and
 * per call.
 *
 * @example
 * ```ts
 * ShardSimulator.Defaults.recordsPerSecondPerShard // 1000
 * ```
 *
 * @since 0.1.0
 */
export const Defaults = {
  seed: 1,
  recordsPerSecondPerShard: KinesisLimits.shardRecordsPerSecond,
  bytesPerSecondPerShard: KinesisLimits.shardBytesPerSecond,
  maxRecordsPerCall: KinesisLimits.maxRecordsPerCall,
  maxRecordBytes: KinesisLimits.defaultRecordBytes,
  maxCallBytes: KinesisLimits.maxRequestBytes,
  maxPartitionKeyLength: KinesisLimits.maxPartitionKeyLength
} as const

/**
 * Probabilities of whole-call faults, each in [0, 1], their sum at most 1. Default 0 each.
 *
 * @example
 * ```ts
 * const faults: ShardSimulator.CallFaultOptions = { throttling: 0.05, serverError: 0.02, timeout: 0.02, ambiguousWriteRate: 0.5 }
 * ```
 *
 * @since 0.1.0
 */
export interface CallFaultOptions {
  /** A call refused whole with `LimitExceededException` or `ThrottlingException` (HTTP 400); nothing written. */
  readonly throttling?: number | undefined
  /** A call failed whole with `InternalFailure` (HTTP 500). */
  readonly serverError?: number | undefined
  /** A call whose answer never comes: `TimeoutError`, no HTTP status. */
  readonly timeout?: number | undefined
  /**
   * The chance that a server error or a timeout wrote records anyway: a server error some of
   * them (a prefix of the call), a timeout all of them (each subject to the shard limits).
   */
  readonly ambiguousWriteRate?: number | undefined
}

/**
 * Options of {@link layer} and {@link make}.
 *
 * @example
 * ```ts
 * const options: ShardSimulator.ShardSimulatorOptions = { shards: 4, seed: 42, recordFailureRate: 0.02 }
 * ```
 *
 * @since 0.1.0
 */
export interface ShardSimulatorOptions {
  /** Open shards, a positive integer. */
  readonly shards: number
  /** Seed of the faults. Default 1. */
  readonly seed?: number | undefined
  /** Records a shard accepts per second. Default 1,000. */
  readonly recordsPerSecondPerShard?: number | undefined
  /** Bytes (data plus partition key) a shard accepts per second. Default 1,048,576. */
  readonly bytesPerSecondPerShard?: number | undefined
  /** Chance that a record fails alone with `InternalFailure`. Default 0. */
  readonly recordFailureRate?: number | undefined
  /** Chances of whole-call faults. Default none. */
  readonly callFaults?: CallFaultOptions | undefined
  /**
   * Whether {@link ShardSimulatorState} keeps every record written and every call (default
   * true). False keeps the totals and each shard's figures only, so that a long run (a
   * benchmark, a soak test) does not hold its whole history: `written` and `calls` are then
   * empty.
   */
  readonly history?: boolean | undefined
}

/**
 * What happened to a call as a whole: no fault, one of the seeded faults, or a request
 * Kinesis would refuse (`validation`).
 *
 * @example
 * ```ts
 * const failedWhole = (fault: ShardSimulator.CallFault) => fault !== "none"
 * ```
 *
 * @since 0.1.0
 */
export type CallFault = "none" | "throttling" | "serverError" | "timeout" | "validation"

/**
 * A record on the simulated stream, in the order written.
 *
 * @example
 * ```ts
 * const byShard = (records: ReadonlyArray<ShardSimulator.SimulatedRecord>) => Map.groupBy(records, (r) => r.shardId)
 * ```
 *
 * @since 0.1.0
 */
export interface SimulatedRecord {
  readonly shardId: string
  /** Increasing within a shard, as Kinesis' sequence numbers are. */
  readonly sequenceNumber: string
  readonly partitionKey: string
  /** The hash key the record named, which routed it instead of its partition key's. */
  readonly explicitHashKey?: string | undefined
  /** The caller's bytes, as sent (not copied). */
  readonly data: Uint8Array
  /** When it was written: `Clock` epoch milliseconds. */
  readonly at: number
  /** The index of the call that wrote it (see {@link SimulatedCall.index}). */
  readonly callIndex: number
}

/**
 * One PutRecords call and what it met.
 *
 * @example
 * ```ts
 * const ambiguousCalls = (calls: ReadonlyArray<ShardSimulator.SimulatedCall>) => calls.filter((c) => c.ambiguous)
 * ```
 *
 * @since 0.1.0
 */
export interface SimulatedCall {
  /** 0-based, in the order calls arrived. */
  readonly index: number
  /** When it arrived: `Clock` epoch milliseconds. */
  readonly at: number
  /** The records of the request, as sent (not copied). */
  readonly records: ReadonlyArray<PutRecordsEntry>
  readonly fault: CallFault
  /** The error name the call failed with, when it failed whole. */
  readonly errorName?: string | undefined
  /** Records of this call written to the stream (also when the call failed: see `ambiguous`). */
  readonly written: number
  /** Records of this call refused with `ProvisionedThroughputExceededException`. */
  readonly throttled: number
  /** Records of this call refused with `InternalFailure`. */
  readonly failed: number
  /** True when the call failed whole yet wrote some records: the caller cannot know which. */
  readonly ambiguous: boolean
}

/**
 * One shard: its hash-key range and what it took.
 *
 * @example
 * ```ts
 * const busiest = (shards: ReadonlyArray<ShardSimulator.ShardStats>) => Math.max(...shards.map((s) => s.records))
 * ```
 *
 * @since 0.1.0
 */
export interface ShardStats {
  readonly shardId: string
  readonly startingHashKey: bigint
  readonly endingHashKey: bigint
  /** Records written. */
  readonly records: number
  /** Bytes (data plus partition key) written. */
  readonly bytes: number
  /** Records refused for the shard's limits. */
  readonly throttled: number
}

/**
 * Totals over every call. A record counts once each time it is sent; the records of a call
 * that failed whole count in `callFailed`, and also in `written`, `throttled` or `failed`
 * when the call processed them anyway (an ambiguous outcome).
 *
 * @example
 * ```ts
 * const refused = (t: ShardSimulator.SimulatorTotals) => t.throttled + t.failed
 * ```
 *
 * @since 0.1.0
 */
export interface SimulatorTotals {
  readonly calls: number
  /** Records received, in all calls. */
  readonly attempted: number
  /** Records written to the stream. */
  readonly written: number
  /** Records refused with `ProvisionedThroughputExceededException`. */
  readonly throttled: number
  /** Records refused with `InternalFailure`. */
  readonly failed: number
  /** Records of calls that failed whole. */
  readonly callFailed: number
}

/**
 * What the simulator holds, for assertions. Every accessor returns a snapshot.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function*() {
 *   const state = yield* ShardSimulator.ShardSimulatorState
 *   const records = yield* state.written
 *   const calls = yield* state.calls
 *   return { records: records.length, ambiguous: calls.filter((c) => c.ambiguous).length }
 * })
 * ```
 *
 * @since 0.1.0
 */
export class ShardSimulatorState extends Context.Tag("cygnus-kinesis-writer/ShardSimulatorState")<ShardSimulatorState, {
  /** Every record written, in the order written. */
  readonly written: Effect.Effect<ReadonlyArray<SimulatedRecord>>
  /** Every PutRecords call, in the order received. */
  readonly calls: Effect.Effect<ReadonlyArray<SimulatedCall>>
  /** Each shard, in shard order. */
  readonly shards: Effect.Effect<ReadonlyArray<ShardStats>>
  readonly totals: Effect.Effect<SimulatorTotals>
}>() {}

/**
 * The hash key of a partition key: its MD5 (over UTF-8) as an unsigned 128-bit big-endian integer.
 *
 * @example
 * ```ts
 * ShardSimulator.hashKey("a") // 0x0cc175b9c0f1b6a831c399e269772661n
 * ```
 *
 * @since 0.1.0
 */
export const hashKey: (partitionKey: string) => bigint = hashKeyOf

/**
 * The starting hash keys of `shards` shards that split [0, 2^128) evenly, as CreateStream
 * does: shard i starts at `floor(i · 2^128 / shards)` and ends just before shard i + 1.
 *
 * @example
 * ```ts
 * ShardSimulator.startingHashKeys(2) // [0n, 2n ** 127n]
 * ```
 *
 * @since 0.1.0
 */
export const startingHashKeys: (shards: number) => Array<bigint> = evenStartingHashKeys

/**
 * The index of the shard whose range holds `key`, given the shards' starting hash keys in
 * increasing order (the first being 0).
 *
 * @example
 * ```ts
 * ShardSimulator.shardIndexOfHashKey(ShardSimulator.hashKey("a"), ShardSimulator.startingHashKeys(4)) // 0
 * ```
 *
 * @since 0.1.0
 */
export const shardIndexOfHashKey: (key: bigint, starts: ReadonlyArray<bigint>) => number = lastStartAtMost

/**
 * The index of the shard a partition key goes to on a stream of `shards` evenly split shards.
 *
 * @example
 * ```ts
 * ShardSimulator.shardIndexOf("message digest", 4) // 3: its MD5 starts with 0xf9
 * ```
 *
 * @since 0.1.0
 */
export const shardIndexOf = (partitionKey: string, shards: number): number =>
  lastStartAtMost(hashKeyOf(partitionKey), evenStartingHashKeys(shards))

/**
 * The shard id Kinesis gives the shard of an index: `shardId-` and 12 digits.
 *
 * @example
 * ```ts
 * ShardSimulator.shardId(3) // "shardId-000000000003"
 * ```
 *
 * @since 0.1.0
 */
export const shardId: (index: number) => string = shardIdOf

interface Shard extends HashKeyRange {
  readonly index: number
  /** The second (`floor(millis / 1000)`) the window counters belong to. */
  window: number
  windowRecords: number
  windowBytes: number
  sequence: number
  records: number
  bytes: number
  throttled: number
}

/** How the simulator decides one call's outcome. */
type Plan =
  | { readonly fault: "none" }
  | {
    readonly fault: "throttling" | "serverError" | "timeout"
    readonly errorName: string
    readonly httpStatus: number | undefined
    readonly processed: number
  }

const isRate = (n: number) => Number.isFinite(n) && n >= 0 && n <= 1
const isPositive = (n: number) => Number.isFinite(n) && n > 0

const invalidOptions = (options: ShardSimulatorOptions): string | undefined => {
  const faults = options.callFaults ?? {}
  const rates: Array<[string, number | undefined]> = [
    ["recordFailureRate", options.recordFailureRate],
    ["callFaults.throttling", faults.throttling],
    ["callFaults.serverError", faults.serverError],
    ["callFaults.timeout", faults.timeout],
    ["callFaults.ambiguousWriteRate", faults.ambiguousWriteRate]
  ]
  if (!Number.isInteger(options.shards) || options.shards < 1) {
    return `shards must be a positive integer, got ${options.shards}`
  }
  for (const [name, value] of rates) {
    if (value !== undefined && !isRate(value)) return `${name} must be a probability in [0, 1], got ${value}`
  }
  if ((faults.throttling ?? 0) + (faults.serverError ?? 0) + (faults.timeout ?? 0) > 1) {
    return "callFaults.throttling + serverError + timeout must be at most 1"
  }
  for (const name of ["recordsPerSecondPerShard", "bytesPerSecondPerShard"] as const) {
    const value = options[name]
    if (value !== undefined && !isPositive(value)) return `${name} must be positive, got ${value}`
  }
  return undefined
}

/** The counters behind {@link SimulatorTotals}. */
type Totals = { -readonly [K in keyof SimulatorTotals]: SimulatorTotals[K] }

/** Kinesis' validation of a request, before anything else: the reason it refuses it, if it does. */
const validateRequest = (request: PutRecordsRequest): string | undefined => {
  const n = request.records.length
  if (n < 1 || n > Defaults.maxRecordsPerCall) {
    return `Records must have between 1 and ${Defaults.maxRecordsPerCall} entries, got ${n}`
  }
  let callBytes = 0
  for (let i = 0; i < n; i++) {
    const record = request.records[i]!
    // Characters as Kinesis counts them: code points, not UTF-16 units.
    const keyLength = partitionKeyLength(record.partitionKey)
    if (keyLength < 1 || keyLength > Defaults.maxPartitionKeyLength) {
      return `Records.${i}.PartitionKey must have length between 1 and ${Defaults.maxPartitionKeyLength}, got ${keyLength}`
    }
    if (record.explicitHashKey !== undefined && parseExplicitHashKey(record.explicitHashKey) === undefined) {
      return `Records.${i}.ExplicitHashKey must be a decimal integer in [0, 2^128 - 1], got ${record.explicitHashKey}`
    }
    const bytes = record.data.length + Buffer.byteLength(record.partitionKey, "utf8")
    if (bytes > Defaults.maxRecordBytes) {
      return `Records.${i} is ${bytes} bytes, over the record limit of ${Defaults.maxRecordBytes}`
    }
    callBytes += bytes
  }
  return callBytes > Defaults.maxCallBytes
    ? `the request is ${callBytes} bytes, over the limit of ${Defaults.maxCallBytes}`
    : undefined
}

const callError = (
  request: PutRecordsRequest,
  errorName: string,
  httpStatus: number | undefined,
  retryable: boolean,
  reason: string
) =>
  new KinesisError({
    operation: "PutRecords",
    streamName: request.streamName,
    errorName,
    httpStatus,
    retryable,
    cause: new Error(`ShardSimulator: ${reason}`)
  })

/** How many of a call's processed records were written, throttled and failed. */
const countResults = (results: ReadonlyArray<PutRecordsResultEntry>) => {
  let written = 0
  let throttled = 0
  let failed = 0
  for (const r of results) {
    if (r._tag === "Written") written++
    else if (r.errorCode === "InternalFailure") failed++
    else throttled++
  }
  return { written, throttled, failed }
}

/**
 * The simulated stream: its shards, what it holds and the seeded draws, from options already
 * validated. Every call is handled synchronously, at the clock time it arrived.
 */
class SimulatedStream {
  readonly shards: ReadonlyArray<Shard>
  readonly written: Array<SimulatedRecord> = []
  readonly calls: Array<SimulatedCall> = []
  readonly totals: Totals = { calls: 0, attempted: 0, written: 0, throttled: 0, failed: 0, callFailed: 0 }
  private readonly map: ShardMap<Shard>
  private readonly recordsPerSecond: number
  private readonly bytesPerSecond: number
  private readonly recordFailureRate: number
  private readonly throttlingRate: number
  private readonly serverErrorRate: number
  private readonly timeoutRate: number
  private readonly ambiguousRate: number
  private readonly random: () => number
  private readonly history: boolean

  constructor(options: ShardSimulatorOptions) {
    const faults = options.callFaults ?? {}
    this.recordsPerSecond = options.recordsPerSecondPerShard ?? Defaults.recordsPerSecondPerShard
    this.bytesPerSecond = options.bytesPerSecondPerShard ?? Defaults.bytesPerSecondPerShard
    this.recordFailureRate = options.recordFailureRate ?? 0
    this.throttlingRate = faults.throttling ?? 0
    this.serverErrorRate = faults.serverError ?? 0
    this.timeoutRate = faults.timeout ?? 0
    this.ambiguousRate = faults.ambiguousWriteRate ?? 0
    this.random = prng(options.seed ?? Defaults.seed)
    this.history = options.history ?? true
    this.map = new ShardMap(
      evenShards(options.shards).map((range, index): Shard => ({
        ...range,
        index,
        window: Number.NEGATIVE_INFINITY,
        windowRecords: 0,
        windowBytes: 0,
        sequence: 0,
        records: 0,
        bytes: 0,
        throttled: 0
      }))
    )
    this.shards = this.map.shards
  }

  /** One PutRecords call at `now`: validation, then the call's fault, then each record it processes. */
  putRecords(
    request: PutRecordsRequest,
    now: number
  ): Effect.Effect<ReadonlyArray<PutRecordsResultEntry>, KinesisError> {
    const { calls, history, totals } = this
    const index = totals.calls
    const n = request.records.length
    totals.calls++
    totals.attempted += n
    const invalid = validateRequest(request)
    if (invalid !== undefined) {
      totals.callFailed += n
      if (history) {
        calls.push({
          index,
          at: now,
          records: request.records,
          fault: "validation",
          errorName: "ValidationException",
          written: 0,
          throttled: 0,
          failed: 0,
          ambiguous: false
        })
      }
      return Effect.fail(callError(request, "ValidationException", 400, false, invalid))
    }
    const decided = this.plan(n)
    const processed = decided.fault === "none" ? n : decided.processed
    const results: Array<PutRecordsResultEntry> = []
    for (let i = 0; i < processed; i++) {
      results.push(this.processRecord(request.streamName, request.records[i]!, index, now))
    }
    const counts = countResults(results)
    if (decided.fault === "none") {
      if (history) {
        calls.push({ index, at: now, records: request.records, fault: "none", ...counts, ambiguous: false })
      }
      return Effect.succeed(results)
    }
    totals.callFailed += n
    if (history) {
      calls.push({
        index,
        at: now,
        records: request.records,
        fault: decided.fault,
        errorName: decided.errorName,
        ...counts,
        ambiguous: counts.written > 0
      })
    }
    return Effect.fail(
      callError(request, decided.errorName, decided.httpStatus, true, `simulated ${decided.fault}`)
    )
  }

  // One draw decides the call's fault; a second its details. Rates of 0 never fire.
  private plan(n: number): Plan {
    const { ambiguousRate, serverErrorRate, throttlingRate, timeoutRate } = this
    const u = this.random()
    const detail = this.random()
    if (u < throttlingRate) {
      return {
        fault: "throttling",
        errorName: detail < 0.5 ? "LimitExceededException" : "ThrottlingException",
        httpStatus: 400,
        processed: 0
      }
    }
    if (u < throttlingRate + serverErrorRate) {
      // Ambiguous: a prefix of 1..n records was processed before the server failed.
      const processed = detail < ambiguousRate ? 1 + Math.floor(this.random() * n) : 0
      return { fault: "serverError", errorName: "InternalFailure", httpStatus: 500, processed }
    }
    if (u < throttlingRate + serverErrorRate + timeoutRate) {
      return {
        fault: "timeout",
        errorName: "TimeoutError",
        httpStatus: undefined,
        processed: detail < ambiguousRate ? n : 0
      }
    }
    return { fault: "none" }
  }

  // Kinesis' handling of one record at `now`: InternalFailure by chance, else the shard's limits, else written.
  private processRecord(
    streamName: string,
    record: PutRecordsEntry,
    callIndex: number,
    now: number
  ): PutRecordsResultEntry {
    const { totals } = this
    const failsInternally = this.random() < this.recordFailureRate
    if (failsInternally) {
      totals.failed++
      return { _tag: "Failed", errorCode: "InternalFailure", errorMessage: "Internal service failure." }
    }
    const shard = this.shards[this.map.indexOf(routingHashKey(record))]!
    const bytes = record.data.length + Buffer.byteLength(record.partitionKey, "utf8")
    if (!this.admit(shard, bytes, now)) {
      shard.throttled++
      totals.throttled++
      return {
        _tag: "Failed",
        errorCode: "ProvisionedThroughputExceededException",
        errorMessage: `Rate exceeded for shard ${shard.shardId} in stream ${streamName}.`
      }
    }
    shard.records++
    shard.bytes += bytes
    shard.sequence++
    totals.written++
    const sequenceNumber = `49${String(shard.index).padStart(6, "0")}${String(shard.sequence).padStart(20, "0")}`
    if (this.history) {
      this.written.push({
        shardId: shard.shardId,
        sequenceNumber,
        partitionKey: record.partitionKey,
        ...(record.explicitHashKey === undefined ? {} : { explicitHashKey: record.explicitHashKey }),
        data: record.data,
        at: now,
        callIndex
      })
    }
    return { _tag: "Written", shardId: shard.shardId, sequenceNumber }
  }

  /**
   * The shard's window accounting: whether a record of `bytes` fits the shard's limits in the
   * second of `now`, counting it in that second's window when it does (a refused record uses
   * no capacity).
   */
  private admit(shard: Shard, bytes: number, now: number): boolean {
    const second = Math.floor(now / 1000)
    if (shard.window !== second) {
      shard.window = second
      shard.windowRecords = 0
      shard.windowBytes = 0
    }
    if (shard.windowRecords + 1 > this.recordsPerSecond || shard.windowBytes + bytes > this.bytesPerSecond) {
      return false
    }
    shard.windowRecords++
    shard.windowBytes += bytes
    return true
  }
}

/** The `Kinesis` service over a simulated stream: PutRecords as simulated, the stream's summary and shard map. */
const simulatedKinesis = (stream: SimulatedStream): Kinesis["Type"] =>
  Kinesis.of({
    putRecords: (request) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.suspend(() => stream.putRecords(request, now))),
    describeStreamSummary: (streamName) =>
      Effect.succeed({
        streamName,
        status: "ACTIVE",
        openShardCount: stream.shards.length,
        maxRecordSizeInKiB: Defaults.maxRecordBytes / 1024
      }),
    listShards: () =>
      Effect.succeed(
        stream.shards.map((s) => ({
          shardId: s.shardId,
          startingHashKey: s.startingHashKey,
          endingHashKey: s.endingHashKey,
          open: true
        }))
      ),
    ...unreadable("ShardSimulator")
  })

/** Snapshots of what a simulated stream holds. */
const simulatorState = (stream: SimulatedStream): ShardSimulatorState["Type"] =>
  ShardSimulatorState.of({
    written: Effect.sync(() => stream.written.slice()),
    calls: Effect.sync(() => stream.calls.slice()),
    shards: Effect.sync(() =>
      stream.shards.map((s): ShardStats => ({
        shardId: s.shardId,
        startingHashKey: s.startingHashKey,
        endingHashKey: s.endingHashKey,
        records: s.records,
        bytes: s.bytes,
        throttled: s.throttled
      }))
    ),
    totals: Effect.sync(() => ({ ...stream.totals }))
  })

/**
 * Builds a simulator: the `Kinesis` service and its {@link ShardSimulatorState}. Dies (a
 * defect: a mistake in the test) on options out of range: shards not a positive integer, a
 * rate outside [0, 1], call-fault rates summing over 1, a limit not positive.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function*() {
 *   const { kinesis, state } = yield* ShardSimulator.make({ shards: 2 })
 *   yield* kinesis.putRecords({ streamName: "s", records: [{ data: new Uint8Array(10), partitionKey: "k" }] })
 *   return yield* state.totals
 * })
 * ```
 *
 * @since 0.1.0
 */
export const make = (
  options: ShardSimulatorOptions
): Effect.Effect<{ readonly kinesis: Kinesis["Type"]; readonly state: ShardSimulatorState["Type"] }> =>
  Effect.suspend(() => {
    const invalid = invalidOptions(options)
    if (invalid !== undefined) return Effect.dieMessage(`ShardSimulator: ${invalid}`)
    const stream = new SimulatedStream(options)
    return Effect.succeed({ kinesis: simulatedKinesis(stream), state: simulatorState(stream) })
  })

/**
 * The simulator as a layer providing both `Kinesis` and {@link ShardSimulatorState}; each
 * build of the layer is a fresh, empty stream.
 *
 * @example
 * ```ts
 * const KinesisSim = ShardSimulator.layer({
 *   shards: 4,
 *   seed: 7,
 *   recordFailureRate: 0.02,
 *   callFaults: { throttling: 0.02, serverError: 0.02, timeout: 0.02, ambiguousWriteRate: 0.5 }
 * })
 * ```
 *
 * @since 0.1.0
 */
export const layer = (options: ShardSimulatorOptions): Layer.Layer<Kinesis | ShardSimulatorState> =>
  Layer.effectContext(
    Effect.map(
      make(options),
      ({ kinesis, state }) => Context.make(Kinesis, kinesis).pipe(Context.add(ShardSimulatorState, state))
    )
  )
