/**
 * @module
 * Errors as OpenAI clients read them, for every path under /v1/: `{error: {message, type, param,
 * code}}`, with OpenAI's statuses (a request it cannot take is 400 where the service's own routes
 * say 422, an unknown model 404). `code` stays the service's stable code, `param` names the field.
 */
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { ApiError, ErrorShape } from '../errors.js'

export const OPENAI_PREFIX = '/v1/'

export const OPENAI_ERROR_TYPES = ['invalid_request_error', 'authentication_error', 'rate_limit_error', 'server_error'] as const
type OpenAiErrorType = (typeof OPENAI_ERROR_TYPES)[number]

function statusOf(err: ApiError): ContentfulStatusCode {
  if (err.code === 'unknown_model') return 404
  return err.status === 422 ? 400 : err.status
}

function typeOf(status: number): OpenAiErrorType {
  if (status === 401) return 'authentication_error'
  if (status === 429) return 'rate_limit_error'
  return status >= 500 ? 'server_error' : 'invalid_request_error'
}

/** The body; also what a stream that already started sends as its last event. */
export function openaiErrorBody(err: ApiError) {
  return { error: { message: err.message, type: typeOf(statusOf(err)), param: err.param ?? null, code: err.code } }
}

export const OPENAI_ERRORS: ErrorShape = { status: statusOf, body: openaiErrorBody }
