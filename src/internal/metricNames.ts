/**
 * The metric names, help texts and histogram buckets, shared by the Prometheus and Effect
 * layers.
 *
 * @internal
 */

/**
 * The metric names: part of the contract, dashboards depend on them.
 *
 * @since 0.1.0
 */
export const MetricNames = {
  writeAttempts: "kinesis_write_attempts_total",
  writeSuccess: "kinesis_write_success_total",
  failedRecords: "kinesis_failed_records_total",
  largePayloads: "kinesis_large_payloads_total",
  batchWriteFailures: "kinesis_batch_write_failures_total",
  writeLatency: "kinesis_write_latency_seconds"
} as const

/**
 * Prometheus' default histogram buckets, in seconds.
 *
 * @internal
 */
export const LATENCY_BUCKETS: ReadonlyArray<number> = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/**
 * What each metric counts, as its help text.
 *
 * @internal
 */
export const MetricHelp: Record<keyof typeof MetricNames, string> = {
  writeAttempts: "PutRecords calls made",
  writeSuccess: "PutRecords calls in which every record was written",
  failedRecords: "Records that failed in a PutRecords call",
  largePayloads: "Records offloaded to the large-payload store",
  batchWriteFailures: "PutRecords calls or payload builds that failed as a whole",
  writeLatency: "Duration of one PutRecords call in seconds"
}
