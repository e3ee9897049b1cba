/**
 * Where a command writes: records to stdout, one JSON object per line or a block per record;
 * on a terminal, a status line kept at the bottom and redrawn after every block.
 */
import * as Options from "@effect/cli/Options"
import { Effect, Option } from "effect"
import type { DecodedRecord } from "../RecordReader.js"
import type { RecordPlace, Style } from "./records.js"
import { failureJson, failurePretty, recordJson, recordPretty, style } from "./records.js"

/** `json` or `pretty`. */
export type Format = "json" | "pretty"

/** `--format json|pretty`: by default pretty on a terminal and JSON lines otherwise (so that `| jq` works). */
export const formatOption = Options.choice("format", ["json", "pretty"]).pipe(
  Options.withDescription("json: one object per line (default when stdout is not a terminal); pretty: for a person"),
  Options.optional
)

/** What `--format` says, or what suits stdout. */
export const resolveFormat = (format: Option.Option<Format>): Format =>
  Option.getOrElse(format, () => (process.stdout.isTTY ? "pretty" : "json"))

/** Whether stderr is a terminal, on which a status line can be redrawn in place. */
export const stderrIsTerminal = (): boolean => process.stderr.isTTY === true

/** Writes records in one format, and a status line beneath them when stdout is a terminal. */
export interface Output {
  readonly style: Style
  readonly record: (record: DecodedRecord, place: RecordPlace) => Effect.Effect<void>
  readonly failure: (reason: string, place: RecordPlace) => Effect.Effect<void>
  /** Replaces the status line (a terminal only; elsewhere nothing). */
  readonly status: (line: string) => Effect.Effect<void>
  /** A line of text for a person: to stdout in pretty form, to stderr beside JSON. */
  readonly note: (text: string) => Effect.Effect<void>
}

/** An `Output` in `format` to this process' stdout. */
export const makeOutput = (format: Format): Output => {
  // A status line only beside pretty output on a terminal: never among JSON lines.
  const terminal = process.stdout.isTTY === true && format === "pretty"
  const s = style(terminal)
  let status = ""
  const clip = (line: string) => {
    const width = process.stdout.columns ?? 120
    return line.length > width - 1 ? `${line.slice(0, width - 2)}…` : line
  }
  // The status line is erased before anything else is written and drawn again after it.
  const write = (text: string) =>
    Effect.sync(() => {
      if (terminal && status !== "") process.stdout.write(`\r\x1b[2K${text}\n${status}`)
      else process.stdout.write(`${text}\n`)
    })
  return {
    style: s,
    record: (record, place) =>
      write(format === "json" ? JSON.stringify(recordJson(record, place)) : `${recordPretty(record, place, s)}\n`),
    failure: (reason, place) =>
      write(format === "json" ? JSON.stringify(failureJson(reason, place)) : `${failurePretty(reason, place, s)}\n`),
    status: (line) =>
      Effect.sync(() => {
        if (!terminal) return
        status = s.dim(clip(line))
        process.stdout.write(`\r\x1b[2K${status}`)
      }),
    note: (text) =>
      format === "json"
        ? Effect.sync(() => void process.stderr.write(`${text}\n`))
        : Effect.zipRight(
          Effect.sync(() => {
            if (terminal && status !== "") process.stdout.write("\r\x1b[2K")
            status = ""
          }),
          write(text)
        )
  }
}
