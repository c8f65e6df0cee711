/**
 * @module
 * The HTTP API: the middleware every request passes, the route groups, error handling.
 * `createApp(options)` builds it without starting anything, so tests can call `app.request()` and
 * the OpenAPI generator can read it.
 */
import { OpenAPIHono } from '@hono/zod-openapi'
import { bodyLimit } from 'hono/body-limit'
import { cors } from 'hono/cors'
import { requestId } from 'hono/request-id'
import { METHOD_NAME_ALL } from 'hono/router'
import type { Logger } from 'pino'
import type { Metrics } from '../obs/metrics.js'
import { ApiError, errorResponse, toApiError } from './errors.js'
import type { ErrorShape } from './errors.js'
import { bearerAuth } from './middleware/auth.js'
import { httpMetrics } from './middleware/http-metrics.js'
import { requestLog } from './middleware/request-log.js'
import { OPENAI_ERRORS, OPENAI_PREFIX } from './openai/errors.js'
import { documentRoutes } from './routes/documents.js'
import { inferenceRoutes } from './routes/inference.js'
import { infoRoutes } from './routes/info.js'
import { metricsRoutes } from './routes/metrics.js'
import { openaiRoutes } from './routes/openai.js'
import { probeRoutes } from './routes/probes.js'
import type { Service } from './service.js'

export interface AppOptions {
  service: Service
  logger: Logger
  /** The YAML served at /openapi.yaml (generated once by the caller from this app). */
  openapiYaml?: () => string
  /** Served at /metrics; absent: /metrics is 404. */
  metrics?: Metrics
}

/** A route group, and whether it is served without an API key. */
interface RouteGroup {
  routes: OpenAPIHono
  open: boolean
}

/** The paths a group serves (its middleware entries are registered for all methods). */
const pathsOf = (group: RouteGroup): string[] => group.routes.routes.filter((r) => r.method !== METHOD_NAME_ALL).map((r) => r.path)

/**
 * Whoever calls under /v1/ is an OpenAI client and reads errors in OpenAI's shape, those of the
 * shared middleware (401, 413) and of paths that do not exist included.
 */
const errorShapeFor = (path: string): ErrorShape | undefined => (path.startsWith(OPENAI_PREFIX) ? OPENAI_ERRORS : undefined)

export function createApp({ service, logger, openapiYaml, metrics }: AppOptions) {
  // In the order openapi.yaml lists them. Probes, /info, the chat page (it asks for the key) and
  // the public contract need no key.
  const groups: RouteGroup[] = [
    { routes: inferenceRoutes({ service, logger, metrics }), open: false },
    { routes: openaiRoutes({ service, logger, metrics }), open: false },
    { routes: infoRoutes(service), open: true },
    { routes: probeRoutes(service), open: true },
    { routes: metricsRoutes(metrics), open: false },
    { routes: documentRoutes({ service, openapiYaml }), open: true },
  ]

  const app = new OpenAPIHono()
  app.use(requestId())
  app.use(requestLog({ logger }))
  if (metrics) app.use(httpMetrics({ metrics, routes: groups.flatMap(pathsOf) }))
  const access = service.access
  if (access && access.corsOrigins.length > 0) {
    app.use(
      cors({
        origin: access.corsOrigins.includes('*') ? '*' : [...access.corsOrigins],
        allowMethods: ['GET', 'POST', 'OPTIONS'],
        allowHeaders: ['Content-Type', 'Authorization', 'Accept', 'X-Request-Id'],
        exposeHeaders: ['Retry-After', 'X-Request-Id', 'WWW-Authenticate'],
        maxAge: 600,
      }),
    )
  }
  if (access && access.apiKeys.length > 0) {
    app.use(bearerAuth({ keys: access.apiKeys, open: groups.filter((g) => g.open).flatMap(pathsOf) }))
  }
  app.use(
    '*',
    bodyLimit({
      maxSize: service.limits.maxBodyBytes,
      onError: () => {
        throw new ApiError('body_too_large', `request body: at most ${service.limits.maxBodyBytes} bytes (--max-body-bytes)`)
      },
    }),
  )
  for (const group of groups) app.route('/', group.routes)

  app.notFound((c) =>
    errorResponse(c, new ApiError('not_found', `no route ${c.req.method} ${c.req.path}; see /openapi.yaml`), errorShapeFor(c.req.path)),
  )
  app.onError((err, c) => {
    const apiError = toApiError(err)
    if (apiError.code === 'internal_error') logger.error({ err, req_id: c.get('requestId') }, 'unhandled error')
    return errorResponse(c, apiError, errorShapeFor(c.req.path))
  })
  return app
}

export type App = ReturnType<typeof createApp>
