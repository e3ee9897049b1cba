/**
 * A reader-only program (a Lambda consuming the stream) that .ci/user-path.sh bundles with
 * esbuild to check that reading does not pull in the writer's Prometheus metrics
 * (prom-client) or its Node platform layer (@effect/platform-node). The script replaces the
 * import specifier below with its READER_ENTRY variable.
 *
 * It decodes a Lambda Kinesis event holding one real record (the quick start's record,
 * encoded by the library's codec at gzip level 9: the wire contract is frozen, so this
 * fixture stays valid) and one record that is not gzip, and prints one JSON line.
 */
import { Effect, Either } from "effect"
import { RecordReader } from "cygnus-kinesis-writer/reader"

const RECORD =
  "H4sIAAAAAAACA+Oq46rhYBSqEAosNrbS1y9PLErNyC8tTtVPzEvMqSzJTC7WTy1LzSsp1k9JLEmEsONTEktSbY0MjMx0DQ11jcz0DUBA10A30TDJKNlYryCxqLA0tUSCUUmCiwuhQ4gLoUXjxAV2g5u3/okJrWfkor7VAg0nZq9caCLFY2hkbGJqZm5haWBopKRikGSZapRmlqxrmmKQqGuSbGqqa5loYqxrlmaYZpBskWKUam6oxZ9bqZuTn66bXpRfWqCbmWLEl1upW5yckZqbqJuXmJsKAIa040gyAQAA"

/**
 * Both records are read without the large-payload store (a standard record carries its data
 * file inline, and a record that is not gzip fails before any lookup), so none is provided.
 */
const decode = (data: string) =>
  RecordReader.decodeLambdaEvent({ Records: [{ kinesis: { data } }] }).pipe(Effect.either) as Effect.Effect<
    Either.Either<Array<RecordReader.DecodedRecord>, RecordReader.ReadError>
  >

const good = await Effect.runPromise(decode(RECORD))
const bad = await Effect.runPromise(decode(Buffer.from("not a record").toString("base64")))
const ok = Either.isRight(good) && good.right[0]?.dataFile.recordCount === 125_000n &&
  good.right[0].info.schemaName === "my-schema-name" && Either.isLeft(bad) && bad.left._tag === "DecodeError"
console.log(JSON.stringify({
  ok,
  filePath: Either.isRight(good) ? good.right[0]?.dataFile.filePath : String(good.left),
  badRecord: Either.isLeft(bad) ? bad.left._tag : "decoded?!"
}))
if (!ok) process.exitCode = 1
