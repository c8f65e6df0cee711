/**
 * @module
 * `GET /healthz` (liveness) and `GET /readyz` (readiness), for orchestrators and load balancers.
 */
import { OpenAPIHono, createRoute } from '@hono/zod-openapi'
import { ApiError } from '../errors.js'
import { HealthResponse, ReadyResponse } from '../schemas.js'
import type { Service } from '../service.js'
import { errorBody, jsonBody } from './responses.js'

const healthRoute = createRoute({
  method: 'get',
  path: '/healthz',
  summary: 'Liveness',
  description: 'Answers 200 as long as the HTTP thread runs, even while the engine is saturated.',
  responses: { 200: jsonBody(HealthResponse, 'Alive.') },
})

const readyRoute = createRoute({
  method: 'get',
  path: '/readyz',
  summary: 'Readiness',
  description: 'Ready when every model is loaded and its engine worker is up.',
  responses: {
    200: jsonBody(ReadyResponse, 'Ready.'),
    503: errorBody('not_ready: a model is loading or its worker is restarting; shutting_down: the server is draining after SIGTERM.'),
  },
})

export function probeRoutes(service: Service) {
  const app = new OpenAPIHono()

  app.openapi(healthRoute, (c) => c.json({ status: 'ok' as const }, 200))

  app.openapi(readyRoute, (c) => {
    if (service.lifecycle?.draining) {
      const n = service.models.reduce((k, m) => k + (m.engine.numInFlight ?? 0), 0)
      return c.json(new ApiError('shutting_down', `shutting down: draining ${n} sequences in flight`).toJSON(), 503)
    }
    const notReady = service.models.filter((m) => !m.engine.ready)
    if (service.models.length === 0 || notReady.length > 0) {
      const which = notReady.map((m) => m.id).join(', ') || 'no model configured'
      return c.json(new ApiError('not_ready', `not ready: ${which}`).toJSON(), 503)
    }
    return c.json({ status: 'ready' as const, models: service.models.map((m) => ({ id: m.id, kind: m.kind })), ...service.runtime }, 200)
  })

  return app
}
