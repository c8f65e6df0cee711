/**
 * @module
 * `POST /classify` and `POST /explain`: validate, submit to the model's engine, answer JSON or a
 * stream of Server-Sent Events.
 */
import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi'
import type { Logger } from 'pino'
import type { Metrics } from '../../obs/metrics.js'
import { WindowSequencer } from '../long-text/sequencer.js'
import { strictJsonBody } from '../middleware/json-body.js'
import { refuseWhileDraining } from '../middleware/refuse-while-draining.js'
import { ClassifyBatchResponse, ClassifyRequest, ClassifySingleResponse, ExplainRequest, ExplainResponse, SSE_DESCRIPTION } from '../schemas.js'
import { resultBody, windowEvent } from '../results.js'
import type { Service } from '../service.js'
import { SseWriter } from '../sse.js'
import { settleStream, submit, submitSequenced } from '../submit.js'
import { validateClassify, validateExplain } from '../validate.js'
import { rejectInvalid } from '../validation-hook.js'
import { UNAUTHORIZED, errorBody, jsonBody } from './responses.js'

/** The error responses every inference route can give. */
const inferenceErrors = {
  400: errorBody('malformed_json: the body is not valid JSON, or not valid UTF-8.'),
  401: UNAUTHORIZED,
  413: errorBody('body_too_large: the body exceeds --max-body-bytes.'),
  415: errorBody('unsupported_media_type: Content-Type is not application/json (or its charset is not utf-8).'),
  422: errorBody(
    'invalid_request, unknown_model, too_many_texts, text_too_long, text_empty: a field is invalid; the message names it (a control character other than tab, newline and carriage return in a text is invalid_request, with its index). text_too_long: over --max-text-chars, or over the model\'s max_input_tokens with truncate "none".',
  ),
  429: errorBody('queue_full: too many sequences in flight; retry after the Retry-After seconds.'),
  500: errorBody('engine_failed: the inference worker failed while running the request (it restarts by itself).'),
  503: errorBody('not_ready: the model is not loaded yet, or its worker is restarting; shutting_down: the server is draining after SIGTERM.'),
  504: errorBody('deadline_exceeded: timeout_ms (or the server default) passed.'),
}

const classifyRoute = createRoute({
  method: 'post',
  path: '/classify',
  summary: 'Classify one text or a batch of texts',
  description: "For each text: the reasoning the model wrote, then the label with a score for each of the model's labels (GET /info lists them per model).",
  request: { body: { required: true, content: { 'application/json': { schema: ClassifyRequest } } } },
  responses: {
    200: jsonBody(z.union([ClassifySingleResponse, ClassifyBatchResponse]), 'With `text`: one result; with `texts`: `results` in input order.'),
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

export function inferenceRoutes({ service, logger, metrics }: { service: Service; logger: Logger; metrics?: Metrics | undefined }) {
  const app = new OpenAPIHono()
  for (const route of [classifyRoute, explainRoute]) app.use(route.path, refuseWhileDraining(service.lifecycle), strictJsonBody())

  app.openapi(
    classifyRoute,
    async (c) => {
      const valid = validateClassify(service.models, service.limits, c.req.valid('json'))
      const answers = await submit(valid, c)
      const model = valid.model
      if (valid.single) return c.json({ model: model.id, ...resultBody(model, answers[0]!, valid.windowsDetail) }, 200)
      return c.json({ model: model.id, results: answers.map((a) => resultBody(model, a, valid.windowsDetail)) }, 200)
    },
    rejectInvalid(ClassifyRequest),
  )

  app.openapi(
    explainRoute,
    async (c) => {
      const valid = validateExplain(service.models, service.limits, c.req.valid('json'))
      const model = valid.model
      if (!(c.req.header('accept') ?? '').includes('text/event-stream')) {
        const [a] = await submit(valid, c)
        return c.json({ model: model.id, ...resultBody(model, a!, valid.windowsDetail), timings: a!.timings }, 200)
      }
      const text = valid.texts[0]!
      const sse = new SseWriter()
      // A text read whole streams as it always has: no window events.
      const seq = new WindowSequencer(text.windows.length, {
        window: (i) => text.windows.length > 1 && sse.send('window', windowEvent(text, i)),
        delta: (_i, delta) => sse.send('reasoning', { delta }),
      })
      const pending = submitSequenced(valid, c, seq)
      return sse.respond(c, () =>
        settleStream(
          pending,
          { c, logger, metrics },
          ([a]) => {
            const { label, scores, ...rest } = resultBody(model, a!, valid.windowsDetail)
            sse.send('label', { label, scores })
            sse.send('done', { model: model.id, ...rest, timings: a!.timings })
          },
          (err) => sse.send('error', err.toJSON()),
        ),
      ) as unknown as ReturnType<typeof c.json<z.infer<typeof ExplainResponse>, 200>>
    },
    rejectInvalid(ExplainRequest),
  )

  return app
}
