/**
 * Every `truncate` mode reads what training/'s `evaluate --truncate` reads of a long text, and
 * answers the same: label, reasoning and token counts, scores to 1e-4, on long texts made of
 * validation rows (and of the bench's builder) plus texts that reach the window planner's corners.
 * `start` (evaluate's default) is its first max_input_tokens text tokens between the template's
 * own, `end` its last; evaluate counts the tokens before the cut, the service splits them into read
 * and dropped. `windows`: the same windows (training/because_train/long_text.py is a port of the
 * planner, held to it here on random texts too), the same deciding window and aggregate.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildLongTexts, readRows, seeded } from '../../bench/long-text-data.js'
import { planWindows, toCodePoints } from '../../src/http/long-text/plan.js'
import type { RunningService } from '../../src/server.js'
import { required } from '../support/required.js'
import { LABELS, QRA, post, startTestService } from '../support/service.js'

const run = promisify(execFile)
const PYTHON = required('Python environment', 'training/.venv/bin/python')
const env = { ...process.env, PYTHONPATH: 'training' }

interface Row {
  text: string
  /** An index into the labels, a label name, or null (evaluate skips such a row). */
  label: number | string | null
}

interface Prediction {
  text: string
  pred: string
  reasoning: string
  scores: Record<string, number>
  input_tokens: number
  reasoning_tokens: number
  input_tokens_dropped: number
  windows: number
  reasoning_window?: { index: number; start: number; end: number }
}

interface Answer {
  label: string
  reasoning: string
  scores: Record<string, number>
  usage: { input_tokens: number; reasoning_tokens: number; input_tokens_dropped: number; windows: number }
  reasoning_window?: { index: number; start: number; end: number }
}

/** 8 texts of 12 rows each (GoEmotions and tweets alternately), all over 128 tokens. */
function longRows(): Row[] {
  const read = (path: string) =>
    readFileSync(required('shared data', path), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Row)
      .filter((r) => r.label !== null)
  const sources = [read('../shared/data/goemotions/validation.jsonl'), read('../shared/data/emotion/validation.jsonl')]
  return Array.from({ length: 8 }, (_, i) => {
    const rows = sources[i % 2]!.slice(12 * i, 12 * i + 12)
    return { text: rows.map((r) => r.text).join(' '), label: rows[0]!.label }
  })
}

/**
 * Texts that reach the planner's corners: sentences ended by white space that only JavaScript's
 * `\s` knows (U+FEFF; U+0085, space to Python only, is a control character the service refuses, so
 * only the planners' own comparison below has it) and by line separators; a word longer than a
 * window (an emoji run, a pasted hash), cut between characters.
 */
function cornerRows(): Row[] {
  const sentences = ['I miss her so much.', '“Why did you go?”', 'It hurts…', "I can't sleep!", 'Nobody (not even me) saw it coming.']
  const gaps = [' ', '\u00a0', '\ufeff', '\u2028', '\u3000', '\n', '\r\n\r\n', '\t']
  const random = seeded(3)
  const hash = Array.from({ length: 900 }, () => '0123456789abcdef'[Math.floor(random() * 16)]).join('')
  return [
    { text: Array.from({ length: 40 }, (_, i) => sentences[i % 5] + gaps[i % 8]).join(''), label: 'sadness' },
    { text: `I am so angry ${'😡'.repeat(70)} and I will not calm down! They lied to me again.`, label: 'anger' },
    { text: `Look at this: ${hash} I was so scared when I saw it.`, label: 'fear' },
  ]
}

/** Runs training/'s evaluate on `rows` (`truncate` unless its default); its predictions, in order. */
async function evaluate(dir: string, name: string, rows: readonly Row[], truncate?: string): Promise<Prediction[]> {
  const data = join(dir, `${name}.jsonl`)
  const out = join(dir, `${name}-predictions.jsonl`)
  writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n')
  const args = ['-m', 'because_train', 'evaluate', '--model', QRA, '--data', data, '--predictions-out', out, '--threads', '1']
  await run(PYTHON, [...args, ...(truncate ? ['--truncate', truncate] : [])], { env })
  return readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Prediction)
}

describe('truncate and training/ evaluate --truncate', () => {
  let svc: RunningService
  const dir = mkdtempSync(join(tmpdir(), 'because-truncate-'))
  beforeAll(async () => {
    svc = await startTestService({ models: [QRA] })
  })
  afterAll(async () => {
    await svc?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('read the same first tokens of a long text and answer the same (start, evaluate\'s default)', async () => {
    const rows = longRows()
    const theirs = await evaluate(dir, 'start', rows)
    const res = await post(`${svc.url}/classify`, { texts: rows.map((r) => r.text), truncate: 'start' })
    expect(res.status).toBe(200)
    const ours = ((await res.json()) as { results: Answer[] }).results
    theirs.forEach((t, i) => {
      const o = ours[i]!
      expect(t.input_tokens, `row ${i} is long`).toBeGreaterThan(128)
      expect(o.usage.input_tokens + o.usage.input_tokens_dropped, `row ${i}`).toBe(t.input_tokens)
      expect(o.usage.input_tokens).toBe(128)
      expect(o.usage.input_tokens_dropped, `row ${i}`).toBe(t.input_tokens_dropped)
      expect(t.windows).toBe(1)
      expect(o.usage.reasoning_tokens, `row ${i}`).toBe(t.reasoning_tokens)
      expect(o.label, `row ${i}`).toBe(t.pred)
      expect(o.reasoning, `row ${i}`).toBe(t.reasoning)
      for (const [k, v] of Object.entries(t.scores)) expect(Math.abs(o.scores[k]! - v), `row ${i} ${k}`).toBeLessThan(1e-4)
    })
  }, 120_000)

  /** The rows evaluate predicts and the service answers, compared; the answers, for more checks. */
  async function compare(name: string, rows: readonly Row[], truncate: 'start' | 'end' | 'windows'): Promise<{ theirs: Prediction[]; ours: Answer[] }> {
    const evaluated = evaluate(dir, name, rows, truncate)
    const res = await post(`${svc.url}/classify`, { texts: rows.map((r) => r.text), truncate })
    expect(res.status, await res.clone().text()).toBe(200)
    const ours = ((await res.json()) as { results: Answer[] }).results
    const theirs = await evaluated
    expect(theirs).toHaveLength(rows.length)
    theirs.forEach((t, i) => {
      const o = ours[i]!
      const row = `${truncate} row ${i}`
      expect(t.text, row).toBe(rows[i]!.text)
      expect(t.input_tokens, `${row} is long`).toBeGreaterThan(128)
      expect(o.label, row).toBe(t.pred)
      expect(o.reasoning, row).toBe(t.reasoning)
      for (const [k, v] of Object.entries(t.scores)) expect(Math.abs(o.scores[k]! - v), `${row} ${k}`).toBeLessThan(1e-4)
      expect(o.usage.reasoning_tokens, row).toBe(t.reasoning_tokens)
      expect(o.usage.input_tokens_dropped, row).toBe(t.input_tokens_dropped)
      expect(o.usage.windows, row).toBe(t.windows)
      expect(o.reasoning_window, row).toEqual(t.reasoning_window)
    })
    return { theirs, ours }
  }

  it('read the same last tokens of a long text with end and answer the same', async () => {
    const { theirs, ours } = await compare('end', [...longRows(), ...cornerRows()], 'end')
    theirs.forEach((t, i) => {
      expect(ours[i]!.usage.input_tokens, `row ${i}`).toBe(128)
      expect(t.input_tokens_dropped, `row ${i}`).toBe(t.input_tokens - 128)
      expect(t.windows).toBe(1)
    })
  }, 120_000)

  it('read a long text in the same windows and aggregate them the same', async () => {
    const bench = (path: string) => buildLongTexts(readRows(required('shared data', path), LABELS), { count: 3, minChars: 1200, maxRows: 30, seed: 1 })
    const rows = [
      ...longRows(),
      ...[...bench('../shared/data/goemotions/validation.jsonl'), ...bench('../shared/data/emotion/validation.jsonl')].map((t) => ({ text: t.text, label: t.label })),
      ...cornerRows(),
    ]
    const { theirs } = await compare('windows', rows, 'windows')
    theirs.forEach((t, i) => {
      expect(t.windows, `row ${i}`).toBeGreaterThan(1)
      expect(t.input_tokens_dropped).toBe(0)
    })
  }, 180_000)
})

describe('the window planner and training/ long_text.py', () => {
  it('cut random texts at the same places (JavaScript\'s white space, surrogate pairs, words over a window)', async () => {
    const pieces = ['word', 'longerword', 'a', '.', '!', '?', '…', '"', '”', ')', ' ', '\n', '\r\n', '\t', '\u00a0', '\ufeff', '\u0085', '\u001c', '\u2028', '😊', 'é', 'x'.repeat(9)]
    const random = seeded(11)
    const cases = Array.from({ length: 400 }, () => ({
      text: Array.from({ length: Math.floor(random() * 60) }, () => pieces[Math.floor(random() * pieces.length)]).join(''),
      max: 1 + Math.floor(random() * 8),
    }))
    // The same made-up count on both sides: per word (a run of non-space), one token per 3 code points.
    const WORD = /[^\s]+/g
    const count = (text: string) => (s: number, e: number) => (text.slice(s, e).match(WORD) ?? []).reduce((n, w) => n + Math.ceil([...w].length / 3), 0)
    const ours = cases.map(({ text, max }) => toCodePoints(text, planWindows(text, max, count(text))).map((w) => [w.start, w.end]))
    const dir = mkdtempSync(join(tmpdir(), 'because-plan-'))
    try {
      writeFileSync(join(dir, 'cases.json'), JSON.stringify(cases))
      const script = [
        'import json, math, sys',
        'from because_train.long_text import WORD, plan_windows',
        'cases = json.load(open(sys.argv[1], encoding="utf-8"))',
        'def count(text):',
        '    return lambda s, e: sum(math.ceil(len(w) / 3) for w in WORD.findall(text[s:e]))',
        'print(json.dumps([[[w.start, w.end] for w in plan_windows(c["text"], c["max"], count(c["text"]))] for c in cases]))',
      ].join('\n')
      const { stdout } = await run(PYTHON, ['-c', script, join(dir, 'cases.json')], { env, maxBuffer: 16 << 20 })
      const theirs = JSON.parse(stdout) as number[][][]
      const differ = cases.flatMap((c, i) => (JSON.stringify(ours[i]) === JSON.stringify(theirs[i]) ? [] : [`${JSON.stringify(c)}: ${JSON.stringify(ours[i])} != ${JSON.stringify(theirs[i])}`]))
      expect(differ.slice(0, 5)).toEqual([])
      expect(ours.filter((w) => w.length > 1).length).toBeGreaterThan(100)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
