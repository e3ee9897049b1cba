import { assert, describe, it } from "@effect/vitest"
import { Chunk, Clock, Duration, Effect, Fiber, Random, Schedule, TestClock } from "effect"
import { KinesisWriter } from "../../src/index.js"
import { backoff } from "../../src/internal/backoff.js"
import { KinesisTest, RecordGenerator } from "../../src/testing.js"
import { writerLayer } from "../support/writerLayers.js"

/** The delays a schedule produces for `n` inputs (`Schedule.run` ends with the output of the step that stopped: dropped). */
const delaysOf = (schedule: Schedule.Schedule<unknown, unknown>, n: number) =>
  Effect.map(
    Schedule.run(Schedule.delays(schedule), 0, Array.from({ length: n })),
    (c) => Chunk.toReadonlyArray(c).slice(0, -1).map(Duration.toMillis)
  )

describe("backoff", () => {
  it.effect("delays grow exponentially from 100 ms within the ×0.8–1.2 jitter bounds and never exceed 10 s", () =>
    Effect.gen(function*() {
      for (let seed = 1; seed <= 100; seed++) {
        const delays = yield* delaysOf(backoff({ base: "100 millis", cap: "10 seconds", maxRetries: 12 }), 20).pipe(
          Effect.withRandom(Random.make(seed))
        )
        assert.strictEqual(delays.length, 12)
        delays.forEach((delay, n) => {
          const nominal = 100 * 2 ** n
          assert.isAtMost(delay, 10_000, `retry ${n}`)
          assert.isAtLeast(delay, Math.min(0.8 * nominal, 10_000), `retry ${n}`)
          assert.isAtMost(delay, Math.min(1.2 * nominal, 10_000), `retry ${n}`)
        })
        // From the 8th retry on (nominal 12.8 s, jittered at least 10.24 s) the cap holds every delay at exactly 10 s.
        assert.deepStrictEqual(delays.slice(7), [10_000, 10_000, 10_000, 10_000, 10_000])
      }
    }))

  it.effect("stops after maxRetries recurrences", () =>
    Effect.gen(function*() {
      for (const maxRetries of [0, 1, 3, 7]) {
        const delays = yield* delaysOf(backoff({ base: "100 millis", cap: "10 seconds", maxRetries }), 50)
        assert.strictEqual(delays.length, maxRetries)
      }
    }))

  it.effect("writeBatch sleeps the backoff between attempts on the Clock and stops after maxRetries", () =>
    Effect.gen(function*() {
      const times: Array<number> = []
      const layer = writerLayer(
        (call) =>
          Effect.zipRight(
            Effect.map(Clock.currentTimeMillis, (t) => void times.push(t)),
            KinesisTest.failEach(call, "ProvisionedThroughputExceededException")
          ),
        { maxRetries: 3 }
      )
      const fiber = yield* Effect.fork(
        Effect.flip(
          Effect.flatMap(KinesisWriter, (w) => w.writeBatch(RecordGenerator.makeDataFiles(3))).pipe(
            Effect.provide(layer)
          )
        )
      )
      for (let i = 0; i < 40; i++) yield* TestClock.adjust("50 millis")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "WriteBatchError")
      assert.strictEqual(times.length, 4)
      const gaps = times.slice(1).map((t, i) => t - times[i]!)
      gaps.forEach((gap, n) => {
        // The clock moves in 50 ms steps: a delay is observed rounded up to the next step.
        assert.isAtLeast(gap, 0.8 * 100 * 2 ** n, `gap ${n}`)
        assert.isAtMost(gap, 1.2 * 100 * 2 ** n + 50, `gap ${n}`)
      })
    }))
})
