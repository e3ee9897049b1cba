/**
 * The request handler of every SDK client the library builds: HTTP/1.1 over keep-alive agents,
 * so that calls reuse their TCP connections and TLS sessions.
 *
 * Why not the Kinesis client's own default: it is HTTP/2 with `disableConcurrentStreams: true`
 * (for SubscribeToShard), which opens a new session, so a new TCP connection and TLS
 * handshake, for every call. HTTP/1.1 keep-alive measured as fast as one shared HTTP/2
 * session over TLS on loopback (ARCHITECTURE.md, "Connections"), and it is also what
 * kinesalite, LocalStack and s3rver speak.
 */
import { NodeHttpHandler } from "@smithy/node-http-handler"
import type { NodeHttpHandlerOptions } from "@smithy/node-http-handler"
import * as http from "node:http"
import * as https from "node:https"

/**
 * Sockets per endpoint at most. An agent opens only as many as there are calls in flight and
 * reuses them; calls beyond this wait for a free socket. The SDK's own default.
 */
export const MAX_SOCKETS = 50

/** What an agent option of {@link NodeHttpHandlerOptions} may be: an agent, or its options. */
type AgentInput<A, O> = A | O | undefined

const agentOf = <A, O extends object>(
  input: AgentInput<A, O>,
  isAgent: (input: A | O) => input is A,
  make: (options: O) => A,
  defaults: O
): A => input !== undefined && isAgent(input) ? input : make({ ...defaults, ...input })

/**
 * A keep-alive HTTP/1.1 handler. `options` are the SDK's `NodeHttpHandlerOptions`: agent
 * options given as objects (`{ httpsAgent: { ca } }`) are laid over keep-alive and
 * {@link MAX_SOCKETS}; agents given as agents are used as they are.
 */
export const keepAliveHandler = (options: NodeHttpHandlerOptions = {}): NodeHttpHandler =>
  new NodeHttpHandler({
    ...options,
    httpAgent: agentOf(
      options.httpAgent,
      (a): a is http.Agent => a instanceof http.Agent,
      (o) => new http.Agent(o),
      { keepAlive: true, maxSockets: MAX_SOCKETS }
    ),
    httpsAgent: agentOf(
      options.httpsAgent,
      (a): a is https.Agent => a instanceof https.Agent,
      (o) => new https.Agent(o),
      { keepAlive: true, maxSockets: MAX_SOCKETS }
    )
  })

/**
 * The handler a layer gives the client it builds from the caller's `requestHandler`: none, our
 * keep-alive handler; a handler (anything with `handle`), that handler; options, our
 * keep-alive handler with those options.
 */
export const requestHandlerFor = <H>(requestHandler: H | undefined): H | NodeHttpHandler =>
  requestHandler === undefined
    ? keepAliveHandler()
    : typeof requestHandler === "object" && requestHandler !== null && !isHandler(requestHandler)
    ? keepAliveHandler(requestHandler as NodeHttpHandlerOptions)
    : requestHandler

const isHandler = (value: object): boolean => "handle" in value && typeof value.handle === "function"
