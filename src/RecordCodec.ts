/**
 * The codec between a `DataFileV1` and the bytes of one Kinesis record: pure, no AWS.
 *
 * On the stream each record's Data is `gzip(DataFileEntryRecord)`; a large payload's S3
 * object is the serialized `DataFileEntry` in its `standard` case. A writer with
 * `aggregation` on sends `gzip(DataFileEntryRecordBatch)` for records that share a partition
 * key: `decodeRecordDataAll` reads both kinds (`decodeRecordData` refuses an aggregate with a
 * `DecodeError` of reason `Aggregated`). The `*Sync` functions
 * return an `Either` (for hot loops); the others are `Effect`s.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RecordCodec } from "cygnus-kinesis-writer"
 *
 * const program = Effect.gen(function*() {
 *   const encoded = yield* RecordCodec.encodeRecord(dataFile, info)
 *   const decoded = yield* RecordCodec.decodeRecordData(encoded.data)
 * })
 * ```
 *
 * @since 0.1.0
 */
export {
  AGGREGATE_FIELD,
  type DataFileInfoFields,
  type DecodedEntryRecord,
  decodeRecordData,
  decodeRecordDataAll,
  decodeRecordDataAllSync,
  decodeRecordDataSync,
  DEFAULT_COMPRESSION_LEVEL,
  type EncodedRecord,
  encodeEntryRecordBatch,
  encodeEntryRecordSync,
  encodeRecord,
  encodeRecordBatchSync,
  encodeRecordSync,
  encodeStandardEntry,
  type EntryPayload,
  gunzipSync,
  gzipSync,
  isAggregateSync,
  makeEntryRecord,
  makeEntryRecordBatch,
  MAX_DECOMPRESSED_BYTES,
  parseEntryRecordsSync,
  parseEntryRecordSync,
  parseStandardEntrySync,
  serializeDataFileSync
} from "./internal/codec.js"
