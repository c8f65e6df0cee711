/**
 * The page's pure logic, run in Node (no browser needed): the offset-keeping normalisation must
 * agree with the service's own, highlights must land on the original characters, and the SSE
 * parser must cope with any chunking.
 */
import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { lowerAlnumV1 } from '../../src/model/normalize.js'
import { loadPageCore, type SseEvent } from './page-core.js'

const core = loadPageCore()
const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/normalize.json', import.meta.url), 'utf8'),
) as { rules: Record<string, [string, string][]> }

/** Plain copies (the VM context has its own Array and Object). */
const plain = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T

describe('normalizeWithMap', () => {
  // The page highlights with lower-alnum-v1's rule, so those are the cases it must meet.
  it.each(fixture.rules['lower-alnum-v1']!)('matches the fixture: %j', (input, expected) => {
    expect(core.normalize(input)).toBe(expected)
  })

  it('agrees with the service normalisation on arbitrary text', () => {
    const pieces = fc.constantFrom(
      ...["'", '\u2019', '\u2018', '\u02BC', '`', '\u00B4', ' ', '\t', '\n', '!', 'é', 'e\u0301', 'İ',
        'ß', 'æ', '日', '😊', 'ｆ', 'Ａ', 'Ⅻ', 'ﬁ', '½', 'K', 'Σ', 'a', 'Z', '7', '-', '_', '\u00A0'],
    )
    const text = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.array(fc.oneof(pieces, fc.string({ maxLength: 3 })), { maxLength: 30 }).map((a) => a.join('')),
    )
    fc.assert(
      fc.property(text, (s) => {
        expect(core.normalize(s)).toBe(lowerAlnumV1(s))
      }),
      { numRuns: 2000 },
    )
  })

  it('maps every output letter back to the original text it came from', () => {
    const input = 'I didn’t feel HUMILIATED!! Café'
    const { text, starts, ends } = core.normalizeWithMap(input)
    expect(text).toBe('i didnt feel humiliated cafe')
    const word = (needle: string) => {
      const at = text.indexOf(needle)
      return input.slice(starts[at], ends[at + needle.length - 1])
    }
    expect(word('didnt')).toBe('didn’t')
    expect(word('didnt feel')).toBe('didn’t feel')
    expect(word('humiliated')).toBe('HUMILIATED')
    expect(word('cafe')).toBe('Café')
  })
})

describe('highlightRanges', () => {
  const marked = (input: string, reasoning: string) =>
    plain(core.highlightRanges(input, reasoning)).map((r) => input.slice(r.start, r.end))

  it('finds the quoted normalised phrase in the natural text', () => {
    expect(marked("I didn't feel humiliated", 'the words "didnt feel" carry sadness')).toEqual([
      "didn't feel",
    ])
  })

  it('marks every quoted phrase, whole words only, each occurrence', () => {
    const input = 'So happy, happy, HAPPY! Unhappy? no.'
    expect(marked(input, 'the word "happy" appears, and "no"')).toEqual([
      'happy',
      'happy',
      'HAPPY',
      'no',
    ])
  })

  it('merges overlapping phrases into one mark', () => {
    const ranges = plain(core.highlightRanges('i feel so alone tonight', '"feel so" and "so alone"'))
    expect(ranges).toEqual([{ start: 2, end: 15, phrases: ['feel so', 'so alone'] }])
  })

  it('ignores unfinished quotes and phrases that are not in the text', () => {
    expect(marked('i am scared', 'the word "scared" and "missing" and "sca')).toEqual(['scared'])
  })

  it('keeps accents and surrogate pairs whole', () => {
    expect(marked('Ｉ’ＬＬ ＧＯ 😊 naïve', 'the words "ill go" and "naive"')).toEqual([
      'Ｉ’ＬＬ ＧＯ',
      'naïve',
    ])
  })

  it('locates the quoted phrases inside the reasoning, skipping quotes of nothing', () => {
    const reasoning = 'the words "feel so alone" and " " and “sad”'
    const spans = plain(core.quotedSpans(reasoning))
    expect(spans.map((q) => reasoning.slice(q.start, q.end))).toEqual(['feel so alone', 'sad'])
    expect(plain(core.quotedPhrases(reasoning))).toEqual(['feel so alone', 'sad'])
  })

  it('accepts curly quotes in the reasoning', () => {
    expect(marked('what a surprise', 'the word “surprise” shows it')).toEqual(['surprise'])
  })
})

describe('createSseParser', () => {
  const stream =
    'event: reasoning\ndata: {"delta":"the"}\n\n' +
    ': keep-alive\n\n' +
    'event: reasoning\r\ndata: {"delta":" words"}\r\n\r\n' +
    'event: label\rdata: {"label":"joy",\rdata: "x":1}\r\r' +
    'data: plain\n\n'
  const expected: SseEvent[] = [
    { event: 'reasoning', data: '{"delta":"the"}' },
    { event: 'reasoning', data: '{"delta":" words"}' },
    { event: 'label', data: '{"label":"joy",\n"x":1}' },
    { event: 'message', data: 'plain' },
  ]

  it('parses LF, CRLF and CR line endings, comments and multi-line data', () => {
    const events: SseEvent[] = []
    const parser = core.createSseParser((e) => events.push(plain(e)))
    parser.push(stream)
    expect(parser.end()).toBe(false)
    expect(events).toEqual(expected)
  })

  it('gives the same events for any chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(stream.length), { maxLength: 12 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b)
        const events: SseEvent[] = []
        const parser = core.createSseParser((e) => events.push(plain(e)))
        let at = 0
        for (const p of [...points, stream.length]) {
          parser.push(stream.slice(at, p))
          at = p
        }
        expect(parser.end()).toBe(false)
        expect(events).toEqual(expected)
      }),
      { numRuns: 500 },
    )
  })

  it('reports an event cut off by the end of the stream', () => {
    const events: SseEvent[] = []
    const parser = core.createSseParser((e) => events.push(plain(e)))
    parser.push('event: reasoning\ndata: {"delta":"a"}\n\nevent: reasoning\ndata: {"del')
    expect(events).toHaveLength(1)
    expect(parser.end()).toBe(true)
  })
})

describe('formatPercent', () => {
  it('shows one decimal, never rounding a real score to 0% or a doubtful one to 100%', () => {
    expect(core.formatPercent(0.9012)).toBe('90.1%')
    expect(core.formatPercent(1)).toBe('100.0%')
    expect(core.formatPercent(0)).toBe('0.0%')
    expect(core.formatPercent(0.0001)).toBe('<0.1%')
    expect(core.formatPercent(0.99996)).toBe('>99.9%')
  })
})
