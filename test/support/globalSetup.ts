/**
 * Vitest globalSetup: starts one LocalAws (kinesalite + s3rver) for the whole
 * run and hands its endpoints to tests via `inject("kinesisEndpoint")` etc.
 *
 * Enable with `globalSetup: ["test/support/globalSetup.ts"]` in vitest.config.ts.
 */
import type { TestProject } from "vitest/node"

import { startLocalAws } from "./LocalAws.js"

declare module "vitest" {
  export interface ProvidedContext {
    kinesisEndpoint: string
    s3Endpoint: string
    region: string
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const aws = await startLocalAws()
  project.provide("kinesisEndpoint", aws.kinesisEndpoint)
  project.provide("s3Endpoint", aws.s3Endpoint)
  project.provide("region", aws.region)
  return async () => {
    await aws.stop()
  }
}
