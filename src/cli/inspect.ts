/**
 * `cygnus-kinesis inspect`: decodes one record's Data, or every record of a Lambda Kinesis
 * event, resolving S3 pointers; exits 1 naming each record that could not be decoded.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Effect, Either, Layer, Option } from "effect"
import { readFile } from "node:fs/promises"
import type { LambdaKinesisEvent, LambdaRecordResult } from "../RecordReader.js"
import * as RecordReader from "../RecordReader.js"
import { awsOptions, CommandFailed, describeCommand, storeLayer, UsageError } from "./common.js"
import { formatOption, makeOutput, resolveFormat } from "./output.js"

const options = {
  ...awsOptions,
  format: formatOption,
  data: Options.text("data").pipe(
    Options.withPseudoName("BASE64"),
    Options.withDescription("One record's Data, base64"),
    Options.optional
  ),
  file: Options.file("file", { exists: "yes" }).pipe(
    Options.withPseudoName("PATH"),
    Options.withDescription("A file holding one record's Data (raw bytes)"),
    Options.optional
  ),
  lambdaEvent: Options.file("lambda-event", { exists: "yes" }).pipe(
    Options.withPseudoName("FILE.json"),
    Options.withDescription("A Lambda Kinesis event (JSON): every record of it"),
    Options.optional
  )
}

type Input =
  | { readonly _tag: "Data"; readonly bytes: Uint8Array }
  | { readonly _tag: "Event"; readonly path: string; readonly event: LambdaKinesisEvent }

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/

const readInput = (
  given: { data: Option.Option<string>; file: Option.Option<string>; lambdaEvent: Option.Option<string> }
): Effect.Effect<Input, UsageError> => {
  const chosen = [given.data, given.file, given.lambdaEvent].filter(Option.isSome).length
  if (chosen !== 1) {
    return Effect.fail(new UsageError({ reason: "inspect takes exactly one of --data, --file, --lambda-event" }))
  }
  if (Option.isSome(given.data)) {
    const text = given.data.value.trim()
    return BASE64.test(text) && text.length > 0
      ? Effect.succeed({ _tag: "Data", bytes: Buffer.from(text, "base64") })
      : Effect.fail(new UsageError({ reason: "--data is not base64" }))
  }
  const read = (path: string) =>
    Effect.tryPromise({
      try: (signal) => readFile(path, { signal }),
      catch: (error) => new UsageError({ reason: `cannot read ${path}: ${(error as Error).message}` })
    })
  if (Option.isSome(given.file)) {
    return Effect.map(read(given.file.value), (bytes): Input => ({ _tag: "Data", bytes }))
  }
  const path = Option.getOrThrow(given.lambdaEvent)
  return Effect.flatMap(read(path), (bytes) => {
    const event = Either.try(() => JSON.parse(bytes.toString("utf8")) as unknown)
    return Either.isRight(event) && isLambdaEvent(event.right)
      ? Effect.succeed({ _tag: "Event", path, event: event.right })
      : Effect.fail(new UsageError({ reason: `${path} is not a Lambda Kinesis event (JSON with a Records array)` }))
  })
}

const isLambdaEvent = (value: unknown): value is LambdaKinesisEvent =>
  typeof value === "object" && value !== null && Array.isArray((value as { Records?: unknown }).Records)

/** Decodes what was given: one record's Data gives one result per logical record, as an event's record does. */
const decode = (input: Input) =>
  input._tag === "Event"
    ? RecordReader.decodeLambdaRecords(input.event)
    : RecordReader.decodeLambdaRecords({
      Records: [{ kinesis: { data: Buffer.from(input.bytes).toString("base64") } }]
    })

/** The shard of an event's record: its `eventID` is `shardId-…:sequenceNumber`. */
const shardOf = (input: Input, index: number): string | undefined => {
  if (input._tag !== "Event") return undefined
  const eventId = (input.event.Records[index] as { readonly eventID?: unknown } | undefined)?.eventID
  return typeof eventId === "string" && eventId.includes(":") ? eventId.slice(0, eventId.indexOf(":")) : undefined
}

const place = (input: Input, result: LambdaRecordResult) => ({
  shardId: shardOf(input, result.index),
  sequenceNumber: result.sequenceNumber,
  member: result._tag === "Decoded" ? result.member : 0
})

/** The `inspect` command. */
export const inspect = Command.make("inspect", options, (given) =>
  Effect.gen(function*() {
    const input = yield* readInput(given)
    const output = makeOutput(resolveFormat(given.format))
    const results = yield* decode(input)
    const failed: Array<string> = []
    for (const result of results) {
      if (result._tag === "Decoded") {
        yield* output.record(result.record, place(input, result))
      } else {
        // A DecodeError names the event's record (index, sequence number); a store error names the S3 object.
        failed.push(
          result.error._tag === "DecodeError" || input._tag === "Data"
            ? result.error.message
            : `record #${result.index}: ${result.error.message}`
        )
        yield* output.failure(result.error.message, place(input, result))
      }
    }
    if (failed.length > 0) {
      const total = input._tag === "Event" ? input.event.Records.length : 1
      return yield* new CommandFailed({
        reason: `${failed.length} of ${total} record(s) could not be decoded:\n  ${failed.join("\n  ")}`
      })
    }
  }).pipe(Effect.provide(Layer.suspend(() => storeLayer(given))))).pipe(
    Command.withDescription(describeCommand(
      "Decode one record's Data (--data, --file) or every record of a Lambda Kinesis event (--lambda-event), fetching S3 pointers; exit 1 naming each record that cannot be decoded.",
      "cygnus-kinesis inspect --lambda-event dead-letter.json --format json | jq .filePath"
    ))
  )
