/**
 * @module
 * What every inference route does with a validated request: submit it to the model's engine
 * (admission first: a full queue throws before any stream opens), and, for a stream, settle its
 * end once the response is already under way.
 */
import type { Context } from 'hono'
import type { Logger } from 'pino'
import type { SequenceResult } from '../engine/types.js'
import type { Metrics } from '../obs/metrics.js'
import { toApiError } from './errors.js'
import type { ApiError } from './errors.js'
import type { ServedModel } from './service.js'
import type { ValidRequest } from './validate.js'

/**
 * Submits the request's prompts, cancelled when the client goes away; `onDelta` gets reasoning
 * text as it is written. Throws at once when the engine cannot admit them.
 */
export function submit(valid: ValidRequest, c: Context, onDelta?: (index: number, delta: string) => void): Promise<SequenceResult[]> {
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

/** A result's scores keyed by the model's labels, in the model's order. */
export function scoresByLabel(model: ServedModel, scores: readonly number[]): Record<string, number> {
  return Object.fromEntries(model.labels.map((l, k) => [l, scores[k]!]))
}

/**
 * Awaits a streamed request: its result goes to `onResult`; a failure, which can no longer change
 * the status, is logged, counted by code and goes to `onError` (to be written as a last event).
 */
export async function settleStream<T>(
  pending: Promise<T>,
  { c, logger, metrics }: { c: Context; logger: Logger; metrics?: Metrics | undefined },
  onResult: (result: T) => void,
  onError: (err: ApiError) => void,
): Promise<void> {
  try {
    onResult(await pending)
  } catch (e) {
    const err = toApiError(e)
    if (err.code !== 'client_closed_request') logger.warn({ req_id: c.get('requestId'), code: err.code }, 'stream failed')
    metrics?.rejections.inc({ reason: err.code })
    onError(err)
  }
}
