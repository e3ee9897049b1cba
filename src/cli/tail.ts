/**
 * `cygnus-kinesis tail`: a stream's decoded logical records as they come, JSON lines or a
 * block per record with a live line of rate and lag per shard; an undecodable record is shown
 * with its sequence number and reason and the tail goes on; Ctrl-C prints where each shard
 * stood.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import type { Duration } from "effect"
import { Clock, DateTime, Effect, Either, Layer, Option, Schedule, Stream } from "effect"
import type { Position, StreamRecord } from "../StreamReader.js"
import * as StreamReader from "../StreamReader.js"
import { awsOptions, describeCommand, kinesisLayer, storeLayer, streamOption, UsageError } from "./common.js"
import type { Output } from "./output.js"
import { formatOption, makeOutput, resolveFormat } from "./output.js"

/** Where `tail` starts: what the command line can say of `StreamReader`'s `From`. */
export type From = "trim-horizon" | "latest" | { readonly timestamp: Date }

/** `trim-horizon`, `latest`, or an ISO-8601 time. */
export const parseFrom = (text: string): Either.Either<From, UsageError> => {
  if (text === "trim-horizon" || text === "latest") return Either.right(text)
  const time = DateTime.make(text)
  return Option.isSome(time) && /^\d{4}-\d{2}-\d{2}/.test(text)
    ? Either.right({ timestamp: DateTime.toDateUtc(time.value) })
    : Either.left(
      new UsageError({ reason: `--from must be trim-horizon, latest or an ISO-8601 time, got ${JSON.stringify(text)}` })
    )
}

/** What one shard has shown: its position and what the rate and lag are computed from. */
interface ShardState {
  position: Position
  records: number
  /** Records since the status line was last drawn. */
  recent: number
  /** How far behind its shard's tip the last record shown was (see {@link lagOf}). */
  lagMillis: number | undefined
}

/**
 * Shows `source` on `output` until it ends (or `maxRecords` decoded records have been shown),
 * and, when interrupted, where each shard stood.
 */
export const runTail = <E, R>(
  source: Stream.Stream<StreamRecord, E, R>,
  output: Output,
  options: { readonly maxRecords: Option.Option<number>; readonly statusEvery: Duration.DurationInput }
): Effect.Effect<Map<string, ShardState>, E, R> =>
  Effect.suspend(() => {
    const shards = new Map<string, ShardState>()
    let lastDrawn = Date.now()
    const show = (element: StreamRecord) =>
      Effect.suspend(() => {
        const state = shards.get(element.shardId) ??
          { position: element.position, records: 0, recent: 0, lagMillis: undefined }
        shards.set(element.shardId, state)
        state.position = element.position
        state.records++
        state.recent++
        state.lagMillis = lagOf(element, Date.now()) ?? state.lagMillis
        return element._tag === "Decoded"
          ? output.record(element.record, element)
          : output.failure(element.error.message, element)
      })
    const status = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const line = statusLine(shards, now - lastDrawn)
      lastDrawn = now
      for (const state of shards.values()) state.recent = 0
      return output.status(line)
    })
    const limited = Option.match(options.maxRecords, {
      onNone: () => source,
      onSome: (n) => Stream.take(source, n)
    })
    const ticker = Effect.repeat(status, Schedule.spaced(options.statusEvery))
    return Stream.runForEach(limited, show).pipe(
      Effect.raceFirst(Effect.zipRight(ticker, Effect.never)),
      Effect.onInterrupt(() => output.note(positionsText(shards, "interrupted"))),
      Effect.as(shards)
    )
  })

const shortShard = (shardId: string) => shardId.replace(/^shardId-0*(?=\d)/, "#")

/**
 * How far behind its shard's tip a record was read: the `MillisBehindLatest` of its GetRecords
 * answer, or, where the endpoint does not report one, how long the record had been on the
 * stream when it was shown.
 */
const lagOf = (record: StreamRecord, now: number): number | undefined => {
  if (record.millisBehindLatest !== undefined) return record.millisBehindLatest
  const arrival = record.approximateArrivalTimestamp?.getTime()
  return arrival === undefined ? undefined : Math.max(0, now - arrival)
}

/**
 * `#0 12.0/s lag 0.4s │ #1 …`: each shard's rate since the last line, and how far behind its
 * tip its last record was read.
 */
export const statusLine = (shards: ReadonlyMap<string, ShardState>, elapsedMillis: number): string => {
  if (shards.size === 0) return "waiting for records…"
  const seconds = Math.max(elapsedMillis, 1) / 1_000
  return [...shards].sort(([a], [b]) => a.localeCompare(b)).map(([shardId, s]) =>
    `${shortShard(shardId)} ${(s.recent / seconds).toFixed(1)}/s lag ${
      s.lagMillis === undefined ? "?" : `${(s.lagMillis / 1_000).toFixed(1)}s`
    }`
  ).join(" │ ")
}

/** Where each shard stood: its last sequence number (and aggregate member) and how many records it showed. */
export const positionsText = (shards: ReadonlyMap<string, ShardState>, why: string): string =>
  shards.size === 0
    ? `${why}: no record read`
    : [
      `${why}; where each shard stood (resume after these):`,
      ...[...shards].sort(([a], [b]) => a.localeCompare(b)).map(
        ([shardId, s]) =>
          `  ${shardId}  sequence number ${s.position.sequenceNumber}${
            s.position.member === undefined ? "" : ` member ${s.position.member}`
          }  (${s.records} record(s) shown)`
      )
    ].join("\n")

const options = {
  ...awsOptions,
  stream: streamOption,
  from: Options.text("from").pipe(
    Options.withPseudoName("trim-horizon|latest|TIME"),
    Options.withDescription(
      "trim-horizon, latest or an ISO-8601 time (default: latest when following, trim-horizon with --no-follow)"
    ),
    Options.optional
  ),
  maxRecords: Options.integer("max-records").pipe(
    Options.withPseudoName("N"),
    Options.withDescription("Stop after this many records"),
    Options.optional
  ),
  format: formatOption,
  noFollow: Options.boolean("no-follow").pipe(
    Options.withDescription("End when every shard has been read to its current tip")
  )
}

/** The `tail` command. */
export const tail = Command.make("tail", options, (given) =>
  Effect.gen(function*() {
    const follow = !given.noFollow
    const from = yield* Option.match(given.from, {
      onNone: () => Either.right<From>(follow ? "latest" : "trim-horizon"),
      onSome: parseFrom
    })
    if (Option.isSome(given.maxRecords) && given.maxRecords.value < 1) {
      return yield* new UsageError({ reason: "--max-records must be at least 1" })
    }
    const format = resolveFormat(given.format)
    const output = makeOutput(format)
    const records = StreamReader.stream({ streamName: given.stream, from, follow })
    const shards = yield* runTail(records, output, {
      maxRecords: given.maxRecords,
      statusEvery: "1 second"
    })
    if (format === "pretty" && process.stdout.isTTY) yield* output.note(positionsText(shards, "done"))
  }).pipe(Effect.provide(Layer.suspend(() => Layer.mergeAll(kinesisLayer(given), storeLayer(given)))))).pipe(
    Command.withDescription(describeCommand(
      "Show a stream's decoded records as they come: JSON lines when stdout is not a terminal, a block per record and a live rate and lag per shard on one. Undecodable records are shown with their sequence number and reason. Ctrl-C prints where each shard stood.",
      "cygnus-kinesis tail --stream orders --from 2026-12-06T03:00:00Z | jq 'select(.schemaName == \"orders\")'"
    ))
  )
