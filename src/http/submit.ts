/**
 * @module
 * What every inference route does with a validated request: submit its texts' windows to the
 * model's engine (admission first: a full queue throws before any stream opens), answer each text
 * from its windows, and, for a stream, settle its end once the response is already under way.
 */
import type { Context } from 'hono'
import type { Logger } from 'pino'
import type { SequenceResult, SubmitOptions } from '../engine/types.js'
import type { Metrics } from '../obs/metrics.js'
import { toApiError } from './errors.js'
import type { ApiError } from './errors.js'
import { answerText } from './long-text/answer.js'
import type { WindowSequencer } from './long-text/sequencer.js'
import type { TextAnswer } from './long-text/answer.js'
import type { EngineHandle, ServedModel } from './service.js'
import type { ValidRequest } from './validate.js'

/** Per sequence of a request, flat over its texts' windows in order. */
export interface SubmitHooks {
  /** Reasoning text as it is written. */
  onDelta?: (index: number, delta: string) => void
  /** A sequence's result as soon as it has its label. */
  onResult?: (index: number, result: SequenceResult) => void
}

/**
 * Submits every window of every text of the request as one engine request (one continuous batch),
 * cancelled when the client goes away. Returns each text's answer, in request order. Throws at once
 * when the engine cannot admit them.
 */
export function submit(valid: ValidRequest, c: Context, hooks: SubmitHooks = {}): Promise<TextAnswer[]> {
  const prompts = valid.texts.flatMap((t) => t.windows.map((w) => w.prompt))
  // Sizes for the access log; never the texts themselves.
  c.set('inference', {
    model: valid.model.id,
    texts: valid.texts.length,
    chars: prompts.reduce((n, p) => n + p.normalized.length, 0),
    tokens: prompts.reduce((n, p) => n + p.numTextTokens, 0),
  })
  const pending = submitInWaves(
    valid.model.engine,
    prompts.map((p) => p.ids),
    valid.texts.length,
    { deadline: valid.deadline, signal: c.req.raw.signal, ...hooks },
  )
  return pending.then((results) => {
    let at = 0
    return valid.texts.map((t) => answerText(t, results.slice(at, (at += t.windows.length))))
  })
}

/**
 * `submit` for a stream: deltas and results go through `seq`, which puts the windows in text order.
 * Admission still happens here, before the stream opens (a full queue stays a 429); a later failure
 * is left to `settleStream`.
 */
export function submitSequenced(valid: ValidRequest, c: Context, seq: WindowSequencer): Promise<TextAnswer[]> {
  const pending = submit(valid, c, { onDelta: (i, d) => seq.delta(i, d), onResult: (i) => seq.done(i) })
  pending.catch(() => {}) // settled by settleStream once the stream is open
  seq.start()
  return pending
}

/**
 * One engine request when the prompts fit the engine's capacity. Windows of long texts beyond it
 * (many long texts, a text of emoji) could never be admitted at once: they run in waves of half
 * the capacity, one after another, each admitted on its own (so beside other requests' work), each
 * later wave's timings counted from the first's submission. A request of more texts than the
 * capacity is still refused outright (queue_full), as it was before windows: that is a request
 * --max-texts should not have let in.
 */
function submitInWaves(engine: EngineHandle, prompts: number[][], numTexts: number, opts: SubmitOptions): Promise<SequenceResult[]> {
  const capacity = engine.capacity ?? Infinity
  if (prompts.length <= capacity || numTexts > capacity) return engine.submit(prompts, opts)
  const size = Math.max(1, Math.floor(capacity / 2))
  const t0 = performance.now()
  const { onDelta, onResult } = opts
  const wave = (from: number) => {
    const ms = from === 0 ? 0 : Math.round((performance.now() - t0) * 10) / 10
    const shifted = (r: SequenceResult): SequenceResult =>
      ms === 0 ? r : { ...r, timings: { queue_ms: r.timings.queue_ms + ms, ttft_ms: r.timings.ttft_ms + ms, total_ms: r.timings.total_ms + ms } }
    const results = engine.submit(prompts.slice(from, from + size), {
      deadline: opts.deadline,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(onDelta ? { onDelta: (i: number, d: string) => onDelta(from + i, d) } : {}),
      ...(onResult ? { onResult: (i: number, r: SequenceResult) => onResult(from + i, shifted(r)) } : {}),
    })
    return results.then((rs) => rs.map(shifted))
  }
  // The first wave's admission failure throws here, before any stream opens.
  const first = wave(0)
  return (async () => {
    const results = await first
    for (let from = size; from < prompts.length; from += size) results.push(...(await wave(from)))
    return results
  })()
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
