/**
 * The writer's `aggregation` option: its shape, defaults and validation. Whether `maxBytes`
 * fits the stream's record limit is checked when the writer is built (the limit may be read
 * from the stream then): {@link checkAggregationFits}.
 *
 * @internal
 */
import { ConfigError, Effect, Either } from "effect"
import { gzipBound } from "./gzipBound.js"

/**
 * Packing the records of a batch that share a partition key into one Kinesis record
 * (`gzip(DataFileEntryRecordBatch)`). Off unless given: consumers must read aggregates
 * (`RecordReader.decodeRecordAll`, or any of the reader's batch functions) before a
 * producer turns it on.
 *
 * @since 0.1.0
 */
export interface AggregationOptions {
  /** Logical records in one aggregate, at most. Integer ≥ 2. Default 500. */
  readonly maxRecords?: number | undefined
  /**
   * Bytes of one aggregate before gzip, at most (a single record larger than this travels
   * alone). Its gzip'd size plus the partition key must fit the stream's record limit.
   * Default 262,144 (256 KiB).
   */
  readonly maxBytes?: number | undefined
}

/**
 * The aggregation settings after validation and defaults.
 *
 * @since 0.1.0
 */
export interface ResolvedAggregation {
  readonly maxRecords: number
  readonly maxBytes: number
}

/**
 * The aggregation defaults, from measurement (BENCHMARKS.md, "Aggregation"): bytes of Data
 * per record for 4,000 records over 4 partition keys, by `maxBytes` (no record bound):
 *
 * | columns | 4 KiB | 16 KiB | 64 KiB | 256 KiB | ~1 MB | not aggregated |
 * |---|---|---|---|---|---|---|
 * | 5  | 350 | 292 | 272 | 265 | 264 | 537 |
 * | 20 | 910 | 743 | 691 | 674 | 670 | 1,065 |
 * | 50 | 2,041 | 1,675 | 1,555 | 1,515 | 1,506 | 2,058 |
 *
 * 256 KiB is within 0.6% of the largest aggregate's bytes (64 KiB: within 3%), and gzip's
 * time per record has flattened well before it; a larger aggregate only makes a retried
 * unit and a consumer's fan-out bigger. It compresses to ~90–190 KB: a throttled aggregate
 * re-sends about a tenth of a shard's second. 500 records bounds how many logical records
 * one throttled Kinesis record takes with it; at 5 columns (~740 B a record before gzip)
 * `maxBytes` binds first (~350 records).
 *
 * @since 0.1.0
 */
export const AggregationDefaults = {
  maxRecords: 500,
  maxBytes: 256 * 1024
} as const

const MAX_RECORDS_LIMIT = 100_000
const MIN_BYTES = 1024

const invalid = (field: string, message: string) => ConfigError.InvalidData(["aggregation", field], message)

/**
 * Validates the `aggregation` option: `undefined` is off.
 *
 * @internal
 */
export const resolveAggregation = (
  options: AggregationOptions | undefined
): Either.Either<ResolvedAggregation | undefined, ConfigError.ConfigError> => {
  if (options === undefined) return Either.right(undefined)
  const maxRecords = options.maxRecords ?? AggregationDefaults.maxRecords
  const maxBytes = options.maxBytes ?? AggregationDefaults.maxBytes
  if (!Number.isInteger(maxRecords) || maxRecords < 2 || maxRecords > MAX_RECORDS_LIMIT) {
    return Either.left(
      invalid(
        "maxRecords",
        `aggregation.maxRecords must be an integer from 2 to ${MAX_RECORDS_LIMIT} (an aggregate of one record is no aggregate), got ${
          JSON.stringify(maxRecords) ?? String(maxRecords)
        }`
      )
    )
  }
  if (!Number.isInteger(maxBytes) || maxBytes < MIN_BYTES) {
    return Either.left(
      invalid(
        "maxBytes",
        `aggregation.maxBytes must be an integer of at least ${MIN_BYTES}, got ${
          JSON.stringify(maxBytes) ?? String(maxBytes)
        }`
      )
    )
  }
  return Either.right({ maxRecords, maxBytes })
}

/**
 * Fails with a `ConfigError` naming `aggregation.maxBytes` when an aggregate of that size
 * could be too large for the stream once gzip'd (incompressible records: gzip's worst case),
 * with the longest partition key the writer uses.
 *
 * @internal
 */
export const checkAggregationFits = (
  aggregation: ResolvedAggregation | undefined,
  recordLimitBytes: number,
  longestKeyBytes: number
): Effect.Effect<void, ConfigError.ConfigError> => {
  if (aggregation === undefined) return Effect.void
  const worst = gzipBound(aggregation.maxBytes) + longestKeyBytes
  if (worst <= recordLimitBytes) return Effect.void
  let largest = recordLimitBytes - longestKeyBytes
  while (largest > 0 && gzipBound(largest) + longestKeyBytes > recordLimitBytes) largest--
  return Effect.fail(
    invalid(
      "maxBytes",
      `aggregation.maxBytes ${aggregation.maxBytes} cannot work: an aggregate of that size may take ${worst} bytes once gzip'd with its partition key, over the stream's record limit of ${recordLimitBytes} bytes (largest maxBytes that fits: ${largest})`
    )
  )
}
