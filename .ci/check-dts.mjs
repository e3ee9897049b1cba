// Checks the declarations `npm run build` emitted (with `stripInternal`) as a user's project
// reads them:
//   1. every dist/**/*.d.ts, test/dts/consumer.ts (a program that imports each entry point by
//      the package's name, resolved through package.json "exports" to dist/) and the examples
//      that import the package by its name compile under tsconfig.dts.json with skipLibCheck
//      off: a declaration stripped while another still names it fails here;
//   2. the consumer imports every entry point of "exports";
//   3. each entry point's declarations declare every value it exports at run time: a value
//      whose declaration was stripped still loads, but a user's TypeScript cannot name it.
// The libraries' own declarations are read, not checked (`npx tsc -p tsconfig.dts.json`
// checks them too).
//
//   npm run build && npm run check:dts
//
// Prints "check:dts ok: …", or each problem on stderr and exits 1.
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = fileURLToPath(new URL("..", import.meta.url))
const pkg = JSON.parse(readFileSync(`${root}package.json`, "utf8"))
const problems = []

// The entry points: "exports" keys with a "types" target ("./internal/*" is null, "./package.json" a string).
const entries = Object.entries(pkg.exports)
  .filter(([, target]) => target !== null && typeof target === "object" && typeof target.types === "string")
  .map(([key, target]) => ({
    specifier: key === "." ? pkg.name : `${pkg.name}/${key.slice(2)}`,
    types: `${root}${target.types.slice(2)}`
  }))

const host = {
  ...ts.sys,
  onUnRecoverableConfigFileDiagnostic: (d) => {
    console.error(ts.flattenDiagnosticMessageText(d.messageText, "\n"))
    process.exit(1)
  }
}
const config = ts.getParsedCommandLineOfConfigFile(`${root}tsconfig.dts.json`, undefined, host)
// A declaration left in dist/ by a build of a source since removed is not checked (the build does not clean dist/).
const built = (file) =>
  !file.startsWith(`${root}dist/`) ||
  [".ts", ".js"].some((ext) => existsSync(`${root}src/${file.slice(`${root}dist/`.length).replace(/\.d\.ts$/, ext)}`))
const rootNames = config.fileNames.filter(built)
const program = ts.createProgram({ rootNames, options: config.options })
const ours = program.getSourceFiles().filter((f) =>
  !program.isSourceFileFromExternalLibrary(f) && !program.isSourceFileDefaultLibrary(f)
)
const declarations = ours.filter((f) => f.fileName.startsWith(`${root}dist/`))
const consumer = ours.find((f) => f.fileName.endsWith("/test/dts/consumer.ts"))

// 1. Everything compiles.
const diagnostics = [
  ...config.errors,
  ...program.getOptionsDiagnostics(),
  ...program.getGlobalDiagnostics(),
  ...ours.flatMap((f) => [...program.getSyntacticDiagnostics(f), ...program.getSemanticDiagnostics(f)])
]
if (diagnostics.length > 0) {
  problems.push(
    ts.formatDiagnostics(diagnostics, {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => root,
      getNewLine: () => "\n"
    }).trimEnd()
  )
}
if (declarations.length === 0) problems.push("no declarations under dist/: run `npm run build` first")

// What compiles must reach the package through dist/, never the sources.
for (const f of ours) {
  if (f.fileName.startsWith(`${root}src/`)) {
    problems.push(`${f.fileName.slice(root.length)} is in the program: only dist/ may be`)
  }
}

// 2. The consumer imports every entry point.
if (consumer === undefined) problems.push("test/dts/consumer.ts is not in the program")
else {
  const imported = new Set(
    consumer.statements.filter(ts.isImportDeclaration).map((s) => s.moduleSpecifier.text)
  )
  for (const { specifier } of entries) {
    if (!imported.has(specifier)) problems.push(`test/dts/consumer.ts does not import "${specifier}"`)
  }
}

// 3. Declared values = run-time exports, per entry point.
const checker = program.getTypeChecker()
for (const { specifier, types } of entries) {
  const file = program.getSourceFile(types)
  const moduleSymbol = file && checker.getSymbolAtLocation(file)
  if (moduleSymbol === undefined) {
    problems.push(`${specifier}: ${types} is not in the program`)
    continue
  }
  const declared = new Set(
    checker.getExportsOfModule(moduleSymbol)
      .map((s) => ({ name: s.name, target: s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s }))
      .filter(({ target }) => (target.flags & ts.SymbolFlags.Value) !== 0)
      .map((s) => s.name)
  )
  const loaded = Object.keys(await import(specifier))
  const undeclared = loaded.filter((name) => !declared.has(name))
  const missing = [...declared].filter((name) => !loaded.includes(name))
  if (undeclared.length > 0) {
    problems.push(`${specifier} exports values its declarations do not declare: ${undeclared.join(", ")}`)
  }
  if (missing.length > 0) {
    problems.push(`${specifier} declares values it does not export at run time: ${missing.join(", ")}`)
  }
}

if (problems.length > 0) {
  console.error(problems.join("\n"))
  process.exit(1)
}
console.log(
  `check:dts ok: ${declarations.length} declaration files${
    rootNames.length < config.fileNames.length
      ? ` (${config.fileNames.length - rootNames.length} in dist/ from removed sources skipped)`
      : ""
  }, test/dts/consumer.ts and ${
    ours.filter((f) => f.fileName.startsWith(`${root}examples/`)).length
  } examples compile (skipLibCheck off); ` +
    `${entries.map((e) => e.specifier).join(", ")} declare every value they export`
)
