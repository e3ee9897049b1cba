#!/usr/bin/env node
/**
 * `cygnus-kinesis`: tail, inspect, send and describe a stream of `DataFileV1` records, over
 * the library's own layers. Errors are one line and an exit status: 2 for a command line
 * that cannot run, 1 for a command that ran and failed; `--verbose` adds the full cause.
 */
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, ConfigError, Effect, Exit, Option } from "effect"
import { createRequire } from "node:module"
import { describe } from "./describe.js"
import { inspect } from "./inspect.js"
import { send } from "./send.js"
import { tail } from "./tail.js"

// The package's own version, two folders up from src/cli and from dist/cli alike.
const VERSION = (createRequire(import.meta.url)("../../package.json") as { readonly version: string }).version

// The AWS SDK's NodeVersionSupportWarning (its releases after January 2027 need Node 22) would
// stand among a command's output on Node 20: off for this process, as the demo does, unless
// the caller set the switch the SDK reads when a client is built.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true"

const cli = Command.make("cygnus-kinesis").pipe(
  Command.withDescription("See and write the DataFileV1 records of a Kinesis stream."),
  Command.withSubcommands([tail, inspect, send, describe]),
  Command.run({ name: "cygnus-kinesis", version: VERSION })
)

/** Exit statuses: what happened, for a script. */
const USAGE = 2
const FAILED = 1
const INTERRUPTED = 130

const verbose = process.argv.includes("--verbose")

/** One line saying what went wrong (the full cause with `--verbose`), and the exit status. */
const report = (cause: Cause.Cause<unknown>): Effect.Effect<number> =>
  Effect.sync(() => {
    if (Cause.isInterruptedOnly(cause)) return INTERRUPTED
    const failure = Cause.failureOption(cause)
    // @effect/cli has printed what is wrong with the command line, and its usage.
    if (Option.isSome(failure) && ValidationError.isValidationError(failure.value)) return USAGE
    const error = Option.getOrElse(failure, () => Cause.squash(cause))
    const tag = typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : undefined
    const message = error instanceof Error || (typeof error === "object" && error !== null && "message" in error)
      ? String((error as { message: unknown }).message)
      : String(error)
    const status = tag === "UsageError" || ConfigError.isConfigError(error) ? USAGE : FAILED
    process.stderr.write(`cygnus-kinesis: ${oneLine(tag, message)}\n`)
    if (verbose) process.stderr.write(`${Cause.pretty(cause, { renderErrorCause: true })}\n`)
    return status
  })

/** A message without the name of a tag that says nothing to a person; a CommandFailed message may span lines. */
const oneLine = (tag: string | undefined, message: string) =>
  tag === "CommandFailed" ? message : message.split("\n")[0]!

const main = Effect.suspend(() => cli(process.argv)).pipe(
  Effect.provide(NodeContext.layer),
  Effect.matchCauseEffect({ onFailure: report, onSuccess: () => Effect.succeed(0) })
)

NodeRuntime.runMain(main, {
  disableErrorReporting: true,
  teardown: (exit, onExit) =>
    onExit(
      Exit.isSuccess(exit)
        ? typeof exit.value === "number" ? exit.value : 0
        : Cause.isInterruptedOnly(exit.cause)
        ? INTERRUPTED
        : FAILED
    )
})
