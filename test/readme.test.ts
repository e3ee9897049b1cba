/**
 * README.md's code, as a reader copies it: every ```ts block compiles on its own against the
 * library (its entry points mapped to src/ by tsconfig.json's paths) under the project's
 * strict settings; every ```sh block parses; the quick start is examples/quickstart.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { afterAll } from "vitest"

const root = fileURLToPath(new URL("..", import.meta.url))
const read = (path: string) => readFileSync(`${root}/${path}`, "utf8")
// Inside the package, so that its package.json ("type": "module") and node_modules apply.
const scratch = `${root}.scratch/readme-${process.pid}`

interface Block {
  readonly language: string
  readonly code: string
  /** 1-based line of the opening fence. */
  readonly line: number
  /** The `##`/`###` heading the block is under. */
  readonly section: string
}

const blocks = (markdown: string): Array<Block> => {
  const found: Array<Block> = []
  const lines = markdown.split("\n")
  let section = ""
  for (let i = 0; i < lines.length; i++) {
    const heading = /^#{2,3} (.*)$/.exec(lines[i]!)
    if (heading) section = heading[1]!
    const fence = /^```(\S*)$/.exec(lines[i]!)
    if (!fence) continue
    const start = i
    const body: Array<string> = []
    for (i++; i < lines.length && lines[i] !== "```"; i++) body.push(lines[i]!)
    found.push({ language: fence[1]!, code: `${body.join("\n")}\n`, line: start + 1, section })
  }
  return found
}

const readme = blocks(read("README.md"))
const tsBlocks = readme.filter((b) => b.language === "ts")

afterAll(() => rmSync(scratch, { recursive: true, force: true }))

describe("README", () => {
  it("every code block is ts or sh, so that one of the tests below checks it", () => {
    assert.deepStrictEqual(readme.filter((b) => b.language !== "ts" && b.language !== "sh").map((b) => b.line), [])
    assert.isAtLeast(tsBlocks.length, 7)
  })

  it("the quick start is examples/quickstart.ts, word for word", () => {
    const block = readme.find((b) => b.section === "Quick start" && b.language === "ts")
    assert.isDefined(block, "README.md has a ts block under '## Quick start'")
    assert.strictEqual(block!.code, read("examples/quickstart.ts"))
  })

  it("every ts block compiles on its own against the library under the project's strict settings", () => {
    mkdirSync(scratch, { recursive: true })
    const files = tsBlocks.map((block) => {
      const file = `${scratch}/readme-line-${block.line}.ts`
      writeFileSync(file, block.code)
      return file
    })
    const config = ts.getParsedCommandLineOfConfigFile(`${root}/tsconfig.json`, {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(ts.flattenDiagnosticMessageText(d.messageText, "\n"))
    })!
    const program = ts.createProgram(files, config.options)
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file === undefined ? "" : d.file.fileName.replace(`${scratch}/`, "README.md block at ")
      const line = d.file === undefined || d.start === undefined
        ? ""
        : `:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}`
      return `${where}${line}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`
    })
    assert.deepStrictEqual(diagnostics, [])
    // Each block is a module of its own (imports, no globals leaking between blocks).
    for (const file of files) assert.isTrue(ts.isExternalModule(program.getSourceFile(file)!), file)
  }, 120_000)

  it("every sh block parses (bash -n)", () => {
    for (const block of readme.filter((b) => b.language === "sh")) {
      execFileSync("bash", ["-n"], { input: block.code })
    }
  })
})
