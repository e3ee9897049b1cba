import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { fnv1a32, partitionKeyPrefix, partitionKeyPrefixes } from "../../src/internal/core/partitionKey.js"

/** FNV-1a over the UTF-8 bytes, as written in the spec: what every language computes. */
const reference = (text: string): number => {
  let hash = 0x811c9dc5
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

describe("partition keys", () => {
  const text = fc.oneof(fc.string(), fc.string({ unit: "grapheme" }), fc.string({ unit: "binary" }))

  it("fnv1a32 is FNV-1a of the UTF-8 bytes, for ASCII (no encoding) and any other string", () =>
    fc.assert(fc.property(text, (s) => assert.strictEqual(fnv1a32(s), reference(s))), { numRuns: 500 }))

  it("the prefixes made once per configuration are partitionKeyPrefix's, bucket for bucket", () =>
    fc.assert(
      fc.property(text, text, text, fc.integer({ min: 1, max: 64 }), (logGroupId, schemaName, filePath, factor) => {
        const parts = { logGroupId, schemaName }
        assert.strictEqual(
          partitionKeyPrefixes(parts, factor)(filePath),
          partitionKeyPrefix(parts, filePath, factor)
        )
      }),
      { numRuns: 300 }
    ))
})
