/**
 * Span names and attribute keys, so that traces read the same wherever they are made.
 */
export const SpanNames = {
  writeBatch: "KinesisWriter.writeBatch",
  prepare: "KinesisWriter.prepare",
  putAttempt: "KinesisWriter.putAttempt",
  putRecords: "Kinesis.putRecords",
  describeStreamSummary: "Kinesis.describeStreamSummary",
  listShards: "Kinesis.listShards",
  getShardIterator: "Kinesis.getShardIterator",
  getRecords: "Kinesis.getRecords",
  streamReader: "StreamReader.stream",
  readShard: "StreamReader.readShard",
  storeWrite: "LargePayloadStore.write",
  storeRead: "LargePayloadStore.read",
  storeDelete: "LargePayloadStore.delete",
  decodeRecord: "RecordReader.decodeRecord",
  producerCall: "KinesisProducer.call",
  producerFlush: "KinesisProducer.flush",
  producerSendStream: "KinesisProducer.sendStream"
} as const

export const Attributes = {
  streamName: "kinesis.stream_name",
  records: "kinesis.records",
  shardId: "kinesis.shard_id",
  attempt: "kinesis.attempt",
  calls: "kinesis.calls",
  attempts: "kinesis.attempts",
  bucket: "s3.bucket",
  key: "s3.key",
  bytes: "s3.bytes"
} as const
