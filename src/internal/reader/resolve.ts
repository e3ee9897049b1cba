/**
 * A decoded Kinesis record's entry to its data file: inline, or fetched from the
 * `LargePayloadStore` and verified against the size and sha256 its pointer announced. Shared
 * by `RecordReader` and the `StreamReader`.
 */
import { Effect } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"
import { DecodeError } from "../../Errors.js"
import type { LargeDataFileEntry } from "../../gen/cygnus/v1/data_file_entry_pb.js"
import { LargePayloadStore } from "../../LargePayloadStore.js"
import type { DecodedRecord, ReadError } from "../../RecordReader.js"
import type { DecodedEntryRecord } from "../codec.js"
import { parseStandardEntrySync } from "../codec.js"
import { Attributes } from "../spans.js"

/** A decoded record with its data file: inline, or fetched from the store and verified. */
export const resolve = (decoded: DecodedEntryRecord): Effect.Effect<DecodedRecord, ReadError, LargePayloadStore> =>
  Effect.gen(function*() {
    if (decoded.entry._tag === "standard") {
      return { info: decoded.info, dataFile: decoded.entry.dataFile } satisfies DecodedRecord
    }
    const pointer = decoded.entry.pointer
    yield* Effect.annotateCurrentSpan({ [Attributes.bucket]: pointer.bucket, [Attributes.key]: pointer.key })
    const store = yield* LargePayloadStore
    const body = yield* store.read({ bucket: pointer.bucket, key: pointer.key })
    yield* verify(pointer, body)
    const dataFile = yield* parseStandardEntrySync(body)
    return { info: decoded.info, dataFile, largePayload: pointer } satisfies DecodedRecord
  })

const verify = (pointer: LargeDataFileEntry, body: Uint8Array): Effect.Effect<void, DecodeError> => {
  const where = `s3://${pointer.bucket}/${pointer.key}`
  if (BigInt(body.length) !== pointer.sizeBytes) {
    return Effect.fail(
      new DecodeError({
        reason: "SizeMismatch",
        detail: `${where} is ${body.length} bytes, the record announced ${pointer.sizeBytes}`
      })
    )
  }
  const digest = createHash("sha256").update(body).digest()
  return digest.length === pointer.sha256.length && timingSafeEqual(digest, pointer.sha256)
    ? Effect.void
    : Effect.fail(
      new DecodeError({ reason: "ChecksumMismatch", detail: `${where} does not match the sha256 the record announced` })
    )
}
