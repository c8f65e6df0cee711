/**
 * @module
 * The one error type of the API, its stable codes, and the one table from code to HTTP status.
 * Every error response is `{error: {code, message}}`; the message names the field, what is wrong
 * and what is allowed. Anything a client can send maps to a 4xx.
 */
import type { Context } from 'hono'
import { HTTPException } from 'hono/http-exception'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { EngineError } from '../engine/types.js'

declare module 'hono' {
  interface ContextVariableMap {
    /** The error code answered, for the metrics. */
    errorCode: ErrorCode
    /** Sizes of an inference request, for the access log (never the texts). */
    inference: { model: string; texts: number; chars: number; tokens: number }
  }
}

/** Every error code, with its HTTP status. */
export const ERROR_STATUS = {
  malformed_json: 400,
  unauthorized: 401,
  not_found: 404,
  body_too_large: 413,
  unsupported_media_type: 415,
  invalid_request: 422,
  unknown_model: 422,
  too_many_texts: 422,
  text_too_long: 422,
  text_empty: 422,
  queue_full: 429,
  internal_error: 500,
  engine_failed: 500,
  not_ready: 503,
  shutting_down: 503,
  deadline_exceeded: 504,
  /** The client closed the connection first (nginx's 499); nobody receives it, logs do. */
  client_closed_request: 499 as ContentfulStatusCode,
} as const satisfies Record<string, ContentfulStatusCode>

export type ErrorCode = keyof typeof ERROR_STATUS
export const ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[]

export class ApiError extends Error {
  override name = 'ApiError'
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Seconds for a `Retry-After` header (429, 503). */
    readonly retryAfter?: number,
    /** The request field at fault, where there is one (`messages[2].content`): OpenAI's `param`. */
    readonly param?: string,
  ) {
    super(message)
  }

  get status(): ContentfulStatusCode {
    return ERROR_STATUS[this.code]
  }

  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } }
  }
}

/** Engine failures as API errors. */
export function fromEngineError(e: EngineError): ApiError {
  switch (e.reason) {
    case 'queue_full':
      return new ApiError('queue_full', `${e.message}; retry later`, 1)
    case 'deadline_exceeded':
      return new ApiError('deadline_exceeded', e.message)
    case 'not_ready':
      return new ApiError('not_ready', e.message, 1)
    case 'cancelled':
      return new ApiError('client_closed_request', e.message)
    case 'engine_failed':
      return new ApiError('engine_failed', e.message)
    case 'shutting_down':
      return new ApiError('shutting_down', `${e.message}; retry on another instance`, 1)
  }
}

/** Turns anything thrown into an `ApiError` (unknown errors become `internal_error`). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err
  if (err instanceof EngineError) return fromEngineError(err)
  if (err instanceof HTTPException) {
    switch (err.status) {
      case 400:
        return new ApiError('malformed_json', `request body is not valid JSON (${err.message})`)
      case 413:
        return new ApiError('body_too_large', 'request body is too large')
      case 415:
        return new ApiError('unsupported_media_type', 'Content-Type must be application/json')
      case 404:
        return new ApiError('not_found', err.message)
    }
  }
  return new ApiError('internal_error', 'internal error')
}

/** How an error answer looks: its status and its JSON body. */
export interface ErrorShape {
  status(err: ApiError): ContentfulStatusCode
  body(err: ApiError): unknown
}

/** The service's own shape: `{error: {code, message}}` with the status of `ERROR_STATUS`. */
export const NATIVE_ERRORS: ErrorShape = { status: (err) => err.status, body: (err) => err.toJSON() }

/** The JSON response for an error, with `Retry-After` where it applies. */
export function errorResponse(c: Context, err: ApiError, shape: ErrorShape = NATIVE_ERRORS): Response {
  if (err.retryAfter !== undefined) c.header('Retry-After', String(err.retryAfter))
  if (err.code === 'unauthorized') c.header('WWW-Authenticate', 'Bearer realm="because"')
  c.set('errorCode', err.code)
  return c.json(shape.body(err), shape.status(err))
}
