import { Effect, Layer } from "effect"
import type { Compressor } from "../../src/Compressor.js"
import type { KinesisWriterOptions } from "../../src/index.js"
import { Kinesis, KinesisMetrics, KinesisWriter, LargePayloadStore, LargePayloadStoreError } from "../../src/index.js"
import type { PutRecordsScript } from "../../src/KinesisTest.js"
import type { MemoryStore } from "../../src/LargePayloadStore.js"
import { KinesisTest } from "../../src/testing.js"

export const baseOptions = {
  streamName: "test-stream",
  logGroupId: "lg",
  schemaName: "schema",
  accountId: "123456789012"
} as const satisfies KinesisWriterOptions

/**
 * A writer over the scripted Kinesis double, an in-memory store and the given metrics;
 * the double's recorder stays in the context for assertions.
 */
export const writerLayer = (
  script: PutRecordsScript = KinesisTest.acceptAll,
  options: Partial<KinesisWriterOptions> = {},
  extra: {
    readonly store?: Layer.Layer<LargePayloadStore> | undefined
    readonly metrics?: Layer.Layer<KinesisMetrics> | undefined
    readonly summary?: Parameters<typeof KinesisTest.layer>[1]
    /** What ListShards answers (default: the double's 4 even shards). */
    readonly shards?: Parameters<typeof KinesisTest.layer>[2]
    /** A compressor for the writer to use instead of its own. */
    readonly compressor?: Layer.Layer<Compressor> | undefined
  } = {}
) =>
  KinesisWriter.layer({ ...baseOptions, ...options }).pipe(
    Layer.provide(extra.compressor ?? Layer.empty),
    Layer.provideMerge(KinesisTest.layer(script, extra.summary, extra.shards)),
    Layer.provideMerge(extra.store ?? LargePayloadStore.layerMemory()),
    Layer.provideMerge(extra.metrics ?? KinesisMetrics.layerNoop)
  )

/** An in-memory store that counts writes and fails the first `failures` of them. */
export const countingStore = (memory: MemoryStore, counter: { writes: number }, failures: {
  readonly count: number
  readonly errorName: string
  readonly retryable: boolean
} = { count: 0, errorName: "", retryable: false }) =>
  Layer.succeed(
    LargePayloadStore,
    LargePayloadStore.of({
      ...memory.service,
      write: (key, bytes) =>
        Effect.suspend(() => {
          counter.writes++
          return counter.writes <= failures.count
            ? Effect.fail(
              new LargePayloadStoreError({
                operation: "write",
                bucket: "memory",
                key,
                errorName: failures.errorName,
                retryable: failures.retryable
              })
            )
            : memory.service.write(key, bytes)
        })
    })
  )

/**
 * The `Kinesis` below, whose DescribeStreamSummary says the stream's records are at most
 * `kib` KiB: with `readStreamRecordLimit`, a writer then keeps to that limit, and may use
 * calls (`maxRequestBytes`) as small as it, so a test makes several calls of a few records.
 */
export const streamRecordLimit = (kib: number): Layer.Layer<Kinesis, never, Kinesis> =>
  Layer.effect(
    Kinesis,
    Effect.map(Kinesis, (kinesis) =>
      Kinesis.of({
        ...kinesis,
        describeStreamSummary: (streamName, streamArn) =>
          Effect.map(
            kinesis.describeStreamSummary(streamName, streamArn),
            (summary) => ({ ...summary, maxRecordSizeInKiB: kib })
          )
      }))
  )
