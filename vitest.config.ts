import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const src = fileURLToPath(new URL("src/", import.meta.url))

// The AWS SDK warns once per process that its releases after January 2027 need Node 22
// (NodeVersionSupportWarning). That is the SDK's notice to whoever runs it on Node 20, not a
// finding of the tests: silenced here with the switch the SDK reads
// (@aws-sdk/core emitWarningIfUnsupportedVersion), for this process (global setup) and the
// test workers. A user's application is left alone.
const sdkNodeWarningOff = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" }
Object.assign(process.env, sdkNodeWarningOff)

export default defineConfig({
  // The package's own name, as examples/ import it, resolves to the sources (tsconfig.json's paths).
  resolve: {
    alias: [
      { find: /^cygnus-kinesis-writer$/, replacement: `${src}index.ts` },
      { find: /^cygnus-kinesis-writer\/(reader|testing|prometheus)$/, replacement: `${src}$1.ts` }
    ]
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    // Two test files at a time on CI's two cores (vitest's default leaves one core to itself):
    // no test may depend on having the machine to itself.
    maxWorkers: 2,
    minWorkers: 1,
    // Test files share a worker's module cache instead of importing the library, Effect and the
    // AWS SDK afresh per file: collection took 86 s of the 253 s a run took, and took 12 s of
    // 180 s without isolation. No test depends on module state another file leaves.
    isolate: false,
    hookTimeout: 60_000,
    env: sdkNodeWarningOff,
    // Real kinesalite and s3rver on loopback ports for the whole run.
    globalSetup: ["test/support/globalSetup.ts"],
    // The JSON report is what .ci/run reads for its "N passed, N failed" line.
    reporters: ["default", "json"],
    outputFile: { json: ".vitest-results.json" }
  }
})
