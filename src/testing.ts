/**
 * `cygnus-kinesis-writer/testing`: what a test of code that writes records needs — a
 * scriptable `Kinesis` double, realistic records, and a shard-throttling Kinesis simulator.
 *
 * @example
 * ```ts
 * import { KinesisTest, RecordGenerator, ShardSimulator } from "cygnus-kinesis-writer/testing"
 * ```
 *
 * @since 0.1.0
 */

/** A scriptable `Kinesis` test double. @since 0.1.0 */
export * as KinesisTest from "./KinesisTest.js"

/** Realistic `DataFileV1` records for tests, demos and benchmarks. @since 0.1.0 */
export * as RecordGenerator from "./RecordGenerator.js"

/** A shard-throttling Kinesis simulator with seeded faults. @since 0.1.0 */
export * as ShardSimulator from "./ShardSimulator.js"

/** Lambda Kinesis events built from records, as Lambda delivers them. @since 0.1.0 */
export * as LambdaEvent from "./LambdaEvent.js"

/** kinesalite and s3rver on loopback, with streams and buckets made, for a test or a script. @since 0.1.0 */
export * from "./LocalAws.js"
