/**
 * Which shards to read, from where, and when: a state machine without effects, fed with
 * ListShards answers and with shards that ended. A shard made by a reshard starts only when
 * each of its parents is done (read to its end, or not listed any more: trimmed away), so
 * every record of a partition key comes after the records its parent held.
 */
import type { ShardIteratorStart, ShardRange } from "../../Kinesis.js"
import type { From, Position } from "../../StreamReader.js"

/**
 * Where a shard's reading starts: an iterator, and, when resuming inside an aggregate, the
 * members of the first record already handled (`member` and those before it).
 */
export interface ReadStart {
  readonly iterator: ShardIteratorStart
  readonly skipThrough?: { readonly sequenceNumber: string; readonly member: number } | undefined
}

/** A shard's phase: known and waiting for its parents, being read, or done with. */
export type ShardPhase =
  | { readonly _tag: "Waiting"; readonly start: ReadStart }
  | { readonly _tag: "Reading" }
  /** Closed and read to its end, or done before this reader began (from positions, or `latest`). */
  | { readonly _tag: "Finished" }
  /** Open and read to its current tip (`follow: false`): its children, if any appear, are not read. */
  | { readonly _tag: "AtTip" }

/** A shard to start now. */
export interface ReadyShard {
  readonly shard: ShardRange
  readonly start: ReadStart
}

const TRIM_HORIZON: ReadStart = { iterator: { _tag: "TrimHorizon" } }

/** The start that resumes after `position`: after its record, or at it, skipping the members handled. */
export const resumeAfter = (position: Position): ReadStart =>
  position.member === undefined
    ? { iterator: { _tag: "AfterSequenceNumber", sequenceNumber: position.sequenceNumber } }
    : {
      iterator: { _tag: "AtSequenceNumber", sequenceNumber: position.sequenceNumber },
      skipThrough: { sequenceNumber: position.sequenceNumber, member: position.member }
    }

/** A position handed back as a bare sequence number: its whole Kinesis record was handled. */
export const toPosition = (position: string | Position): Position =>
  typeof position === "string" ? { sequenceNumber: position } : position

/**
 * Where each shard of the first listing starts, from the reader's `from`: `"Done"` for a shard
 * with nothing to read. Shards found later are new children: read from their start.
 */
export const initialStart = (
  listing: ReadonlyArray<ShardRange>,
  from: From
): (shard: ShardRange) => ReadStart | "Done" => {
  if (from === "trim-horizon") return () => TRIM_HORIZON
  if (from === "latest") return (shard) => shard.open ? { iterator: { _tag: "Latest" } } : "Done"
  if ("timestamp" in from) return () => ({ iterator: { _tag: "AtTimestamp", timestamp: from.timestamp } })
  // A shard read from is done with its ancestors: a parent is read to its end before its children.
  const byId = new Map(listing.map((s) => [s.shardId, s]))
  const ancestors = new Set<string>()
  const climb = (shardId: string | undefined) => {
    const shard = shardId === undefined ? undefined : byId.get(shardId)
    if (shard === undefined || ancestors.has(shard.shardId)) return
    ancestors.add(shard.shardId)
    climb(shard.parentShardId)
    climb(shard.adjacentParentShardId)
  }
  for (const shardId of from.positions.keys()) {
    const shard = byId.get(shardId)
    climb(shard?.parentShardId)
    climb(shard?.adjacentParentShardId)
  }
  return (shard) => {
    if (ancestors.has(shard.shardId)) return "Done"
    const position = from.positions.get(shard.shardId)
    return position === undefined ? TRIM_HORIZON : resumeAfter(toPosition(position))
  }
}

/** The shards of one reader and their phases. */
export class Lineage {
  private readonly shards = new Map<string, { readonly shard: ShardRange; phase: ShardPhase }>()

  /** Adds the shards of a listing not seen before, each starting where `startOf` says. */
  learn(listing: ReadonlyArray<ShardRange>, startOf: (shard: ShardRange) => ReadStart | "Done"): void {
    for (const shard of listing) {
      if (this.shards.has(shard.shardId)) continue
      const start = startOf(shard)
      this.shards.set(shard.shardId, {
        shard,
        phase: start === "Done" ? { _tag: "Finished" } : { _tag: "Waiting", start }
      })
    }
  }

  /** The waiting shards whose parents are done, in listing order; they are now `Reading`. */
  takeReady(): Array<ReadyShard> {
    const ready: Array<ReadyShard> = []
    for (const entry of this.shards.values()) {
      if (entry.phase._tag !== "Waiting") continue
      if (!this.parentDone(entry.shard.parentShardId) || !this.parentDone(entry.shard.adjacentParentShardId)) continue
      ready.push({ shard: entry.shard, start: entry.phase.start })
      entry.phase = { _tag: "Reading" }
    }
    return ready
  }

  /** A shard read to its end (closed). */
  finish(shardId: string): void {
    this.move(shardId, { _tag: "Finished" })
  }

  /** An open shard read to its tip (`follow: false`). */
  reachTip(shardId: string): void {
    this.move(shardId, { _tag: "AtTip" })
  }

  /** How many shards are being read. */
  get reading(): number {
    let n = 0
    for (const entry of this.shards.values()) if (entry.phase._tag === "Reading") n++
    return n
  }

  /** The phase of a shard, if it is known. */
  phaseOf(shardId: string): ShardPhase["_tag"] | undefined {
    return this.shards.get(shardId)?.phase._tag
  }

  private parentDone(parentId: string | undefined): boolean {
    if (parentId === undefined) return true
    const parent = this.shards.get(parentId)
    // A parent that is not listed has been trimmed away: nothing of it is left to read first.
    return parent === undefined || parent.phase._tag === "Finished"
  }

  private move(shardId: string, phase: ShardPhase): void {
    const entry = this.shards.get(shardId)
    if (entry !== undefined && entry.phase._tag === "Reading") entry.phase = phase
  }
}
