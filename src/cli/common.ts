/**
 * What every command of `cygnus-kinesis` shares: the AWS options, the layers built from
 * them, the errors a command ends with and the exit status each gives.
 */
import { KinesisClient } from "@aws-sdk/client-kinesis"
import { S3Client } from "@aws-sdk/client-s3"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import { NodeHttpHandler } from "@smithy/node-http-handler"
import { Config, Data, Effect, Layer, Option } from "effect"
import { LargePayloadStoreError } from "../Errors.js"
import { Kinesis } from "../Kinesis.js"
import { LargePayloadStore } from "../LargePayloadStore.js"

/** The AWS settings every command takes; what is left out comes from the SDK's own chain. */
export interface AwsOptions {
  readonly endpoint: Option.Option<string>
  readonly s3Endpoint: Option.Option<string>
  readonly region: Option.Option<string>
  readonly bucket: Option.Option<string>
  readonly verbose: boolean
}

const optionalText = (name: string, pseudoName: string, description: string, env: string) =>
  Options.text(name).pipe(
    Options.withPseudoName(pseudoName),
    Options.withDescription(`${description} (default: $${env})`),
    Options.withFallbackConfig(Config.string(env)),
    Options.optional
  )

/** `--endpoint`, `--s3-endpoint`, `--region`, `--bucket`, `--verbose`. */
export const awsOptions = {
  endpoint: optionalText("endpoint", "URL", "Kinesis endpoint URL, e.g. a local emulator", "KINESIS_ENDPOINT"),
  s3Endpoint: optionalText("s3-endpoint", "URL", "S3 endpoint URL, e.g. a local emulator", "S3_ENDPOINT"),
  region: Options.text("region").pipe(
    Options.withPseudoName("REGION"),
    Options.withDescription("AWS region (default: the SDK's, from AWS_REGION or the profile)"),
    Options.optional
  ),
  bucket: optionalText(
    "bucket",
    "NAME",
    "S3 bucket of large payloads (pointers name their own bucket when read)",
    "LARGE_PAYLOAD_BUCKET"
  ),
  verbose: Options.boolean("verbose").pipe(Options.withDescription("Print the full cause of an error"))
}

/** `--stream NAME`, required. */
export const streamOption = Options.text("stream").pipe(
  Options.withPseudoName("NAME"),
  Options.withDescription("The Kinesis stream's name"),
  Options.withFallbackConfig(Config.string("KINESIS_STREAM_NAME"))
)

/** A command's description, a line of what it does and an example. */
export const describeCommand = (what: string, example: string): HelpDoc.HelpDoc =>
  HelpDoc.blocks([HelpDoc.p(what), HelpDoc.p("Example:"), HelpDoc.p(`  ${example}`)])

/** One call of the Kinesis API the CLI makes itself may take this long. */
export const REQUEST_TIMEOUT_MS = 30_000

/**
 * Clients over HTTP/1.1 with kept-alive connections: an emulator (kinesalite, LocalStack)
 * speaks nothing else, and the CLI needs none of HTTP/2 (it never subscribes to a shard).
 */
const requestHandler = () =>
  new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: REQUEST_TIMEOUT_MS, throwOnRequestTimeout: true })

const awsClientConfig = (region: Option.Option<string>, endpoint: Option.Option<string>) => ({
  ...Option.match(region, { onNone: () => ({}), onSome: (region) => ({ region }) }),
  ...Option.match(endpoint, { onNone: () => ({}), onSome: (endpoint) => ({ endpoint }) })
})

/** The `Kinesis` service over a client the command builds and destroys. */
export const kinesisLayer = (aws: AwsOptions): Layer.Layer<Kinesis> =>
  Kinesis.layerClient({ ...awsClientConfig(aws.region, aws.endpoint), requestHandler: requestHandler() })

/** An SDK Kinesis client for the calls `Kinesis.Service` does not make (stream mode, retention). */
export const makeKinesisClient = (aws: AwsOptions) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new KinesisClient({
        maxAttempts: 1,
        ...awsClientConfig(aws.region, aws.endpoint),
        requestHandler: requestHandler()
      })
    ),
    (client) => Effect.sync(() => client.destroy())
  )

/**
 * The S3 store of large payloads. Reading a pointer uses the bucket the pointer names; the
 * bucket given here is where `send` writes: without one, only a write fails.
 */
export const storeLayer = (aws: AwsOptions): Layer.Layer<LargePayloadStore> =>
  Layer.scoped(
    LargePayloadStore,
    Effect.map(
      Effect.acquireRelease(
        Effect.sync(() =>
          new S3Client({
            ...awsClientConfig(aws.region, aws.s3Endpoint),
            ...(Option.isSome(aws.s3Endpoint) ? { forcePathStyle: true } : {})
          })
        ),
        (client) => Effect.sync(() => client.destroy())
      ),
      (client) => {
        const store = LargePayloadStore.makeS3({ client, bucket: Option.getOrElse(aws.bucket, () => "") })
        // Nothing is ever written without a bucket: nothing to delete either.
        return Option.isSome(aws.bucket) ? store : { ...store, write: noBucket, delete: () => Effect.void }
      }
    )
  )

/** Without `--bucket`, a record large enough for S3 fails alone, saying why. */
const noBucket = (key: string) =>
  Effect.fail(
    new LargePayloadStoreError({
      operation: "write",
      bucket: "",
      key,
      errorName: "NoBucket",
      retryable: false,
      cause: new Error("a record over the large-payload threshold needs --bucket (or LARGE_PAYLOAD_BUCKET)")
    })
  )

/** A command line that asks for something that cannot be done: exit status 2. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/** The command ran and found something wrong (undecodable records, undelivered records): exit status 1. */
export class CommandFailed extends Data.TaggedError("CommandFailed")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}
