/**
 * The metric names, help texts and histogram buckets, shared by the Prometheus and Effect
 * layers.
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
  writeLatency: "kinesis_write_latency_seconds",
  producerBufferedRecords: "kinesis_producer_buffered_records",
  producerBufferedBytes: "kinesis_producer_buffered_bytes",
  recordDelivery: "kinesis_record_delivery_seconds",
  recordsExpired: "kinesis_records_expired_total",
  producerUnpaced: "kinesis_producer_unpaced",
  putPayloadUnits: "kinesis_put_payload_units_total",
  shardThrottled: "kinesis_shard_throttled_records_total",
  shardRateRecords: "kinesis_producer_shard_rate_records_per_second",
  shardRateBytes: "kinesis_producer_shard_rate_bytes_per_second",
  shardWaiting: "kinesis_producer_shard_waiting_records"
} as const

/**
 * Prometheus' default histogram buckets, in seconds.
 *
 * @internal
 */
export const LATENCY_BUCKETS: ReadonlyArray<number> = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/**
 * Buckets of `kinesis_record_delivery_seconds`, in seconds: a record's life spans linger,
 * calls and retries, up to its `recordTtl`.
 *
 * @internal
 */
export const DELIVERY_BUCKETS: ReadonlyArray<number> = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

/** The counters among the metrics. */
export type CounterName =
  | "writeAttempts"
  | "writeSuccess"
  | "failedRecords"
  | "largePayloads"
  | "batchWriteFailures"
  | "recordsExpired"
  | "putPayloadUnits"

/** The metrics labelled `shard_id` besides `stream_name`. */
export type ShardMetricName = "shardThrottled" | "shardRateRecords" | "shardRateBytes" | "shardWaiting"

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
  writeLatency: "Duration of one PutRecords call in seconds",
  producerBufferedRecords: "Records the producer accepted and has not settled",
  producerBufferedBytes: "Bytes (data plus partition key) of the records the producer accepted and has not settled",
  recordDelivery: "Seconds from a producer send to its settlement",
  recordsExpired: "Producer records that outlived recordTtl",
  producerUnpaced: "1 while a producer with pace: true sends records unpaced, its stream's shard map unknown; else 0",
  putPayloadUnits: "PUT payload units (25 KB each, at least one a record) of the records the stream accepted",
  shardThrottled: "Records the stream refused for throughput on the shard",
  shardRateRecords: "Records per second a producer paces the shard to",
  shardRateBytes: "Bytes (data plus partition key) per second a producer paces the shard to",
  shardWaiting: "Records of a producer waiting for the shard's tokens"
}
