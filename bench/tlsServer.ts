/**
 * The TLS section's endpoint, in a child process so that its handshakes and answers do not
 * run on the measured main thread: test/support/TlsKinesis.ts on a free loopback port.
 *
 *   fork("bench/tlsServer.ts", [], { execArgv: ["--import", "tsx"] })
 *
 * Sends `{ endpoint, ca }` once listening; answers `"count"` with `{ tlsSessions, calls }`;
 * exits when the parent disconnects.
 */
import { startTlsKinesis } from "../test/support/TlsKinesis.js"

const server = await startTlsKinesis()
process.on("message", (message) => {
  if (message === "count") process.send?.({ tlsSessions: server.tlsSessions(), calls: server.putRecordsCalls() })
})
process.on("disconnect", () => void server.close().then(() => process.exit(0)))
process.send?.({ endpoint: server.endpoint, ca: server.ca })
