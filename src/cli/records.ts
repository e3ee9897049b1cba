/**
 * How a decoded record is shown: one JSON object (`--format json`, `inspect`) or a block of
 * text for a person (`--format pretty`).
 */
import { toJson } from "@bufbuild/protobuf"
import { DataFileV1Schema } from "../gen/cygnus/v1/data_file_pb.js"
import type { DecodedRecord } from "../RecordReader.js"

/** Where a record was read from; `undefined` where the source does not say (`inspect --data`). */
export interface RecordPlace {
  readonly shardId?: string | undefined
  readonly sequenceNumber?: string | undefined
  /** The record's index among an aggregate's members (0 when not aggregated). */
  readonly member?: number | undefined
}

/** The record as one JSON object: its envelope's facts and the `DataFileV1` in protobuf-JSON form. */
export const recordJson = (record: DecodedRecord, place: RecordPlace) => ({
  recordId: record.info.recordId,
  shardId: place.shardId ?? null,
  sequenceNumber: place.sequenceNumber ?? null,
  member: place.member ?? 0,
  filePath: record.info.filePath,
  creationTime: creationTime(record.info.creationTime),
  logGroupId: record.info.logGroupId,
  schemaName: record.info.schemaName,
  large: record.largePayload === undefined
    ? null
    : { bucket: record.largePayload.bucket, key: record.largePayload.key },
  dataFile: toJson(DataFileV1Schema, record.dataFile)
})

/** A record that could not be decoded, as one JSON object. */
export const failureJson = (reason: string, place: RecordPlace) => ({
  shardId: place.shardId ?? null,
  sequenceNumber: place.sequenceNumber ?? null,
  member: place.member ?? 0,
  error: reason
})

/** Epoch milliseconds as ISO-8601; a time outside `Date`'s range as its number. */
const creationTime = (millis: bigint): string => {
  const date = new Date(Number(millis))
  return Number.isNaN(date.getTime()) ? millis.toString() : date.toISOString()
}

const bytes = (n: bigint): string => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  let value = Number(n)
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`
}

/** A block of text for a person: where the record is, its envelope, and the data file's main facts. */
export const recordPretty = (record: DecodedRecord, place: RecordPlace, style: Style): string => {
  const { dataFile: f, info } = record
  const where = [place.shardId, place.sequenceNumber, place.member ? `member ${place.member}` : undefined]
    .filter((part) => part !== undefined).join("  ")
  const partition = Object.entries(f.partition).map(([k, v]) => `${k}=${v}`).join(", ")
  const lines = [
    style.bold(f.filePath),
    `  ${style.dim(where === "" ? "(no position)" : where)}`,
    `  record ${info.recordId}  created ${creationTime(info.creationTime)}`,
    `  ${info.logGroupId} / ${info.schemaName}  account ${info.accountId}`,
    `  ${f.recordCount.toLocaleString("en-US")} rows  ${bytes(f.fileSizeInBytes)}  ${
      Object.keys(f.columnSizes).length
    } columns with statistics${partition === "" ? "" : `  partition ${partition}`}`
  ]
  if (record.largePayload !== undefined) {
    lines.push(`  ${style.dim(`from s3://${record.largePayload.bucket}/${record.largePayload.key}`)}`)
  }
  return lines.join("\n")
}

/** A record that could not be decoded, for a person. */
export const failurePretty = (reason: string, place: RecordPlace, style: Style): string =>
  `${
    [
      style.red("undecodable"),
      place.shardId,
      place.sequenceNumber ?? "(no sequence number)",
      place.member ? `member ${place.member}` : undefined
    ].filter((part) => part !== undefined).join("  ")
  }\n  ${reason}`

/** Text styles: ANSI on a terminal, none elsewhere. */
export interface Style {
  readonly bold: (text: string) => string
  readonly dim: (text: string) => string
  readonly red: (text: string) => string
}

/** ANSI styles when `colour` is true, plain text otherwise. */
export const style = (colour: boolean): Style =>
  colour
    ? {
      bold: (t) => `\x1b[1m${t}\x1b[22m`,
      dim: (t) => `\x1b[2m${t}\x1b[22m`,
      red: (t) => `\x1b[31m${t}\x1b[39m`
    }
    : { bold: (t) => t, dim: (t) => t, red: (t) => t }
