/**
 * @module
 * `GET /metrics`: the Prometheus exposition of `Metrics` (404 where none are collected).
 */
import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi'
import type { Metrics } from '../../obs/metrics.js'
import { ApiError } from '../errors.js'
import { UNAUTHORIZED } from './responses.js'

const metricsRoute = createRoute({
  method: 'get',
  path: '/metrics',
  summary: 'Prometheus metrics',
  description: 'Request counts, rejections by reason, queue depth, running sequences, batch sizes, latencies, tokens, cancellations, worker restarts, process metrics. Needs the API key when keys are configured.',
  responses: {
    200: { description: 'Prometheus text exposition format.', content: { 'text/plain': { schema: z.string() } } },
    401: UNAUTHORIZED,
  },
})

export function metricsRoutes(metrics: Metrics | undefined) {
  const app = new OpenAPIHono()
  app.openapi(metricsRoute, async (c) => {
    if (!metrics) return c.json(new ApiError('not_found', 'metrics are not collected here').toJSON(), 404) as never
    const { body, contentType } = await metrics.render()
    return c.text(body, 200, { 'Content-Type': contentType })
  })
  return app
}
