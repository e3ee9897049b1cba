/**
 * P7 (b)'s producer process: a `KinesisWriter` + `KinesisProducer` stack of its own (default
 * settings, or the run's producer options) over a real `@aws-sdk/client-kinesis` client
 * (`Kinesis.layerClient`: the endpoint of bench/p7Stream.ts, dummy credentials), offered its
 * load (p7Load.ts) when told. It serves one run after another, each with a fresh stack:
 *
 *   fork("bench/p7Producer.ts", { execArgv: ["--import", "tsx"] })
 *
 * Sends `{ kind: "up" }`. On `{ kind: "prepare", endpoint, options, plan }` it builds the
 * stack, readies the offer and answers `{ kind: "prepared" }`; on `{ kind: "go", window }` it offers the load,
 * closes the stack and answers `{ kind: "figures", figures }` (or `{ kind: "error", message }`).
 * It exits when the parent disconnects.
 */
import { Context, Effect, Layer } from "effect"
import type { KinesisProducerOptions } from "../src/index.js"
import { KinesisProducer } from "../src/index.js"
import { quietLogs } from "./common.js"
import type { OfferPlan, OfferWindow } from "./p7Load.js"
import { loopbackKinesis, makeOffer, producerStack } from "./p7Load.js"

/** What the parent sends. */
export type ProducerCommand =
  | {
    readonly kind: "prepare"
    readonly endpoint: string
    readonly options: KinesisProducerOptions
    readonly plan: OfferPlan
  }
  | { readonly kind: "go"; readonly window: OfferWindow }

let go: ((window: OfferWindow) => void) | undefined

const runOne = (command: Extract<ProducerCommand, { kind: "prepare" }>) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(producerStack(loopbackKinesis(command.endpoint), command.options))
    const offer = yield* makeOffer(Context.get(context, KinesisProducer), command.plan)
    const window = yield* Effect.async<OfferWindow>((resume) => {
      go = (window) => resume(Effect.succeed(window))
      process.send?.({ kind: "prepared" })
    })
    const figures = yield* offer(window)
    // Hundredths of a millisecond are enough, and keep the message small.
    return { ...figures, latenciesMs: figures.latenciesMs.map((ms) => Math.round(ms * 100) / 100) }
  }).pipe(Effect.scoped, Effect.provide(quietLogs))

process.on("message", (command: ProducerCommand) => {
  if (command.kind === "go") {
    go?.(command.window)
    go = undefined
    return
  }
  Effect.runPromise(runOne(command)).then(
    (figures) => process.send?.({ kind: "figures", figures }),
    (error: unknown) =>
      process.send?.({ kind: "error", message: error instanceof Error ? error.message : String(error) })
  )
})
process.on("disconnect", () => process.exit(0))
process.send?.({ kind: "up" })
