/**
 * Opt-in aggregation (writer option `aggregation`; ARCHITECTURE.md, "Aggregation"): phase 1
 * of a batch when the records that share a partition key travel together, one Kinesis record
 * whose Data is `gzip(DataFileEntryRecordBatch)` per group.
 *
 * The batch is cut into chunks of {@link AGGREGATION_CHUNK} records. In a chunk, each record
 * is serialized once and decided as in `prepare.ts` (over the threshold or too large for the
 * stream: S3; otherwise inline); the chunk's large payloads are uploaded before it is packed,
 * so that their pointers join their group. Records are grouped by partition-key prefix (the
 * attempt suffix is the same for every member: an aggregate retries as a unit), and each
 * group is cut into aggregates of at most `maxRecords` records and `maxBytes` bytes before
 * gzip, packed straight into the chunk's buffer, which the `Compressor` gzips beside the
 * serialization of the next chunk. A group of one is a plain `DataFileEntryRecord`, as
 * without aggregation. After gzip each aggregate is checked against the stream's record
 * limit and split in halves if it does not fit (the layer refuses a `maxBytes` for which
 * that could happen, so this is a guard, not a path).
 *
 * Nothing here runs when aggregation is off: `prepare.ts`'s hot loop is untouched.
 *
 * @internal
 */
import type { Scope } from "effect"
import { Effect, Either, Fiber } from "effect"
import { randomUUID } from "node:crypto"
import { CompressionError, SerializationError } from "../Errors.js"
import type { DataFileV1 } from "../gen/cygnus/v1/data_file_pb.js"
import type { PayloadLocation } from "../LargePayloadStore.js"
import type { ResolvedAggregation } from "./aggregationConfig.js"
import { encodeEntryRecordSync, gunzipSync, gzipSync, serializeDataFileSync } from "./codec.js"
import { EnvelopePacker, varintSize } from "./envelopePacker.js"
import { EventLoopSlice } from "./eventLoop.js"
import { gzipBound } from "./gzipBound.js"
import { deleteBestEffort } from "./orphans.js"
import { partitionKeyPrefix as partitionKeyPrefixOf } from "./partitionKey.js"
import type { BatchEntry, OffloadSlot, PrepareContext, PreparedBatch, PreparedRecord, PrepareError } from "./prepare.js"
import { build, recordLimitGuard, upload } from "./prepare.js"

/**
 * Logical records per chunk: enough that the groups of a chunk (one per partition-key
 * prefix, `distributionFactor` of them) fill aggregates, few enough that the first calls
 * start early.
 *
 * @internal
 */
export const AGGREGATION_CHUNK = 2_000

/** At most the bytes a member's framing adds in an aggregate: field 15's tag and a length varint. */
const MEMBER_FRAMING = 6

/** One Kinesis record of a chunk in packing order: its logical records and its size before gzip. */
interface PayloadPlan {
  readonly members: ReadonlyArray<BatchEntry>
  readonly partitionKeyPrefix: string
  readonly uncompressedSize: number
}

/**
 * A chunk after phase 1: its records decided alone (too large to aggregate, compressed
 * already) and its packed payloads on their way through the `Compressor`.
 *
 * @internal
 */
export interface AggregatedChunk {
  /** Phase 2: the chunk's Kinesis records once compressed, each checked against the record limit. */
  readonly prepared: Effect.Effect<Array<PreparedRecord>, CompressionError>
}

/**
 * A batch after phase 1 with aggregation on.
 *
 * @internal
 */
export interface AggregatedBatch {
  readonly aggregated: true
  /** What the batch knows of each logical record, by index. */
  readonly entries: ReadonlyArray<BatchEntry>
  readonly chunks: ReadonlyArray<AggregatedChunk>
  readonly largePayloads: number
}

/** A record of a group: inline (its serialized data file) or a large payload's pointer envelope. */
interface Member {
  entry: BatchEntry
  readonly dataFileBytes: Uint8Array
  /** The serialized envelope of a large payload's pointer, once uploaded. */
  envelope: Uint8Array | undefined
}

/**
 * Phase 1 with aggregation: serializes, offloads, groups by partition key and packs each
 * chunk, starting its compression. Fails before anything is sent, naming the record, and
 * deletes the objects already written.
 *
 * @internal
 */
export const serializeBatchAggregated = (
  context: PrepareContext,
  records: ReadonlyArray<DataFileV1>,
  aggregation: ResolvedAggregation
): Effect.Effect<AggregatedBatch, PrepareError, Scope.Scope> => {
  const attempted: Array<PayloadLocation> = []
  return Effect.gen(function*() {
    const { config } = context
    const attemptDigits = String(config.maxRetries).length
    const guard = recordLimitGuard(context)
    const packer = new EnvelopePacker({ ...config, creationTime: context.creationTime })
    const slice = new EventLoopSlice()
    const entries: Array<BatchEntry> = new Array(records.length)
    const chunks: Array<AggregatedChunk> = []
    let largePayloads = 0
    for (let start = 0; start < records.length; start += AGGREGATION_CHUNK) {
      const end = Math.min(records.length, start + AGGREGATION_CHUNK)
      const groups = new Map<string, Array<Member>>()
      const alone: Array<PreparedRecord> = []
      const offload: Array<{ readonly slot: OffloadSlot; readonly member: Member }> = []
      for (let index = start; index < end; index++) {
        if (slice.spent()) yield* slice.yield
        const record = records[index]!
        const serialized = serializeDataFileSync(record, index)
        if (Either.isLeft(serialized)) return yield* serialized.left
        const dataFileBytes = serialized.right
        const partitionKeyPrefix = partitionKeyPrefixOf(config, record.filePath, config.distributionFactor)
        const entry: BatchEntry = { index, record, recordId: randomUUID() }
        let large = dataFileBytes.length > config.largePayloadThreshold
        if (!large) {
          // The record limit guard, as in prepare.ts: a record that might not fit once gzip'd
          // is compressed now to decide, and travels alone when it fits.
          const keyBytes = guard.keyBytes(partitionKeyPrefix)
          if (guard.mayExceed(dataFileBytes, record.filePath, keyBytes, MEMBER_FRAMING)) {
            const built = yield* build(context, entry, partitionKeyPrefix, { _tag: "standard", dataFileBytes })
            if (guard.fits(built.data.length, keyBytes)) {
              entries[index] = built
              alone.push(built)
              continue
            }
            large = true
          }
        }
        const member: Member = { entry, dataFileBytes, envelope: undefined }
        let group = groups.get(partitionKeyPrefix)
        if (group === undefined) {
          group = []
          groups.set(partitionKeyPrefix, group)
        }
        group.push(member)
        if (large) offload.push({ slot: { _tag: "Offload", entry, partitionKeyPrefix, dataFileBytes }, member })
      }
      // The chunk's large payloads, uploaded before it is packed: their pointers join their groups.
      if (offload.length > 0) {
        largePayloads += offload.length
        yield* Effect.forEach(
          offload,
          ({ member, slot }) =>
            Effect.flatMap(upload(context, slot, attempted), (pointer) => {
              const entry: BatchEntry = { ...slot.entry, largePayload: pointer.location }
              return Either.match(
                encodeEntryRecordSync(infoOf(context, entry), { _tag: "large", pointer: pointer.entry }),
                {
                  onLeft: (e) =>
                    Effect.fail(new SerializationError({ ...e, recordIndex: entry.index, cause: e.cause })),
                  onRight: (envelope) => {
                    const bound = gzipBound(envelope.length + MEMBER_FRAMING)
                    if (!guard.fits(bound, guard.keyBytes(slot.partitionKeyPrefix))) {
                      return Effect.fail(guard.pointerTooLarge(envelope.length, entry))
                    }
                    member.entry = entry
                    member.envelope = envelope
                    return Effect.void
                  }
                }
              )
            }),
          { concurrency: config.maxConcurrentUploads, discard: true }
        )
      }
      const payloads = packGroups(packer, groups, aggregation)
      for (const plan of payloads) for (const m of plan.members) entries[m.index] = m
      const compressed = payloads.length === 0
        ? Fiber.succeed<Array<Uint8Array>>([])
        : yield* Effect.forkScoped(context.compressor.gzipPacked(packer.take(), config.compressionLevel))
      chunks.push({
        prepared: Effect.flatMap(Fiber.join(compressed), (gz) => {
          const out: Array<PreparedRecord> = [...alone]
          for (let i = 0; i < payloads.length; i++) {
            const fitted = fitToRecordLimit(
              toPrepared(payloads[i]!, gz[i]!),
              context.recordLimitBytes,
              attemptDigits,
              config.compressionLevel
            )
            if (Either.isLeft(fitted)) return Effect.fail(fitted.left)
            for (const r of fitted.right) out.push(r)
          }
          return Effect.succeed(out)
        })
      })
    }
    return { aggregated: true as const, entries, chunks, largePayloads }
  }).pipe(Effect.onError(() => deleteBestEffort(context.store, attempted, context.config)))
}

/**
 * Both phases with aggregation, for a whole batch: what `KinesisWriter.prepare` returns when
 * aggregation is on.
 *
 * @internal
 */
export const prepareBatchAggregated = (
  context: PrepareContext,
  records: ReadonlyArray<DataFileV1>,
  aggregation: ResolvedAggregation
): Effect.Effect<PreparedBatch, PrepareError> =>
  Effect.gen(function*() {
    const batch = yield* serializeBatchAggregated(context, records, aggregation)
    const prepared = (yield* Effect.forEach(batch.chunks, (chunk) => chunk.prepared)).flat()
    let uncompressedBytes = 0
    let compressedBytes = 0
    for (const p of prepared) {
      uncompressedBytes += p.uncompressedSize
      compressedBytes += p.data.length
    }
    return { records: prepared, largePayloads: batch.largePayloads, uncompressedBytes, compressedBytes }
  }).pipe(Effect.scoped)

/**
 * Cuts each group into aggregates of at most `maxRecords` records and `maxBytes` bytes and
 * packs them, in order; a group (or a remainder) of one record is packed as a plain
 * envelope. A record larger than `maxBytes` on its own travels alone.
 */
const packGroups = (
  packer: EnvelopePacker,
  groups: ReadonlyMap<string, ReadonlyArray<Member>>,
  { maxBytes, maxRecords }: ResolvedAggregation
): Array<PayloadPlan> => {
  const plans: Array<PayloadPlan> = []
  const flush = (partitionKeyPrefix: string, members: ReadonlyArray<Member>) => {
    if (members.length === 0) return
    let size = 0
    if (members.length === 1) {
      const m = members[0]!
      size = m.envelope === undefined
        ? packer.add(m.dataFileBytes, m.entry.record.filePath, m.entry.recordId)
        : packer.addEnvelope(m.envelope)
    } else {
      for (const m of members) {
        size += m.envelope === undefined
          ? packer.addMember(m.dataFileBytes, m.entry.record.filePath, m.entry.recordId)
          : packer.addMemberEnvelope(m.envelope)
      }
      packer.endAggregate()
    }
    plans.push({ members: members.map((m) => m.entry), partitionKeyPrefix, uncompressedSize: size })
  }
  for (const [prefix, members] of groups) {
    let current: Array<Member> = []
    let bytes = 0
    for (const m of members) {
      const size = m.envelope === undefined
        ? packer.memberSize(m.dataFileBytes.length, m.entry.record.filePath, m.entry.recordId)
        : 1 + varintSize(m.envelope.length) + m.envelope.length
      if (current.length > 0 && (current.length === maxRecords || bytes + size > maxBytes)) {
        flush(prefix, current)
        current = []
        bytes = 0
      }
      current.push(m)
      bytes += size
    }
    flush(prefix, current)
  }
  return plans
}

const toPrepared = (plan: PayloadPlan, data: Uint8Array): PreparedRecord => {
  const first = plan.members[0]!
  return plan.members.length === 1
    ? { ...first, data, uncompressedSize: plan.uncompressedSize, partitionKeyPrefix: plan.partitionKeyPrefix }
    : {
      index: first.index,
      record: first.record,
      recordId: first.recordId,
      data,
      uncompressedSize: plan.uncompressedSize,
      partitionKeyPrefix: plan.partitionKeyPrefix,
      members: plan.members
    }
}

/**
 * The Kinesis records that carry `record` within the stream's record limit: itself when its
 * Data and longest key fit; otherwise, for an aggregate, its members in two halves, each
 * gzip'd again on the calling thread and checked in turn (a half of one record is a plain
 * envelope). A record alone that does not fit is a `CompressionError` (phase 1 decides
 * those, so this does not happen).
 *
 * @internal
 */
export const fitToRecordLimit = (
  record: PreparedRecord,
  recordLimitBytes: number,
  attemptDigits: number,
  level: number
): Either.Either<Array<PreparedRecord>, CompressionError> => {
  const keyBytes = Buffer.byteLength(record.partitionKeyPrefix) + attemptDigits
  if (record.data.length + keyBytes <= recordLimitBytes) return Either.right([record])
  const members = record.members
  if (members === undefined) {
    return Either.left(
      new CompressionError({
        reason:
          `the record is ${record.data.length} bytes once gzip'd, over the stream's record limit of ${recordLimitBytes} bytes`,
        recordIndex: record.index
      })
    )
  }
  const unzipped = gunzipSync(record.data)
  if (Either.isLeft(unzipped)) {
    return Either.left(new CompressionError({ reason: unzipped.left.detail, recordIndex: record.index }))
  }
  const bytes = unzipped.right
  // The members' frames, one after another: [tag, varint length, envelope].
  const frames: Array<number> = [0]
  const envelopes: Array<number> = []
  let at = 0
  while (at < bytes.length) {
    let length = 0
    let shift = 0
    let b: number
    at++ // the tag
    do {
      b = bytes[at++]!
      length += (b & 0x7f) * 2 ** shift
      shift += 7
    } while (b & 0x80)
    envelopes.push(at)
    at += length
    frames.push(at)
  }
  const part = (from: number, to: number): Either.Either<Array<PreparedRecord>, CompressionError> => {
    // A part of one record is a plain envelope, as a group of one is.
    const payload = bytes.subarray(to - from === 1 ? envelopes[from]! : frames[from]!, frames[to]!)
    return Either.flatMap(
      Either.mapLeft(
        gzipSync(payload, level),
        (e) => new CompressionError({ ...e, recordIndex: members[from]!.index })
      ),
      (data) =>
        fitToRecordLimit(
          toPrepared({
            members: members.slice(from, to),
            partitionKeyPrefix: record.partitionKeyPrefix,
            uncompressedSize: payload.length
          }, data),
          recordLimitBytes,
          attemptDigits,
          level
        )
    )
  }
  const half = members.length >> 1
  return Either.flatMap(part(0, half), (a) => Either.map(part(half, members.length), (b) => [...a, ...b]))
}

const infoOf = (context: PrepareContext, entry: BatchEntry) => ({
  filePath: entry.record.filePath,
  creationTime: context.creationTime,
  accountId: context.config.accountId,
  recordId: entry.recordId,
  logGroupId: context.config.logGroupId,
  schemaName: context.config.schemaName
})
