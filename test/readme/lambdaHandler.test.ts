import { assert, describe, it } from "@effect/vitest"
import { LargePayloadStore, RecordReader } from "cygnus-kinesis-writer"
import { LambdaEvent, RecordGenerator } from "cygnus-kinesis-writer/testing"
import { Effect } from "effect"

// The code under test: your Lambda function's work on one event.
const handle = (event: RecordReader.LambdaKinesisEvent) =>
  RecordReader.processLambdaEvent(
    event,
    ({ dataFile }) => dataFile.recordCount > 0n ? Effect.void : Effect.fail(new Error("an empty data file"))
  )

describe("handle", () => {
  it.effect("reports the one record it cannot handle, by its sequence number", () =>
    Effect.gen(function*() {
      const records = RecordGenerator.makeDataFiles(5)
      records[3]!.recordCount = 0n
      // As Lambda delivers them: base64 Data, sequence numbers, partition keys, eventSourceARN.
      const event = yield* LambdaEvent.fromDataFiles(records, { streamName: "orders" })
      const response = yield* handle(event).pipe(Effect.provide(LargePayloadStore.layerMemory()))
      assert.deepStrictEqual(response.batchItemFailures, [{ itemIdentifier: event.Records[3]!.kinesis.sequenceNumber }])
    }))
})
