/**
 * @module
 * `POST /v1/chat/completions` and `GET /v1/models`: the OpenAI-compatible face of the service, so
 * that the openai SDKs and chat UIs can use it as they are. The last user message is classified
 * as /explain would; its errors come in OpenAI's shape (openai/errors.ts, chosen in app.ts by the
 * /v1/ prefix).
 */
import { OpenAPIHono, createRoute } from '@hono/zod-openapi'
import type { z } from '@hono/zod-openapi'
import type { Logger } from 'pino'
import type { Metrics } from '../../obs/metrics.js'
import { strictJsonBody } from '../middleware/json-body.js'
import { refuseWhileDraining } from '../middleware/refuse-while-draining.js'
import { WindowSequencer } from '../long-text/sequencer.js'
import { chatCompletion, chunker } from '../openai/completion.js'
import { openaiErrorBody } from '../openai/errors.js'
import { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ModelList, OpenAiErrorResponse } from '../openai/schemas.js'
import { validateChat } from '../openai/validate.js'
import type { Service } from '../service.js'
import { SseWriter } from '../sse.js'
import { settleStream, submit, submitSequenced } from '../submit.js'
import { rejectInvalid } from '../validation-hook.js'
import { jsonBody } from './responses.js'

const error = (description: string) => jsonBody(OpenAiErrorResponse, description)
const UNAUTHORIZED = error('unauthorized: API keys are configured and Authorization: Bearer <key> is missing or wrong.')

const chatRoute = createRoute({
  method: 'post',
  path: '/v1/chat/completions',
  summary: 'OpenAI-compatible chat completion',
  description:
    'Classifies the last user message. The label is `choices[0].message.content`, the reasoning `choices[0].message.reasoning_content`, the scores of every label the extension field `choices[0].message.scores`. Errors are OpenAI error bodies whose `code` is the service\'s own.',
  request: { body: { required: true, content: { 'application/json': { schema: ChatCompletionRequest } } } },
  responses: {
    200: {
      description: 'The completion (JSON), or with `stream: true` the chunks.',
      content: {
        'application/json': { schema: ChatCompletion },
        'text/event-stream': { schema: ChatCompletionChunk },
      },
    },
    400: error(
      'invalid_request_error: malformed_json, invalid_request (a field is invalid or an unsupported parameter is set; `param` names it), text_too_long (over max_input_tokens only with truncate "none"), text_empty.',
    ),
    401: UNAUTHORIZED,
    404: error('unknown_model: no served model has that id (`param`: model).'),
    413: error('body_too_large: the body exceeds --max-body-bytes.'),
    415: error('unsupported_media_type: Content-Type is not application/json (or its charset is not utf-8).'),
    429: error('rate_limit_error, queue_full: too many sequences in flight; retry after the Retry-After seconds.'),
    500: error('server_error, engine_failed: the inference worker failed while running the request (it restarts by itself).'),
    503: error('server_error, not_ready or shutting_down; with Retry-After.'),
    504: error('server_error, deadline_exceeded: timeout_ms (or the server default) passed.'),
  },
})

const modelsRoute = createRoute({
  method: 'get',
  path: '/v1/models',
  summary: 'OpenAI-compatible model list',
  description: 'The served models, the default first. GET /info tells more about each.',
  responses: { 200: jsonBody(ModelList, 'The served models.'), 401: UNAUTHORIZED },
})

export function openaiRoutes({ service, logger, metrics }: { service: Service; logger: Logger; metrics?: Metrics | undefined }) {
  const app = new OpenAPIHono()
  const startedAt = Math.floor(Date.now() / 1000)
  app.use(chatRoute.path, refuseWhileDraining(service.lifecycle), strictJsonBody())

  app.openapi(modelsRoute, (c) =>
    c.json({ object: 'list' as const, data: service.models.map((m) => ({ id: m.id, object: 'model' as const, created: startedAt, owned_by: 'because' as const })) }, 200),
  )

  app.openapi(
    chatRoute,
    async (c) => {
      const chat = validateChat(service.models, service.limits, c.req.valid('json'))
      const { model, windowsDetail } = chat.request
      const text = chat.request.texts[0]!
      const meta = { id: `chatcmpl-${c.get('requestId')}`, created: Math.floor(Date.now() / 1000), model: model.id }
      if (!chat.stream) {
        const [a] = await submit(chat.request, c)
        return c.json(chatCompletion(meta, model, a!, windowsDetail), 200)
      }
      const chunks = chunker(meta, chat.includeUsage)
      const sse = new SseWriter()
      const send = (chunk: unknown) => sse.sendData(JSON.stringify(chunk))
      send(chunks.start())
      const seq = new WindowSequencer(text.windows.length, {
        window: (i) => text.windows.length > 1 && send(chunks.window(model, text, i)),
        delta: (_i, delta) => send(chunks.reasoning(delta)),
      })
      const pending = submitSequenced(chat.request, c, seq)
      return sse.respond(c, () =>
        settleStream(
          pending,
          { c, logger, metrics },
          ([a]) => {
            for (const chunk of chunks.end(model, a!)) send(chunk)
            sse.sendData('[DONE]')
          },
          (err) => send(openaiErrorBody(err)),
        ),
      ) as unknown as ReturnType<typeof c.json<z.infer<typeof ChatCompletion>, 200>>
    },
    rejectInvalid(ChatCompletionRequest),
  )

  return app
}
