/**
 * Texts over the model's max_input_tokens, over real HTTP with the real model: every truncate mode
 * on /classify, /explain (JSON and SSE) and /v1/chat/completions; the 422 only with "none"; the
 * tokens dropped; windows read as each part alone would be, aggregated as documented, streamed one
 * after another; the server default; a request of more windows than the engine holds at once.
 *
 * The long text is made of words that are one token each, a joyful part then an angry part with no
 * word in common: whatever a reasoning quotes (grounded quoting only quotes what the model read)
 * tells which part it was given.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadPackage } from '../../src/model/package.js'
import type { RunningService } from '../../src/server.js'
import { LABELS, QA, QRA, expectValidResult, parseSse, post, readSse, startTestService } from '../support/service.js'
import type { Result } from '../support/service.js'

const JOY = ['i feel so happy and glad today.', 'my friends love me so.', 'good day and warm sun.', 'i love my good friends.']
const ANGER = ['we were angry at the rude man.', 'they hate it.', 'he was bad to us again.', 'we hate the rude man.']
const JOY_WORDS = new Set(JOY.join(' ').match(/[a-z]+/g))
const ANGER_WORDS = new Set(ANGER.join(' ').match(/[a-z]+/g))

/** Sentences of `pool`, in turn, until they hold at least `numWords` words. */
function part(pool: string[], numWords: number): string {
  const out: string[] = []
  for (let n = 0, i = 0; n < numWords; i++) {
    out.push(pool[i % pool.length]!)
    n += pool[i % pool.length]!.split(' ').length
  }
  return out.join(' ')
}
const LONG = `${part(JOY, 140)} ${part(ANGER, 140)}`
const NUM_WORDS = LONG.split(' ').length
const SHORT = 'i feel so happy and glad today'

interface WindowResult extends Result {
  index: number
  start: number
  end: number
}
interface LongResult extends Omit<Result, 'usage'> {
  usage: { input_tokens: number; reasoning_tokens: number; input_tokens_dropped: number; windows: number }
  reasoning_window?: { index: number; start: number; end: number }
  windows?: WindowResult[]
}

const quotedWords = (reasoning: string) => [...reasoning.matchAll(/"([^"]+)"/g)].flatMap((m) => m[1]!.split(' '))
const chars = (text: string, s: { start: number; end: number }) => [...text].slice(s.start, s.end).join('')

let svc: RunningService
let url: string
let max: number

async function classify(body: Record<string, unknown>, at = url): Promise<LongResult> {
  const res = await post(`${at}/classify`, body)
  expect(res.status, await res.clone().text()).toBe(200)
  return (await res.json()) as LongResult
}

beforeAll(async () => {
  svc = await startTestService({ models: [QRA, QA] })
  url = svc.url
  const pkg = await loadPackage(QRA, { verify: false })
  max = pkg.manifest.limits.max_input_tokens
  // The premise of the checks below: one token per word, and more words than the model reads.
  expect(pkg.tokenizer.encoder.encode(LONG).numTextTokens).toBe(NUM_WORDS)
  expect(NUM_WORDS).toBeGreaterThan(2 * max)
})
afterAll(() => svc?.close())

describe('POST /classify', () => {
  it('answers 422 text_too_long over max_input_tokens only with truncate "none"', async () => {
    const res = await post(`${url}/classify`, { text: LONG, truncate: 'none' })
    expect(res.status).toBe(422)
    expect(await res.json()).toEqual({
      error: {
        code: 'text_too_long',
        message: `text: at most ${max} tokens for model emotion-qra-natural, got ${NUM_WORDS} (truncate "none"; "windows", "start" or "end" read it)`,
      },
    })
    for (const truncate of ['start', 'end', 'windows', undefined]) {
      expect((await post(`${url}/classify`, { text: LONG, ...(truncate ? { truncate } : {}) })).status, truncate).toBe(200)
    }
  })

  it('start reads the first max_input_tokens tokens: the answer of that prefix alone, the rest dropped', async () => {
    const r = await classify({ text: LONG, truncate: 'start' })
    expectValidResult(r as unknown as Result)
    expect(r.usage).toMatchObject({ input_tokens: max, input_tokens_dropped: NUM_WORDS - max, windows: 1 })
    expect(r.reasoning_window).toBeUndefined()
    for (const w of quotedWords(r.reasoning)) expect(JOY_WORDS, r.reasoning).toContain(w)
    // One token per word: the prefix of max words is exactly the ids kept.
    const prefix = await classify({ text: LONG.split(' ').slice(0, max).join(' '), truncate: 'none' })
    expect(r.label).toBe(prefix.label)
    expect(r.reasoning).toBe(prefix.reasoning)
    for (const l of LABELS) expect(r.scores[l]).toBeCloseTo(prefix.scores[l]!, 6)
  })

  it('end reads the last max_input_tokens tokens: it quotes only the end', async () => {
    const r = await classify({ text: LONG, truncate: 'end' })
    expectValidResult(r as unknown as Result)
    expect(r.usage).toMatchObject({ input_tokens: max, input_tokens_dropped: NUM_WORDS - max, windows: 1 })
    for (const w of quotedWords(r.reasoning)) expect(ANGER_WORDS, r.reasoning).toContain(w)
  })

  it('windows reads it all: each window answered as that part alone, aggregated as documented', async () => {
    const r = await classify({ text: LONG, truncate: 'windows', windows_detail: true })
    expectValidResult(r as unknown as Result)
    const windows = r.windows!
    expect(windows.length).toBeGreaterThanOrEqual(3)
    expect(r.usage).toEqual({
      input_tokens: windows.reduce((n, w) => n + w.usage.input_tokens, 0),
      reasoning_tokens: windows.reduce((n, w) => n + w.usage.reasoning_tokens, 0),
      input_tokens_dropped: 0,
      windows: windows.length,
    })
    // In text order, at sentence ends, every sentence in exactly one window.
    expect(windows.map((w) => chars(LONG, w)).join(' ')).toBe(LONG)
    for (const [i, w] of windows.entries()) {
      expect(w.index).toBe(i)
      expect(w.usage.input_tokens).toBeLessThanOrEqual(max)
      expect(chars(LONG, w)).toMatch(/[.!]$/)
      const alone = await classify({ text: chars(LONG, w), truncate: 'none' })
      expect(w.label).toBe(alone.label)
      expect(w.reasoning).toBe(alone.reasoning)
      // Alone and in a batch, logits may differ in the last float bits (docs/engine.md, Determinism).
      for (const l of LABELS) expect(w.scores[l]).toBeCloseTo(alone.scores[l]!, 6)
    }
    // Token-weighted mean, its argmax, and the reasoning of the window that most supports it.
    const total = r.usage.input_tokens
    for (const l of LABELS) expect(r.scores[l]).toBeCloseTo(windows.reduce((s, w) => s + (w.scores[l]! * w.usage.input_tokens) / total, 0), 12)
    const deciding = windows.reduce((best, w) => (w.scores[r.label]! > best.scores[r.label]! ? w : best))
    expect(r.reasoning_window).toEqual({ index: deciding.index, start: deciding.start, end: deciding.end })
    expect(r.reasoning).toBe(deciding.reasoning)
  })

  it('is the default, and gives the same answer without windows_detail', async () => {
    const a = await classify({ text: LONG })
    const b = await classify({ text: LONG, truncate: 'windows', windows_detail: true })
    expect(a.reasoning_window).toEqual(b.reasoning_window)
    expect(a.reasoning).toBe(b.reasoning)
    expect(a.windows).toBeUndefined()
  })

  it('reads a text within the limit whole in every mode, with the same answer', async () => {
    const answers = await Promise.all(['none', 'start', 'end', 'windows'].map((truncate) => classify({ text: SHORT, truncate })))
    for (const a of answers) {
      expect(a.reasoning).toBe(answers[0]!.reasoning)
      expect(a.usage).toMatchObject({ input_tokens_dropped: 0, windows: 1 })
    }
    expect(answers.map((a) => a.reasoning_window)).toEqual([undefined, undefined, undefined, { index: 0, start: 0, end: SHORT.length }])
  })

  it('answers a batch of short and long texts in input order', async () => {
    const body = await classify({ texts: [SHORT, LONG, SHORT], truncate: 'windows' })
    const results = (body as unknown as { results: LongResult[] }).results
    expect(results.map((r) => r.usage.windows)).toEqual([1, (await classify({ text: LONG })).usage.windows, 1])
    expect(results[2]!.reasoning).toBe(results[0]!.reasoning)
  })

  it('refuses windows_detail with another mode, and an unknown mode', async () => {
    let res = await post(`${url}/classify`, { text: SHORT, truncate: 'end', windows_detail: true })
    expect(res.status).toBe(422)
    expect(await res.json()).toEqual({
      error: { code: 'invalid_request', message: 'windows_detail: only with truncate "windows" (this request reads the text with "end")' },
    })
    res = await post(`${url}/classify`, { text: SHORT, truncate: 'middle' })
    expect(res.status).toBe(422)
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/^truncate: /)
  })

  it('reads windows with a qa model too', async () => {
    const r = await classify({ text: LONG, model: 'emotion-qa-natural', windows_detail: true })
    expect(r.usage.windows).toBeGreaterThanOrEqual(3)
    expect(r.windows!.every((w) => w.reasoning === '')).toBe(true)
  })
})

describe('POST /explain', () => {
  it('answers JSON in every mode as /classify does, with timings', async () => {
    for (const truncate of ['start', 'end', 'windows']) {
      const res = await post(`${url}/explain`, { text: LONG, truncate })
      expect(res.status).toBe(200)
      const r = (await res.json()) as LongResult & { timings: { total_ms: number } }
      const c = await classify({ text: LONG, truncate })
      expect(r.reasoning, truncate).toBe(c.reasoning)
      expect(r.usage).toEqual(c.usage)
      expect(r.timings.total_ms).toBeGreaterThan(0)
    }
    expect((await post(`${url}/explain`, { text: LONG, truncate: 'none' }, { accept: 'text/event-stream' })).status).toBe(422)
  })

  it('streams each window after a window event, in text order, then the aggregate label and done', async () => {
    const want = await classify({ text: LONG, windows_detail: true })
    const events = await readSse(await post(`${url}/explain`, { text: LONG, windows_detail: true }, { accept: 'text/event-stream' }))
    const names = events.map((e) => e.event)
    expect(names.slice(-2)).toEqual(['label', 'done'])
    expect(names[0]).toBe('window')
    const starts = names.flatMap((n, i) => (n === 'window' ? [i] : []))
    expect(starts).toHaveLength(want.windows!.length)
    starts.forEach((at, k) => {
      const w = want.windows![k]!
      expect(events[at]!.data).toEqual({ index: k, count: starts.length, start: w.start, end: w.end, input_tokens: w.usage.input_tokens })
      const upto = k + 1 < starts.length ? starts[k + 1]! : names.indexOf('label')
      const deltas = events.slice(at + 1, upto)
      expect(deltas.every((e) => e.event === 'reasoning')).toBe(true)
      expect(deltas.map((e) => (e.data as { delta: string }).delta).join('')).toBe(w.reasoning)
    })
    expect(events.at(-2)!.data).toEqual({ label: want.label, scores: expect.any(Object) })
    const done = events.at(-1)!.data as LongResult
    expect(done.reasoning).toBe(want.reasoning)
    expect(done.reasoning_window).toEqual(want.reasoning_window)
    expect(done.usage).toEqual(want.usage)
    expect(done.windows!.map((w) => w.reasoning)).toEqual(want.windows!.map((w) => w.reasoning))
  })

  it('streams a cut text (end) and a short one without window events', async () => {
    for (const [text, truncate] of [
      [LONG, 'end'],
      [SHORT, 'windows'],
    ]) {
      const events = await readSse(await post(`${url}/explain`, { text, truncate }, { accept: 'text/event-stream' }))
      expect(events.some((e) => e.event === 'window')).toBe(false)
      const done = events.at(-1)!.data as LongResult
      expect(done.usage.input_tokens_dropped).toBe(text === LONG ? NUM_WORDS - max : 0)
    }
  })
})

describe('POST /v1/chat/completions (truncate as an extra body field)', () => {
  const chat = (content: string, extra: Record<string, unknown> = {}) =>
    post(`${url}/v1/chat/completions`, { model: 'emotion-qra-natural', messages: [{ role: 'user', content }], ...extra })

  it('is a 400 over the limit only with truncate "none"', async () => {
    const res = await chat(LONG, { truncate: 'none' })
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'text_too_long', param: 'messages[0].content' } })
    expect((await chat(LONG)).status).toBe(200)
    // OpenAI clients send null for a field they leave unset: the server's default.
    expect((await chat(LONG, { truncate: null, windows_detail: null })).status).toBe(200)
  })

  it('says how many tokens start dropped', async () => {
    const body = (await (await chat(LONG, { truncate: 'start' })).json()) as any
    const want = await classify({ text: LONG, truncate: 'start' })
    expect(body.choices[0].message.content).toBe(want.label)
    expect(body.choices[0].message.reasoning_content).toBe(want.reasoning)
    expect(body.usage).toEqual({
      prompt_tokens: max,
      completion_tokens: want.usage.reasoning_tokens + 1,
      total_tokens: max + want.usage.reasoning_tokens + 1,
      input_tokens_dropped: NUM_WORDS - max,
    })
  })

  it('gives every window\'s reasoning in text order, streamed and not, and the windows on request', async () => {
    const want = await classify({ text: LONG, windows_detail: true })
    const joined = want.windows!.map((w) => w.reasoning).join('\n\n')
    const body = (await (await chat(LONG, { windows_detail: true })).json()) as any
    expect(body.choices[0].message.content).toBe(want.label)
    expect(body.choices[0].message.reasoning_content).toBe(joined)
    expect(body.choices[0].message.windows.map((w: WindowResult) => w.reasoning)).toEqual(want.windows!.map((w) => w.reasoning))
    expect(body.usage.completion_tokens).toBe(want.usage.reasoning_tokens + want.windows!.length)

    const res = await chat(LONG, { stream: true, stream_options: { include_usage: true } })
    const frames = (await res.text()).split('\n\n').filter((f) => f.startsWith('data: ')).map((f) => f.slice(6))
    expect(frames.at(-1)).toBe('[DONE]')
    const chunks = frames.slice(0, -1).map((f) => JSON.parse(f))
    const deltas = chunks.flatMap((c) => c.choices.map((ch: any) => ch.delta))
    expect(deltas.filter((d) => d.window).map((d) => d.window.index)).toEqual(want.windows!.map((w) => w.index))
    expect(deltas.filter((d) => d.window)[1]).toMatchObject({ reasoning_content: '\n\n' })
    expect(deltas.map((d) => d.reasoning_content ?? '').join('')).toBe(joined)
    expect(deltas.filter((d) => d.content).map((d) => d.content)).toEqual([want.label])
    expect(chunks.at(-1).usage).toEqual(body.usage)
  })

  it('refuses windows_detail with another mode, naming the field', async () => {
    const res = await chat(SHORT, { truncate: 'start', windows_detail: true })
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ error: { code: 'invalid_request', param: 'windows_detail' } })
  })
})

describe('the server default and a small engine', () => {
  let small: RunningService
  beforeAll(async () => {
    // Capacity 4 sequences (max-batch 2 + max-queue 2): a text of more windows runs in waves.
    small = await startTestService({ models: [QRA], truncate: 'none', maxBatch: 2, maxQueue: 2, maxBatchTokens: 512 })
  })
  afterAll(() => small?.close())

  it('--truncate none makes a long text a 422 unless the request names a mode; /info says so', async () => {
    expect((await post(`${small.url}/classify`, { text: LONG })).status).toBe(422)
    expect(((await (await fetch(`${small.url}/info`)).json()) as { truncate: string }).truncate).toBe('none')
    expect((await post(`${small.url}/classify`, { text: LONG, truncate: 'end' })).status).toBe(200)
  })

  it('reads more windows than the engine holds in waves, with the same answers', async () => {
    const text = [LONG, LONG, LONG].join('\n')
    const want = await classify({ text, windows_detail: true })
    expect(want.windows!.length).toBeGreaterThan(4)
    const got = await classify({ text, truncate: 'windows', windows_detail: true }, small.url)
    expect(got.windows!.map((w) => [w.start, w.end, w.reasoning])).toEqual(want.windows!.map((w) => [w.start, w.end, w.reasoning]))
    expect(got.label).toBe(want.label)
    const res = await post(`${small.url}/explain`, { text, truncate: 'windows' }, { accept: 'text/event-stream' })
    const events = parseSse(await res.text())
    expect(events.filter((e) => e.event === 'window').map((e) => (e.data as { index: number }).index)).toEqual(want.windows!.map((w) => w.index))
    expect(events.at(-1)!.event).toBe('done')
  })
})
