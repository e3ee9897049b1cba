/**
 * Local AWS for .ci/user-path.sh: kinesalite + s3rver (test/support/LocalAws.ts) with the
 * stream and the bucket the README's quick start names, so that the quick start runs
 * UNCHANGED, configured only by the environment a user would set for any AWS program:
 *
 *   AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_S3, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
 *
 * The quick start's Kinesis client comes from `Kinesis.layerClient()`, on HTTP/1.1 keep-alive,
 * which kinesalite speaks; S3 clients default to HTTP/1.1, and a loopback IP endpoint is
 * addressed path-style by the SDK's S3 endpoint rules: both servers are used directly.
 *
 *   npx tsx .ci/user-path/servers.ts ENV_FILE
 *
 * Writes the variables to ENV_FILE (as `export NAME=value` lines, written to a temporary
 * name and renamed, so the file appears complete) once the stream is ACTIVE and the bucket
 * exists, then serves until SIGTERM or SIGINT, and stops everything before exiting.
 */
import { rename, writeFile } from "node:fs/promises"
import {
  createBucket,
  createStream,
  LOCAL_CREDENTIALS,
  makeKinesisClient,
  makeS3Client,
  startLocalAws
} from "../../test/support/LocalAws.js"

/** The names in the README's quick start (examples/quickstart.ts). */
const STREAM = "my-kinesis-stream"
const BUCKET = "my-large-payload-bucket"
const SHARDS = 2

const main = async () => {
  const envFile = process.argv[2]
  if (envFile === undefined) throw new Error("usage: servers.ts ENV_FILE")

  const aws = await startLocalAws()
  let stopping: Promise<void> | undefined
  const stop = () => (stopping ??= aws.stop())
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => void stop().then(() => process.exit(0)))
  }

  try {
    const kinesis = makeKinesisClient(aws.kinesisEndpoint, aws.region)
    const s3 = makeS3Client(aws.s3Endpoint, aws.region)
    await createStream(kinesis, STREAM, SHARDS)
    await createBucket(s3, BUCKET)
    kinesis.destroy()
    s3.destroy()

    const env = {
      AWS_REGION: aws.region,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_KINESIS: aws.kinesisEndpoint,
      AWS_ENDPOINT_URL_S3: aws.s3Endpoint,
      // For the runner's own checks, not for the SDK.
      USER_PATH_KINESALITE: aws.kinesisEndpoint,
      USER_PATH_STREAM: STREAM,
      USER_PATH_BUCKET: BUCKET
    }
    const text = Object.entries(env).map(([k, v]) => `export ${k}=${v}\n`).join("")
    await writeFile(`${envFile}.tmp`, text)
    await rename(`${envFile}.tmp`, envFile)
    console.log(`servers ready: kinesalite ${aws.kinesisEndpoint}, s3rver ${aws.s3Endpoint}`)
  } catch (error) {
    await stop()
    throw error
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
