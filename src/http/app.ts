/**
 * @module
 * The HTTP API: routes, validation hook, error handling. `createApp(service)` builds it without
 * starting anything, so tests can call `app.request()` and the OpenAPI generator can read it.
 */
import { readFile } from 'node:fs/promises'
import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi'
import type { Context, MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { cors } from 'hono/cors'
import { requestId } from 'hono/request-id'
import type { SSEStreamingApi } from 'hono/streaming'
import { streamSSE } from 'hono/streaming'
import type { Logger } from 'pino'
import type { SequenceResult } from '../engine/client.js'
import type { EncodedPrompt } from '../model/tokenizer.js'
import type { Metrics } from '../obs/metrics.js'
import { ApiError, errorResponse, toApiError } from './errors.js'
import { bearerAuth } from './middleware/auth.js'
import { httpMetrics } from './middleware/http-metrics.js'
import { strictJsonBody } from './middleware/json-body.js'
import { requestLog } from './middleware/request-log.js'
import {
  ClassifyBatchResponse,
  ClassifyRequest,
  ClassifySingleResponse,
  ErrorResponse,
  ExplainRequest,
  ExplainResponse,
  HealthResponse,
  ReadyResponse,
  SSE_DESCRIPTION,
} from './schemas.js'
import type { ServedModel, Service } from './service.js'
import { validateClassify, validateExplain } from './validate.js'
import type { ValidRequest } from './validate.js'

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
})
const error = (description: string) => json(ErrorResponse, description)

/** The error responses every inference route can give. */
const inferenceErrors = {
  400: error('malformed_json: the body is not valid JSON, or not valid UTF-8.'),
  401: error('unauthorized: API keys are configured and Authorization: Bearer <key> is missing or wrong.'),
  413: error('body_too_large: the body exceeds --max-body-bytes.'),
  415: error('unsupported_media_type: Content-Type is not application/json (or its charset is not utf-8).'),
  422: error(
    'invalid_request, unknown_model, too_many_texts, text_too_long, text_empty: a field is invalid; the message names it (a control character other than tab, newline and carriage return in a text is invalid_request, with its index).',
  ),
  429: error('queue_full: too many sequences in flight; retry after the Retry-After seconds.'),
  500: error('engine_failed: the inference worker failed while running the request (it restarts by itself).'),
  503: error('not_ready: the model is not loaded yet, or its worker is restarting; shutting_down: the server is draining after SIGTERM.'),
  504: error('deadline_exceeded: timeout_ms (or the server default) passed.'),
}

const classifyRoute = createRoute({
  method: 'post',
  path: '/classify',
  summary: 'Classify one text or a batch of texts',
  description: 'For each text: the reasoning the model wrote, then the label with a score for each of the six emotions.',
  request: { body: { required: true, content: { 'application/json': { schema: ClassifyRequest } } } },
  responses: {
    200: json(z.union([ClassifySingleResponse, ClassifyBatchResponse]), 'With `text`: one result; with `texts`: `results` in input order.'),
    ...inferenceErrors,
  },
})

const explainRoute = createRoute({
  method: 'post',
  path: '/explain',
  summary: 'Classify one text, streaming the reasoning',
  description: 'With `Accept: text/event-stream`, Server-Sent Events as the model writes; otherwise the same result as JSON.',
  request: { body: { required: true, content: { 'application/json': { schema: ExplainRequest } } } },
  responses: {
    200: {
      description: 'The result (JSON), or the event stream.',
      content: {
        'application/json': { schema: ExplainResponse },
        'text/event-stream': { schema: z.string().openapi({ description: SSE_DESCRIPTION }) },
      },
    },
    ...inferenceErrors,
  },
})

const healthRoute = createRoute({
  method: 'get',
  path: '/healthz',
  summary: 'Liveness',
  description: 'Answers 200 as long as the HTTP thread runs, even while the engine is saturated.',
  responses: { 200: json(HealthResponse, 'Alive.') },
})

const readyRoute = createRoute({
  method: 'get',
  path: '/readyz',
  summary: 'Readiness',
  description: 'Ready when every model is loaded and its engine worker is up.',
  responses: {
    200: json(ReadyResponse, 'Ready.'),
    503: error('not_ready: a model is loading or its worker is restarting; shutting_down: the server is draining after SIGTERM.'),
  },
})

const metricsRoute = createRoute({
  method: 'get',
  path: '/metrics',
  summary: 'Prometheus metrics',
  description: 'Request counts, rejections by reason, queue depth, running sequences, batch sizes, latencies, tokens, cancellations, worker restarts, process metrics. Needs the API key when keys are configured.',
  responses: {
    200: { description: 'Prometheus text exposition format.', content: { 'text/plain': { schema: z.string() } } },
    401: error('unauthorized: API keys are configured and Authorization: Bearer <key> is missing or wrong.'),
  },
})

const openapiRoute = createRoute({
  method: 'get',
  path: '/openapi.yaml',
  summary: 'This API description',
  responses: { 200: { description: 'OpenAPI 3.1, YAML.', content: { 'application/yaml': { schema: z.string() } } } },
})

const pageRoute = createRoute({
  method: 'get',
  path: '/',
  summary: 'Chat page',
  description: 'A small page that streams the reasoning of /explain.',
  responses: { 200: { description: 'HTML.', content: { 'text/html': { schema: z.string() } } }, 404: error('not_found: no page installed.') },
})

function scoresObject(labels: readonly string[], scores: number[]): Record<string, number> {
  return Object.fromEntries(labels.map((l, k) => [l, scores[k]!]))
}

/** One result; `input_tokens` counts the text's tokens (what max_input_tokens limits), as evaluate does. */
function resultBody(model: ServedModel, prompt: EncodedPrompt, r: SequenceResult) {
  return {
    label: model.labels[r.labelIndex]! as z.infer<typeof ClassifySingleResponse>['label'],
    scores: scoresObject(model.labels, r.scores) as z.infer<typeof ClassifySingleResponse>['scores'],
    reasoning: r.reasoning,
    usage: { input_tokens: prompt.numTextTokens, reasoning_tokens: r.usage.reasoning_tokens },
  }
}

function submit(valid: ValidRequest, c: Context, onDelta?: (index: number, delta: string) => void) {
  // Sizes for the access log; never the texts themselves.
  c.set('inference', {
    model: valid.model.id,
    texts: valid.prompts.length,
    chars: valid.prompts.reduce((n, p) => n + p.normalized.length, 0),
    tokens: valid.prompts.reduce((n, p) => n + p.numTextTokens, 0),
  })
  return valid.model.engine.submit(
    valid.prompts.map((p) => p.ids),
    { deadline: valid.deadline, signal: c.req.raw.signal, ...(onDelta ? { onDelta } : {}) },
  )
}

export interface AppOptions {
  service: Service
  logger: Logger
  /** The YAML served at /openapi.yaml (generated once by the caller from this app). */
  openapiYaml?: () => string
  /** Served at /metrics; absent: /metrics is 404. */
  metrics?: Metrics
}

/** Every path the app serves. */
const ROUTES = ['/classify', '/explain', '/healthz', '/readyz', '/metrics', '/openapi.yaml', '/']
/** Served without an API key: probes, the chat page (it asks for the key), the public contract. */
export const OPEN_ROUTES = ['/healthz', '/readyz', '/', '/openapi.yaml']

export function createApp({ service, logger, openapiYaml, metrics }: AppOptions) {
  const app = new OpenAPIHono({
    defaultHook: (result, c) => {
      if (result.success) return
      const allowed = Object.keys((c.req.path === '/explain' ? ExplainRequest : ClassifyRequest).shape)
      throw new ApiError('invalid_request', formatIssue(result.error.issues[0], allowed))
    },
  })

  app.use(requestId())
  app.use(requestLog({ logger }))
  if (metrics) app.use(httpMetrics({ metrics, routes: ROUTES }))
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
  if (access && access.apiKeys.length > 0) app.use(bearerAuth({ keys: access.apiKeys, open: OPEN_ROUTES }))
  app.use(
    '*',
    bodyLimit({
      maxSize: service.limits.maxBodyBytes,
      onError: () => {
        throw new ApiError('body_too_large', `request body: at most ${service.limits.maxBodyBytes} bytes (--max-body-bytes)`)
      },
    }),
  )
  // After SIGTERM: no new inference (a load balancer retries elsewhere), and connections close.
  const draining: MiddlewareHandler = async function draining(c, next) {
    if (service.lifecycle?.draining) {
      c.header('Connection', 'close')
      throw new ApiError('shutting_down', 'the server is shutting down; retry on another instance', 1)
    }
    await next()
  }
  for (const path of ['/classify', '/explain']) app.use(path, draining, strictJsonBody())

  app.openapi(classifyRoute, async (c) => {
    const valid = validateClassify(service.models, service.limits, c.req.valid('json'))
    const results = await submit(valid, c)
    const model = valid.model
    if (valid.single) return c.json({ model: model.id, ...resultBody(model, valid.prompts[0]!, results[0]!) }, 200)
    return c.json({ model: model.id, results: results.map((r, i) => resultBody(model, valid.prompts[i]!, r)) }, 200)
  })

  app.openapi(explainRoute, async (c) => {
    const valid = validateExplain(service.models, service.limits, c.req.valid('json'))
    const model = valid.model
    if (!(c.req.header('accept') ?? '').includes('text/event-stream')) {
      const [r] = await submit(valid, c)
      return c.json({ model: model.id, ...resultBody(model, valid.prompts[0]!, r!), timings: r!.timings }, 200)
    }

    // Admission happens in submit() before the stream opens: a full queue is still a 429.
    let stream: SSEStreamingApi | null = null
    let writes = Promise.resolve()
    const buffered: [string, unknown][] = []
    const send = (event: string, data: unknown) => {
      if (!stream) return void buffered.push([event, data])
      const s = stream
      // Frames are written one after the other, in the order they were produced.
      writes = writes.then(() => s.writeSSE({ event, data: JSON.stringify(data) })).catch(() => {})
    }
    const pending = submit(valid, c, (_i, delta) => send('reasoning', { delta }))
    pending.catch(() => {}) // handled below, once the stream is open
    c.header('X-Accel-Buffering', 'no')
    return streamSSE(c, async (s) => {
      stream = s
      for (const [event, data] of buffered.splice(0)) send(event, data)
      try {
        const [r] = await pending
        const body = resultBody(model, valid.prompts[0]!, r!)
        send('label', { label: body.label, scores: body.scores })
        send('done', { model: model.id, reasoning: body.reasoning, usage: body.usage, timings: r!.timings })
      } catch (e) {
        const err = toApiError(e)
        if (err.code !== 'client_closed_request') logger.warn({ req_id: c.get('requestId'), code: err.code }, 'stream failed')
        metrics?.rejections.inc({ reason: err.code })
        send('error', err.toJSON())
      }
      await writes
    }) as unknown as ReturnType<typeof c.json<z.infer<typeof ExplainResponse>, 200>>
  })

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
    return c.json(
      {
        status: 'ready' as const,
        models: service.models.map((m) => ({ id: m.id, kind: m.kind })),
        ...service.runtime,
      },
      200,
    )
  })

  app.openapi(metricsRoute, async (c) => {
    if (!metrics) return c.json(new ApiError('not_found', 'metrics are not collected here').toJSON(), 404) as never
    const { body, contentType } = await metrics.render()
    return c.text(body, 200, { 'Content-Type': contentType })
  })

  app.openapi(openapiRoute, (c) => c.body(openapiYaml?.() ?? '', 200, { 'Content-Type': 'application/yaml; charset=utf-8' }))

  app.openapi(pageRoute, async (c) => {
    const html = service.pagePath ? await readFile(service.pagePath, 'utf8').catch(() => null) : null
    if (html === null) return c.json(new ApiError('not_found', 'no chat page installed (src/page/index.html)').toJSON(), 404)
    return c.html(html, 200)
  })

  app.notFound((c) => errorResponse(c, new ApiError('not_found', `no route ${c.req.method} ${c.req.path}; see /openapi.yaml`)))

  app.onError((err, c) => {
    const apiError = toApiError(err)
    if (apiError.code === 'internal_error') logger.error({ err, req_id: c.get('requestId') }, 'unhandled error')
    return errorResponse(c, apiError)
  })

  return app
}

export type App = ReturnType<typeof createApp>

/** `texts[3]: expected string, received number`, or the unknown fields of a strict object. */
function formatIssue(issue: z.core.$ZodIssue | undefined, allowed: string[]): string {
  if (!issue) return 'body: invalid'
  const path = issue.path.reduce<string>(
    (acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)),
    '',
  )
  if (issue.code === 'unrecognized_keys') {
    return `${path || 'body'}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}; allowed: ${allowed.join(', ')}`
  }
  if (issue.code === 'invalid_type' && / received undefined$/.test(issue.message)) {
    return `${path}: required (expected ${issue.expected})`
  }
  const message = issue.message.replace(/^Invalid input: /, '')
  return `${path || 'body'}: ${message}`
}
