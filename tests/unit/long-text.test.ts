/**
 * Long texts, the pure parts: the sentence splitter and window planner (with made-up token counts,
 * then with the real model's encoder), token cuts of a prompt, the aggregation of window answers
 * and the order a stream tells windows in.
 */
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import type { SequenceResult } from '../../src/engine/types.js'
import { aggregateWindows } from '../../src/http/long-text/aggregate.js'
import { answerText } from '../../src/http/long-text/answer.js'
import { UnplannableError, planWindows, splitCodePoints, splitSentences, splitWords, toCodePoints } from '../../src/http/long-text/plan.js'
import type { CountTokens, Span } from '../../src/http/long-text/plan.js'
import { prepareText } from '../../src/http/long-text/prepare.js'
import type { PreparedText } from '../../src/http/long-text/prepare.js'
import { WindowSequencer } from '../../src/http/long-text/sequencer.js'
import type { ServedModel } from '../../src/http/service.js'
import { loadPackage } from '../../src/model/package.js'
import type { PromptEncoder } from '../../src/model/tokenizer.js'
import { QRA } from '../support/service.js'

const texts = (text: string, spans: readonly Span[]) => spans.map((s) => text.slice(s.start, s.end))
/** One token per word: the simplest counter a planner must handle. */
const words =
  (text: string): CountTokens =>
  (s, e) =>
    text.slice(s, e).split(/\s+/).filter(Boolean).length

describe('splitSentences', () => {
  it('ends a sentence after . ! ? … and closing quotes, before white space', () => {
    const text = 'I am sad. You are happy!  Why? He said "stop." Then (he left.) ok'
    expect(texts(text, splitSentences(text))).toEqual(['I am sad.', 'You are happy!', 'Why?', 'He said "stop."', 'Then (he left.)', 'ok'])
  })

  it('ends one at every line break, and keeps a run of marks with its sentence', () => {
    const text = 'first line\r\nsecond… third?!\n\n  Wait... what'
    expect(texts(text, splitSentences(text))).toEqual(['first line', 'second…', 'third?!', 'Wait...', 'what'])
  })

  it('does not end one inside a number, an address or a word', () => {
    const text = 'rated 3.5 stars on www.example.com, e.g.this one'
    expect(texts(text, splitSentences(text))).toEqual([text])
  })

  it('finds none in white space', () => {
    expect(splitSentences(' \n\t ')).toEqual([])
    expect(splitSentences('')).toEqual([])
  })

  it('covers every non-space character once, in order, trimmed', () => {
    const piece = fc.constantFrom('word', 'a', '.', '!', '?', '…', '"', ')', ' ', '  ', '\n', '\r\n', '\t', '😊', 'é')
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }).map((a) => a.join('')), (text) => {
        const spans = splitSentences(text)
        for (let i = 0; i < spans.length; i++) {
          const s = spans[i]!
          expect(s.start).toBeLessThan(s.end)
          if (i > 0) expect(s.start).toBeGreaterThanOrEqual(spans[i - 1]!.end)
          expect(text.slice(s.start, s.end)).toBe(text.slice(s.start, s.end).trim())
        }
        expect(texts(text, spans).join('').replace(/\s/g, '')).toBe(text.replace(/\s/g, ''))
      }),
      { numRuns: 500 },
    )
  })
})

describe('splitWords and splitCodePoints', () => {
  it('cuts at spaces, and every few code points without splitting a surrogate pair', () => {
    const text = 'xx  ab cd\tef '
    expect(texts(text, splitWords(text, { start: 2, end: 12 }))).toEqual(['ab', 'cd', 'ef'])
    const emoji = 'a😊😊b😊'
    expect(texts(emoji, splitCodePoints(emoji, { start: 0, end: emoji.length }, 2))).toEqual(['a😊', '😊b', '😊'])
  })
})

describe('planWindows', () => {
  it('gives a text that fits one window, trimmed', () => {
    const text = '  I am sad. So sad.  '
    expect(texts(text, planWindows(text, 10, words(text)))).toEqual(['I am sad. So sad.'])
  })

  it('packs whole sentences greedily into windows of at most max tokens', () => {
    const text = 'one two. three four. five six seven. eight.'
    expect(texts(text, planWindows(text, 4, words(text)))).toEqual(['one two. three four.', 'five six seven. eight.'])
    expect(texts(text, planWindows(text, 3, words(text)))).toEqual(['one two.', 'three four.', 'five six seven.', 'eight.'])
  })

  it('cuts a sentence longer than a window at spaces, and packs its words with the next sentence', () => {
    const text = 'a b c d e f g. h i.'
    expect(texts(text, planWindows(text, 3, words(text)))).toEqual(['a b c', 'd e f', 'g. h i.'])
  })

  it('cuts a word longer than a window between characters', () => {
    const text = 'ok 😊😊😊😊😊😊😊. a'
    // One token per code point that is not a space.
    const count: CountTokens = (s, e) => [...text.slice(s, e)].filter((c) => !/\s/.test(c)).length
    // The word is halved until each piece fits (4 + 4 code points, then 2 + 2 + 2 + 2).
    expect(texts(text, planWindows(text, 3, count))).toEqual(['ok', '😊😊', '😊😊', '😊😊', '😊. a'])
  })

  it('checks the exact count of a joined window, since counts need not add up', () => {
    const text = 'a b. c d. e f.'
    // Joining sentences costs one token more than their parts.
    const count: CountTokens = (s, e) => words(text)(s, e) + (splitSentences(text.slice(s, e)).length > 1 ? 1 : 0)
    const windows = planWindows(text, 4, count)
    for (const w of windows) expect(count(w.start, w.end)).toBeLessThanOrEqual(4)
    expect(texts(text, windows)).toEqual(['a b.', 'c d.', 'e f.'])
  })

  it('joins what the model reads nothing in to a neighbour, and leaves out a window of only that', () => {
    // Only words of letters count.
    const letters: CountTokens = (s, e) => (text.slice(s, e).match(/[a-z]+/g) ?? []).length
    let text = 'happy.\n\n....\n\n!!!! sad.'
    expect(texts(text, planWindows(text, 1, letters))).toEqual(['happy.\n\n....\n\n!!!!', 'sad.'])
    // Joining sentences costs a token: "...." cannot join "happy", and alone it is nothing to send.
    text = '.... happy'
    const joined: CountTokens = (s, e) => letters(s, e) + (splitSentences(text.slice(s, e)).length > 1 ? 1 : 0)
    expect(texts(text, planWindows(text, 1, joined))).toEqual(['happy'])
  })

  it('refuses a character that alone is over a window', () => {
    const text = 'ab'
    expect(() => planWindows(text, 1, (s, e) => 2 * (e - s))).toThrow(UnplannableError)
  })

  it('holds for any text: in order, within max, every word in exactly one window', () => {
    const piece = fc.constantFrom('word', 'longerword', 'a', '.', '!', ' ', '\n', '😊', 'x'.repeat(9))
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 60 }).map((a) => a.join('')), fc.integer({ min: 1, max: 8 }), (text, max) => {
        // One token per 3 non-space code points (rounded up), per word.
        const count: CountTokens = (s, e) =>
          text
            .slice(s, e)
            .split(/\s+/)
            .filter(Boolean)
            .reduce((n, w) => n + Math.ceil([...w].length / 3), 0)
        const windows = planWindows(text, max, count)
        for (let i = 0; i < windows.length; i++) {
          const w = windows[i]!
          expect(count(w.start, w.end)).toBeLessThanOrEqual(max)
          expect(count(w.start, w.end)).toBeGreaterThan(0)
          if (i > 0) expect(w.start).toBeGreaterThanOrEqual(windows[i - 1]!.end)
        }
        expect(texts(text, windows).join('').replace(/\s/g, '')).toBe(text.replace(/\s/g, ''))
      }),
      { numRuns: 500 },
    )
  })
})

describe('toCodePoints', () => {
  it('counts an emoji as one character', () => {
    const text = '😊 ab 😊c'
    expect(toCodePoints(text, [{ start: 0, end: 2 }, { start: 3, end: 5 }, { start: 6, end: 9 }])).toEqual([
      { start: 0, end: 1 },
      { start: 2, end: 4 },
      { start: 5, end: 7 },
    ])
  })
})

describe('aggregateWindows', () => {
  it('weights each window by its tokens; the label is the argmax of the mean', () => {
    const a = aggregateWindows([
      { scores: [0.8, 0.2], numTokens: 30 },
      { scores: [0.1, 0.9], numTokens: 90 },
    ])
    expect(a.scores[0]).toBeCloseTo(0.25 * 0.8 + 0.75 * 0.1, 12)
    expect(a.scores[1]).toBeCloseTo(0.25 * 0.2 + 0.75 * 0.9, 12)
    expect(a.labelIndex).toBe(1)
    expect(a.decidingWindow).toBe(1)
  })

  it('gives the reasoning of the window that most supports the label, even if another window has its own label', () => {
    const a = aggregateWindows([
      { scores: [0.5, 0.3, 0.2], numTokens: 100 },
      { scores: [0.4, 0.6, 0.0], numTokens: 100 },
      { scores: [0.9, 0.1, 0.0], numTokens: 10 },
    ])
    expect(a.labelIndex).toBe(0)
    expect(a.decidingWindow).toBe(2)
    expect(a.scores.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 12)
  })

  it('breaks ties for the first label and the first window', () => {
    const a = aggregateWindows([
      { scores: [0.5, 0.5], numTokens: 4 },
      { scores: [0.5, 0.5], numTokens: 4 },
    ])
    expect(a).toEqual({ scores: [0.5, 0.5], labelIndex: 0, decidingWindow: 0 })
  })
})

describe('answerText', () => {
  const result = (labelIndex: number, scores: number[], reasoning: string, t: [number, number, number]): SequenceResult => ({
    labelIndex,
    scores,
    reasoning,
    numReasoningTokens: reasoning.length,
    timings: { queue_ms: t[0], ttft_ms: t[1], total_ms: t[2] },
  })
  const prepared = (...numTokens: number[]): PreparedText => ({
    windows: numTokens.map((n, i) => ({ prompt: { ids: [], numTextTokens: n, normalized: '' }, span: { start: 10 * i, end: 10 * i + 9 } })),
    numDropped: 0,
    mode: 'windows',
  })

  it('keeps a single window exactly as the engine gave it', () => {
    const r = result(1, [0.3, 0.3, 0.4], 'joy', [1, 2, 3])
    const a = answerText(prepared(12), [r])
    expect(a).toMatchObject({ labelIndex: 1, scores: r.scores, reasoning: 'joy', decidingWindow: 0, numTextTokens: 12, timings: r.timings })
  })

  it('sums tokens over windows and spans their timings', () => {
    const a = answerText(prepared(100, 20), [result(0, [0.9, 0.1], 'sad', [5, 8, 40]), result(1, [0.2, 0.8], 'happy', [1, 9, 30])])
    expect(a).toMatchObject({ labelIndex: 0, reasoning: 'sad', decidingWindow: 0, numTextTokens: 120, numReasoningTokens: 8 })
    expect(a.timings).toEqual({ queue_ms: 1, ttft_ms: 8, total_ms: 40 })
    expect(a.windows.map((w) => w.span)).toEqual([
      { start: 0, end: 9 },
      { start: 10, end: 19 },
    ])
  })
})

describe('WindowSequencer', () => {
  const record = (n: number) => {
    const out: string[] = []
    const seq = new WindowSequencer(n, { window: (i) => out.push(`[${i}]`), delta: (i, d) => out.push(`${i}:${d}`) })
    return { out, seq }
  }

  it('streams the first window live, holds the later ones, then flushes each in text order', () => {
    const { out, seq } = record(3)
    seq.start()
    seq.delta(1, 'b1')
    seq.delta(0, 'a1')
    seq.delta(2, 'c1')
    seq.done(2)
    seq.delta(0, 'a2')
    expect(out).toEqual(['[0]', '0:a1', '0:a2'])
    seq.done(0)
    expect(out.slice(3)).toEqual(['[1]', '1:b1'])
    seq.delta(1, 'b2')
    seq.done(1)
    expect(out.slice(5)).toEqual(['1:b2', '[2]', '2:c1'])
  })

  it('tells every window once, in order, with its own text, whatever the interleaving', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }).chain((n) =>
          fc.tuple(fc.constant(n), fc.shuffledSubarray([...Array(n * 3).keys()], { minLength: n * 3, maxLength: n * 3 })),
        ),
        ([n, order]) => {
          // Event k of window w is a delta for k % 3 < 2 and the end for k % 3 === 2; each window's
          // own events keep their order.
          const next = new Array<number>(n).fill(0)
          const { out, seq } = record(n)
          seq.start()
          for (const e of order) {
            const w = e % n
            const k = next[w]!++
            if (k < 2) seq.delta(w, `${w}.${k}`)
            else seq.done(w)
          }
          expect(out.filter((x) => x.startsWith('['))).toEqual(Array.from({ length: n }, (_, w) => `[${w}]`))
          const text = (w: number) => out.filter((x) => x.startsWith(`${w}:`)).map((x) => x.slice(2)).join('')
          for (let w = 0; w < n; w++) expect(text(w)).toBe(`${w}.0${w}.1`)
          // A window's text comes after its announcement and before the next one's.
          for (let w = 0; w < n; w++) {
            const at = out.indexOf(`[${w}]`)
            const end = w + 1 < n ? out.indexOf(`[${w + 1}]`) : out.length
            const mine = out.map((x, i) => [x, i] as const).filter(([x]) => x.startsWith(`${w}:`))
            for (const [, i] of mine) expect(i > at && i < end).toBe(true)
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('with the real model encoder', () => {
  let encoder: PromptEncoder
  let max: number
  let model: ServedModel
  beforeAll(async () => {
    const pkg = await loadPackage(QRA, { verify: false })
    encoder = pkg.tokenizer.encoder
    max = pkg.manifest.limits.max_input_tokens
    model = { id: 'm', encoder, maxInputTokens: max } as unknown as ServedModel
  })
  const sentences = ["I can't believe they cancelled my flight again!", 'The staff were rude and nobody helped 😡.', 'I waited six hours at the gate.']
  const long = Array.from({ length: 30 }, (_, i) => sentences[i % 3]).join(' ')

  it('cuts the encoded text, never the template: start is evaluate\'s ids[:limit]', () => {
    const whole = encoder.encode(long)
    const text = whole.ids.slice(encoder.numPrefixTokens, encoder.numPrefixTokens + whole.numTextTokens)
    const prefix = whole.ids.slice(0, encoder.numPrefixTokens)
    const suffix = whole.ids.slice(encoder.numPrefixTokens + whole.numTextTokens)
    expect(whole.numTextTokens).toBeGreaterThan(max)
    expect(encoder.cut(whole, 'start', max).ids).toEqual([...prefix, ...text.slice(0, max), ...suffix])
    expect(encoder.cut(whole, 'end', max).ids).toEqual([...prefix, ...text.slice(-max), ...suffix])
    expect(encoder.cut(whole, 'end', max).numTextTokens).toBe(max)
    const short = encoder.encode('i am fine')
    expect(encoder.cut(short, 'start', max)).toBe(short)
  })

  it('reports the tokens start and end drop, and refuses with none', () => {
    const whole = encoder.encode(long)
    for (const mode of ['start', 'end'] as const) {
      const p = prepareText(model, long, whole, mode, 'text')
      expect(p.windows).toHaveLength(1)
      expect(p.windows[0]!.span).toBeNull()
      expect(p.numDropped).toBe(whole.numTextTokens - max)
    }
    expect(() => prepareText(model, long, whole, 'none', 'text')).toThrow(/^text: at most 128 tokens for model m, got \d+ \(truncate "none"/)
  })

  it('splits into windows that each encode as that part of the text alone would, within the limit', () => {
    const whole = encoder.encode(long)
    const p = prepareText(model, long, whole, 'windows', 'text')
    expect(p.windows.length).toBeGreaterThan(1)
    const chars = [...long]
    for (const w of p.windows) {
      const part = chars.slice(w.span!.start, w.span!.end).join('')
      expect(w.prompt).toEqual(encoder.encode(part))
      expect(w.prompt.numTextTokens).toBeLessThanOrEqual(max)
      // Cut at sentence ends: every window starts a sentence and ends one.
      expect(sentences.some((s) => part.startsWith(s))).toBe(true)
      expect(/[.!]$/.test(part)).toBe(true)
    }
    expect(p.windows.map((w) => chars.slice(w.span!.start, w.span!.end).join('')).join(' ')).toBe(long)
  })

  it('reads a text within the limit as one window spanning all of it, in every mode', () => {
    const text = 'I got the job! 😊'
    const whole = encoder.encode(text)
    for (const mode of ['none', 'start', 'end', 'windows'] as const) {
      expect(prepareText(model, text, whole, mode, 'text')).toEqual({ windows: [{ prompt: whole, span: { start: 0, end: 16 } }], numDropped: 0, mode })
    }
  })
})
