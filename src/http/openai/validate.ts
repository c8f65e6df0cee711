/**
 * @module
 * A chat-completions request as the service's own `ValidRequest`: the model, the deadline and the
 * text of the last user message, checked by the same rules as /classify. Parameters that would
 * change what the answer means (several choices, tools, JSON output, log-probabilities) are
 * refused rather than silently ignored. Every failure carries the field as `param`.
 */
import type { z } from '@hono/zod-openapi'
import { ApiError } from '../errors.js'
import type { ServedModel, ServiceLimits } from '../service.js'
import { encodeText, resolveDeadline, resolveLongText, resolveModel } from '../validate.js'
import type { ValidRequest } from '../validate.js'
import type { ChatCompletionRequest } from './schemas.js'

type ChatRequest = z.infer<typeof ChatCompletionRequest>

export interface ValidChat {
  request: ValidRequest
  stream: boolean
  /** A last chunk with the usage (`stream_options.include_usage`). */
  includeUsage: boolean
}

export function validateChat(models: readonly ServedModel[], limits: ServiceLimits, body: ChatRequest): ValidChat {
  refuseUnsupported(body)
  const model = about('model', () => resolveModel(models, body.model))
  const deadline = about('timeout_ms', () => resolveDeadline(limits, body.timeout_ms))
  const { mode, detail } = about('windows_detail', () => resolveLongText(limits, body))
  const { text, field } = lastUserText(body.messages)
  const prepared = about(field, () => encodeText(model, limits, text, field, mode))
  return {
    request: { model, texts: [prepared], single: true, deadline, windowsDetail: detail },
    stream: body.stream === true,
    includeUsage: body.stream === true && body.stream_options?.include_usage === true,
  }
}

function refuse(param: string, why: string): never {
  throw new ApiError('invalid_request', `${param}: ${why}`, undefined, param)
}

/** Runs a check of the service's own, naming `param` as the field of any error it throws. */
function about<T>(param: string, check: () => T): T {
  try {
    return check()
  } catch (e) {
    if (e instanceof ApiError && e.param === undefined) throw new ApiError(e.code, e.message, e.retryAfter, param)
    throw e
  }
}

const NO_TOOLS = 'tool calling is not supported: the model only names one of its labels'

function refuseUnsupported(b: ChatRequest): void {
  if (b.n != null && b.n > 1) refuse('n', `only 1 choice per request (decoding is greedy: every choice would be the same), got ${b.n}`)
  if (b.tools != null && b.tools.length > 0) refuse('tools', NO_TOOLS)
  if (b.functions != null && b.functions.length > 0) refuse('functions', NO_TOOLS)
  for (const param of ['tool_choice', 'function_call'] as const) {
    const v = b[param]
    if (v != null && v !== 'none' && v !== 'auto') refuse(param, `${NO_TOOLS}; only "none" or "auto" are accepted`)
  }
  const format = b.response_format?.type
  if (format !== undefined && format !== 'text') {
    refuse('response_format', `only {"type": "text"}: the answer is a label, not JSON; got ${JSON.stringify(format).slice(0, 40)}`)
  }
  if (b.logprobs === true) refuse('logprobs', 'token log-probabilities are not returned; the label scores are in choices[0].message.scores')
  if (b.top_logprobs != null && b.top_logprobs > 0) refuse('top_logprobs', 'token log-probabilities are not returned; only 0 is accepted')
  if (b.logit_bias != null && Object.keys(b.logit_bias).length > 0) refuse('logit_bias', 'biasing tokens is not supported: it would skew the label scores')
  if (b.modalities?.some((m) => m !== 'text')) refuse('modalities', 'only ["text"] is supported')
  if (b.audio != null) refuse('audio', 'audio output is not supported')
}

/** The text to classify: the content of the last user message, its text parts joined by newlines. */
function lastUserText(messages: ChatRequest['messages']): { text: string; field: string } {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!
    if (m.role !== 'user') continue
    const field = `messages[${i}].content`
    if (typeof m.content === 'string') return { text: m.content, field }
    if (m.content == null) refuse(field, 'the last user message has no content; it holds the text to classify')
    const texts = m.content.map((part, j) => {
      if (part.type !== 'text') refuse(`${field}[${j}].type`, `only text parts can be classified, got ${JSON.stringify(part.type).slice(0, 40)}`)
      if (part.text === undefined) refuse(`${field}[${j}].text`, 'required (expected string)')
      return part.text
    })
    return { text: texts.join('\n'), field }
  }
  refuse('messages', 'no message with role "user": the text to classify is the content of the last user message')
}
