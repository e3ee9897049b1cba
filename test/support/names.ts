import { inject } from "vitest"

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
