/**
 * @module
 * The scenario file (loadtest/scenarios.json): its types, a validator that names every problem,
 * and `resolveScenario`, which turns one named scenario into concrete parts (absolute rates,
 * durations, merged thresholds) for the runner. The k6 scripts read the same file and apply the
 * same rules (loadtest/k6/lib.ts); keep the two in step.
 */

export type Endpoint = 'classify' | 'explain'
export type Executor = 'constant-arrival-rate' | 'ramping-arrival-rate' | 'constant-vus'

export interface Stage {
  /** Arrival rate (requests/s) reached at the end of the stage, ramped linearly from the last. */
  target: number
  duration_s: number
}

export interface PartSpec {
  endpoint: Endpoint
  executor: Executor
  /** constant-arrival-rate: requests/s (exactly one of rate, rate_x_sustainable). */
  rate?: number
  rate_x_sustainable?: number
  /** ramping-arrival-rate: the rate at t=0, then the stages. */
  start_rate?: number
  stages?: Stage[]
  /** constant-vus: virtual users, each sending its next request when the last one ends. */
  vus?: number
  /** Overrides the scenario's duration for this part. */
  duration_s?: number
  /** classify only: texts per request; 1 sends `{text}`, more sends `{texts: [...]}`. */
  batch_size?: number
  /** Sent to the server as the request's `timeout_ms` (its deadline). */
  server_timeout_ms?: number
}

export interface Thresholds {
  classify_p95_ms: number | null
  classify_p99_ms: number | null
  explain_p95_ms: number | null
  explain_ttft_p95_ms: number | null
  explain_ttft_p99_ms: number | null
  /** failures / requests sent (failures: 5xx other than 503, network errors, bad bodies...). */
  error_rate_max: number | null
  /** (429 + 503) / requests sent. */
  rejected_rate_max: number | null
  /** Requests accepted (2xx) that did not complete: stream cut, SSE error event, abandoned. */
  unfinished_max: number | null
  /** Peak server RSS (runner only; needs a server it started or --pid). */
  rss_max_mb: number | null
  /** RSS at the end over RSS after the first tenth of the run, minus one (runner only). */
  rss_growth_max: number | null
}

export const THRESHOLD_KEYS: readonly (keyof Thresholds)[] = [
  'classify_p95_ms',
  'classify_p99_ms',
  'explain_p95_ms',
  'explain_ttft_p95_ms',
  'explain_ttft_p99_ms',
  'error_rate_max',
  'rejected_rate_max',
  'unfinished_max',
  'rss_max_mb',
  'rss_growth_max',
]

export interface RunDefaults {
  /** Client-side bound on one request, headers to last byte. */
  client_timeout_ms: number
  /** Arrivals beyond this many requests in flight are dropped by the client (k6: dropped_iterations). */
  max_in_flight: number
  /** After the last arrival, how long in-flight requests may take before they are abandoned. */
  drain_s: number
  /** Sequential requests before the measured run (JIT, first batch), excluded from the results. */
  warmup_requests: number
}

export interface ScenarioSpec extends Partial<RunDefaults> {
  description: string
  duration_s?: number
  parts: Record<string, PartSpec>
  thresholds?: Partial<Record<keyof Thresholds, number | null>>
}

export interface ScenarioFile {
  version: 1
  sustainable_rps: number
  defaults: RunDefaults
  default_thresholds: Thresholds
  scenarios: Record<string, ScenarioSpec>
  texts: string[]
}

export interface ResolvedPart {
  name: string
  endpoint: Endpoint
  executor: Executor
  /** Arrival-rate executors: the rate at t=0 and piecewise-linear stages (constant: one flat stage). */
  start_rate: number
  stages: Stage[]
  vus: number
  duration_s: number
  batch_size: number
  server_timeout_ms: number | undefined
}

export interface ResolvedScenario extends RunDefaults {
  name: string
  description: string
  sustainable_rps: number
  /** The longest part. */
  duration_s: number
  parts: ResolvedPart[]
  thresholds: Thresholds
}

/** Hard bounds: a typo in the file or on the command line must not turn into a runaway test. */
export const LIMITS = {
  max_duration_s: 3600,
  max_rate: 5000,
  max_vus: 2000,
  max_batch_size: 256,
  max_requests: 500_000,
} as const

const ENDPOINTS: readonly string[] = ['classify', 'explain']
const EXECUTORS: readonly string[] = ['constant-arrival-rate', 'ramping-arrival-rate', 'constant-vus']

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isPositive(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0
}

/** Every problem in a parsed scenario file, each naming its path; empty when it is valid. */
export function validateScenarioFile(raw: unknown): string[] {
  const errors: string[] = []
  if (!isObject(raw)) return ['scenario file: expected a JSON object']
  if (raw.version !== 1) errors.push(`version: expected 1, got ${JSON.stringify(raw.version)}`)
  if (!isPositive(raw.sustainable_rps)) errors.push('sustainable_rps: expected a number > 0')

  const defaults = raw.defaults
  if (!isObject(defaults)) errors.push('defaults: expected an object')
  else {
    for (const k of ['client_timeout_ms', 'max_in_flight', 'drain_s'] as const) {
      if (!isPositive(defaults[k])) errors.push(`defaults.${k}: expected a number > 0`)
    }
    const w = defaults.warmup_requests
    if (typeof w !== 'number' || !Number.isInteger(w) || w < 0) {
      errors.push('defaults.warmup_requests: expected an integer >= 0')
    }
  }

  const dt = raw.default_thresholds
  if (!isObject(dt)) errors.push('default_thresholds: expected an object')
  else {
    for (const k of THRESHOLD_KEYS) {
      if (!(k in dt)) errors.push(`default_thresholds.${k}: missing (use null to disable)`)
    }
    errors.push(...checkThresholds(dt, 'default_thresholds'))
  }

  const texts = raw.texts
  if (!Array.isArray(texts) || texts.length === 0) errors.push('texts: expected a non-empty array')
  else {
    texts.forEach((t, i) => {
      if (typeof t !== 'string' || t.trim() === '') errors.push(`texts[${i}]: expected a non-empty string`)
    })
  }

  const scenarios = raw.scenarios
  if (!isObject(scenarios) || Object.keys(scenarios).length === 0) {
    errors.push('scenarios: expected a non-empty object')
    return errors
  }
  for (const [name, s] of Object.entries(scenarios)) {
    errors.push(...checkScenario(name, s))
  }
  return errors
}

function checkThresholds(t: Record<string, unknown>, path: string): string[] {
  const errors: string[] = []
  for (const [k, v] of Object.entries(t)) {
    if (!(THRESHOLD_KEYS as readonly string[]).includes(k)) {
      errors.push(`${path}.${k}: unknown threshold (known: ${THRESHOLD_KEYS.join(', ')})`)
    } else if (v !== null && !(typeof v === 'number' && Number.isFinite(v) && v >= 0)) {
      errors.push(`${path}.${k}: expected a number >= 0 or null, got ${JSON.stringify(v)}`)
    }
  }
  return errors
}

function checkScenario(name: string, s: unknown): string[] {
  const path = `scenarios.${name}`
  if (!/^[a-z][a-z0-9_]*$/.test(name)) return [`${path}: name must match [a-z][a-z0-9_]*`]
  if (!isObject(s)) return [`${path}: expected an object`]
  const errors: string[] = []
  if (typeof s.description !== 'string') errors.push(`${path}.description: expected a string`)
  if (s.duration_s !== undefined && !isPositive(s.duration_s)) {
    errors.push(`${path}.duration_s: expected a number > 0`)
  }
  for (const k of ['client_timeout_ms', 'max_in_flight', 'drain_s', 'warmup_requests'] as const) {
    if (s[k] !== undefined && !(typeof s[k] === 'number' && (s[k] as number) >= 0)) {
      errors.push(`${path}.${k}: expected a number >= 0`)
    }
  }
  if (s.thresholds !== undefined) {
    if (!isObject(s.thresholds)) errors.push(`${path}.thresholds: expected an object`)
    else errors.push(...checkThresholds(s.thresholds, `${path}.thresholds`))
  }
  if (!isObject(s.parts) || Object.keys(s.parts).length === 0) {
    errors.push(`${path}.parts: expected a non-empty object`)
    return errors
  }
  for (const [pname, p] of Object.entries(s.parts)) {
    errors.push(...checkPart(`${path}.parts.${pname}`, p, s.duration_s))
  }
  return errors
}

function checkPart(path: string, p: unknown, scenarioDuration: unknown): string[] {
  if (!isObject(p)) return [`${path}: expected an object`]
  const errors: string[] = []
  if (!ENDPOINTS.includes(p.endpoint as string)) {
    errors.push(`${path}.endpoint: expected one of ${ENDPOINTS.join(', ')}`)
  }
  if (!EXECUTORS.includes(p.executor as string)) {
    errors.push(`${path}.executor: expected one of ${EXECUTORS.join(', ')}`)
  }
  const hasDuration = isPositive(p.duration_s) || isPositive(scenarioDuration)
  if (p.executor === 'constant-arrival-rate') {
    const n = Number(p.rate !== undefined) + Number(p.rate_x_sustainable !== undefined)
    if (n !== 1) errors.push(`${path}: give exactly one of rate, rate_x_sustainable`)
    for (const k of ['rate', 'rate_x_sustainable'] as const) {
      if (p[k] !== undefined && !isPositive(p[k])) errors.push(`${path}.${k}: expected a number > 0`)
    }
    if (!hasDuration) errors.push(`${path}: no duration_s (here or on the scenario)`)
  } else if (p.executor === 'ramping-arrival-rate') {
    if (p.start_rate !== undefined && !(typeof p.start_rate === 'number' && p.start_rate >= 0)) {
      errors.push(`${path}.start_rate: expected a number >= 0`)
    }
    if (!Array.isArray(p.stages) || p.stages.length === 0) {
      errors.push(`${path}.stages: expected a non-empty array`)
    } else {
      p.stages.forEach((st, i) => {
        if (!isObject(st) || !(typeof st.target === 'number' && st.target >= 0) || !isPositive(st.duration_s)) {
          errors.push(`${path}.stages[${i}]: expected {target >= 0, duration_s > 0}`)
        }
      })
    }
  } else if (p.executor === 'constant-vus') {
    if (!(Number.isInteger(p.vus) && (p.vus as number) > 0)) errors.push(`${path}.vus: expected an integer > 0`)
    if (!hasDuration) errors.push(`${path}: no duration_s (here or on the scenario)`)
  }
  if (p.batch_size !== undefined) {
    if (!(Number.isInteger(p.batch_size) && (p.batch_size as number) >= 1)) {
      errors.push(`${path}.batch_size: expected an integer >= 1`)
    } else if (p.endpoint !== 'classify' && p.batch_size !== 1) {
      errors.push(`${path}.batch_size: only classify takes batches`)
    }
  }
  if (p.server_timeout_ms !== undefined && !isPositive(p.server_timeout_ms)) {
    errors.push(`${path}.server_timeout_ms: expected a number > 0`)
  }
  return errors
}

export interface Overrides {
  sustainable_rps?: number
  /** Replaces the duration of every constant-rate and constant-vus part. */
  duration_s?: number
  /** Multiplies every arrival rate and VU count (VUs rounded up). */
  scale?: number
}

/** One named scenario with concrete numbers; throws on an unknown name or a bound exceeded. */
export function resolveScenario(file: ScenarioFile, name: string, o: Overrides = {}): ResolvedScenario {
  const spec = file.scenarios[name]
  if (!spec) {
    throw new Error(`unknown scenario "${name}" (known: ${Object.keys(file.scenarios).join(', ')})`)
  }
  const sustainable = o.sustainable_rps ?? file.sustainable_rps
  const scale = o.scale ?? 1
  const parts: ResolvedPart[] = Object.entries(spec.parts).map(([pname, p]) => {
    let duration = o.duration_s ?? p.duration_s ?? spec.duration_s ?? 0
    let startRate = 0
    let stages: Stage[] = []
    if (p.executor === 'constant-arrival-rate') {
      const rate = (p.rate ?? (p.rate_x_sustainable ?? 0) * sustainable) * scale
      startRate = rate
      stages = [{ target: rate, duration_s: duration }]
    } else if (p.executor === 'ramping-arrival-rate') {
      startRate = (p.start_rate ?? 0) * scale
      stages = (p.stages ?? []).map((st) => ({ target: st.target * scale, duration_s: st.duration_s }))
      duration = stages.reduce((acc, st) => acc + st.duration_s, 0)
    }
    return {
      name: pname,
      endpoint: p.endpoint,
      executor: p.executor,
      start_rate: startRate,
      stages,
      vus: p.executor === 'constant-vus' ? Math.ceil((p.vus ?? 1) * scale) : 0,
      duration_s: duration,
      batch_size: p.batch_size ?? 1,
      server_timeout_ms: p.server_timeout_ms,
    }
  })
  const resolved: ResolvedScenario = {
    name,
    description: spec.description,
    sustainable_rps: sustainable,
    duration_s: Math.max(...parts.map((p) => p.duration_s)),
    parts,
    client_timeout_ms: spec.client_timeout_ms ?? file.defaults.client_timeout_ms,
    max_in_flight: spec.max_in_flight ?? file.defaults.max_in_flight,
    drain_s: spec.drain_s ?? file.defaults.drain_s,
    warmup_requests: spec.warmup_requests ?? file.defaults.warmup_requests,
    thresholds: { ...file.default_thresholds, ...(spec.thresholds ?? {}) },
  }
  checkBounds(resolved)
  return resolved
}

function checkBounds(s: ResolvedScenario): void {
  if (s.duration_s > LIMITS.max_duration_s) {
    throw new Error(`scenario ${s.name}: duration ${s.duration_s}s exceeds ${LIMITS.max_duration_s}s`)
  }
  let expected = 0
  for (const p of s.parts) {
    const peak = Math.max(p.start_rate, ...p.stages.map((st) => st.target))
    if (peak > LIMITS.max_rate) {
      throw new Error(`scenario ${s.name}.${p.name}: rate ${peak}/s exceeds ${LIMITS.max_rate}/s`)
    }
    if (p.vus > LIMITS.max_vus) {
      throw new Error(`scenario ${s.name}.${p.name}: ${p.vus} VUs exceed ${LIMITS.max_vus}`)
    }
    if (p.batch_size > LIMITS.max_batch_size) {
      throw new Error(`scenario ${s.name}.${p.name}: batch ${p.batch_size} exceeds ${LIMITS.max_batch_size}`)
    }
    expected += expectedArrivals(p.start_rate, p.stages)
  }
  if (expected > LIMITS.max_requests) {
    throw new Error(`scenario ${s.name}: ~${Math.round(expected)} requests exceed ${LIMITS.max_requests}`)
  }
}

/** The integral of a piecewise-linear rate: how many arrivals the stages produce. */
export function expectedArrivals(startRate: number, stages: Stage[]): number {
  let from = startRate
  let total = 0
  for (const st of stages) {
    total += ((from + st.target) / 2) * st.duration_s
    from = st.target
  }
  return total
}
