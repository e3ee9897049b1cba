/**
 * What makes a record unfit to serialize, decided without effects: not a record at all, no
 * `file_path`, or text that is not well-formed UTF-16. A lone surrogate cannot be written in
 * UTF-8: protobuf writes U+FFFD in its place, so the consumer would read a different path or
 * partition value than the one the producer gave.
 */
import { isWellFormed, show } from "./options.js"

/** Why a record cannot be serialized: the field (`file_path`, `partition`, …) and the reason. */
export interface RecordProblem {
  readonly subject: string
  readonly reason: string
}

/** Where the first lone surrogate of `text` is (a UTF-16 index), or -1. */
export const loneSurrogateAt = (text: string): number => {
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) i++
      else return i
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      return i
    }
  }
  return -1
}

const malformed = (subject: string, what: string, text: string): RecordProblem => {
  const at = loneSurrogateAt(text)
  const unit = text.charCodeAt(at).toString(16).toUpperCase()
  return {
    subject,
    reason: `${what} holds a lone UTF-16 surrogate (U+${unit} at index ${at}), which UTF-8 cannot carry`
  }
}

/**
 * The first problem of a record's fields that the protobuf encoder would not report (it
 * reports values of the wrong type), or `undefined`. The text fields of a `DataFileV1` are
 * `file_path` and the keys and values of `partition`.
 */
export const recordProblem = (record: unknown): RecordProblem | undefined => {
  if (typeof record !== "object" || record === null) {
    return { subject: "record", reason: `a record must be a DataFileV1 message, got ${show(record)}` }
  }
  const { filePath, partition } = record as { readonly filePath?: unknown; readonly partition?: unknown }
  if (typeof filePath !== "string" || filePath.length === 0) {
    return { subject: "file_path", reason: "file_path is required and must not be empty" }
  }
  if (!isWellFormed(filePath)) return malformed("file_path", "file_path", filePath)
  if (typeof partition === "object" && partition !== null) {
    for (const [key, value] of Object.entries(partition)) {
      if (!isWellFormed(key)) return malformed("partition", `partition key ${JSON.stringify(key)}`, key)
      if (typeof value === "string" && !isWellFormed(value)) {
        return malformed("partition", `the value of partition key ${JSON.stringify(key)}`, value)
      }
    }
  }
  return undefined
}
