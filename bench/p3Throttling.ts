/**
 * P3, under throttling: the writer against the shard simulator (4 shards, Kinesis' real
 * limits: 1,000 records/s and 1 MiB/s per shard) over 60 s of SIMULATED time. The test
 * clock is driven outside vitest (`Effect.provide(TestContext.TestContext)`): a producer
 * fiber calls `writeBatch` with batches of 1,000 records as fast as the writer lets it, and
 * the driver advances the clock to the next sleep (the writer's backoff) whenever the
 * producer is waiting on it, so encoding and compression take no simulated time.
 *
 * The driver counts only the producer's sleeps still pending (see {@link producerClock}), not
 * `TestClock.sleeps()`: that list keeps a sleep after it is interrupted, and every PutRecords
 * call races a `requestTimeout` (30 s) sleep that the answer interrupts at once; the driver
 * jumped to those stale instants while the producer was encoding (0.8% goodput after
 * e26fadd). It moves the clock with `TestClock.setTime(instant)`, exactly: a relative
 * `TestClock.adjust(next - now)` goes through `Duration`, which rounds a fractional
 * millisecond to whole nanoseconds, so it could land 1 ulp short of a jittered backoff's
 * instant and then adjust by 0 for ever (the hang after 20f2d97).
 */
import { Clock, Duration, Effect, Fiber, Layer, Option, TestClock, TestContext } from "effect"
import { KinesisMetrics, KinesisWriter, LargePayloadStore, WriterDefaults } from "../src/index.js"
import { RecordGenerator, ShardSimulator } from "../src/testing.js"
import { fixed, int, pct, quietLogs, section, signalOption, table, WRITER_BASE } from "./common.js"

export const P3_SECONDS = 60
export const P3_SHARDS = 4
export const P3_BATCH = 1_000

export interface P3Result {
  readonly distributionFactor: number
  /** Simulated seconds of the window. */
  readonly seconds: number
  readonly writtenInWindow: number
  readonly capacity: number
  readonly capacityBy: "records" | "bytes"
  readonly share: number
  readonly produced: number
  readonly delivered: number
  readonly named: number
  readonly lost: number
  readonly wallSeconds: number
}

/**
 * The producer's clock: the test clock as the live clock shows time, whole milliseconds (the
 * TestClock wakes a sleep at its exact instant, fractional after a jittered backoff, and the
 * writer turns `Clock.currentTimeMillis` into a BigInt creation time (`BigInt(now)` in
 * KinesisWriter.ts), which dies with a RangeError on a fractional value; `Date.now()` never
 * is fractional), and `pending`: the instants of the sleeps not yet over, neither woken nor
 * interrupted.
 */
const producerClock = (
  inner: Clock.Clock
): { readonly clock: Clock.Clock; readonly pending: ReadonlyMap<number, number> } => {
  const pending = new Map<number, number>()
  let ids = 0
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => Math.floor(inner.unsafeCurrentTimeMillis()),
    currentTimeMillis: Effect.map(inner.currentTimeMillis, Math.floor),
    unsafeCurrentTimeNanos: () => inner.unsafeCurrentTimeNanos(),
    currentTimeNanos: inner.currentTimeNanos,
    sleep: (duration) =>
      Effect.suspend(() => {
        const id = ids++
        // The instant the TestClock computes for it, the same sum.
        pending.set(id, inner.unsafeCurrentTimeMillis() + Duration.toMillis(duration))
        return Effect.ensuring(inner.sleep(duration), Effect.sync(() => pending.delete(id)))
      })
  }
  return { clock, pending }
}

const realPause = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 1)))

export interface P3Options {
  readonly distributionFactor?: number
  readonly header?: boolean
  /** Simulated seconds of the window. Default {@link P3_SECONDS}. */
  readonly seconds?: number
  /** Records per batch. Default {@link P3_BATCH}. */
  readonly batch?: number
  /** Stops the run (the producer is interrupted, the writer's scope closed) and rejects. */
  readonly signal?: AbortSignal | undefined
}

export const runP3 = async (options: P3Options = {}): Promise<P3Result> => {
  const distributionFactor = options.distributionFactor ?? WriterDefaults.distributionFactor
  const windowSeconds = options.seconds ?? P3_SECONDS
  const batchSize = options.batch ?? P3_BATCH
  if (options.header ?? true) {
    section(
      `P3 under throttling: shard simulator, ${P3_SHARDS} shards, ${windowSeconds} s of simulated time (TestClock)`
    )
    console.log(
      "Limits per shard: 1,000 records/s and 1,048,576 bytes/s (data + partition key), per whole second of the clock."
    )
    console.log(
      `Producer: one fiber calling writeBatch with batches of ${
        int(batchSize)
      } records of 50 columns, one after another, as fast as`
    )
    console.log(
      "the writer returns (default options: maxRetries 3, backoff 100 ms jittered ×0.8-1.2, cap 10 s). The driver advances"
    )
    console.log(
      "the TestClock to the next pending sleep whenever the producer waits on one, so CPU work takes no simulated time."
    )
    console.log(
      `After ${windowSeconds} s no new batch starts; the batch in progress finishes (its retries may run past ${windowSeconds} s).\n`
    )
  }
  const pool = RecordGenerator.makeDataFiles(2 * batchSize, { columns: 50, seed: 333 })
  const layer = KinesisWriter.layer({ ...WRITER_BASE, distributionFactor }).pipe(
    Layer.provideMerge(ShardSimulator.layer({ shards: P3_SHARDS, seed: 1 })),
    Layer.provide(LargePayloadStore.layerMemory()),
    Layer.provide(KinesisMetrics.layerNoop),
    Layer.provideMerge(quietLogs)
  )
  const counts = {
    batches: 0,
    failedBatches: 0,
    produced: 0,
    delivered: 0,
    named: 0,
    otherErrors: 0,
    calls: 0,
    retries: 0
  }
  const wall = performance.now()
  const program = Effect.gen(function*() {
    const writer = yield* KinesisWriter
    const sim = yield* ShardSimulator.ShardSimulatorState
    let stop = false
    let offset = 0
    const producer = Effect.gen(function*() {
      while (!stop) {
        const batch = Array.from({ length: batchSize }, (_, i) => pool[(offset + i) % pool.length]!)
        offset += batchSize
        counts.batches++
        counts.produced += batch.length
        const result = yield* Effect.either(writer.writeBatch(batch))
        if (result._tag === "Right") {
          counts.delivered += result.right.records
          counts.calls += result.right.kinesisCalls
          counts.retries += result.right.retries
        } else if (result.left._tag === "WriteBatchError") {
          counts.failedBatches++
          counts.delivered += result.left.delivered
          counts.named += result.left.undelivered.length
        } else {
          counts.otherErrors++
        }
      }
    })
    const { clock, pending } = producerClock(yield* Effect.clock)
    const fiber = yield* Effect.fork(Effect.withClock(producer, clock))
    let snapshot: {
      totals: ShardSimulator.SimulatorTotals
      shards: ReadonlyArray<ShardSimulator.ShardStats>
      at: number
    } | undefined
    for (;;) {
      // Moves no time: lets every fiber run until it waits (on a sleep, the compression
      // worker, ...), so that a call's timeout sleep, over once the simulator answers, is gone.
      yield* TestClock.adjust(0)
      const exit = yield* Fiber.poll(fiber)
      if (Option.isSome(exit)) {
        if (exit.value._tag === "Failure") return yield* Effect.failCause(exit.value.cause)
        break
      }
      if (pending.size === 0) {
        // The producer is encoding or waiting for the compression worker (real time): let it run.
        yield* realPause
        continue
      }
      const now = yield* Clock.currentTimeMillis
      let next = Number.POSITIVE_INFINITY
      for (const instant of pending.values()) next = Math.min(next, instant)
      if (snapshot === undefined && next >= windowSeconds * 1000) {
        // Nothing can happen before `next`: the stream as it is at the end of the window.
        snapshot = { totals: yield* sim.totals, shards: yield* sim.shards, at: now }
        stop = true
      }
      // Exactly to the sleep's instant (see the top of this file).
      yield* TestClock.setTime(next)
    }
    const end = yield* Clock.currentTimeMillis
    return { snapshot: snapshot!, final: yield* sim.totals, end }
  }).pipe(Effect.scoped, Effect.provide(layer), Effect.provide(TestContext.TestContext))

  const { end, final, snapshot } = await Effect.runPromise(program, signalOption(options.signal))
  const wallSeconds = (performance.now() - wall) / 1000

  const inWindow = snapshot.totals.written
  const bytesInWindow = snapshot.shards.reduce((n, s) => n + s.bytes, 0)
  const bytesPerRecord = bytesInWindow / Math.max(1, inWindow)
  const recordsCapacity = ShardSimulator.Defaults.recordsPerSecondPerShard * P3_SHARDS * windowSeconds
  const bytesCapacity = (ShardSimulator.Defaults.bytesPerSecondPerShard * P3_SHARDS * windowSeconds) / bytesPerRecord
  const capacityBy = bytesCapacity < recordsCapacity ? "bytes" : "records"
  const capacity = Math.min(recordsCapacity, bytesCapacity)
  const lost = counts.produced - counts.delivered - counts.named

  // Which shards the writer's partition keys reach: `{logGroupId}-{schemaName}-{bucket}-{attempt}`.
  const keyShards = Array.from({ length: 1 + WriterDefaults.maxRetries }, (_, attempt) => {
    const shards = new Set<number>()
    for (let bucket = 0; bucket < distributionFactor; bucket++) {
      shards.add(
        ShardSimulator.shardIndexOf(
          `${WRITER_BASE.logGroupId}-${WRITER_BASE.schemaName}-${bucket}-${attempt}`,
          P3_SHARDS
        )
      )
    }
    return [...shards].sort()
  })

  console.log(
    `distributionFactor ${distributionFactor} (${
      distributionFactor === WriterDefaults.distributionFactor
        ? "the default"
        : distributionFactor > WriterDefaults.distributionFactor
        ? "raised"
        : "lowered"
    }):`
  )
  console.log(
    `  simulated ${fixed(end / 1000, 1)} s in ${fixed(wallSeconds, 1)} s of wall time; ${
      int(counts.batches)
    } batches, ${int(counts.failedBatches)} ended in a WriteBatchError`
  )
  console.log("")
  console.log(table(
    ["shard", `records in ${windowSeconds} s`, "records/s", "MiB/s", "share of its limit"],
    snapshot.shards.map((s) => {
      const rps = s.records / windowSeconds
      const bps = s.bytes / windowSeconds
      return [
        s.shardId,
        int(s.records),
        int(rps),
        fixed(bps / 2 ** 20),
        pct(
          Math.max(
            rps / ShardSimulator.Defaults.recordsPerSecondPerShard,
            bps / ShardSimulator.Defaults.bytesPerSecondPerShard
          ),
          1
        )
      ]
    })
  ))
  console.log("")
  console.log(
    `  shards reached by the partition keys of attempt 0, 1, 2, 3: ${
      keyShards.map((s) => `[${s.join(",")}]`).join(" ")
    }`
  )
  console.log(`  bytes per record on the stream (data + partition key): ${fixed(bytesPerRecord, 1)}`)
  console.log(
    `  capacity over ${windowSeconds} s = min(records limit: 1,000 rec/s × ${P3_SHARDS} shards × ${windowSeconds} s = ${
      int(recordsCapacity)
    },`
  )
  console.log(
    `                        bytes limit: 1 MiB/s × ${P3_SHARDS} × ${windowSeconds} s / ${
      fixed(bytesPerRecord, 1)
    } B per record = ${int(bytesCapacity)})`
  )
  console.log(`           = ${int(capacity)} records (the ${capacityBy} limit binds)`)
  console.log(
    `  goodput: ${int(inWindow)} records written in the first ${windowSeconds} s = ${
      pct(inWindow, capacity)
    } of capacity (target ≥ 90%)`
  )
  console.log(
    `  records: produced ${int(counts.produced)}, delivered ${int(counts.delivered)}, named in a WriteBatchError ${
      int(counts.named)
    }, ` +
      `lost ${int(lost)} (target 0)${counts.otherErrors > 0 ? `, other errors: ${counts.otherErrors} batches` : ""}`
  )
  console.log(
    `  simulator at the end: ${int(final.calls)} calls, ${int(final.attempted)} record sends, ${
      int(final.written)
    } written, ` +
      `${int(final.throttled)} throttled (${pct(final.throttled, final.attempted)} of sends); written = delivered: ${
        final.written === counts.delivered
      }`
  )
  return {
    distributionFactor,
    seconds: windowSeconds,
    writtenInWindow: inWindow,
    capacity,
    capacityBy,
    share: inWindow / capacity,
    produced: counts.produced,
    delivered: counts.delivered,
    named: counts.named,
    lost,
    wallSeconds
  }
}
