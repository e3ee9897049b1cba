/**
 * Partition keys: `{logGroupId}-{schemaName}-{bucket}-{attempt}`, where bucket is
 * a stable hash of `file_path` modulo `distributionFactor` and attempt is 0 on the first try
 * and n on the n-th retry, so a retried record can land on another shard.
 *
 * @since 0.1.0
 */

import { KinesisLimits } from "./limits.js"

const utf8 = new TextEncoder()

/**
 * FNV-1a (32 bit) over the UTF-8 bytes of a string: stable across processes, versions and
 * languages, unlike a runtime's own string hash.
 *
 * @internal
 */
export const fnv1a32 = (text: string): number => {
  let hash = 0x811c9dc5
  // ASCII (the usual path) is its own UTF-8: no encoding, no allocation.
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0x80) return fnv1a32Utf8(text)
    hash ^= c
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

const fnv1a32Utf8 = (text: string): number => {
  let hash = 0x811c9dc5
  const bytes = utf8.encode(text)
  for (let i = 0; i < bytes.length; i++) {
    hash ^= bytes[i]!
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

/**
 * The distribution bucket of a `file_path`: `fnv1a32(filePath) % distributionFactor`.
 *
 * @internal
 */
export const distributionBucket = (filePath: string, distributionFactor: number): number =>
  fnv1a32(filePath) % Math.max(1, Math.floor(distributionFactor))

/**
 * What partition keys are made of.
 *
 * @internal
 */
export interface PartitionKeyParts {
  readonly logGroupId: string
  readonly schemaName: string
}

/**
 * The partition-key prefix of distribution bucket `bucket`: `{logGroupId}-{schemaName}-{bucket}-`.
 *
 * @internal
 */
export const bucketKeyPrefix = (parts: PartitionKeyParts, bucket: number): string =>
  `${parts.logGroupId}-${parts.schemaName}-${bucket}-`

/**
 * The part of a record's partition key that does not change across attempts:
 * `{logGroupId}-{schemaName}-{bucket}-`.
 *
 * @internal
 */
export const partitionKeyPrefix = (parts: PartitionKeyParts, filePath: string, distributionFactor: number): string =>
  bucketKeyPrefix(parts, distributionBucket(filePath, distributionFactor))

/**
 * {@link partitionKeyPrefix} for many records of one configuration: the prefixes of the
 * `distributionFactor` buckets are made once, so a record costs its hash and no new string.
 *
 * @internal
 */
export const partitionKeyPrefixes = (
  parts: PartitionKeyParts,
  distributionFactor: number
): (filePath: string) => string => {
  const buckets = Math.max(1, Math.floor(distributionFactor))
  const prefixes = Array.from({ length: buckets }, (_, bucket) => bucketKeyPrefix(parts, bucket))
  return (filePath) => prefixes[fnv1a32(filePath) % buckets]!
}

/**
 * The partition key of a record for an attempt (0 for the first try).
 *
 * @example
 * ```ts
 * partitionKey({ logGroupId: "lg", schemaName: "orders" }, "s3://b/f.parquet", 4, 0) // "lg-orders-2-0"
 * ```
 *
 * @internal
 */
export const partitionKey = (
  parts: PartitionKeyParts,
  filePath: string,
  distributionFactor: number,
  attempt: number
): string => `${partitionKeyPrefix(parts, filePath, distributionFactor)}${attempt}`

/**
 * The length of a partition key as Kinesis counts it against its 256 characters: Unicode
 * characters (code points), not the UTF-16 units of `String.length`. Its size on the wire,
 * which counts toward the record and request limits, is `Buffer.byteLength(key, "utf8")`.
 *
 * @internal
 */
export const partitionKeyLength = (key: string): number => {
  let n = 0
  for (const _ of key) n++
  return n
}

/**
 * Whether a partition key fits Kinesis' 1–256 characters (code points).
 *
 * @internal
 */
export const fitsPartitionKey = (key: string): boolean =>
  key.length > 0 &&
  // A string has at least as many UTF-16 units as code points: a short one needs no count.
  (key.length <= KinesisLimits.maxPartitionKeyLength || partitionKeyLength(key) <= KinesisLimits.maxPartitionKeyLength)

/**
 * The longest partition key a configuration can make (highest bucket, last retry): the one
 * that must fit Kinesis' 256 characters.
 *
 * @internal
 */
export const longestPartitionKey = (
  config: PartitionKeyParts & { readonly distributionFactor: number; readonly maxRetries: number }
): string =>
  `${config.logGroupId}-${config.schemaName}-${Math.max(1, config.distributionFactor) - 1}-${config.maxRetries}`
