/**
 * `cygnus-kinesis-writer/prometheus`: the writer's metrics on a prom-client `Registry` and
 * the `/metrics` scrape endpoint (`@effect/platform` HttpServer on Node). Needs the optional
 * peers `prom-client` and `@effect/platform-node`.
 *
 * @example
 * ```ts
 * import { MetricsServer, PrometheusMetrics } from "cygnus-kinesis-writer/prometheus"
 * ```
 *
 * @since 0.1.0
 */

/** Metrics on a prom-client registry. @since 0.1.0 */
export * as PrometheusMetrics from "./PrometheusMetrics.js"

/** The `/metrics` endpoint. @since 0.1.0 */
export * from "./MetricsServer.js"

/** What `MetricsServer.layer` fails with (also exported by the main entry). @since 0.1.0 */
export { MetricsServerError } from "./Errors.js"
