import { Cause, Effect, Logger, LogLevel } from "effect"

/** One log line a test captured. */
export interface Captured {
  readonly level: LogLevel.LogLevel
  readonly message: string
  /** `Cause.pretty` of the logged cause; empty when there is none. */
  readonly cause: string
  /** The line's annotations (`package` and `module` name the Effect package that logged it). */
  readonly annotations: Readonly<Record<string, unknown>>
}

/** Runs `effect` with every log line (Debug included) captured instead of printed. */
export const capturingLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const logs: Array<Captured> = []
    const logger = Logger.make(({ annotations, cause, logLevel, message }) => {
      logs.push({
        level: logLevel,
        message: (Array.isArray(message) ? message : [message]).map(String).join(" "),
        cause: Cause.isEmpty(cause) ? "" : Cause.pretty(cause),
        annotations: Object.fromEntries(annotations)
      })
    })
    const result = yield* Effect.either(effect).pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(LogLevel.All)
    )
    return { logs, result }
  })

/** The lines at Info and above, as `LEVEL message`. */
export const atInfoOrAbove = (logs: ReadonlyArray<Captured>): ReadonlyArray<string> =>
  logs.filter((l) => LogLevel.greaterThanEqual(l.level, LogLevel.Info)).map((l) => `${l.level.label} ${l.message}`)
