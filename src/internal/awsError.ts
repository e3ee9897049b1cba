/**
 * What the AWS SDK v3 and Node's network stack tell us about a failed call, read the same
 * way for Kinesis and S3, and the one predicate that decides whether trying again may help.
 */
import { KinesisError, LargePayloadStoreError } from "../Errors.js"

/** The facts of a failed AWS call. */
export interface AwsErrorFacts {
  /** AWS error name (`ResourceNotFoundException`), Node error code (`ECONNREFUSED`) or JS error name. */
  readonly errorName: string
  readonly httpStatus: number | undefined
  readonly retryable: boolean
}

/** Throttling and server-side error names: the service may well accept the call a moment later. */
const THROTTLING_OR_SERVER_BUSY = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "Throttling",
  "ThrottledException",
  "LimitExceededException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "TooManyRequestsException",
  "SlowDown",
  "KMSThrottlingException",
  "InternalFailure",
  "ServiceUnavailable",
  "InternalError"
])

const TRANSIENT_NETWORK = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
  "NetworkingError"
])

/**
 * Whether a failure is worth retrying: throttling, a 5xx or 429, a timeout, a network fault.
 * Everything else (not found, access denied, validation) fails at once.
 */
export const isRetryable = (errorName: string, httpStatus: number | undefined): boolean =>
  THROTTLING_OR_SERVER_BUSY.has(errorName) ||
  TRANSIENT_NETWORK.has(errorName) ||
  (httpStatus !== undefined && (httpStatus >= 500 || httpStatus === 429))

/** Reads an SDK or network error. */
export const awsErrorFacts = (error: unknown): AwsErrorFacts => {
  const e = (typeof error === "object" && error !== null ? error : {}) as {
    readonly name?: unknown
    readonly code?: unknown
    readonly $metadata?: { readonly httpStatusCode?: unknown }
    readonly $response?: { readonly statusCode?: unknown }
  }
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode
  const httpStatus = typeof status === "number" ? status : undefined
  // Node network errors carry their meaning in `code` (`ECONNREFUSED`); SDK service errors in `name`.
  const errorName = typeof e.code === "string" && /^E[A-Z_]+$/.test(e.code)
    ? e.code
    : typeof e.name === "string" && e.name !== "Error"
    ? e.name
    : typeof e.code === "string"
    ? e.code
    : isMissingRegion(error)
    ? "ConfigurationError"
    : error instanceof Error
    ? error.name
    : "UnknownError"
  return { errorName, httpStatus, retryable: isRetryable(errorName, httpStatus) }
}

/** The SDK's client configuration check (a plain `Error`), raised before any request is built. */
const isMissingRegion = (error: unknown): boolean =>
  error instanceof Error && error.name === "Error" && /^Region is missing/.test(error.message)

/**
 * Failures that happen before a request leaves this machine, so the server cannot have
 * applied it: a connection that was never made, and what the SDK raises while building the
 * request — no credentials (`CredentialsProviderError` and its kin), no region
 * (`ConfigurationError`, see {@link awsErrorFacts}), no endpoint (`EndpointError`, an
 * invalid URL).
 */
const NEVER_SENT = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "CredentialsProviderError",
  "ProviderError",
  "TokenProviderError",
  "ConfigurationError",
  "EndpointError",
  "ERR_INVALID_URL"
])

/**
 * Whether a failed call may nonetheless have been applied by the server: whether its request
 * can have reached it. Only two kinds of outcome are definite: a 4xx (the server refused the
 * request) and a request that never left (a connection never made, missing credentials,
 * region or endpoint). Everything else — a 5xx, a timeout, a connection lost after sending,
 * an answer cut midway (the SDK then reports the 200 it had started to read) — may have been
 * applied.
 */
export const mayHaveBeenApplied = (errorName: string, httpStatus: number | undefined): boolean =>
  httpStatus !== undefined && httpStatus >= 400 && httpStatus < 500 ? false : !NEVER_SENT.has(errorName)

/** Maps an error thrown by the Kinesis SDK (or the network under it) to a `KinesisError`. */
export const toKinesisError = (operation: string, streamName: string) => (cause: unknown): KinesisError =>
  new KinesisError({ operation, streamName, ...awsErrorFacts(cause), cause })

/** Maps an error thrown by the S3 SDK (or the network under it) to a `LargePayloadStoreError`. */
export const toStoreError =
  (operation: "write" | "read" | "delete", location: { readonly bucket: string; readonly key: string }) =>
  (cause: unknown): LargePayloadStoreError =>
    new LargePayloadStoreError({ operation, ...location, ...awsErrorFacts(cause), cause })
