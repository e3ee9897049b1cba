/**
 * Kinesis Data Streams' fixed numbers, in one place for the writer, the shard simulator and
 * the tests.
 */
export const KinesisLimits = {
  /** Records in one PutRecords call. */
  maxRecordsPerCall: 500,
  /** Bytes (data plus partition keys) of one PutRecords call the writer sends by default: every endpoint and emulator accepts it. */
  defaultRequestBytes: 5 * 1024 * 1024,
  /** The most bytes of one PutRecords call the current API accepts. */
  maxRequestBytes: 10 * 1024 * 1024,
  /** Bytes (data plus partition key) of one record on a stream that does not say otherwise. */
  defaultRecordBytes: 1024 * 1024,
  /** Characters (not bytes) of a partition key. */
  maxPartitionKeyLength: 256,
  /** Records one shard takes per second. */
  shardRecordsPerSecond: 1000,
  /** Bytes (data plus partition keys) one shard takes per second. */
  shardBytesPerSecond: 1024 * 1024
} as const
