/**
 * @module
 * Turns raw outcomes into the result document (counts, throughput, percentiles, RSS, thresholds)
 * and a plain-text summary. Everything here is a pure function of its inputs.
 */

import type { Outcome } from './client.js'
import type { DriveResult } from './driver.js'
import type { ResolvedScenario, Thresholds } from './scenarios.js'
import type { ExitInfo, RssSample } from './server.js'
import { histogram, LATENCY_BOUNDS_MS, perSecond, round1, summarize, type Bucket, type Summary } from './stats.js'

export type StatusBucket = '2xx' | '429' | '503' | '504' | '4xx' | '5xx' | 'none' | 'other'

export function statusBucket(status: number): StatusBucket {
  if (status === 0) return 'none'
  if (status >= 200 && status < 300) return '2xx'
  if (status === 429 || status === 503 || status === 504) return String(status) as StatusBucket
  if (status >= 400 && status < 500) return '4xx'
  if (status >= 500 && status < 600) return '5xx'
  return 'other'
}

export interface Counts {
  sent: number
  /** Arrivals the client did not send (max_in_flight reached). */
  dropped: number
  ok: number
  rejected: number
  failed: number
  unfinished: number
  texts_ok: number
  status: Record<StatusBucket, number>
  reasons: Record<string, number>
  contract_violations: Record<string, number>
}

export function countOutcomes(outcomes: readonly Outcome[], dropped = 0): Counts {
  const c: Counts = {
    sent: outcomes.length,
    dropped,
    ok: 0,
    rejected: 0,
    failed: 0,
    unfinished: 0,
    texts_ok: 0,
    status: { '2xx': 0, '429': 0, '503': 0, '504': 0, '4xx': 0, '5xx': 0, none: 0, other: 0 },
    reasons: {},
    contract_violations: {},
  }
  for (const o of outcomes) {
    c[o.cls]++
    if (o.cls === 'ok') c.texts_ok += o.texts
    c.status[statusBucket(o.status)]++
    if (o.reason) c.reasons[o.reason] = (c.reasons[o.reason] ?? 0) + 1
    if (o.reason && o.detail) c.reasons[`${o.reason}:${o.detail}`] = (c.reasons[`${o.reason}:${o.detail}`] ?? 0) + 1
    for (const v of o.contract_violations ?? []) {
      c.contract_violations[v] = (c.contract_violations[v] ?? 0) + 1
    }
  }
  return c
}

export interface Latencies {
  /** ok requests only, send to last byte. */
  classify_ms: Summary
  explain_ms: Summary
  explain_ttft_ms: Summary
  explain_label_ms: Summary
  /** As the server reported them in SSE done.timings. */
  server_queue_ms: Summary
  server_ttft_ms: Summary
  /** 429/503 answers: how fast the server says no. */
  rejected_ms: Summary
}

export function latencies(outcomes: readonly Outcome[]): Latencies {
  const ok = outcomes.filter((o) => o.cls === 'ok')
  const dur = (o: Outcome) => o.end_ms - o.start_ms
  const pick = (f: (o: Outcome) => number | undefined) =>
    summarize(ok.map(f).filter((v): v is number => v !== undefined))
  return {
    classify_ms: summarize(ok.filter((o) => o.endpoint === 'classify').map(dur)),
    explain_ms: summarize(ok.filter((o) => o.endpoint === 'explain').map(dur)),
    explain_ttft_ms: pick((o) => o.ttft_ms),
    explain_label_ms: pick((o) => o.label_ms),
    server_queue_ms: pick((o) => o.server_queue_ms),
    server_ttft_ms: pick((o) => o.server_ttft_ms),
    rejected_ms: summarize(outcomes.filter((o) => o.cls === 'rejected').map(dur)),
  }
}

export interface RssReport {
  samples: RssSample[]
  start_mb: number
  /** After the first tenth of the load: the baseline for growth (warm-up allocations excluded). */
  baseline_mb: number
  /** The last sample taken while load was still arriving. */
  end_mb: number
  max_mb: number
  /** end / baseline - 1. */
  growth: number
}

/**
 * RSS figures relative to the load phase; `runStartMs` and `runEndMs` are in the samples' clock.
 * Undefined without samples.
 */
export function rssReport(samples: RssSample[], runStartMs: number, runEndMs: number): RssReport | undefined {
  if (samples.length === 0) return undefined
  const during = samples.filter((s) => s.t_ms >= runStartMs && s.t_ms <= runEndMs)
  const window = during.length > 0 ? during : samples
  const tenth = runStartMs + (runEndMs - runStartMs) * 0.1
  const baseline = window.find((s) => s.t_ms >= tenth) ?? window[0]!
  const end = window[window.length - 1]!
  return {
    samples,
    start_mb: window[0]!.rss_mb,
    baseline_mb: baseline.rss_mb,
    end_mb: end.rss_mb,
    max_mb: Math.max(...samples.map((s) => s.rss_mb)),
    growth: Math.round((end.rss_mb / baseline.rss_mb - 1) * 10000) / 10000,
  }
}

export interface ThresholdResult {
  key: keyof Thresholds
  limit: number
  /** null when there was nothing to measure (no explain traffic, no RSS samples). */
  value: number | null
  pass: boolean | null
}

/** The measured value behind every threshold key. */
export function thresholdValues(
  counts: Counts,
  lat: Latencies,
  rss: RssReport | undefined,
): Record<keyof Thresholds, number | null> {
  const q = (s: Summary, k: 'p95' | 'p99') => (s.count > 0 ? s[k] : null)
  const sent = counts.sent
  return {
    classify_p95_ms: q(lat.classify_ms, 'p95'),
    classify_p99_ms: q(lat.classify_ms, 'p99'),
    explain_p95_ms: q(lat.explain_ms, 'p95'),
    explain_ttft_p95_ms: q(lat.explain_ttft_ms, 'p95'),
    explain_ttft_p99_ms: q(lat.explain_ttft_ms, 'p99'),
    error_rate_max: sent > 0 ? (counts.failed + counts.unfinished) / sent : null,
    rejected_rate_max: sent > 0 ? counts.rejected / sent : null,
    unfinished_max: counts.unfinished,
    rss_max_mb: rss ? rss.max_mb : null,
    rss_growth_max: rss ? rss.growth : null,
  }
}

/** Every enabled threshold, in file order; a value must be <= its limit to pass. */
export function evaluateThresholds(
  t: Thresholds,
  values: Record<keyof Thresholds, number | null>,
): ThresholdResult[] {
  const out: ThresholdResult[] = []
  for (const [key, limit] of Object.entries(t) as [keyof Thresholds, number | null][]) {
    if (limit === null) continue
    const value = values[key]
    out.push({ key, limit, value, pass: value === null ? null : value <= limit })
  }
  return out
}

export interface ResultDoc {
  scenario: ResolvedScenario
  target: Record<string, unknown>
  started_at: string
  load_s: number
  /** After the last arrival, until the last request settled or was abandoned. */
  drain_s: number
  total_s: number
  counts: Counts
  throughput: { sent_rps: number; ok_rps: number; texts_ok_per_s: number }
  per_second: { sent: number[]; ok: number[]; rejected: number[] }
  latency_ms: Latencies
  histograms_ms: { classify: Bucket[]; explain: Bucket[]; explain_ttft: Bucket[] }
  by_part: Record<string, { counts: Counts; latency_ms: Summary; ttft_ms: Summary }>
  rss?: RssReport
  server_exit?: ExitInfo
  /** True unless a server the runner started exited non-zero or had to be killed. */
  server_exit_ok: boolean
  runner: { lag_ms: Summary; in_flight_peak: number }
  thresholds: ThresholdResult[]
  pass: boolean
}

export function buildResult(
  scenario: ResolvedScenario,
  run: DriveResult,
  target: Record<string, unknown>,
  rss?: RssReport,
  serverExit?: ExitInfo,
): ResultDoc {
  const outs = run.outcomes
  const totalDropped = Object.values(run.dropped).reduce((a, b) => a + b, 0)
  const counts = countOutcomes(outs, totalDropped)
  const lat = latencies(outs)
  // Rates are per second of the scheduled load (closed-loop parts may end a little later).
  const loadS = Math.max(scenario.duration_s, run.arrivals_end_ms / 1000)
  const ok = outs.filter((o) => o.cls === 'ok')
  const dur = (o: Outcome) => o.end_ms - o.start_ms
  const byPart: ResultDoc['by_part'] = {}
  for (const p of scenario.parts) {
    const mine = outs.filter((o) => o.part === p.name)
    byPart[p.name] = {
      counts: countOutcomes(mine, run.dropped[p.name] ?? 0),
      latency_ms: summarize(mine.filter((o) => o.cls === 'ok').map(dur)),
      ttft_ms: summarize(mine.flatMap((o) => (o.cls === 'ok' && o.ttft_ms !== undefined ? [o.ttft_ms] : []))),
    }
  }
  const thresholds = evaluateThresholds(scenario.thresholds, thresholdValues(counts, lat, rss))
  // A failure is a measured value over its limit; an unmeasurable threshold does not fail a run.
  // A server the runner started must also shut down cleanly: exit 0 on SIGTERM, within the grace.
  const serverExitOk = serverExit === undefined || (serverExit.code === 0 && !serverExit.killed)
  const pass = thresholds.every((t) => t.pass !== false) && serverExitOk
  return {
    scenario,
    target,
    started_at: run.started_at,
    load_s: round1(loadS),
    drain_s: round1(Math.max(0, run.end_ms - run.arrivals_end_ms) / 1000),
    total_s: round1(run.end_ms / 1000),
    counts,
    throughput: {
      sent_rps: round1(counts.sent / loadS),
      ok_rps: round1(counts.ok / loadS),
      texts_ok_per_s: round1(counts.texts_ok / loadS),
    },
    per_second: {
      sent: perSecond(outs.map((o) => o.start_ms), run.end_ms / 1000),
      ok: perSecond(ok.map((o) => o.end_ms), run.end_ms / 1000),
      rejected: perSecond(outs.filter((o) => o.cls === 'rejected').map((o) => o.end_ms), run.end_ms / 1000),
    },
    latency_ms: lat,
    histograms_ms: {
      classify: histogram(ok.filter((o) => o.endpoint === 'classify').map(dur), LATENCY_BOUNDS_MS),
      explain: histogram(ok.filter((o) => o.endpoint === 'explain').map(dur), LATENCY_BOUNDS_MS),
      explain_ttft: histogram(ok.flatMap((o) => (o.ttft_ms !== undefined ? [o.ttft_ms] : [])), LATENCY_BOUNDS_MS),
    },
    by_part: byPart,
    rss,
    server_exit: serverExit,
    server_exit_ok: serverExitOk,
    runner: { lag_ms: summarize(run.lag_ms), in_flight_peak: run.in_flight_peak },
    thresholds,
    pass,
  }
}

const pad = (s: string | number, n: number) => String(s).padStart(n)

function row(name: string, s: Summary): string {
  return `  ${name.padEnd(18)}${pad(s.count, 7)}${pad(s.p50, 9)}${pad(s.p90, 9)}${pad(s.p95, 9)}${pad(s.p99, 9)}${pad(s.max, 9)}`
}

export function formatResult(r: ResultDoc): string {
  const c = r.counts
  const lines: string[] = []
  lines.push(`because loadtest: ${r.scenario.name}, ${r.load_s} s of load (+${r.drain_s} s drain) against ${String(r.target.base_url)}`)
  lines.push(`  ${r.scenario.description}`)
  lines.push(
    `  sent ${c.sent} (${r.throughput.sent_rps}/s)  ok ${c.ok}  rejected ${c.rejected}  failed ${c.failed}  unfinished ${c.unfinished}  dropped by client ${c.dropped}`,
  )
  lines.push(
    '  status  ' +
      (['2xx', '429', '503', '504', '4xx', '5xx', 'none', 'other'] as const)
        .map((k) => [k, c.status[k]] as const)
        .filter(([k, v]) => v > 0 || ['2xx', '429', '503', '5xx'].includes(k))
        .map(([k, v]) => `${k} ${v}`)
        .join('  '),
  )
  if (Object.keys(c.reasons).length > 0) {
    lines.push('  reasons ' + Object.entries(c.reasons).map(([k, v]) => `${k} ${v}`).join(', '))
  }
  if (Object.keys(c.contract_violations).length > 0) {
    lines.push('  contract ' + Object.entries(c.contract_violations).map(([k, v]) => `${k} ${v}`).join(', '))
  }
  lines.push(`  throughput ${r.throughput.ok_rps} ok req/s, ${r.throughput.texts_ok_per_s} texts/s`)
  lines.push(`  ${'ms'.padEnd(18)}${pad('count', 7)}${pad('p50', 9)}${pad('p90', 9)}${pad('p95', 9)}${pad('p99', 9)}${pad('max', 9)}`)
  const L = r.latency_ms
  if (L.classify_ms.count > 0) lines.push(row('classify', L.classify_ms))
  if (L.explain_ms.count > 0) {
    lines.push(row('explain (total)', L.explain_ms))
    lines.push(row('explain ttft', L.explain_ttft_ms))
  }
  if (L.server_queue_ms.count > 0) lines.push(row('server queue', L.server_queue_ms))
  if (L.server_ttft_ms.count > 0) lines.push(row('server ttft', L.server_ttft_ms))
  if (L.rejected_ms.count > 0) lines.push(row('rejections', L.rejected_ms))
  lines.push(row('runner lag', r.runner.lag_ms) + `   (in flight peak ${r.runner.in_flight_peak})`)
  if (r.rss) {
    const g = r.rss.growth * 100
    lines.push(
      `  rss MiB  start ${r.rss.start_mb}  after 10% ${r.rss.baseline_mb}  end ${r.rss.end_mb}  max ${r.rss.max_mb}  growth ${g >= 0 ? '+' : ''}${g.toFixed(1)}%`,
    )
  }
  const server = serverCounters(r.target.metrics_after)
  if (server) lines.push(`  server /metrics  ${server}`)
  if (r.server_exit) {
    const e = r.server_exit
    lines.push(
      `  server exit: ${r.server_exit_ok ? 'ok' : 'FAIL'}, code ${e.code} signal ${e.signal}${e.shutdown_ms !== null ? `, ${e.shutdown_ms} ms after SIGTERM` : ''}${e.killed ? ' (KILLED after grace period)' : ''}`,
    )
  }
  lines.push('  thresholds')
  for (const t of r.thresholds) {
    const verdict = t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'FAIL'
    const v = t.value === null ? '-' : round4(t.value)
    lines.push(`    ${verdict} ${t.key.padEnd(22)} ${v} <= ${t.limit}`)
  }
  lines.push(`  result: ${r.pass ? 'PASS' : 'FAIL'}`)
  return lines.join('\n')
}

function round4(x: number): number {
  return Math.round(x * 10000) / 10000
}

/**
 * One line from the server's own counters after the load (rejections by reason, cancellations,
 * worker restarts), or undefined when /metrics was not scraped.
 */
export function serverCounters(lines: unknown): string | undefined {
  if (!Array.isArray(lines)) return undefined
  const parts: string[] = []
  for (const line of lines as string[]) {
    const m = /^because_(rejections_total\{reason="([^"]+)"\}|cancellations_total\{[^}]*\}|worker_restarts_total\{[^}]*\}) (\S+)$/.exec(line)
    if (!m) continue
    const name = m[2] !== undefined ? `rejected ${m[2]}` : m[1]!.split('{')[0]!.replace('_total', '')
    parts.push(`${name} ${Number(m[3])}`)
  }
  return parts.length > 0 ? parts.join('  ') : undefined
}
