/**
 * Shared k6 code: reads loadtest/scenarios.json (the file loadtest/run.ts reads), turns one named
 * scenario into k6 `options` (scenarios with the same executors, thresholds with the same
 * limits), and defines the two request functions. k6 is not bundled with this project (AGPL);
 * bring your own, v0.57 or newer runs TypeScript directly:
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8080 -e SCENARIO=classify_constant loadtest/k6/classify.ts
 *
 * Environment: BASE_URL (default http://127.0.0.1:8080), SCENARIO (default smoke),
 * SUSTAINABLE_RPS (overrides the file's), SCENARIO_FILE, TEXTS_FILE (JSON lines with a "text"
 * field, or plain lines), API_KEY (bearer token).
 *
 * setup() reads the default model's labels from GET /info once; k6 hands what it returns to every
 * iteration, whose answers are checked against them.
 *
 * Differences from the runner: k6's http client returns an SSE body only once the stream has
 * ended, so time to first token is the server's own figure (done.timings.ttft_ms), and server
 * memory is not sampled (rss_* thresholds are runner-only).
 */

import { check } from 'k6'
import exec from 'k6/execution'
import http, { type RefinedResponse, type ResponseType } from 'k6/http'
import { Counter, Rate, Trend } from 'k6/metrics'
import type { Options, Scenario } from 'k6/options'
import type { Endpoint, PartSpec, ScenarioFile, ScenarioSpec, Thresholds } from '../lib/scenarios.ts'
import { parseTexts } from '../lib/texts.ts'

// Both paths are relative to this directory, where every entry script lives as well.
const file = JSON.parse(open(__ENV.SCENARIO_FILE || '../scenarios.json')) as ScenarioFile
const scenarioName = __ENV.SCENARIO || 'smoke'
const baseUrl = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '')
const sustainable = Number(__ENV.SUSTAINABLE_RPS || file.sustainable_rps)
const texts: string[] = __ENV.TEXTS_FILE ? parseTexts(open(__ENV.TEXTS_FILE)) : file.texts

const spec: ScenarioSpec | undefined = file.scenarios[scenarioName]
if (!spec) {
  throw new Error(`unknown SCENARIO "${scenarioName}" (known: ${Object.keys(file.scenarios).join(', ')})`)
}
const clientTimeoutMs = spec.client_timeout_ms ?? file.defaults.client_timeout_ms
const maxInFlight = spec.max_in_flight ?? file.defaults.max_in_flight
const drainS = spec.drain_s ?? file.defaults.drain_s
const thresholds: Thresholds = { ...file.default_thresholds, ...(spec.thresholds ?? {}) }

// Custom metrics, named like the threshold keys they serve.
const classifyDuration = new Trend('classify_duration', true)
const explainDuration = new Trend('explain_duration', true)
const explainTtft = new Trend('explain_ttft', true)
const explainQueue = new Trend('explain_queue', true)
/** Neither ok nor rejected: 5xx other than 503, other 4xx, bad bodies, network errors, unfinished. */
const failures = new Rate('failures')
/** 429 or 503. */
const rejections = new Rate('rejections')
/** Accepted but not completed: SSE error event, stream without done, client timeout. */
const unfinished = new Counter('unfinished')

/**
 * k6 takes whole iterations per time unit; a fractional rate becomes an integer rate per 100 s
 * (2.5/s -> 250 per 100 s), which k6 spreads evenly just the same.
 */
function rateUnit(rates: number[]): { mult: number; timeUnit: string } {
  return rates.every((r) => Number.isInteger(r)) ? { mult: 1, timeUnit: '1s' } : { mult: 100, timeUnit: '100s' }
}

function toK6Scenario(name: string, p: PartSpec, s: ScenarioSpec): Scenario {
  const duration = `${p.duration_s ?? s.duration_s ?? 0}s`
  const base = {
    exec: p.endpoint,
    env: { PART: name, BATCH: String(p.batch_size ?? 1), SERVER_TIMEOUT_MS: String(p.server_timeout_ms ?? '') },
    tags: { part: name },
    gracefulStop: `${drainS}s`,
  }
  if (p.executor === 'constant-vus') {
    return { ...base, executor: 'constant-vus', vus: p.vus ?? 1, duration }
  }
  if (p.executor === 'constant-arrival-rate') {
    const rate = p.rate ?? (p.rate_x_sustainable ?? 0) * sustainable
    const u = rateUnit([rate])
    return {
      ...base,
      executor: 'constant-arrival-rate',
      rate: Math.round(rate * u.mult),
      timeUnit: u.timeUnit,
      duration,
      preAllocatedVUs: Math.min(maxInFlight, Math.ceil(rate) + 1),
      maxVUs: maxInFlight,
    }
  }
  const stages = p.stages ?? []
  const u = rateUnit([p.start_rate ?? 0, ...stages.map((st) => st.target)])
  return {
    ...base,
    executor: 'ramping-arrival-rate',
    startRate: Math.round((p.start_rate ?? 0) * u.mult),
    timeUnit: u.timeUnit,
    stages: stages.map((st) => ({ target: Math.round(st.target * u.mult), duration: `${st.duration_s}s` })),
    preAllocatedVUs: Math.min(maxInFlight, Math.ceil(p.start_rate ?? 1) + 1),
    maxVUs: maxInFlight,
  }
}

function toK6Thresholds(endpoints: Endpoint[]): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  const add = (metric: string, expr: string, limit: number | null) => {
    if (limit === null) return
    out[metric] = [...(out[metric] ?? []), `${expr}<=${limit}`]
  }
  if (endpoints.includes('classify')) {
    add('classify_duration', 'p(95)', thresholds.classify_p95_ms)
    add('classify_duration', 'p(99)', thresholds.classify_p99_ms)
  }
  if (endpoints.includes('explain')) {
    add('explain_duration', 'p(95)', thresholds.explain_p95_ms)
    add('explain_ttft', 'p(95)', thresholds.explain_ttft_p95_ms)
    add('explain_ttft', 'p(99)', thresholds.explain_ttft_p99_ms)
  }
  add('failures', 'rate', thresholds.error_rate_max)
  add('rejections', 'rate', thresholds.rejected_rate_max)
  add('unfinished', 'count', thresholds.unfinished_max)
  return out
}

/** k6 options for the parts of SCENARIO whose endpoint is in `endpoints`. */
export function buildOptions(endpoints: Endpoint[]): Options {
  const scenarios: Record<string, Scenario> = {}
  for (const [name, p] of Object.entries(spec!.parts)) {
    if (endpoints.includes(p.endpoint)) scenarios[name] = toK6Scenario(name, p, spec!)
  }
  if (Object.keys(scenarios).length === 0) {
    throw new Error(`scenario "${scenarioName}" has no ${endpoints.join('/')} part; try loadtest/k6/all.ts`)
  }
  return {
    scenarios,
    thresholds: toK6Thresholds(endpoints),
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  }
}

/** What setup() hands every iteration. */
export interface SetupData {
  /** The default model's labels, from GET /info. */
  labels: string[]
}

/** Fails fast when the server is not ready; reads the labels answers are checked against. */
export function setup(): SetupData {
  const ready = http.get(`${baseUrl}/readyz`, { timeout: '10s' })
  if (ready.status !== 200) throw new Error(`${baseUrl}/readyz answered ${ready.status}; is the server up?`)
  const res = http.get(`${baseUrl}/info`, { timeout: '10s', headers: authHeader() })
  if (res.status !== 200) throw new Error(`${baseUrl}/info answered ${res.status}; the labels to check answers against come from it`)
  const labels = (JSON.parse(res.body as string) as { models?: { labels?: unknown }[] }).models?.[0]?.labels
  if (!Array.isArray(labels) || labels.length === 0 || !labels.every((l) => typeof l === 'string')) {
    throw new Error(`${baseUrl}/info: models[0].labels is not a list of labels`)
  }
  return { labels }
}

function authHeader(): Record<string, string> {
  return __ENV.API_KEY ? { authorization: `Bearer ${__ENV.API_KEY}` } : {}
}

function requestBody(n: number): string {
  const start = exec.scenario.iterationInTest * n
  const picked: string[] = []
  for (let k = 0; k < n; k++) picked.push(texts[(start + k) % texts.length]!)
  const body: Record<string, unknown> = n === 1 ? { text: picked[0] } : { texts: picked }
  if (__ENV.SERVER_TIMEOUT_MS) body.timeout_ms = Number(__ENV.SERVER_TIMEOUT_MS)
  return JSON.stringify(body)
}

function post(endpoint: Endpoint, body: string): RefinedResponse<ResponseType> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: endpoint === 'explain' ? 'text/event-stream' : 'application/json',
    ...authHeader(),
  }
  return http.post(`${baseUrl}/${endpoint}`, body, {
    headers,
    timeout: `${clientTimeoutMs}ms`,
    tags: { endpoint },
    // 429 and 503 are the contract's answer to overload, not failed requests.
    responseCallback: http.expectedStatuses({ min: 200, max: 299 }, 429, 503),
  })
}

type Verdict = 'ok' | 'rejected' | 'failed' | 'unfinished'

function record(v: Verdict): void {
  failures.add(v === 'failed' || v === 'unfinished')
  rejections.add(v === 'rejected')
  if (v === 'unfinished') unfinished.add(1)
  check(v, { 'ok or rejected (429/503)': (x) => x === 'ok' || x === 'rejected' })
}

/** Before any 2xx body is read: network errors, timeouts, rejections, failures. */
function verdictFromStatus(res: RefinedResponse<ResponseType>): Verdict | undefined {
  if (res.status === 0) return res.error_code === 1050 ? 'unfinished' : 'failed' // 1050: timeout
  if (res.status === 429 || res.status === 503) return 'rejected'
  if (res.status < 200 || res.status >= 300) return 'failed'
  return undefined
}

function isResult(r: unknown, labels: string[]): boolean {
  if (typeof r !== 'object' || r === null) return false
  const o = r as { label?: unknown; scores?: Record<string, unknown> }
  return labels.includes(o.label as string) && typeof o.scores === 'object' && o.scores !== null &&
    labels.every((l) => typeof o.scores![l] === 'number')
}

export function classify({ labels }: SetupData): void {
  const batch = Number(__ENV.BATCH || 1)
  const res = post('classify', requestBody(batch))
  let v = verdictFromStatus(res)
  if (v === undefined) {
    try {
      const j = JSON.parse(res.body as string) as { results?: unknown[] }
      const good = batch === 1 ? isResult(j, labels) : Array.isArray(j.results) && j.results.length === batch && j.results.every((r) => isResult(r, labels))
      v = good ? 'ok' : 'failed'
    } catch {
      v = 'failed'
    }
    if (v === 'ok') classifyDuration.add(res.timings.duration)
  }
  record(v)
}

/** The events of a complete SSE body (data lines joined; comments and ids ignored). */
export function parseSse(body: string): { event: string; data: string }[] {
  const out: { event: string; data: string }[] = []
  for (const block of body.split(/\r\n\r\n|\n\n|\r\r/)) {
    let event = 'message'
    const data: string[] = []
    for (const line of block.split(/\r\n|\n|\r/)) {
      if (line === '' || line.startsWith(':')) continue
      const i = line.indexOf(':')
      const field = i === -1 ? line : line.slice(0, i)
      const value = i === -1 ? '' : line.slice(i + 1).replace(/^ /, '')
      if (field === 'event') event = value
      else if (field === 'data') data.push(value)
    }
    if (data.length > 0) out.push({ event, data: data.join('\n') })
  }
  return out
}

export function explain({ labels }: SetupData): void {
  const res = post('explain', requestBody(1))
  let v = verdictFromStatus(res)
  if (v === undefined) {
    v = 'unfinished'
    let sawLabel = false
    try {
      for (const ev of parseSse(res.body as string)) {
        const data = JSON.parse(ev.data) as Record<string, any>
        if (ev.event === 'label') sawLabel = isResult(data, labels)
        else if (ev.event === 'error') break
        else if (ev.event === 'done') {
          v = sawLabel ? 'ok' : 'failed'
          if (typeof data.timings?.ttft_ms === 'number') explainTtft.add(data.timings.ttft_ms)
          if (typeof data.timings?.queue_ms === 'number') explainQueue.add(data.timings.queue_ms)
          break
        }
      }
    } catch {
      v = 'failed'
    }
    if (v === 'ok') explainDuration.add(res.timings.duration)
  }
  record(v)
}
