/**
 * Starts the real service in this process on a free port, with the real model packages, for the
 * tests that talk to it over HTTP.
 */
import { pino } from 'pino'
import type { Logger } from 'pino'
import { parseConfig } from '../../src/config.js'
import type { Config } from '../../src/config.js'
import { startService } from '../../src/server.js'
import type { RunningService, StartOptions } from '../../src/server.js'

export const QRA = 'models/emotion-qra-natural'
export const QA = 'models/emotion-qa-natural'
export const LABELS = ['sadness', 'joy', 'love', 'anger', 'fear', 'surprise'] as const

export async function startTestService(overrides: Partial<Config> = {}, logger?: Logger, opts: StartOptions = {}): Promise<RunningService> {
  const config = { ...parseConfig([], {}), port: 0, threads: 2, device: 'cpu' as const, ...overrides }
  return startService(config, logger ?? pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), opts)
}

/** A JSON logger at `level` whose every line lands in `lines` (to check what logs hold). */
export function captureLogger(level = 'trace'): { logger: Logger; lines: string[] } {
  const lines: string[] = []
  const logger = pino({ level }, { write: (line: string) => void lines.push(line) })
  return { logger, lines }
}

/** The value of one sample of GET /metrics (labels as written, e.g. `{model="m"}`), or undefined. */
export function metricValue(text: string, name: string, labels = ''): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const sp = line.lastIndexOf(' ')
    const key = line.slice(0, sp)
    if (key === name + labels) return Number(line.slice(sp + 1))
  }
  return undefined
}

export async function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  init: RequestInit = {},
): Promise<Response> {
  return fetch(url, {
    ...init,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}

export interface SseEvent {
  event: string
  data: unknown
}

/** Reads a whole SSE response into events (`data` parsed as JSON). */
export async function readSse(res: Response): Promise<SseEvent[]> {
  const text = await res.text()
  return parseSse(text)
}

/** Reads a stream until its first `reasoning` event has arrived; the body stays open. Returns what was read. */
export async function readUntilFirstReasoning(res: Response): Promise<string> {
  const reader = res.body!.getReader()
  let seen = ''
  while (!seen.includes('event: reasoning')) {
    const { value, done } = await reader.read()
    if (done) break
    seen += new TextDecoder().decode(value)
  }
  return seen
}

export function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = []
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue
    let event = 'message'
    const data: string[] = []
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim()
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
    }
    events.push({ event, data: JSON.parse(data.join('\n')) })
  }
  return events
}

export interface Result {
  label: string
  scores: Record<string, number>
  reasoning: string
  usage: { input_tokens: number; reasoning_tokens: number }
}

/** One of `labels` (the embedded models' by default), scores for exactly those in that order, summing to 1, label their argmax. */
export function expectValidResult(r: Result, labels: readonly string[] = LABELS): void {
  if (!labels.includes(r.label)) throw new Error(`bad label ${r.label}`)
  const keys = Object.keys(r.scores)
  if (keys.join() !== labels.join()) throw new Error(`bad score keys ${keys.join()}`)
  const sum = Object.values(r.scores).reduce((a, b) => a + b, 0)
  if (Math.abs(sum - 1) > 1e-9) throw new Error(`scores sum to ${sum}`)
  const best = labels.reduce((a, b) => (r.scores[b]! > r.scores[a]! ? b : a))
  if (r.scores[best] !== r.scores[r.label]) throw new Error(`label ${r.label} is not the argmax ${best}`)
}
