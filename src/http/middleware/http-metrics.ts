/**
 * @module
 * Counts every request by route, method and status, times it to its response headers, and counts
 * error answers by code (`because_rejections_total`).
 */
import type { MiddlewareHandler } from 'hono'
import type { Metrics } from '../../obs/metrics.js'

const METHODS = new Set(['GET', 'HEAD', 'POST', 'OPTIONS'])

/**
 * @param metrics - where to count.
 * @param routes - the paths the app serves; anything else is counted as `other`, so that clients
 *   cannot make label values up.
 * @example
 * ```ts
 * app.use(httpMetrics({ metrics, routes: ['/classify', '/healthz'] }))
 * ```
 */
export const httpMetrics = ({ metrics, routes }: { metrics: Metrics; routes: readonly string[] }): MiddlewareHandler => {
  const known = new Set(routes)
  return async function httpMetrics(c, next) {
    const start = performance.now()
    await next()
    const route = known.has(c.req.path) ? c.req.path : 'other'
    const method = METHODS.has(c.req.method) ? c.req.method : 'other'
    metrics.httpRequests.inc({ route, method, status: String(c.res.status) })
    metrics.httpDuration.observe({ route }, (performance.now() - start) / 1000)
    const code = c.get('errorCode')
    if (code) metrics.rejections.inc({ reason: code })
  }
}
