// Checks an unpacked npm tarball (the `package/` directory `npm pack` writes) against its own
// package.json: every "exports" entry's targets (types, import, …) are in it, and so is every
// file those reach through relative imports (`from "./x.js"`, `import("./x.js")`,
// `new URL("./x.js", import.meta.url)`; in a .d.ts, `./x.js` is `./x.d.ts`).
//
//   node .ci/user-path/tarball-entries.mjs PACKAGE_DIR
//
// Prints one line per entry point and "ok: …", or each missing file and exits 1.
import { existsSync, readFileSync } from "node:fs"
import { dirname, join, normalize, relative } from "node:path"

const root = process.argv[2]
if (root === undefined) {
  console.error("usage: tarball-entries.mjs PACKAGE_DIR")
  process.exit(2)
}
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))

/** Every string target of an exports value, with the conditions that lead to it. */
const targets = (value, path = []) =>
  typeof value === "string"
    ? [{ conditions: path, target: value }]
    : value === null || typeof value !== "object"
    ? []
    : Object.entries(value).flatMap(([k, v]) => targets(v, [...path, k]))

const RELATIVE = [
  /\bfrom\s+["'](\.{1,2}\/[^"']+)["']/g,
  /\bimport\s*\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g,
  /\bimport\s+["'](\.{1,2}\/[^"']+)["']/g,
  /new\s+URL\(\s*["'](\.{1,2}\/[^"']+)["']\s*,\s*import\.meta\.url\s*\)/g
]

const missing = []
const seen = new Set()
const visit = (file, from) => {
  const rel = relative(root, file)
  if (seen.has(rel)) return
  seen.add(rel)
  if (!existsSync(file)) {
    missing.push(`${rel}${from === undefined ? "" : ` (imported by ${from})`}`)
    return
  }
  if (!/\.(m?js|d\.ts)$/.test(file)) return
  const text = readFileSync(file, "utf8")
  const declaration = file.endsWith(".d.ts")
  for (const pattern of RELATIVE) {
    for (const match of text.matchAll(pattern)) {
      let spec = match[1]
      if (declaration) spec = spec.replace(/\.js$/, ".d.ts")
      visit(normalize(join(dirname(file), spec)), rel)
    }
  }
}

const entries = Object.entries(pkg.exports ?? {})
let count = 0
for (const [subpath, value] of entries) {
  for (const { conditions, target } of targets(value)) {
    if (target.includes("*")) continue
    count++
    visit(join(root, target), `exports["${subpath}"]${conditions.map((c) => `.${c}`).join("")}`)
    console.log(`  ${subpath} ${conditions.join(".") || "(default)"}: ${target}`)
  }
}
if (count === 0) missing.push("package.json has no exports targets")
if (missing.length > 0) {
  for (const m of missing) console.error(`missing: ${m}`)
  process.exit(1)
}
console.log(`ok: ${count} export targets, ${seen.size} files reachable from them, all in the tarball`)
