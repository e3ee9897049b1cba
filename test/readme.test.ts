import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = fileURLToPath(new URL("..", import.meta.url))
const read = (path: string) => readFileSync(`${root}/${path}`, "utf8")

describe("README", () => {
  it("the quick start is examples/quickstart.ts, word for word", () => {
    const readme = read("README.md")
    const block = /## Quick start[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1]
    assert.isDefined(block, "README.md has a ts block under '## Quick start'")
    assert.strictEqual(block, read("examples/quickstart.ts"))
  })

  it("the quick start compiles against the library under the project's strict settings", () => {
    const config = ts.getParsedCommandLineOfConfigFile(`${root}/tsconfig.json`, {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(ts.flattenDiagnosticMessageText(d.messageText, "\n"))
    })!
    const program = ts.createProgram([`${root}/examples/quickstart.ts`], config.options)
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) =>
      `${d.file?.fileName ?? ""}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`
    )
    assert.deepStrictEqual(diagnostics, [])
  }, 60_000)
})
