/**
 * `cygnus-kinesis-writer/reader`: the consumer side alone — a Kinesis record's Data back to
 * its `DataFileInfo` and `DataFileV1`, large payloads fetched and verified, Lambda events
 * decoded. It loads neither prom-client nor `@effect/platform-node` nor worker threads: what
 * a Lambda handler or a KCL worker bundles.
 *
 * @example
 * ```ts
 * import { LargePayloadStore, RecordReader } from "cygnus-kinesis-writer/reader"
 * ```
 *
 * @since 0.1.0
 */

/** Decoding records read back. @since 0.1.0 */
export * as RecordReader from "./RecordReader.js"

/** A live stream's shards as an Effect `Stream` of decoded records. @since 0.1.0 */
export * as StreamReader from "./StreamReader.js"

/** Kinesis Data Streams: what the `StreamReader` reads through. @since 0.1.0 */
export * from "./Kinesis.js"

/** Where large payloads are read from. @since 0.1.0 */
export * from "./LargePayloadStore.js"

/** The codec. @since 0.1.0 */
export * as RecordCodec from "./RecordCodec.js"

/** The typed errors. @since 0.1.0 */
export * from "./Errors.js"

/** The wire contract. @since 0.1.0 */
export * from "./Contract.js"
