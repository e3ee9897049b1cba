/**
 * Minimal ambient declarations for the two AWS emulators used by the local
 * test harness. Neither package ships TypeScript types. Only the surface the
 * harness actually uses is declared (verified against kinesalite 3.3.3
 * `index.js` / `db/index.js` and s3rver 3.7.1 `lib/s3rver.js`).
 */

declare module "kinesalite" {
  import type { Server } from "node:http"

  namespace kinesalite {
    interface Options {
      /** LevelDB directory. Omit to use the in-memory store (memdown); giving a path loads leveldown. */
      readonly path?: string
      /** Serve HTTPS with the bundled self-signed certificate. */
      readonly ssl?: boolean
      /** Milliseconds a stream stays CREATING (default 500). */
      readonly createStreamMs?: number
      /** Milliseconds a stream stays DELETING (default 500). */
      readonly deleteStreamMs?: number
      /** Milliseconds a stream stays UPDATING (default 500). */
      readonly updateStreamMs?: number
      /** Total open shards allowed across all streams (default 10). */
      readonly shardLimit?: number
    }
  }

  /**
   * Returns a plain (not yet listening) `http.Server`. Its `close(cb)` is
   * patched to close the store first, then the HTTP server.
   */
  function kinesalite(options?: kinesalite.Options): Server

  export = kinesalite
}

declare module "s3rver" {
  import type { Server } from "node:http"
  import type { AddressInfo } from "node:net"

  namespace S3rver {
    interface BucketConfig {
      readonly name: string
      /** CORS / website configuration XML documents. */
      readonly configs?: ReadonlyArray<string | Buffer>
    }

    interface Options {
      /** Default "localhost". */
      readonly address?: string
      /** Default 4568; 0 picks a free port. */
      readonly port?: number
      /** Default false. */
      readonly silent?: boolean
      /** Filesystem store root. Default `${os.tmpdir()}/s3rver`. */
      readonly directory?: string
      /** Default "amazonaws.com". */
      readonly serviceEndpoint?: string
      /** Default true. */
      readonly vhostBuckets?: boolean
      /** Default false. */
      readonly resetOnClose?: boolean
      /** Default false. */
      readonly allowMismatchedSignatures?: boolean
      /** Buckets created before the server starts listening. */
      readonly configureBuckets?: ReadonlyArray<BucketConfig>
    }
  }

  class S3rver {
    constructor(options?: S3rver.Options)
    /** Set once `run()` has resolved. */
    httpServer?: Server
    /** Creates the configured buckets, then listens; resolves with the bound address. */
    run(): Promise<AddressInfo>
    /** Proxies `httpServer.close()`; rejects with "Not running" if never started. */
    close(): Promise<void>
    /** Deletes all buckets and objects in the store. */
    reset(): void
  }

  export = S3rver
}
