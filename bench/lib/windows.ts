/**
 * @module
 * The windows section of `npm run bench` (issue 14; docs/long-texts.md): the service on texts it
 * reads in exactly N windows. Each text is the longest run of the bench's texts (in file order,
 * joined as bench/long-texts.ts joins rows) that the service's own encoder and window planner read
 * in N windows; per N, a closed loop of `POST /classify` with `truncate: "windows"`, every answer's
 * `usage.windows` checked against N. The engine only: the peer (transformers.js) has no windows mode.
 */
import { planWindows } from '../../src/http/long-text/plan.js'
import type { PromptEncoder } from '../../src/model/tokenizer.js'
import { joinRows } from '../long-text-data.js'
import { classify, closedLoop } from './client.js'
import type { LoopResult, Sample, Send } from './client.js'
import { fmt, markdownTable, summarize } from './stats.js'
import type { Summary } from './stats.js'

/** How many windows the service reads a text in with `truncate: "windows"`. */
export type CountWindows = (text: string) => number

/**
 * The service's count (src/http/long-text/prepare.ts): 1 for a text within `maxTokens` text tokens,
 * else the number of windows `planWindows` cuts it into. Token counts are cached by string, as the
 * builder asks again for the same sentences of a growing text.
 */
export function windowCounter(encoder: Pick<PromptEncoder, 'encode'>, maxTokens: number): CountWindows {
  const cache = new Map<string, number>()
  const tokens = (s: string) => {
    let n = cache.get(s)
    if (n === undefined) cache.set(s, (n = encoder.encode(s).numTextTokens))
    return n
  }
  return (text) => (tokens(text) <= maxTokens ? 1 : planWindows(text, maxTokens, (a, b) => tokens(text.slice(a, b))).length)
}

/**
 * From `rows[at]`: the longest run of rows whose joined text is read in `n` windows, and where the
 * next text starts. `text` is null when the rows ran out first, or when one row took the count
 * from below `n` to above it (that row is skipped).
 */
function nextText(rows: readonly string[], at: number, n: number, count: CountWindows): { text: string | null; next: number } {
  let end = at
  let windows = 0
  while (end < rows.length) {
    const w = count(joinRows(rows.slice(at, end + 1)))
    if (w > n) break
    windows = w
    end++
  }
  return windows === n ? { text: joinRows(rows.slice(at, end)), next: end } : { text: null, next: end + 1 }
}

/** `count` texts of exactly `n` windows from consecutive `rows`, each row used once; throws when the rows run out. */
export function buildWindowTexts(rows: readonly string[], n: number, count: number, countWindows: CountWindows): string[] {
  const texts: string[] = []
  let at = 0
  while (texts.length < count && at < rows.length) {
    const { text, next } = nextText(rows, at, n, countWindows)
    if (text !== null) texts.push(text)
    at = next
  }
  if (texts.length < count) throw new Error(`windows: only ${texts.length} of ${count} texts of ${n} windows from the ${rows.length} texts (--texts, or lower --windows)`)
  return texts
}

/** The texts of every N, in `ns` order. */
export function windowTextsByN(rows: readonly string[], ns: readonly number[], count: number, countWindows: CountWindows): Map<number, string[]> {
  return new Map(ns.map((n) => [n, buildWindowTexts(rows, n, count, countWindows)]))
}

export interface WindowsPlan {
  /** Requests in flight (closed loop). */
  concurrency: number
  /** Distinct texts per N, each sent once as the warm-up. */
  texts: number
  /** Target length of a measured N; 0: the minimum of 2C requests (--quick). */
  seconds: number
}

export function windowsPlan(quick: boolean, seconds: number): WindowsPlan {
  return { concurrency: 8, texts: quick ? 8 : 16, seconds: quick ? 0 : Math.min(6, seconds) }
}

/** Measured requests of an N: about `plan.seconds` at the warm-up's rate, at least 2 rounds of the concurrency. */
export function windowsRequests(warmupRate: number, plan: WindowsPlan): number {
  const byTime = Number.isFinite(warmupRate) ? Math.ceil(warmupRate * plan.seconds) : 0
  return Math.max(byTime, 2 * plan.concurrency)
}

export interface WindowsResult {
  /** Windows per text (every answer's `usage.windows`). */
  n: number
  concurrency: number
  /** Distinct texts, each sent once as the warm-up. */
  texts: number
  requests: number
  errors: number
  firstError?: string
  elapsedS: number
  textsPerS: number
  windowsPerS: number
  e2e: Summary
  /** Means per text, over all its windows. */
  meanInputTokens: number
  meanReasoningTokens: number
  /** The first (smallest) N's texts/s over this N's: what a text costs relative to one of that N. */
  costPerText: number
  /** `costPerText` x first N / N: 1 when the cost grows linearly in N, below 1 when less. */
  costPerWindow: number
}

/** Throws unless every answered sample was read in `n` windows (and, with `allOk`, every sample was answered). */
export function checkWindows(samples: readonly Sample[], n: number, what: string, allOk: boolean): void {
  const failed = samples.find((s) => !s.ok)
  if (allOk && failed) throw new Error(`windows N=${n}: ${what} failed: ${failed.error}`)
  const wrong = samples.find((s) => s.ok && s.windows !== n)
  if (wrong) {
    throw new Error(`windows N=${n}: the service read text ${wrong.textIndex} in ${wrong.windows} windows, not ${n} (${what}): its count and the bench's differ`)
  }
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length

/** An N's figures from its measured loop (costs: `withCosts`). */
export function windowsResult(n: number, concurrency: number, texts: number, run: LoopResult): Omit<WindowsResult, 'costPerText' | 'costPerWindow'> {
  const ok = run.samples.filter((s) => s.ok)
  const errors = run.samples.filter((s) => !s.ok)
  const elapsedS = run.elapsedMs / 1000
  return {
    n,
    concurrency,
    texts,
    requests: run.samples.length,
    errors: errors.length,
    ...(errors[0]?.error ? { firstError: errors[0].error } : {}),
    elapsedS,
    textsPerS: ok.length / elapsedS,
    windowsPerS: ok.reduce((a, s) => a + s.windows!, 0) / elapsedS,
    e2e: summarize(ok.map((s) => s.totalMs)),
    meanInputTokens: mean(ok.map((s) => s.inputTokens!)),
    meanReasoningTokens: mean(ok.map((s) => s.reasoningTokens!)),
  }
}

/** Adds each N's cost relative to the first N's. */
export function withCosts(rs: readonly Omit<WindowsResult, 'costPerText' | 'costPerWindow'>[]): WindowsResult[] {
  const first = rs[0]
  return rs.map((r) => {
    const costPerText = first ? first.textsPerS / r.textsPerS : Number.NaN
    return { ...r, costPerText, costPerWindow: first ? (costPerText * first.n) / r.n : Number.NaN }
  })
}

const send: Send = (base, agent, text, index, t0) => classify(base, agent, text, index, t0, { truncate: 'windows' })

async function measureN(base: string, n: number, texts: readonly string[], plan: WindowsPlan): Promise<Omit<WindowsResult, 'costPerText' | 'costPerWindow'>> {
  const concurrency = plan.concurrency
  const warm = await closedLoop(base, texts, { concurrency, requests: texts.length, send })
  checkWindows(warm.samples, n, 'warm-up', true)
  const requests = windowsRequests(texts.length / (warm.elapsedMs / 1000), plan)
  const run = await closedLoop(base, texts, { concurrency, requests, send })
  checkWindows(run.samples, n, 'measured', false)
  return windowsResult(n, concurrency, texts.length, run)
}

/** Each N in turn against the service at `base`. */
export async function measureWindows(base: string, textsByN: ReadonlyMap<number, readonly string[]>, plan: WindowsPlan, log: (msg: string) => void): Promise<WindowsResult[]> {
  const out: Omit<WindowsResult, 'costPerText' | 'costPerWindow'>[] = []
  for (const [n, texts] of textsByN) {
    const r = await measureN(base, n, texts, plan)
    out.push(r)
    log(
      `engine windows N=${n}: ${r.requests} requests in ${r.elapsedS.toFixed(1)} s: ${fmt(r.textsPerS)} texts/s, ${fmt(r.windowsPerS)} windows/s, ` +
        `e2e p50 ${fmt(r.e2e.p50)} p99 ${fmt(r.e2e.p99)} ms, ${r.errors} errors${r.firstError ? ` (first: ${r.firstError})` : ''}`,
    )
  }
  return withCosts(out)
}

/** The section's table. */
export function windowsTable(rs: readonly WindowsResult[]): string {
  const header = ['N', 'texts', 'requests', 'seconds', 'texts/s', 'windows/s', 'e2e p50 ms', 'e2e p99 ms', 'errors', 'input tok/text', 'reasoning tok/text', `cost per text vs N=${rs[0]?.n ?? 1}`, 'per window']
  const row = (r: WindowsResult) => [
    String(r.n),
    String(r.texts),
    String(r.requests),
    r.elapsedS.toFixed(1),
    fmt(r.textsPerS),
    fmt(r.windowsPerS),
    fmt(r.e2e.p50),
    fmt(r.e2e.p99),
    String(r.errors),
    fmt(r.meanInputTokens),
    fmt(r.meanReasoningTokens),
    `${fmt(r.costPerText)}x`,
    fmt(r.costPerWindow),
  ]
  return markdownTable(header, rs.map(row))
}

/**
 * The report's "Long texts (windows)" section: the table, or why it was not measured (`skipped`).
 */
export function windowsSection(rs: readonly WindowsResult[] | undefined, skipped: string): string[] {
  const c = rs?.[0]?.concurrency ?? 8
  const lines = ['## Long texts (windows)', '']
  lines.push(
    `The engine alone: the peer (transformers.js) has no windows mode. Texts the service reads in exactly N windows (every answer's \`usage.windows\` is checked), sent to \`POST /classify\` with \`truncate: "windows"\` in a closed loop at concurrency ${c}, so ${c}N windows in flight. ` +
      '*cost per text*: the first N\'s texts/s over this N\'s, what a text costs the service relative to one of the first N; it grows about linearly in N when a window costs the same however many share a text. *per window*: cost per text x first N / N (1: linear in N; below 1: a window costs less when more of them share a text).',
  )
  lines.push('')
  lines.push(rs && rs.length > 0 ? windowsTable(rs) : `- Not measured: ${skipped}.`)
  lines.push('')
  return lines
}
