/**
 * Logs a test expects, captured instead of printed: a green run prints no warning a reader
 * must explain away, and the test asserts the lines it expects.
 */
import { Cause, Logger } from "effect"

export interface CapturedLog {
  /** `DEBUG`, `INFO`, `WARN`, `ERROR`, … */
  readonly level: string
  /** The message parts joined by spaces. */
  readonly message: string
  /** `Cause.pretty` of the logged cause; empty when there is none. */
  readonly cause: string
  /** The Effect module or package that logged it (`module` / `package` annotations), when one says. */
  readonly annotations: Readonly<Record<string, unknown>>
}

/**
 * A logger that keeps every line it is given in `logs`. Provide `layer` around the code under
 * test (it replaces Effect's default logger there and in the fibers it forks); lines below
 * the minimum log level in effect (Info by default) are not given to it.
 */
export const captureLogs = () => {
  const logs: Array<CapturedLog> = []
  const logger = Logger.make(({ annotations, cause, logLevel, message }) => {
    logs.push({
      level: logLevel.label,
      message: (Array.isArray(message) ? message : [message]).map(String).join(" "),
      cause: Cause.isEmpty(cause) ? "" : Cause.pretty(cause),
      annotations: Object.fromEntries(annotations)
    })
  })
  return { logs, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** `LEVEL message` of each captured line, for a compact assertion. */
export const lines = (logs: ReadonlyArray<CapturedLog>): Array<string> =>
  logs.map((log) => `${log.level} ${log.message}`)
