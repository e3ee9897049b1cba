/**
 * The writer's metrics on a prom-client `Registry`, for Prometheus. Import it from
 * `cygnus-kinesis-writer/prometheus`, beside the `/metrics` server (`MetricsServer`).
 *
 * @since 0.1.0
 */
import { Layer } from "effect"
import type { Registry } from "prom-client"
import * as internal from "./internal/prometheus.js"
import { KinesisMetrics } from "./KinesisMetrics.js"

/**
 * The `KinesisMetrics` service over `registry`: the one given, never the global one unless it
 * is the one given. Several writers (for different streams) may share a registry: the
 * metrics are created once per registry and labelled by stream.
 *
 * @since 0.1.0
 */
export const make: (registry: Registry) => KinesisMetrics.Service = internal.make

/**
 * {@link make} as a layer.
 *
 * @example
 * ```ts
 * import { Registry } from "prom-client"
 * import { PrometheusMetrics, MetricsServer } from "cygnus-kinesis-writer/prometheus"
 *
 * const registry = new Registry()
 * const MetricsLive = PrometheusMetrics.layer(registry) // give it to KinesisWriter.layer(...)
 * const ServerLive = MetricsServer.layer({ registry, port: 9464 }) // GET /metrics
 * ```
 *
 * @since 0.1.0
 */
export const layer = (registry: Registry): Layer.Layer<KinesisMetrics> =>
  Layer.sync(KinesisMetrics, () => internal.make(registry))
