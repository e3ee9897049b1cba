/**
 * Summaries of V8 .cpuprofile files (as `node --cpu-prof` writes them): self time per
 * function within a time window, busy share of the thread, and self time grouped by where
 * the code lives (the writer, protobuf-es, zlib, Effect, GC, ...).
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { findSourceMap, SourceMap } from "node:module"
import type { SourceMapPayload } from "node:module"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}
interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
}
interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly endTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

export interface FunctionTime {
  readonly name: string
  readonly where: string
  readonly group: string
  readonly selfMs: number
  readonly share: number
}

export interface ProfileSummary {
  readonly file: string
  /** Milliseconds of samples in the window. */
  readonly windowMs: number
  /** Milliseconds not idle (nor "(program)" = native code outside JS, kept as busy). */
  readonly busyMs: number
  readonly top: ReadonlyArray<FunctionTime>
  readonly groups: ReadonlyArray<{ readonly group: string; readonly selfMs: number; readonly share: number }>
}

const shortUrl = (url: string): string => {
  if (url === "") return ""
  const clean = url.replace(/^file:\/\//, "")
  const nm = clean.lastIndexOf("node_modules/")
  if (nm >= 0) return clean.slice(nm + "node_modules/".length)
  const src = clean.indexOf("/src/")
  if (src >= 0) return clean.slice(src + 1)
  const bench = clean.indexOf("/bench/")
  if (bench >= 0) return clean.slice(bench + 1)
  return clean
}

const groupOf = (name: string, url: string): string => {
  if (name === "(idle)") return "(idle)"
  if (name === "(garbage collector)") return "GC"
  if (name === "(program)") return "(program: native, unattributed)"
  if (url.includes("@bufbuild/protobuf")) return "protobuf-es"
  if (url.includes("node_modules/effect/")) return "effect"
  if (url.includes("@effect/platform")) return "@effect/platform (workers)"
  if (url.includes("/src/gen/")) return "generated protobuf code"
  if (url.includes("/src/")) return "cygnus writer (src/)"
  if (url.includes("/bench/")) return "bench harness"
  if (name === "processChunkSync" || url === "node:zlib" || url.includes("zlib")) return "zlib"
  if (url.startsWith("node:") || url === "") return "node internals / native"
  return "other"
}

/**
 * Maps a call frame's position in code tsx transformed back to its source line, and names
 * the function from the source text (the transformed code wraps names away).
 */
export class SourceResolver {
  private readonly maps = new Map<string, SourceMap>()
  private readonly lines = new Map<string, ReadonlyArray<string>>()

  constructor(payloads: Record<string, SourceMapPayload> = {}) {
    for (const [url, payload] of Object.entries(payloads)) this.maps.set(url, new SourceMap(payload))
  }

  static fromFile(path: string): SourceResolver {
    return new SourceResolver(
      existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as Record<string, SourceMapPayload>) : {}
    )
  }

  resolve(frame: CallFrame): { readonly name: string; readonly line: number } {
    const map = this.maps.get(frame.url)
    const fallback = {
      name: frame.functionName === "" ? "(anonymous)" : frame.functionName,
      line: frame.lineNumber + 1
    }
    if (map === undefined) return fallback
    const entry = map.findEntry(frame.lineNumber, frame.columnNumber) as {
      originalLine?: number
      originalColumn?: number
      originalSource?: string
    }
    if (entry.originalLine === undefined || entry.originalColumn === undefined) return fallback
    const text = this.sourceLines(entry.originalSource ?? frame.url)[entry.originalLine] ?? ""
    const named = frame.functionName !== "" && frame.functionName !== "__name"
      ? frame.functionName
      : nameFromSource(text, entry.originalColumn)
    return { name: named, line: entry.originalLine + 1 }
  }

  private sourceLines(url: string): ReadonlyArray<string> {
    let lines = this.lines.get(url)
    if (lines === undefined) {
      const path = url.startsWith("file:") ? fileURLToPath(url) : url
      lines = existsSync(path) ? readFileSync(path, "utf8").split("\n") : []
      this.lines.set(url, lines)
    }
    return lines
  }
}

/** The name a function is known by at its start in the source: `const pack = (`, `gzipAll: (`, `function* name(`, or the call it is passed to. */
const nameFromSource = (line: string, column: number): string => {
  const before = line.slice(0, column)
  const after = line.slice(column)
  const declared = /(?:function\*?|class)\s+([\w$]+)/.exec(after)
  if (declared !== null && after.indexOf(declared[0]) === 0) return declared[1]!
  const method = /^(?:async\s+|static\s+|readonly\s+|get\s+|\*\s*)*([\w$]+)\s*\(/.exec(after)
  if (method !== null && !/^(function|if|for|while|switch)$/.test(method[1]!)) return method[1]!
  const assigned = /([\w$]+)\s*(?::|=|\?\?=)\s*(?:async\s*)?$/.exec(before)
  if (assigned !== null) return assigned[1]!
  const callback = /([\w$.]+)\((?:[^()]*,\s*)?$/.exec(before)
  if (callback !== null) return `callback of ${callback[1]}`
  return `(anonymous: ${line.trim().slice(0, 40)})`
}

/** Self time per function of the samples taken between `from` and `to` (profile clock, µs). */
export const summarize = (
  file: string,
  window?: { readonly from: number; readonly to: number },
  topN = 20,
  resolver: SourceResolver = new SourceResolver()
): ProfileSummary => {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map<string, { name: string; where: string; group: string; us: number }>()
  let t = profile.startTime
  let windowUs = 0
  let idleUs = 0
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0
    t += delta
    if (window !== undefined && (t < window.from || t > window.to)) return
    const frame = byId.get(id)?.callFrame
    if (frame === undefined) return
    const { line, name } = resolver.resolve(frame)
    const where = frame.url === "" ? "" : `${shortUrl(frame.url)}:${line}`
    const key = `${name} ${where}`
    const entry = self.get(key) ?? { name, where, group: groupOf(name, frame.url), us: 0 }
    entry.us += delta
    self.set(key, entry)
    windowUs += delta
    if (name === "(idle)") idleUs += delta
  })
  const busyUs = windowUs - idleUs
  const top = [...self.values()]
    .filter((e) => e.name !== "(idle)")
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map((e) => ({
      name: e.name,
      where: e.where,
      group: e.group,
      selfMs: e.us / 1000,
      share: busyUs === 0 ? 0 : e.us / busyUs
    }))
  const groups = new Map<string, number>()
  for (const e of self.values()) if (e.group !== "(idle)") groups.set(e.group, (groups.get(e.group) ?? 0) + e.us)
  return {
    file,
    windowMs: windowUs / 1000,
    busyMs: busyUs / 1000,
    top,
    groups: [...groups.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([group, us]) => ({ group, selfMs: us / 1000, share: busyUs === 0 ? 0 : us / busyUs }))
  }
}

/** Busy share (not idle) of the thread in each of `slices` equal parts of the window: when it worked and when it waited. */
export const busyTimeline = (
  file: string,
  window: { readonly from: number; readonly to: number },
  slices: number
): Array<number> => {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile
  const idleIds = new Set(profile.nodes.filter((n) => n.callFrame.functionName === "(idle)").map((n) => n.id))
  const busy = new Array<number>(slices).fill(0)
  const total = new Array<number>(slices).fill(0)
  const width = (window.to - window.from) / slices
  let t = profile.startTime
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0
    t += delta
    if (t < window.from || t > window.to) return
    const slice = Math.min(slices - 1, Math.floor((t - window.from) / width))
    total[slice]! += delta
    if (!idleIds.has(id)) busy[slice]! += delta
  })
  return busy.map((b, i) => (total[i]! === 0 ? 0 : b / total[i]!))
}

/**
 * tsx runs the TypeScript sources transformed (one line per module, names wrapped), so the
 * profile's positions are in the transformed code: keep each loaded module's source map
 * in `dir/sourcemaps.json` for `SourceResolver.fromFile` to map them back to source lines.
 */
export const dumpSourceMaps = (dir: string): void => {
  const root = fileURLToPath(new URL("..", import.meta.url))
  const maps: Record<string, unknown> = {}
  const walk = (folder: string) => {
    for (const entry of readdirSync(join(root, folder), { withFileTypes: true })) {
      const path = join(folder, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (/\.(ts|js)$/.test(entry.name)) {
        const url = pathToFileURL(join(root, path)).href
        const map = findSourceMap(url)
        if (map !== undefined) maps[url] = map.payload
      }
    }
  }
  walk("src")
  walk("bench")
  writeFileSync(join(dir, "sourcemaps.json"), JSON.stringify(maps))
}
