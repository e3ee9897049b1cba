/**
 * README blocks that are files the tests run: each is in the README word for word, and the
 * ones that are not tests themselves run here. (test/readme.test.ts compiles every block.)
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { main } from "../examples/localAws.js"
import { atInfoOrAbove, capturingLogs } from "./support/logs.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const read = (path: string) => readFileSync(`${root}${path}`, "utf8")

describe("README examples that run", () => {
  for (
    const path of [
      "examples/observability.ts", // run by test/observability/observability.test.ts
      "examples/localAws.ts", // run below
      "test/readme/lambdaHandler.test.ts" // a test itself
    ]
  ) {
    it(`the README has ${path} as a ts block, word for word`, () => {
      assert.include(read("README.md"), "```ts\n" + read(path) + "```\n")
    })
  }

  it("the Node.js versions the README states are package.json's engines, and this run's Node is one of them", () => {
    const engines = (JSON.parse(read("package.json")) as { engines: { node: string } }).engines.node
    assert.strictEqual(engines, ">=20")
    assert.include(read("README.md"), "Node.js: 20 or later (`engines`: `>=20`)")
    assert.isAtLeast(Number(process.versions.node.split(".")[0]), 20)
  })

  it.live("the LocalAws example starts the servers, writes 100 records through them and closes them", () =>
    Effect.gen(function*() {
      const { logs, result } = yield* capturingLogs(main)
      assert.strictEqual((yield* result).records, 100)
      assert.match(
        atInfoOrAbove(logs).join("\n"),
        /^INFO 100 records written to kinesalite at http:\/\/127\.0\.0\.1:\d+$/
      )
    }))
})
