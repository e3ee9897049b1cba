import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Exit, TestClock } from "effect"
import { createHash } from "node:crypto"
import type { PutRecordsEntry, PutRecordsResultEntry } from "../../src/Kinesis.js"
import { prng } from "../../src/RecordGenerator.js"
import * as ShardSimulator from "../../src/ShardSimulator.js"

/** The shard of a key on 4 evenly split shards, computed apart from the simulator: the top 2 bits of its MD5. */
const shardOf4 = (key: string) => createHash("md5").update(key, "utf8").digest()[0]! >> 6

const entries = (count: number, partitionKey: (i: number) => string, dataBytes = 10): Array<PutRecordsEntry> =>
  Array.from({ length: count }, (_, i) => ({ data: new Uint8Array(dataBytes), partitionKey: partitionKey(i) }))

const tags = (results: ReadonlyArray<PutRecordsResultEntry>) => {
  const written = results.filter((r) => r._tag === "Written").length
  return { written, failed: results.length - written }
}

describe("ShardSimulator: routing", () => {
  it("splits [0, 2^128) as CreateStream does (the hash-key ranges AWS reports for 3 and 4 shards)", () => {
    assert.deepStrictEqual(ShardSimulator.startingHashKeys(3), [
      0n,
      113427455640312821154458202477256070485n,
      226854911280625642308916404954512140970n
    ])
    assert.deepStrictEqual(ShardSimulator.startingHashKeys(4).map((k) => k.toString(16)), [
      "0",
      "4".padEnd(32, "0"),
      "8".padEnd(32, "0"),
      "c".padEnd(32, "0")
    ])
    assert.strictEqual(
      ShardSimulator.shardIndexOfHashKey(113427455640312821154458202477256070484n, ShardSimulator.startingHashKeys(3)),
      0
    )
    assert.strictEqual(
      ShardSimulator.shardIndexOfHashKey(113427455640312821154458202477256070485n, ShardSimulator.startingHashKeys(3)),
      1
    )
    assert.strictEqual(ShardSimulator.shardIndexOfHashKey((1n << 128n) - 1n, ShardSimulator.startingHashKeys(3)), 2)
  })

  it.effect("known MD5s land on the shard their hash key names (4 shards)", () =>
    Effect.gen(function*() {
      // md5("a") = 0cc1…, md5("hello") = 5d41…, md5("abc") = 9001…, md5("message digest") = f96b…
      const known: Array<[string, string, number]> = [
        ["a", "0cc175b9c0f1b6a831c399e269772661", 0],
        ["hello", "5d41402abc4b2a76b9719d911017c592", 1],
        ["abc", "900150983cd24fb0d6963f7d28e17f72", 2],
        ["message digest", "f96b697d7cb7938d525a2f31aaf161d0", 3]
      ]
      const { kinesis, state } = yield* ShardSimulator.make({ shards: 4 })
      const results = yield* kinesis.putRecords({
        streamName: "s",
        records: known.map(([key]) => ({ data: new Uint8Array(1), partitionKey: key }))
      })
      known.forEach(([key, md5, shard], i) => {
        assert.strictEqual(ShardSimulator.hashKey(key), BigInt(`0x${md5}`), key)
        assert.strictEqual(shardOf4(key), shard, key)
        assert.strictEqual(ShardSimulator.shardIndexOf(key, 4), shard, key)
        assert.deepInclude(results[i], { _tag: "Written", shardId: ShardSimulator.shardId(shard) })
      })
      assert.deepStrictEqual((yield* state.shards).map((s) => s.records), [1, 1, 1, 1])
    }))

  it.effect("10,000 random keys spread evenly over 4 shards (±10%), each where MD5 puts it", () =>
    Effect.gen(function*() {
      const rand = prng(2024)
      const keys = Array.from(
        { length: 10_000 },
        () => `key-${Math.floor(rand() * 2 ** 32).toString(36)}-${Math.floor(rand() * 2 ** 32).toString(36)}`
      )
      const { kinesis, state } = yield* ShardSimulator.make({
        shards: 4,
        recordsPerSecondPerShard: 100_000,
        bytesPerSecondPerShard: 100_000_000
      })
      for (let offset = 0; offset < keys.length; offset += 500) {
        const batch = keys.slice(offset, offset + 500)
        const results = yield* kinesis.putRecords({
          streamName: "s",
          records: batch.map((partitionKey) => ({ data: new Uint8Array(1), partitionKey }))
        })
        results.forEach((r, i) =>
          assert.deepInclude(r, { _tag: "Written", shardId: ShardSimulator.shardId(shardOf4(batch[i]!)) })
        )
      }
      for (const shard of yield* state.shards) {
        assert.isAtLeast(shard.records, 2_250, shard.shardId)
        assert.isAtMost(shard.records, 2_750, shard.shardId)
      }
      assert.strictEqual((yield* state.totals).written, 10_000)
    }))
})

describe("ShardSimulator: per-shard write limits", () => {
  it.effect("1,200 records in one second to one shard: 1,000 written, 200 throttled one by one; the next second accepts again", () =>
    Effect.gen(function*() {
      const { kinesis, state } = yield* ShardSimulator.make({ shards: 4 })
      const send = (n: number) => kinesis.putRecords({ streamName: "s", records: entries(n, () => "hot-key") })
      const first = [...(yield* send(500)), ...(yield* send(500)), ...(yield* send(200))]
      assert.deepStrictEqual(tags(first), { written: 1_000, failed: 200 })
      // Kinesis takes records in order: the first 1,000 fit, the rest are refused one by one.
      assert.isTrue(first.slice(0, 1_000).every((r) => r._tag === "Written"))
      for (const r of first.slice(1_000)) {
        assert.deepInclude(r, { _tag: "Failed", errorCode: "ProvisionedThroughputExceededException" })
      }
      // Still the same per-second window at 999 ms.
      yield* TestClock.adjust("999 millis")
      assert.deepStrictEqual(tags(yield* send(10)), { written: 0, failed: 10 })
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(tags(yield* send(500)), { written: 500, failed: 0 })
      const totals = yield* state.totals
      assert.deepInclude(totals, {
        calls: 5,
        attempted: 1_710,
        written: 1_500,
        throttled: 210,
        failed: 0,
        callFailed: 0
      })
      const hot = ShardSimulator.shardIndexOf("hot-key", 4)
      assert.deepStrictEqual(
        (yield* state.shards).map((s) => s.records),
        [0, 1, 2, 3].map((i) => i === hot ? 1_500 : 0)
      )
      const written = yield* state.written
      assert.deepStrictEqual([...new Set(written.map((r) => r.at))], [0, 1_000])
      // Sequence numbers increase within the shard.
      assert.isTrue(
        written.every((r, i) => i === 0 || BigInt(r.sequenceNumber) > BigInt(written[i - 1]!.sequenceNumber))
      )
    }))

  it.effect("the 1 MiB/s limit counts data plus partition key, record by record, per shard", () =>
    Effect.gen(function*() {
      const { kinesis } = yield* ShardSimulator.make({ shards: 4 })
      // 102,400 bytes of data + 1 byte of key: 10 fit in 1,048,576 bytes, the 11th does not.
      const big = entries(12, () => "k", 102_400)
      assert.deepStrictEqual(
        (yield* kinesis.putRecords({ streamName: "s", records: big })).map((r) => r._tag),
        [...Array(10).fill("Written"), "Failed", "Failed"]
      )
      // 1,024,010 bytes used: a small record still fits, another 102,401-byte one does not.
      const next = yield* kinesis.putRecords({
        streamName: "s",
        records: [...entries(1, () => "k", 1_000), ...entries(1, () => "k", 102_400)]
      })
      assert.deepStrictEqual(next.map((r) => r._tag), ["Written", "Failed"])
      // Another shard has its own budget.
      const other = ["a", "hello", "abc", "message digest"].find((k) =>
        ShardSimulator.shardIndexOf(k, 4) !== ShardSimulator.shardIndexOf("k", 4)
      )!
      assert.deepStrictEqual(
        tags(yield* kinesis.putRecords({ streamName: "s", records: entries(10, () => other, 102_400) })),
        { written: 10, failed: 0 }
      )
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(tags(yield* kinesis.putRecords({ streamName: "s", records: big.slice(0, 10) })), {
        written: 10,
        failed: 0
      })
    }))

  it.effect("custom limits: 5 records/s per shard", () =>
    Effect.gen(function*() {
      const { kinesis } = yield* ShardSimulator.make({ shards: 1, recordsPerSecondPerShard: 5 })
      assert.deepStrictEqual(
        tags(yield* kinesis.putRecords({ streamName: "s", records: entries(8, (i) => `k${i}`) })),
        { written: 5, failed: 3 }
      )
    }))
})

describe("ShardSimulator: requests Kinesis refuses", () => {
  it.effect("501 records, a 257-character key or a record over 1 MiB fail the call with a non-retryable ValidationException", () =>
    Effect.gen(function*() {
      const { kinesis, state } = yield* ShardSimulator.make({ shards: 2 })
      const bad = [
        entries(501, (i) => `k${i}`),
        entries(1, () => "x".repeat(257)),
        entries(1, () => "k", 1_048_576)
      ]
      for (const records of bad) {
        const error = yield* Effect.flip(kinesis.putRecords({ streamName: "s", records }))
        assert.deepInclude(error, {
          _tag: "KinesisError",
          errorName: "ValidationException",
          httpStatus: 400,
          retryable: false
        })
      }
      assert.deepStrictEqual((yield* state.calls).map((c) => c.fault), ["validation", "validation", "validation"])
      assert.strictEqual((yield* state.written).length, 0)
    }))

  it.effect("describeStreamSummary answers ACTIVE with the shard count", () =>
    Effect.gen(function*() {
      const { kinesis } = yield* ShardSimulator.make({ shards: 6 })
      assert.deepInclude(yield* kinesis.describeStreamSummary("s"), {
        streamName: "s",
        status: "ACTIVE",
        openShardCount: 6
      })
    }))

  it.effect("options out of range are a defect naming the option", () =>
    Effect.gen(function*() {
      for (
        const [options, text] of [
          [{ shards: 0 }, "shards"],
          [{ shards: 2, recordFailureRate: 1.5 }, "recordFailureRate"],
          [{ shards: 2, callFaults: { throttling: 0.6, timeout: 0.6 } }, "at most 1"],
          [{ shards: 2, recordsPerSecondPerShard: 0 }, "recordsPerSecondPerShard"]
        ] as const
      ) {
        const exit = yield* Effect.exit(ShardSimulator.make(options))
        assert.isTrue(Exit.isFailure(exit) && String(exit.cause).includes(text), text)
      }
    }))
})

describe("ShardSimulator: seeded faults", () => {
  const faulty = {
    shards: 4,
    recordsPerSecondPerShard: 10_000,
    recordFailureRate: 0.05,
    callFaults: { throttling: 0.1, serverError: 0.1, timeout: 0.1, ambiguousWriteRate: 0.5 }
  } as const

  /** 300 calls of 20 records (limits raised so that only the seeded faults refuse): every result or error, as plain data. */
  const run = (seed: number, history?: boolean) =>
    Effect.gen(function*() {
      const { kinesis, state } = yield* ShardSimulator.make({ ...faulty, seed, history })
      const outcomes: Array<unknown> = []
      for (let call = 0; call < 300; call++) {
        const result = yield* Effect.either(
          kinesis.putRecords({ streamName: "s", records: entries(20, (i) => `key-${call}-${i}`) })
        )
        outcomes.push(
          Either.isRight(result)
            ? result.right
            : { errorName: result.left.errorName, httpStatus: result.left.httpStatus }
        )
      }
      return { outcomes, calls: yield* state.calls, totals: yield* state.totals, written: yield* state.written }
    })

  it.effect("the same seed gives the same outcomes; another seed, other outcomes", () =>
    Effect.gen(function*() {
      const a = yield* run(7)
      const b = yield* run(7)
      const c = yield* run(8)
      assert.deepStrictEqual(a.outcomes, b.outcomes)
      assert.deepStrictEqual(
        a.calls.map((x) => [x.fault, x.written, x.ambiguous]),
        b.calls.map((x) => [x.fault, x.written, x.ambiguous])
      )
      assert.deepStrictEqual(a.totals, b.totals)
      assert.notDeepEqual(a.outcomes, c.outcomes)
    }))

  it.effect("without history, the same outcomes, totals and shards, and nothing kept of each record or call", () =>
    Effect.gen(function*() {
      const kept = yield* run(7)
      const unkept = yield* run(7, false)
      assert.deepStrictEqual(unkept.outcomes, kept.outcomes)
      assert.deepStrictEqual(unkept.totals, kept.totals)
      assert.isAbove(kept.written.length, 0)
      assert.strictEqual(unkept.written.length, 0)
      assert.strictEqual(unkept.calls.length, 0)
    }))

  it.effect("faults come at about their rates and with the shape Kinesis gives them", () =>
    Effect.gen(function*() {
      const { calls, totals, written } = yield* run(11)
      const count = (fault: ShardSimulator.CallFault) => calls.filter((c) => c.fault === fault).length
      // 300 calls, 10% each: expect 30, allow a wide band.
      for (const fault of ["throttling", "serverError", "timeout"] as const) {
        assert.isAtLeast(count(fault), 12, fault)
        assert.isAtMost(count(fault), 50, fault)
      }
      // Records of calls that did not fail whole: about 5% InternalFailure.
      const processed = calls.filter((c) => c.fault === "none").reduce((n, c) => n + c.records.length, 0)
      const failedInClean = calls.filter((c) => c.fault === "none").reduce((n, c) => n + c.failed, 0)
      assert.isAtLeast(failedInClean / processed, 0.03)
      assert.isAtMost(failedInClean / processed, 0.07)
      assert.strictEqual(totals.throttled, 0)
      // Throttled calls write nothing; ambiguous server errors write a prefix; ambiguous timeouts the whole call.
      for (const call of calls) {
        if (call.fault === "throttling") {
          assert.strictEqual(call.written, 0)
          assert.include(["LimitExceededException", "ThrottlingException"], call.errorName)
        }
        if (call.ambiguous) assert.include(["serverError", "timeout"], call.fault)
        if (call.fault === "timeout" && call.ambiguous) {
          assert.strictEqual(call.written + call.failed, call.records.length)
        }
        if (call.fault === "serverError") {
          assert.strictEqual(call.errorName, "InternalFailure")
        }
      }
      assert.isAbove(calls.filter((c) => c.ambiguous && c.fault === "timeout").length, 0)
      assert.isAbove(calls.filter((c) => c.ambiguous && c.fault === "serverError").length, 0)
      assert.isAbove(calls.filter((c) => !c.ambiguous && c.fault === "timeout").length, 0)
      // Every written record names the call that wrote it, and the stream holds what the calls report.
      assert.strictEqual(written.length, calls.reduce((n, c) => n + c.written, 0))
      assert.isTrue(written.every((r) => calls[r.callIndex]!.records.some((e) => e.partitionKey === r.partitionKey)))
    }))

  it.effect("whole-call errors are retryable KinesisErrors: throttling HTTP 400, server error HTTP 500, timeout without status", () =>
    Effect.gen(function*() {
      const shapes = new Map<string, { httpStatus: number | undefined; retryable: boolean }>()
      for (
        const [fault, callFaults] of [["throttling", { throttling: 1 }], ["serverError", { serverError: 1 }], [
          "timeout",
          { timeout: 1, ambiguousWriteRate: 1 }
        ]] as const
      ) {
        const { kinesis, state } = yield* ShardSimulator.make({ shards: 2, seed: 3, callFaults })
        const error = yield* Effect.flip(kinesis.putRecords({ streamName: "s", records: entries(5, (i) => `k${i}`) }))
        shapes.set(fault, { httpStatus: error.httpStatus, retryable: error.retryable })
        if (fault === "timeout") {
          assert.strictEqual(error.errorName, "TimeoutError")
          // ambiguousWriteRate 1: the timed-out call wrote all its records; a retry duplicates them.
          assert.strictEqual((yield* state.written).length, 5)
          assert.isTrue((yield* state.calls)[0]!.ambiguous)
        }
      }
      assert.deepStrictEqual(Object.fromEntries(shapes), {
        throttling: { httpStatus: 400, retryable: true },
        serverError: { httpStatus: 500, retryable: true },
        timeout: { httpStatus: undefined, retryable: true }
      })
    }))
})
