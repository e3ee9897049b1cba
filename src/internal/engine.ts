/**
 * What a writer is built of, for the doors that run on it: the producer finds the writer's
 * settings, services and sender here instead of through the writer's public service, which
 * keeps them out of the public surface.
 */
import type { Effect } from "effect"
import type { Kinesis } from "../Kinesis.js"
import type { KinesisMetrics } from "../KinesisMetrics.js"
import type { KinesisWriter } from "../KinesisWriter.js"
import type { LargePayloadStore } from "../LargePayloadStore.js"
import type { ResolvedWriterConfig } from "./config.js"
import type { Sender } from "./delivery.js"
import type { PrepareContext } from "./prepare.js"

/** A writer's parts. */
export interface WriterEngine {
  readonly config: ResolvedWriterConfig
  /** The stream's record limit (data plus partition key), as the writer knows it. */
  readonly recordLimitBytes: number
  readonly kinesis: Kinesis.Service
  readonly store: LargePayloadStore.Service
  readonly metrics: KinesisMetrics.Service
  readonly sender: Sender
  /** What preparing a batch needs, with the creation time of now. */
  readonly prepareContext: Effect.Effect<PrepareContext>
}

const engines = new WeakMap<KinesisWriter.Service, WriterEngine>()

/** Records the parts of a writer built by `KinesisWriter.make`. */
export const registerEngine = (writer: KinesisWriter.Service, engine: WriterEngine): KinesisWriter.Service => {
  engines.set(writer, engine)
  return writer
}

/** The parts of a writer, or `undefined` for a writer `KinesisWriter.make` did not build (a test double). */
export const engineOf = (writer: KinesisWriter.Service): WriterEngine | undefined => engines.get(writer)
