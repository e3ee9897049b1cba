/**
 * The steps of the encode path one by one, at 50 columns, in microseconds per record on the
 * main thread: what the writer does per record (serialize the DataFileV1, keep the bytes,
 * write the envelope around them, pack the chunk for the worker, gzip) against what the
 * floor does (create the whole envelope message, toBinary, gzip). Not part of the default
 * run: `npm run bench -- --only micro`.
 */
import { create, toBinary } from "@bufbuild/protobuf"
import { randomUUID } from "node:crypto"
import * as Zlib from "node:zlib"
import { DataFileEntryRecordSchema, DataFileV1Schema, DataFileVersion, RecordCodec } from "../src/index.js"
import { RecordGenerator } from "../src/testing.js"
import { fixed, median, section, table, WRITER_BASE } from "./common.js"

const RECORDS = 2_000

/** Median µs per record over 3 timed passes after 2 warm-up passes. */
const perRecord = (f: () => void): number => {
  for (let i = 0; i < 2; i++) f()
  const times: Array<number> = []
  for (let i = 0; i < 3; i++) {
    const start = performance.now()
    f()
    times.push(((performance.now() - start) * 1000) / RECORDS)
  }
  return median(times)
}

export const runMicro = (): void => {
  section("Micro: the encode path step by step, 50 columns, µs per record on one thread")
  const records = RecordGenerator.makeDataFiles(RECORDS, { columns: 50, seed: 5_050 })
  const info = (filePath: string) => ({
    filePath,
    creationTime: 1_764_000_000_000n,
    accountId: WRITER_BASE.accountId,
    recordId: randomUUID(),
    logGroupId: WRITER_BASE.logGroupId,
    schemaName: WRITER_BASE.schemaName
  })
  const infos = records.map((r) => info(r.filePath))
  const serialized = records.map((r) => toBinary(DataFileV1Schema, r))
  const envelopes = serialized.map((bytes, i) => {
    const e = RecordCodec.encodeEntryRecordSync(infos[i]!, { _tag: "standard", dataFileBytes: bytes })
    if (e._tag === "Left") throw e.left
    return e.right
  })
  let sink = 0
  const rows: Array<[string, number]> = [
    [
      "writer: toBinary(DataFileV1), result dropped",
      perRecord(() => {
        for (const r of records) sink += toBinary(DataFileV1Schema, r).length
      })
    ],
    [
      "writer: toBinary(DataFileV1), all results kept (phase 1 keeps the batch's)",
      perRecord(() => {
        const kept: Array<Uint8Array> = []
        for (const r of records) kept.push(toBinary(DataFileV1Schema, r))
        sink += kept.length
      })
    ],
    [
      "writer: envelope around the bytes (RecordCodec.encodeEntryRecordSync)",
      perRecord(() => {
        for (let i = 0; i < RECORDS; i++) {
          const e = RecordCodec.encodeEntryRecordSync(infos[i]!, { _tag: "standard", dataFileBytes: serialized[i]! })
          if (e._tag === "Right") sink += e.right.length
        }
      })
    ],
    [
      "writer: copy each chunk of 500 envelopes into one buffer (as Compressor's pack)",
      perRecord(() => {
        for (let c = 0; c < RECORDS; c += 500) {
          const chunk = envelopes.slice(c, c + 500)
          const offsets = new Uint32Array(chunk.length + 1)
          for (let i = 0; i < chunk.length; i++) offsets[i + 1] = offsets[i]! + chunk[i]!.length
          const buffer = new Uint8Array(offsets[chunk.length]!)
          for (let i = 0; i < chunk.length; i++) buffer.set(chunk[i]!, offsets[i]!)
          sink += buffer.length
        }
      })
    ],
    [
      "randomUUID (record_id)",
      perRecord(() => {
        for (let i = 0; i < RECORDS; i++) sink += randomUUID().length
      })
    ],
    [
      "both: zlib.gzipSync(envelope), level 6 (default)",
      perRecord(() => {
        for (const e of envelopes) sink += Zlib.gzipSync(e, { level: 6 }).length
      })
    ],
    [
      "both: zlib.gzipSync(envelope), level 1",
      perRecord(() => {
        for (const e of envelopes) sink += Zlib.gzipSync(e, { level: 1 }).length
      })
    ],
    [
      "zlib.gzipSync of 1 byte: the fixed cost of a gzip stream",
      perRecord(() => {
        const one = new Uint8Array([1])
        for (let i = 0; i < RECORDS; i++) sink += Zlib.gzipSync(one).length
      })
    ],
    [
      "floor/limit: create(DataFileEntryRecordSchema, …) + toBinary, no gzip",
      perRecord(() => {
        for (let i = 0; i < RECORDS; i++) {
          const message = create(DataFileEntryRecordSchema, {
            dataFileInfo: infos[i]!,
            dataFileEntry: {
              entry: { case: "standard", value: { version: DataFileVersion.V1, dataFileV1: records[i]! } }
            }
          })
          sink += toBinary(DataFileEntryRecordSchema, message).length
        }
      })
    ]
  ]
  const gz6 = envelopes.reduce((n, e) => n + Zlib.gzipSync(e, { level: 6 }).length, 0) / RECORDS
  const gz1 = envelopes.reduce((n, e) => n + Zlib.gzipSync(e, { level: 1 }).length, 0) / RECORDS
  console.log(table(["step", "µs/record"], rows.map(([label, us]) => [label, fixed(us, 1)])))
  console.log(
    `\ngzip output: level 6 ${fixed(gz6, 1)} B/record, level 1 ${fixed(gz1, 1)} B/record (${
      fixed((100 * gz1) / gz6, 1)
    }%)`
  )
  console.log(`(checksum ${sink % 997})`)
}
