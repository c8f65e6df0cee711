/**
 * @module
 * `GET /info`: what this service is and serves (as TEI and TGI have it), for clients that would
 * otherwise hard-code labels or limits. Open like the probes: it tells nothing /readyz and the
 * contract do not, and a page reads it before it has asked for a key.
 */
import { OpenAPIHono, createRoute } from '@hono/zod-openapi'
import { VERSION } from '../../version.js'
import { InfoResponse } from '../schemas.js'
import type { ServedModel, Service } from '../service.js'
import { jsonBody } from './responses.js'

const infoRoute = createRoute({
  method: 'get',
  path: '/info',
  summary: 'Service version and served models',
  description:
    "The service version, the default truncate mode and, for each served model: id, kind, labels, limits, the graph it runs (name, layout, weights type) and that ONNX file's sha256, calibration, lexical prior, device and execution provider. Served without an API key.",
  responses: { 200: jsonBody(InfoResponse, 'The service and its models.') },
})

const EXECUTION_PROVIDER = { cpu: 'CPUExecutionProvider', cuda: 'CUDAExecutionProvider' } as const

function modelInfo(m: ServedModel, limits: Service['limits']) {
  return {
    id: m.id,
    kind: m.kind,
    labels: [...m.labels],
    limits: {
      max_texts: limits.maxTexts,
      max_text_chars: limits.maxTextChars,
      max_input_tokens: m.maxInputTokens,
      max_reasoning_tokens: m.maxReasoningTokens,
    },
    graph: m.card.graph,
    layout: m.card.layout,
    dtype: m.card.dtype,
    onnx_sha256: m.card.onnxSha256,
    calibration: m.card.calibration,
    prior: m.card.prior,
    device: m.card.provider,
    execution_provider: EXECUTION_PROVIDER[m.card.provider],
  }
}

export function infoRoutes(service: Service) {
  const app = new OpenAPIHono()
  app.openapi(infoRoute, (c) => c.json({ version: VERSION, truncate: service.limits.truncate, models: service.models.map((m) => modelInfo(m, service.limits)) }, 200))
  return app
}
