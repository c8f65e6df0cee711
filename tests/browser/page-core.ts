/**
 * @module
 * Loads the page's pure-logic script block (`<script id="because-core">` in src/page/index.html)
 * into a fresh Node VM context, so its normalisation, highlighting and SSE parsing can be tested
 * without a browser.
 */
import { readFileSync } from 'node:fs'
import { runInNewContext } from 'node:vm'

export const PAGE_PATH = new URL('../../src/page/index.html', import.meta.url)

export interface Range {
  start: number
  end: number
  phrases: string[]
}
export interface SseEvent {
  event: string
  data: string
}
export interface BecauseCore {
  normalize(text: string): string
  normalizeWithMap(text: string): { text: string; starts: number[]; ends: number[] }
  quotedSpans(reasoning: string): { start: number; end: number; phrase: string }[]
  quotedPhrases(reasoning: string): string[]
  highlightRanges(input: string, reasoning: string): Range[]
  createSseParser(onEvent: (e: SseEvent) => void): { push(chunk: string): void; end(): boolean }
  formatPercent(p: number): string
}

export function loadPageCore(): BecauseCore {
  const html = readFileSync(PAGE_PATH, 'utf8')
  const match = /<script id="because-core">([\s\S]*?)<\/script>/.exec(html)
  if (!match) throw new Error('src/page/index.html has no <script id="because-core"> block')
  const context: { BecauseCore?: BecauseCore } = {}
  runInNewContext(`${match[1]}\nthis.BecauseCore = BecauseCore;`, context)
  if (!context.BecauseCore) throw new Error('the because-core block did not define BecauseCore')
  return context.BecauseCore
}
