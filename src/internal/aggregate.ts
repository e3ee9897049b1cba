/**
 * Opt-in aggregation (writer option `aggregation`; ARCHITECTURE.md, "Aggregation"): phase 1
 * of a batch when the records bound for one shard travel together, one Kinesis record whose
 * Data is `gzip(DataFileEntryRecordBatch)` per group.
 *
 * The batch is read in chunks of {@link AGGREGATION_CHUNK} records. Each record's envelope
 * is written once, straight from the record (`DataFileEncoder`: the bytes `toBinary` gives,
 * without its writer), and decided as in `prepare.ts` (over the threshold or too large for
 * the stream: S3; otherwise inline); a chunk's large payloads are uploaded before it is
 * packed, so that their pointers join their group. Records are grouped by the shard their
 * partition key is predicted to go to, given the stream's shard map, and each aggregate
 * carries an explicit hash key of its shard's range; without a map, by partition key. Only
 * records smaller than `maxMemberBytes` are aggregated: a larger one is packed at once as a
 * plain record, as without aggregation. Groups stay open across chunks: each chunk packs
 * the aggregates its groups filled (at most `maxRecords` records and `maxBytes` bytes
 * before gzip), concatenating the members' encoded envelopes, and hands them to the
 * `Compressor`, which gzips them beside the serialization of the next chunks; the last
 * chunk packs what is left, and the calling thread, done with serializing, gzips part of it
 * itself. A group of one is a plain `DataFileEntryRecord`, as without aggregation. After
 * gzip each aggregate is checked against the stream's record limit and split in halves if
 * it does not fit (the layer refuses a `maxBytes` for which that could happen, so this is a
 * guard, not a path).
 *
 * Nothing here runs when aggregation is off: `prepare.ts`'s hot loop is untouched.
 */
import type { Scope } from "effect"
import { Effect, Either, Fiber } from "effect"
import { randomUUID } from "node:crypto"
import { Compressor } from "../Compressor.js"
import { CompressionError, SerializationError } from "../Errors.js"
import type { DataFileV1 } from "../gen/cygnus/v1/data_file_pb.js"
import type { ShardRange } from "../Kinesis.js"
import type { PayloadLocation } from "../LargePayloadStore.js"
import { encodeEntryRecordSync, gunzipSync, gzipSync, serializeDataFileSync } from "./codec.js"
import type { ResolvedAggregation } from "./config.js"
import { gzipBound } from "./core/gzipBound.js"
import { distributionBucket, partitionKeyPrefix as partitionKeyPrefixOf } from "./core/partitionKey.js"
import type { ShardMap } from "./core/routing.js"
import { explicitHashKeyOf, hashKeyOf } from "./core/routing.js"
import { DataFileEncoder } from "./dataFileEncoder.js"
import type { PackedPayloads } from "./envelopePacker.js"
import { EnvelopePacker, varintSize } from "./envelopePacker.js"
import { EventLoopSlice } from "./eventLoop.js"
import { deleteBestEffort } from "./orphans.js"
import type {
  BatchEntry,
  OffloadSlot,
  PrepareContext,
  PreparedBatch,
  PreparedRecord,
  PrepareError,
  RecordLimitGuard
} from "./prepare.js"
import {
  build,
  cleanUpAfter,
  COMPRESSION_CHUNK,
  COMPRESSION_PART_BYTES,
  entryInfo,
  preparedBatch,
  recordLimitGuard,
  upload
} from "./prepare.js"

/**
 * Logical records per chunk: how often the aggregates filled so far go to the compressor
 * (groups stay open across chunks, so this does not bound an aggregate), and how many
 * encoded records are held in one buffer.
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
  /** The aggregate's shard, as an explicit hash key; absent for a record alone, or without a shard map. */
  readonly explicitHashKey?: string | undefined
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

/**
 * A record of a group and its serialized `DataFileEntryRecord`: the standard envelope around
 * its data file, or, for a large payload once uploaded, the envelope of its pointer.
 */
interface Member {
  entry: BatchEntry
  envelope: Uint8Array
  /** The first index of the chunk whose buffer `envelope` is a view of; -1 once it has its own bytes. */
  chunk: number
  /** Its own partition key's prefix: an aggregate travels under its first member's. */
  readonly partitionKeyPrefix: string
}

/** The records bound for one shard (or, without a shard map, that share a partition key), in batch order. */
interface Group {
  /** The explicit hash key of the group's shard; absent when grouped by partition key. */
  readonly explicitHashKey: string | undefined
  /** In batch order; those of earlier chunks first. */
  members: Array<Member>
}

/**
 * The open groups of a batch. With a shard map, a record joins the group of the open shard
 * that its first attempt's partition key goes to, and the group's aggregates carry the
 * shard's explicit hash key; without one (or for a key that falls in a gap of the map), the
 * group of its partition key. Each distribution bucket's group is found once.
 */
class Groups {
  /** By group key: a shard's index, or `-1 - bucket` for a partition key's group. */
  readonly byKey = new Map<number, Group>()
  private readonly ofBucket: Array<Group | undefined> = []

  constructor(private readonly shards: ShardMap<ShardRange> | undefined) {}

  add(bucket: number, member: Member): void {
    let group = this.ofBucket[bucket]
    if (group === undefined) {
      const shards = this.shards
      const index = shards === undefined ? -1 : shards.indexOf(hashKeyOf(`${member.partitionKeyPrefix}0`))
      const key = index >= 0 ? index : -1 - bucket
      group = this.byKey.get(key)
      if (group === undefined) {
        // The aggregates of a shard's group carry a hash key of the shard's range, which
        // routes them there on every attempt: the attempt suffix of their partition key,
        // which moves a plain record to another shard on a retry, does not move them. A
        // group is one shard's share of the batch: moving it whole would only load another
        // shard with it, so it waits for its own shard's next second.
        const shard = index >= 0 ? shards?.shards[index] : undefined
        group = { explicitHashKey: shard === undefined ? undefined : explicitHashKeyOf(shard), members: [] }
        this.byKey.set(key, group)
      }
      this.ofBucket[bucket] = group
    }
    group.members.push(member)
  }
}

/**
 * Phase 1 with aggregation: serializes, offloads, groups by predicted shard (given `shards`,
 * the stream's shard map) or by partition key, and packs each chunk, starting its
 * compression. Fails before anything is sent, naming the record, and deletes the objects
 * already written.
 *
 * @internal
 */
export const serializeBatchAggregated = (
  context: PrepareContext,
  records: ReadonlyArray<DataFileV1>,
  aggregation: ResolvedAggregation,
  shards?: ShardMap<ShardRange> | undefined
): Effect.Effect<AggregatedBatch, PrepareError, Scope.Scope> => {
  const attempted: Array<PayloadLocation> = []
  return Effect.gen(function*() {
    const { config } = context
    const attemptDigits = String(config.maxRetries).length
    const guard = recordLimitGuard(context)
    const packer = new EnvelopePacker({ ...config, creationTime: context.creationTime }, undefined, context.packBuffers)
    // A chunk's serialized records live in one buffer until the chunk is packed (its large
    // payloads are uploaded before that): the buffer is reused by the next chunk.
    const encoder = new DataFileEncoder({ ...config, creationTime: context.creationTime })
    // The partition-key prefix of each distribution bucket, made once.
    const prefixes: Array<string | undefined> = []
    // The groups stay open across chunks: a chunk packs the aggregates its groups filled
    // (maxRecords or maxBytes), and the rest of each group waits for the next chunk's records;
    // the last chunk packs everything. Aggregates are as full as the options allow whatever
    // the number of partition keys, and each chunk still starts its compression at once.
    const groups = new Groups(shards)
    // Payloads packed and not yet handed to the compressor, in packing order, and their bytes.
    let waiting: Array<PayloadPlan> = []
    let waitingBytes = 0
    // What goes to the attempt next: records decided alone, and parts on their way through
    // the compressor (and how many payloads those hold).
    let alone: Array<PreparedRecord> = []
    let parts: Array<CompressedPart> = []
    let partPayloads = 0
    const compress = chunkCompressor(context)
    const slice = new EventLoopSlice()
    const entries: Array<BatchEntry> = new Array(records.length)
    const chunks: Array<AggregatedChunk> = []
    let largePayloads = 0
    // The payloads packed so far go to the compressor.
    const compressWaiting = (last: boolean) =>
      Effect.map(Effect.forkScoped(compress(packer.take(), last)), (compressed) => {
        parts.push({ payloads: waiting, compressed })
        partPayloads += waiting.length
        waiting = []
        waitingBytes = 0
      })
    // What is ready or on its way goes to the attempt, as one step of it.
    const handOver = () => {
      if (parts.length === 0 && alone.length === 0) return
      chunks.push({ prepared: chunkPrepared(context, alone, parts, attemptDigits) })
      alone = []
      parts = []
      partPayloads = 0
    }
    for (let start = 0; start < records.length; start += AGGREGATION_CHUNK) {
      const end = Math.min(records.length, start + AGGREGATION_CHUNK)
      const offload: Array<Offloaded> = []
      // A new buffer for the chunk's records: those still in an open group keep theirs alive.
      encoder.renew()
      for (let index = start; index < end; index++) {
        if (slice.spent()) yield* slice.yield
        const record = records[index]!
        const recordId = randomUUID()
        const mark = encoder.mark
        let encoded = encoder.encodeEnvelope(record, recordId)
        if (encoded === undefined) {
          // What the encoder leaves to protobuf-es: the same bytes, or the same error.
          const serialized = serializeDataFileSync(record, index)
          if (Either.isLeft(serialized)) return yield* serialized.left
          encoded = encoder.wrap(serialized.right, record.filePath, recordId)
        }
        const dataFileBytes = encoded.dataFile
        const bucket = distributionBucket(record.filePath, config.distributionFactor)
        let partitionKeyPrefix = prefixes[bucket]
        if (partitionKeyPrefix === undefined) {
          partitionKeyPrefix = partitionKeyPrefixOf(config, record.filePath, config.distributionFactor)
          prefixes[bucket] = partitionKeyPrefix
        }
        const entry: BatchEntry = { index, record, recordId }
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
              encoder.rewind(mark)
              continue
            }
            large = true
          }
        }
        if (!large && dataFileBytes.length >= aggregation.maxMemberBytes) {
          // Too large to be worth aggregating: packed now as a plain record, and its bytes
          // dropped from the chunk's buffer; as without aggregation, handed to the compressor
          // by parts, and to the attempt a call's worth of records at a time.
          const size = packer.addEnvelope(encoded.envelope)
          encoder.rewind(mark)
          entries[index] = entry
          waiting.push({ members: [entry], partitionKeyPrefix, uncompressedSize: size })
          waitingBytes += size
          if (waitingBytes >= COMPRESSION_PART_BYTES && waiting.length >= 2) {
            yield* compressWaiting(false)
            if (partPayloads >= COMPRESSION_CHUNK) handOver()
          }
          continue
        }
        const member: Member = { entry, envelope: encoded.envelope, chunk: start, partitionKeyPrefix }
        groups.add(bucket, member)
        if (large) offload.push({ slot: { _tag: "Offload", entry, partitionKeyPrefix, dataFileBytes }, member })
      }
      // The chunk's large payloads, uploaded before it is packed: their pointers join their groups.
      if (offload.length > 0) {
        largePayloads += offload.length
        yield* uploadLarge(context, guard, offload, attempted)
      }
      const last = end === records.length
      for (const plan of packGroups(packer, groups.byKey, aggregation, last)) {
        for (const m of plan.members) entries[m.index] = m
        waiting.push(plan)
      }
      detachOpenMembers(groups.byKey, start)
      // Payloads go to the compressor two or more at a time: the compressor keeps a lone
      // payload on the calling thread. One aggregate filled in this chunk waits for the next.
      if (waiting.length > 0 && (last || waiting.length >= 2)) yield* compressWaiting(last)
      handOver()
    }
    return { aggregated: true as const, entries, chunks, largePayloads }
  }).pipe(
    // As in the plain phase 1: the objects a failed build wrote are deleted, and those that
    // could not be are named in its error.
    Effect.catchAll((error) => cleanUpAfter(context, attempted, error)),
    Effect.onInterrupt(() => deleteBestEffort(context.store, attempted, context.config))
  )
}

/** Payloads packed together, in packing order, and their compression. */
interface CompressedPart {
  readonly payloads: ReadonlyArray<PayloadPlan>
  readonly compressed: Fiber.Fiber<Array<Uint8Array>, CompressionError>
}

/** A large payload of a chunk, to upload, and the group member its pointer's envelope replaces. */
interface Offloaded {
  readonly slot: OffloadSlot
  readonly member: Member
}

/**
 * The compression of a batch's packed chunks: through the `Compressor`, except that the last
 * chunk's share is gzip'd on the calling thread. Made once per batch: it counts the bytes its
 * worker still has to do.
 */
const chunkCompressor = (context: PrepareContext) => {
  const { config } = context
  // Bytes handed to the compressor and not compressed yet: what its worker still has to do.
  let backlog = 0
  const viaCompressor = (packed: PackedPayloads) => {
    const bytes = packed.buffer.length
    backlog += bytes
    return context.compressor.gzipPacked(packed, config.compressionLevel).pipe(
      Effect.ensuring(Effect.sync(() => {
        backlog -= bytes
      }))
    )
  }
  // The last chunk: the calling thread has nothing left to serialize and would only wait for
  // the worker, so it gzips the chunk's last payloads itself, about half of what the worker
  // still has to do (its backlog and this chunk).
  return (packed: PackedPayloads, last: boolean): Effect.Effect<Array<Uint8Array>, CompressionError> => {
    const count = packed.offsets.length - 1
    if (!last || config.compressionWorkers === 0 || count < 2) return viaCompressor(packed)
    const bytes = packed.buffer.length
    const share = Math.min(bytes, (backlog + bytes) / 2)
    let split = count
    // The worker's part keeps two payloads or more (a lone one would stay on this thread).
    while (split > 2 && bytes - packed.offsets[split - 1]! <= share) split--
    if (split === count) return viaCompressor(packed)
    const at = packed.offsets[split]!
    // A copy: the worker's part is transferred to it, which detaches the whole buffer.
    const own: PackedPayloads = {
      buffer: new Uint8Array(packed.buffer.subarray(at)),
      offsets: packed.offsets.slice(split).map((o) => o - at)
    }
    return Effect.zipWith(
      viaCompressor({ buffer: packed.buffer.subarray(0, at), offsets: packed.offsets.slice(0, split + 1) }),
      Compressor.mainThread.gzipPacked(own, config.compressionLevel),
      (theirs, ours) => [...theirs, ...ours],
      { concurrent: true }
    )
  }
}

/**
 * Uploads a chunk's large payloads, before it is packed: each member's envelope becomes its
 * pointer's, so that the pointer joins its group.
 */
const uploadLarge = (
  context: PrepareContext,
  guard: RecordLimitGuard,
  offload: ReadonlyArray<Offloaded>,
  attempted: Array<PayloadLocation>
) =>
  Effect.forEach(
    offload,
    ({ member, slot }) =>
      Effect.flatMap(upload(context, slot, attempted), (pointer) => {
        const entry: BatchEntry = { ...slot.entry, largePayload: pointer.location }
        return Either.match(
          encodeEntryRecordSync(entryInfo(context, entry), { _tag: "large", pointer: pointer.entry }),
          {
            onLeft: (e) => Effect.fail(new SerializationError({ ...e, recordIndex: entry.index, cause: e.cause })),
            onRight: (envelope) => {
              const bound = gzipBound(envelope.length + MEMBER_FRAMING)
              if (!guard.fits(bound, guard.keyBytes(slot.partitionKeyPrefix))) {
                return Effect.fail(guard.pointerTooLarge(envelope.length, entry))
              }
              member.entry = entry
              member.envelope = envelope
              member.chunk = -1
              return Effect.void
            }
          }
        )
      }),
    { concurrency: context.config.maxConcurrentUploads, discard: true }
  )

/**
 * A member left open since an earlier chunk than `start` gets its own copy of its bytes, so
 * that a group that fills slowly never holds the buffers of many chunks: at most this chunk's
 * buffer and the open members' bytes (up to maxBytes a group) stay alive.
 */
const detachOpenMembers = (groups: ReadonlyMap<number, Group>, start: number): void => {
  for (const group of groups.values()) {
    for (const m of group.members) {
      if (m.chunk >= 0 && m.chunk < start) {
        m.envelope = new Uint8Array(m.envelope)
        m.chunk = -1
      }
    }
  }
}

/**
 * Phase 2 of a step of the attempt: its records decided alone, then its payloads once
 * compressed, each fitted to the stream's record limit.
 */
const chunkPrepared = (
  context: PrepareContext,
  alone: ReadonlyArray<PreparedRecord>,
  parts: ReadonlyArray<CompressedPart>,
  attemptDigits: number
): Effect.Effect<Array<PreparedRecord>, CompressionError> =>
  Effect.flatMap(Effect.forEach(parts, (part) => Fiber.join(part.compressed)), (gzs) => {
    const out: Array<PreparedRecord> = [...alone]
    for (let p = 0; p < parts.length; p++) {
      const { payloads } = parts[p]!
      const gz = gzs[p]!
      for (let i = 0; i < payloads.length; i++) {
        const fitted = fitToRecordLimit(
          toPrepared(payloads[i]!, gz[i]!),
          context.recordLimitBytes,
          attemptDigits,
          context.config.compressionLevel
        )
        if (Either.isLeft(fitted)) return Effect.fail(fitted.left)
        for (const r of fitted.right) out.push(r)
      }
    }
    return Effect.succeed(out)
  })

/**
 * Both phases with aggregation, for a whole batch: what `KinesisWriter.prepare` returns when
 * aggregation is on.
 *
 * @internal
 */
export const prepareBatchAggregated = (
  context: PrepareContext,
  records: ReadonlyArray<DataFileV1>,
  aggregation: ResolvedAggregation,
  shards?: ShardMap<ShardRange> | undefined
): Effect.Effect<PreparedBatch, PrepareError> =>
  Effect.gen(function*() {
    const batch = yield* serializeBatchAggregated(context, records, aggregation, shards)
    const prepared = (yield* Effect.forEach(batch.chunks, (chunk) => chunk.prepared)).flat()
    return preparedBatch(prepared, batch.largePayloads)
  }).pipe(Effect.scoped)

/**
 * Cuts each group into aggregates of at most `maxRecords` records and `maxBytes` bytes and
 * packs them, in order; a group (or a remainder) of one record is packed as a plain
 * envelope. A record larger than `maxBytes` on its own travels alone. Unless `last`, the
 * members after a group's last full aggregate stay in the group, for the next chunk.
 */
const packGroups = (
  packer: EnvelopePacker,
  groups: ReadonlyMap<number, Group>,
  { maxBytes, maxRecords }: ResolvedAggregation,
  last: boolean
): Array<PayloadPlan> => {
  const plans: Array<PayloadPlan> = []
  const flush = (group: Group, from: number, to: number) => {
    if (to === from) return
    const members = group.members
    let size = 0
    if (to - from === 1) {
      size = packer.addEnvelope(members[from]!.envelope)
    } else {
      for (let i = from; i < to; i++) size += packer.addMemberEnvelope(members[i]!.envelope)
      packer.endAggregate()
    }
    const entries: Array<BatchEntry> = new Array(to - from)
    for (let i = from; i < to; i++) entries[i - from] = members[i]!.entry
    // A record alone travels as a plain record does: under its own key, routed by it.
    const explicitHashKey = to - from === 1 ? undefined : group.explicitHashKey
    plans.push({
      members: entries,
      partitionKeyPrefix: members[from]!.partitionKeyPrefix,
      ...(explicitHashKey === undefined ? {} : { explicitHashKey }),
      uncompressedSize: size
    })
  }
  for (const group of groups.values()) {
    const members = group.members
    let from = 0
    let bytes = 0
    for (let i = 0; i < members.length; i++) {
      const length = members[i]!.envelope.length
      const size = 1 + varintSize(length) + length
      if (i > from && (i - from === maxRecords || bytes + size > maxBytes)) {
        flush(group, from, i)
        from = i
        bytes = 0
      }
      bytes += size
    }
    if (last) {
      flush(group, from, members.length)
      group.members = []
    } else if (from > 0) {
      group.members = members.slice(from)
    }
  }
  return plans
}

const toPrepared = (plan: PayloadPlan, data: Uint8Array): PreparedRecord => {
  const first = plan.members[0]!
  const routed = plan.explicitHashKey === undefined ? {} : { explicitHashKey: plan.explicitHashKey }
  return plan.members.length === 1
    ? {
      ...first,
      data,
      uncompressedSize: plan.uncompressedSize,
      partitionKeyPrefix: plan.partitionKeyPrefix,
      ...routed
    }
    : {
      index: first.index,
      record: first.record,
      recordId: first.recordId,
      data,
      uncompressedSize: plan.uncompressedSize,
      partitionKeyPrefix: plan.partitionKeyPrefix,
      ...routed,
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
          // The parts stay on the aggregate's shard, under its key.
          toPrepared({
            members: members.slice(from, to),
            partitionKeyPrefix: record.partitionKeyPrefix,
            explicitHashKey: record.explicitHashKey,
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
