/**
 * @module
 * One request against the service, JSON classify or streamed explain, and its outcome. Every
 * request is bounded by a client timeout and can be abandoned from outside (end of the drain).
 * Outcomes fall in exactly one class:
 * - `ok`: 2xx and a complete, well-formed body (for SSE: label then done);
 * - `rejected`: 429 or 503, which the contract allows under overload;
 * - `failed`: the server answered with anything else (5xx other than 503, a 4xx, a malformed body)
 *   or the connection failed;
 * - `unfinished`: the server had not rejected it, but it did not complete: an SSE stream that
 *   ended without `done` or sent `event: error`, or no complete answer before the client gave up.
 */

import type { Endpoint } from './scenarios.js'
import { SseParser } from './sse.js'

export type OutcomeClass = 'ok' | 'rejected' | 'failed' | 'unfinished'

export interface Outcome {
  part: string
  endpoint: Endpoint
  /** Milliseconds from the run's start at which the request was due, and sent. */
  due_ms: number
  start_ms: number
  end_ms: number
  /** HTTP status, 0 when none arrived. */
  status: number
  cls: OutcomeClass
  /** Why it is not `ok`: network, client_timeout, abandoned, http_<status>, bad_body:<what>,
   *  sse_error:<code>, stream_cut. */
  reason?: string
  /** For `network`: the cause's code, when it has one (counted apart as `network:<code>`). */
  detail?: string
  texts: number
  /** explain: first non-empty reasoning delta, and the label event, from the send. */
  ttft_ms?: number
  label_ms?: number
  reasoning_tokens?: number
  /** From the server: SSE done.timings, when present. */
  server_queue_ms?: number
  server_ttft_ms?: number
  /** 429 without a Retry-After header, or an error body not shaped {error: {code, message}}. */
  contract_violations?: string[]
}

export interface RequestSpec {
  baseUrl: string
  part: string
  endpoint: Endpoint
  texts: string[]
  /** The labels an answer may hold (the default model's, from GET /info). */
  labels: readonly string[]
  serverTimeoutMs?: number
  clientTimeoutMs: number
  apiKey?: string
  /** Aborting it abandons the request (reason `abandoned`). */
  abandon: AbortSignal
  /** performance.now() of the run's start. */
  t0: number
  due_ms: number
}

const ABANDONED = 'abandoned'
const CLIENT_TIMEOUT = 'client_timeout'

export async function sendRequest(spec: RequestSpec): Promise<Outcome> {
  const start = performance.now()
  const out: Outcome = {
    part: spec.part,
    endpoint: spec.endpoint,
    due_ms: spec.due_ms,
    start_ms: start - spec.t0,
    end_ms: 0,
    status: 0,
    cls: 'failed',
    texts: spec.texts.length,
  }
  const ctl = new AbortController()
  const timer = setTimeout(() => ctl.abort(CLIENT_TIMEOUT), spec.clientTimeoutMs)
  const onAbandon = () => ctl.abort(ABANDONED)
  if (spec.abandon.aborted) onAbandon()
  else spec.abandon.addEventListener('abort', onAbandon, { once: true })

  const body: Record<string, unknown> =
    spec.texts.length === 1 ? { text: spec.texts[0] } : { texts: spec.texts }
  if (spec.serverTimeoutMs !== undefined) body.timeout_ms = spec.serverTimeoutMs
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: spec.endpoint === 'explain' ? 'text/event-stream' : 'application/json',
  }
  if (spec.apiKey) headers.authorization = `Bearer ${spec.apiKey}`

  try {
    const res = await fetch(`${spec.baseUrl}/${spec.endpoint}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
      signal: ctl.signal,
    })
    out.status = res.status
    if (res.status < 200 || res.status >= 300) {
      await readError(res, out)
    } else if (spec.endpoint === 'classify') {
      checkClassify(JSON.parse(await res.text()), spec.texts.length, spec.labels, out)
    } else {
      await readStream(res, start, spec.labels, out)
    }
  } catch (err) {
    const why = ctl.signal.aborted ? String(ctl.signal.reason) : undefined
    if (why === CLIENT_TIMEOUT || why === ABANDONED) {
      out.cls = 'unfinished'
      out.reason = why
    } else if (err instanceof SyntaxError) {
      out.cls = 'failed'
      out.reason = 'bad_body:json'
    } else if (out.status >= 200 && out.status < 300) {
      // Headers arrived, then the body broke off.
      out.cls = 'unfinished'
      out.reason = 'stream_cut'
    } else {
      out.cls = 'failed'
      out.reason = 'network'
      // The cause's code (ECONNRESET, UND_ERR_CONNECT_TIMEOUT, ...) says where it broke.
      const cause = (err as { cause?: { code?: unknown } }).cause
      if (typeof cause?.code === 'string') out.detail = cause.code
    }
  } finally {
    clearTimeout(timer)
    spec.abandon.removeEventListener('abort', onAbandon)
  }
  out.end_ms = performance.now() - spec.t0
  return out
}

async function readError(res: Response, out: Outcome): Promise<void> {
  const s = res.status
  out.cls = s === 429 || s === 503 ? 'rejected' : 'failed'
  if (out.cls === 'failed') out.reason = `http_${s}`
  const violations: string[] = []
  if (s === 429 && !res.headers.get('retry-after')) violations.push('429_without_retry_after')
  const text = await res.text()
  try {
    const j = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }
    if (typeof j.error?.code !== 'string' || typeof j.error?.message !== 'string') {
      violations.push('error_body_shape')
    }
  } catch {
    violations.push('error_body_not_json')
  }
  if (violations.length > 0) out.contract_violations = violations
}

function isLabel(v: unknown, labels: readonly string[]): boolean {
  return typeof v === 'string' && labels.includes(v)
}

function isScores(v: unknown, labels: readonly string[]): boolean {
  if (typeof v !== 'object' || v === null) return false
  const keys = Object.keys(v)
  return keys.length === labels.length && labels.every((l) => typeof (v as Record<string, unknown>)[l] === 'number')
}

/** One classification in a response: {label, scores (one per label), reasoning}. */
function checkResult(r: unknown, labels: readonly string[]): string | undefined {
  if (typeof r !== 'object' || r === null) return 'result'
  const o = r as Record<string, unknown>
  if (!isLabel(o.label, labels)) return 'label'
  if (!isScores(o.scores, labels)) return 'scores'
  if (typeof o.reasoning !== 'string') return 'reasoning'
  return undefined
}

function checkClassify(j: unknown, numTexts: number, labels: readonly string[], out: Outcome): void {
  const o = (j ?? {}) as Record<string, unknown>
  let bad: string | undefined
  if (numTexts === 1) {
    bad = checkResult(o, labels)
    const usage = o.usage as Record<string, unknown> | undefined
    if (!bad && typeof usage?.reasoning_tokens === 'number') out.reasoning_tokens = usage.reasoning_tokens
  } else if (!Array.isArray(o.results) || o.results.length !== numTexts) {
    bad = 'results'
  } else {
    bad = o.results.map((r) => checkResult(r, labels)).find((b) => b !== undefined)
  }
  if (bad) {
    out.cls = 'failed'
    out.reason = `bad_body:${bad}`
  } else out.cls = 'ok'
}

async function readStream(res: Response, start: number, labels: readonly string[], out: Outcome): Promise<void> {
  if (!res.body) {
    out.cls = 'failed'
    out.reason = 'bad_body:no_stream'
    return
  }
  const parser = new SseParser()
  const decoder = new TextDecoder()
  let sawLabel = false
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    const events = parser.push(decoder.decode(chunk, { stream: true }))
    for (const ev of events) {
      const now = performance.now() - start
      let data: Record<string, unknown>
      try {
        data = JSON.parse(ev.data) as Record<string, unknown>
      } catch {
        out.cls = 'failed'
        out.reason = `bad_body:${ev.event}_data`
        return
      }
      if (ev.event === 'reasoning') {
        if (typeof data.delta !== 'string') {
          out.cls = 'failed'
          out.reason = 'bad_body:delta'
          return
        }
        if (out.ttft_ms === undefined && data.delta !== '') out.ttft_ms = now
      } else if (ev.event === 'label') {
        if (!isLabel(data.label, labels) || !isScores(data.scores, labels)) {
          out.cls = 'failed'
          out.reason = 'bad_body:label_event'
          return
        }
        sawLabel = true
        out.label_ms = now
      } else if (ev.event === 'done') {
        if (!sawLabel) {
          out.cls = 'failed'
          out.reason = 'bad_body:done_before_label'
          return
        }
        const usage = data.usage as Record<string, unknown> | undefined
        const timings = data.timings as Record<string, unknown> | undefined
        if (typeof usage?.reasoning_tokens === 'number') out.reasoning_tokens = usage.reasoning_tokens
        if (typeof timings?.queue_ms === 'number') out.server_queue_ms = timings.queue_ms
        if (typeof timings?.ttft_ms === 'number') out.server_ttft_ms = timings.ttft_ms
        out.cls = 'ok'
        return
      } else if (ev.event === 'error') {
        const err = data.error as Record<string, unknown> | undefined
        out.cls = 'unfinished'
        out.reason = `sse_error:${typeof err?.code === 'string' ? err.code : 'unknown'}`
        return
      }
    }
  }
  out.cls = 'unfinished'
  out.reason = 'stream_cut'
}
