import { assert, describe, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const core = join(import.meta.dirname, "../../src/internal/core")

describe("the delivery core", () => {
  it("imports nothing from effect or the AWS SDK: only other core modules, Node's built-ins and the contract's types", () => {
    const files = readdirSync(core).filter((f) => f.endsWith(".ts"))
    assert.isAbove(files.length, 3)
    for (const file of files) {
      const source = readFileSync(join(core, file), "utf8")
      const specifiers = [...source.matchAll(/\bfrom\s+"([^"]+)"|\bimport\s*\(\s*"([^"]+)"\s*\)|\bimport\s+"([^"]+)"/g)]
        .map((m) => m[1] ?? m[2] ?? m[3]!)
      for (const specifier of specifiers) {
        const allowed = specifier.startsWith("./") || specifier.startsWith("node:") ||
          specifier.startsWith("../../gen/")
        assert.isTrue(allowed, `${file} imports ${specifier}`)
      }
    }
  })
})
