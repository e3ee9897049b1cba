/**
 * What the library says, once, about an SDK client the caller built: a Kinesis client that
 * opens a new connection per call (the SDK's default handler), and SDK retries that multiply
 * the library's own. Read after the client's first call, when its handler has resolved its
 * configuration (`httpHandlerConfigs()` is empty before).
 */
import { Effect } from "effect"

/** The parts of an SDK v3 client read here (`client.config`). */
export interface SdkClientLike {
  /** Absent on a test double that implements `send` only. */
  readonly config?: {
    readonly requestHandler?: unknown
    readonly maxAttempts?: unknown
  }
}

/** What the advice is decided on. */
export interface ClientFacts {
  /** An HTTP/2 handler with `disableConcurrentStreams: true`: a new session per call. */
  readonly sessionPerCall: boolean
  /** The SDK's attempts per call, when the client says. */
  readonly maxAttempts: number | undefined
}

/** The service whose client is read: it names the client and the fix. */
export type ClientService = "Kinesis" | "S3"

const builders: Record<ClientService, string> = {
  Kinesis: "Kinesis.layerClient or Kinesis.layerConfig",
  S3: "LargePayloadStore.layerS3Config"
}

/** The advice for a client, as log lines; none for a client that needs none. Pure. */
export const adviceFor = (service: ClientService, facts: ClientFacts): ReadonlyArray<string> => [
  ...(facts.sessionPerCall
    ? [
      `The ${service} client opens a new HTTP/2 session for every call (the SDK's default handler, ` +
      `disableConcurrentStreams: true): each call pays a TCP connection and a TLS handshake. ` +
      `Give the client requestHandler: new NodeHttpHandler() (from @smithy/node-http-handler: ` +
      `HTTP/1.1 keep-alive), or let ${builders[service]} build it.`
    ]
    : []),
  ...(facts.maxAttempts !== undefined && facts.maxAttempts > 1
    ? [
      `The ${service} client retries each call itself (maxAttempts: ${facts.maxAttempts}), inside the ` +
      `library's own retries: retries multiply, and the SDK's waits come before the library's backoff. ` +
      `Build the client with maxAttempts: 1.`
    ]
    : [])
]

const handlerOf = (client: SdkClientLike): Record<string, unknown> | undefined => {
  const handler = client.config?.requestHandler
  return typeof handler === "object" && handler !== null ? handler as Record<string, unknown> : undefined
}

const sessionPerCall = (client: SdkClientLike): boolean => {
  const handler = handlerOf(client)
  const metadata = handler?.["metadata"] as { readonly handlerProtocol?: unknown } | undefined
  if (metadata?.handlerProtocol !== "h2" || typeof handler?.["httpHandlerConfigs"] !== "function") return false
  const configs = (handler["httpHandlerConfigs"] as () => unknown).call(handler) as {
    readonly disableConcurrentStreams?: unknown
  }
  return configs.disableConcurrentStreams === true
}

/** The client's `maxAttempts` (a provider once the client is built); undefined when unreadable. */
const maxAttempts = (client: SdkClientLike): Effect.Effect<number | undefined> => {
  const provider = client.config?.maxAttempts
  return typeof provider === "number"
    ? Effect.succeed(provider)
    : typeof provider === "function"
    ? Effect.tryPromise(() => Promise.resolve((provider as () => unknown)())).pipe(
      Effect.map((n) => (typeof n === "number" ? n : undefined)),
      Effect.orElseSucceed(() => undefined)
    )
    : Effect.succeed(undefined)
}

/** Reads the facts of a client. */
export const clientFacts = (client: SdkClientLike): Effect.Effect<ClientFacts> =>
  Effect.map(maxAttempts(client), (attempts) => ({
    sessionPerCall: (() => {
      try {
        return sessionPerCall(client)
      } catch {
        return false
      }
    })(),
    maxAttempts: attempts
  }))

/** Clients the library built with settings of its own choosing: they get no advice. */
const libraryClients = new WeakSet<object>()

/** Marks a client the library built (its settings are the library's, not the caller's). */
export const builtByLibrary = <C extends object>(client: C): C => {
  libraryClients.add(client)
  return client
}

/**
 * An effect that, the first time it runs, logs the client's advice at Info; after that it
 * does nothing. Run it after each call: the first call resolves what it reads.
 */
export const adviseOnce = (service: ClientService, client: SdkClientLike): Effect.Effect<void> => {
  let advised = false
  return Effect.suspend(() => {
    if (advised || libraryClients.has(client)) return Effect.void
    advised = true
    return clientFacts(client).pipe(
      Effect.flatMap((facts) => Effect.forEach(adviceFor(service, facts), (line) => Effect.logInfo(line))),
      Effect.annotateLogs({ service })
    )
  }).pipe(Effect.asVoid)
}
