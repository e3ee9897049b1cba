// Which packages ended up in an esbuild bundle, from its metafile (esbuild --metafile=FILE):
// the inputs of every output with bytesInOutput > 0, so code that was parsed but tree-shaken
// away does not count (the top-level "inputs" list holds everything parsed).
//
//   node bundle-packages.mjs META.json [FORBIDDEN_PACKAGE ...]
//
// Prints "package bytes" lines, largest first ("(local)" for files outside node_modules), then
// one "forbidden: package" line per forbidden package found, and exits 1 if there was one.
import { readFileSync } from "node:fs"

const [metaFile, ...forbidden] = process.argv.slice(2)
if (metaFile === undefined) {
  console.error("usage: node bundle-packages.mjs META.json [FORBIDDEN_PACKAGE ...]")
  process.exit(2)
}
const meta = JSON.parse(readFileSync(metaFile, "utf8"))
const bytes = new Map()
for (const output of Object.values(meta.outputs)) {
  for (const [path, input] of Object.entries(output.inputs)) {
    if (!(input.bytesInOutput > 0)) continue
    const parts = path.split("node_modules/")
    let name = "(local)"
    if (parts.length > 1) {
      const [first, second] = parts[parts.length - 1].split("/")
      name = first.startsWith("@") ? `${first}/${second}` : first
    }
    bytes.set(name, (bytes.get(name) ?? 0) + input.bytesInOutput)
  }
}
for (const [name, size] of [...bytes].sort((a, b) => b[1] - a[1])) console.log(`${name} ${size}`)
const found = forbidden.filter((name) => bytes.has(name))
for (const name of found) console.log(`forbidden: ${name}`)
process.exit(found.length > 0 ? 1 : 0)
