/**
 * `cygnus-kinesis send`: `DataFileV1` records given as JSON lines (protobuf-JSON form) sent
 * through a `KinesisProducer`; a progress line on a terminal, a summary at the end, records
 * not delivered written to a dead-letter file with their error.
 */
import { fromJsonString, toJson } from "@bufbuild/protobuf"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Config, Console, Duration, Effect, Layer, Option, Ref, Schedule, Stream } from "effect"
import { createReadStream } from "node:fs"
import { appendFile } from "node:fs/promises"
import { createInterface } from "node:readline"
import type { DataFileV1 } from "../gen/cygnus/v1/data_file_pb.js"
import { DataFileV1Schema } from "../gen/cygnus/v1/data_file_pb.js"
import { KinesisMetrics } from "../KinesisMetrics.js"
import { KinesisProducer } from "../KinesisProducer.js"
import { KinesisWriter } from "../KinesisWriter.js"
import type { AwsOptions } from "./common.js"
import {
  awsOptions,
  CommandFailed,
  describeCommand,
  kinesisLayer,
  storeLayer,
  streamOption,
  UsageError
} from "./common.js"
import { stderrIsTerminal } from "./output.js"

const writerText = (name: string, env: string, description: string) =>
  Options.text(name).pipe(
    Options.withPseudoName("TEXT"),
    Options.withDescription(`${description} (default: $${env})`),
    Options.withFallbackConfig(Config.string(env))
  )

const options = {
  ...awsOptions,
  stream: streamOption,
  file: Options.text("file").pipe(
    Options.withPseudoName("PATH|-"),
    Options.withDescription("JSON lines of DataFileV1 in protobuf-JSON form; - for stdin (the default)"),
    Options.withDefault("-")
  ),
  deadLetter: Options.file("dead-letter").pipe(
    Options.withPseudoName("PATH"),
    Options.withDescription("Append each record not delivered (and each bad line) here, as a JSON line with its error"),
    Options.optional
  ),
  logGroupId: writerText("log-group-id", "KINESIS_LOG_GROUP_ID", "The writer's logGroupId"),
  schemaName: writerText("schema-name", "KINESIS_SCHEMA_NAME", "The writer's schemaName"),
  accountId: writerText("account-id", "AWS_ACCOUNT_ID", "The producing AWS account id, 12 digits")
}

type Given = AwsOptions & {
  readonly stream: string
  readonly logGroupId: string
  readonly schemaName: string
  readonly accountId: string
}

/**
 * The producer over the writer, configured as `KinesisWriter.fromEnv` says (every
 * `KINESIS_*` setting applies), with the stream and the envelope's names from the command
 * line, and gzip on the main thread unless `KINESIS_COMPRESSION_WORKERS` says otherwise: a
 * command that sends a file need not start worker threads.
 */
const producerLayer = (given: Given) =>
  KinesisProducer.layer().pipe(
    Layer.provide(KinesisWriter.layerConfig({
      ...KinesisWriter.fromEnv,
      streamName: Config.succeed(given.stream),
      logGroupId: Config.succeed(given.logGroupId),
      schemaName: Config.succeed(given.schemaName),
      accountId: Config.succeed(given.accountId),
      compressionWorkers: Config.withDefault(Config.integer("KINESIS_COMPRESSION_WORKERS"), 0)
    })),
    Layer.provide(Layer.mergeAll(kinesisLayer(given), storeLayer(given), KinesisMetrics.layerNoop))
  )

/** The numbered lines of a file, or of stdin for `-`. */
const lines = (file: string) =>
  Stream.fromAsyncIterable(
    createInterface({
      input: file === "-" ? process.stdin : createReadStream(file),
      crlfDelay: Infinity
    }),
    (error) => new UsageError({ reason: `cannot read ${file}: ${(error as Error).message}` })
  ).pipe(Stream.zipWithIndex, Stream.map(([text, index]) => ({ text, line: index + 1 })))

interface Counts {
  readonly read: number
  readonly delivered: number
  readonly failed: number
  readonly badLines: number
}

/** In how many records a send may wait for its settlement at once: the producer gathers them into calls. */
const SENDS_IN_FLIGHT = 1_000

/** The `send` command. */
export const send = Command.make("send", options, (given) =>
  Effect.gen(function*() {
    const producer = yield* KinesisProducer
    const counts = yield* Ref.make<Counts>({ read: 0, delivered: 0, failed: 0, badLines: 0 })
    const started = Date.now()
    const deadLetter = (entry: Record<string, unknown>) =>
      Option.match(given.deadLetter, {
        onNone: () => Console.error(JSON.stringify(entry)),
        onSome: (path) =>
          Effect.tryPromise({
            try: () => appendFile(path, `${JSON.stringify(entry)}\n`),
            catch: (error) => new CommandFailed({ reason: `cannot write ${path}: ${(error as Error).message}` })
          })
      })
    const progress = Effect.flatMap(Ref.get(counts), (c) => progressLine(c, started))
    const terminal = stderrIsTerminal()
    const sendOne = (record: DataFileV1, line: number) =>
      producer.send(record).pipe(
        Effect.matchEffect({
          onSuccess: () => Ref.update(counts, (c) => ({ ...c, delivered: c.delivered + 1 })),
          onFailure: (error) =>
            Ref.update(counts, (c) => ({ ...c, failed: c.failed + 1 })).pipe(
              Effect.zipRight(deadLetter({
                line,
                error: error.message,
                errorCode: error._tag === "RecordUndeliveredError" ? error.errorCode : error._tag,
                record: toJson(DataFileV1Schema, record)
              }))
            )
        })
      )
    const run = lines(given.file).pipe(
      Stream.filter(({ text }) => text.trim() !== ""),
      Stream.mapEffect(({ line, text }) => {
        const parsed = parseLine(text)
        if (typeof parsed === "string") {
          return Ref.update(counts, (c) => ({ ...c, badLines: c.badLines + 1 })).pipe(
            Effect.zipRight(Console.error(`${clearLine(terminal)}line ${line}: not a DataFileV1: ${parsed}`)),
            Effect.zipRight(
              Option.isSome(given.deadLetter) ? deadLetter({ line, error: parsed, input: text }) : Effect.void
            )
          )
        }
        return Ref.update(counts, (c) => ({ ...c, read: c.read + 1 })).pipe(Effect.zipRight(sendOne(parsed, line)))
      }, { concurrency: SENDS_IN_FLIGHT, unordered: true }),
      Stream.runDrain
    )
    const ticker = progress.pipe(
      Effect.flatMap((line) => Effect.sync(() => process.stderr.write(`\r\x1b[2K${line}`))),
      Effect.repeat(Schedule.spaced(Duration.millis(200)))
    )
    yield* (terminal ? Effect.raceFirst(run, Effect.zipRight(ticker, Effect.never)) : run).pipe(
      Effect.ensuring(Effect.sync(() => terminal && process.stderr.write("\r\x1b[2K"))),
      // Ctrl-C: what was settled so far; the producer then delivers what it holds within its
      // shutdownTimeout, as its scope closes.
      Effect.onInterrupt(() =>
        Effect.flatMap(Ref.get(counts), (c) =>
          Console.log(
            `${summary(c, given.stream, started)}; interrupted with ${fmt(c.read - c.delivered - c.failed)} unsettled`
          ))
      )
    )
    const final = yield* Ref.get(counts)
    yield* Console.log(summary(final, given.stream, started))
    if (final.failed > 0 || final.badLines > 0) {
      return yield* new CommandFailed({
        reason: [
          final.failed > 0 ? `${final.failed} record(s) not delivered` : undefined,
          final.badLines > 0 ? `${final.badLines} line(s) not a DataFileV1` : undefined
        ].filter((s) => s !== undefined).join(", ") +
          Option.match(given.deadLetter, { onNone: () => "", onSome: (path) => `: see ${path}` })
      })
    }
  }).pipe(Effect.provide(Layer.suspend(() => producerLayer(given))))).pipe(
    Command.withDescription(describeCommand(
      "Send DataFileV1 records, one per line in protobuf-JSON form, through a KinesisProducer. Records not delivered go to --dead-letter with their error, and the exit status is 1. Writer settings come from the KINESIS_* variables (see KinesisWriter.fromEnv).",
      "cygnus-kinesis send --stream orders --bucket orders-large --log-group-id lg --schema-name orders --account-id 123456789012 --file records.jsonl --dead-letter undelivered.jsonl"
    ))
  )

/** A line's `DataFileV1`, or why it is not one. */
const parseLine = (text: string): DataFileV1 | string => {
  try {
    const record = fromJsonString(DataFileV1Schema, text)
    return record.filePath === "" ? "filePath is empty" : record
  } catch (error) {
    return (error as Error).message
  }
}

const clearLine = (terminal: boolean) => (terminal ? "\r\x1b[2K" : "")

const rate = (n: number, started: number) => {
  const seconds = (Date.now() - started) / 1_000
  return seconds <= 0 ? 0 : n / seconds
}

const fmt = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 0 })

const progressLine = (c: Counts, started: number) =>
  Effect.succeed(
    `sent ${fmt(c.read)}  delivered ${fmt(c.delivered)}  in flight ${fmt(c.read - c.delivered - c.failed)}  failed ${
      fmt(c.failed)
    }  ${fmt(rate(c.delivered, started))} rec/s`
  )

const summary = (c: Counts, stream: string, started: number) =>
  `delivered ${fmt(c.delivered)} of ${fmt(c.read)} record(s) to ${stream} in ${
    ((Date.now() - started) / 1_000).toFixed(1)
  } s (${fmt(rate(c.delivered, started))} rec/s)${c.failed > 0 ? `, ${fmt(c.failed)} not delivered` : ""}${
    c.badLines > 0 ? `, ${fmt(c.badLines)} bad line(s)` : ""
  }`
