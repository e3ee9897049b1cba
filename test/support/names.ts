import type { KinesisClient } from "@aws-sdk/client-kinesis"
import type { S3Client } from "@aws-sdk/client-s3"
import { afterAll, inject } from "vitest"
import { makeKinesisClient, makeS3Client } from "./LocalAws.js"

/** A value the vitest globalSetup provides (the local servers' endpoints and region), or a clear failure. */
export const injected = (key: "kinesisEndpoint" | "s3Endpoint" | "region"): string => {
  const value = inject(key) as string | undefined
  if (value === undefined) throw new Error(`inject("${key}") is undefined: the vitest globalSetup is not configured`)
  return value
}

let nameCounter = 0
/** Unique, lowercase, 3–63 characters: valid for both Kinesis streams and S3 buckets. */
export const uniqueName = (prefix: string): string =>
  `${prefix}-${Date.now().toString(36)}-${(nameCounter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`

/**
 * The local servers' endpoints and real SDK clients pointed straight at them (no proxy),
 * destroyed after the test file.
 */
export const localClients = () => {
  const region = injected("region")
  const kinesisEndpoint = injected("kinesisEndpoint")
  const s3Endpoint = injected("s3Endpoint")
  const kinesis: KinesisClient = makeKinesisClient(kinesisEndpoint, region)
  const s3: S3Client = makeS3Client(s3Endpoint, region)
  afterAll(() => {
    kinesis.destroy()
    s3.destroy()
  })
  return { region, kinesisEndpoint, s3Endpoint, kinesis, s3 }
}
