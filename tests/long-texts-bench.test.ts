/**
 * bench/long-texts.ts's data side: which rows make which long text (seeded, one label per text,
 * every row once), how they are joined, and how the report is rewritten in place.
 */
import { describe, expect, it } from 'vitest'
import { buildLongTexts, joinRows, longTextsJsonl, meanLabel, parseRows, replaceSection } from '../bench/long-text-data.js'
import { LABELS } from './support/service.js'

const rows = Array.from({ length: 60 }, (_, i) => ({ text: `row ${i} ${'x'.repeat(i % 7)}`, label: ['joy', 'anger', 'fear'][i % 3]! }))

describe('parseRows', () => {
  it('reads label indices and names, and leaves out rows without a label', () => {
    const jsonl = ['{"text": "a", "label": 1}', '{"text": "b", "label": null, "emotions": ["neutral"]}', '{"text": "c", "label": "anger"}', ''].join('\n')
    expect(parseRows(jsonl, 'f', LABELS)).toEqual([
      { text: 'a', label: 'joy' },
      { text: 'c', label: 'anger' },
    ])
    expect(() => parseRows('{"text": "a", "label": 9}', 'f.jsonl', LABELS)).toThrow(/^f\.jsonl:1: /)
  })

  it("takes the label names from the model's list, any list", () => {
    const labels = ['question', 'complaint', 'praise']
    expect(parseRows('{"text": "a", "label": 2}\n{"text": "b", "label": "question"}', 'f', labels)).toEqual([
      { text: 'a', label: 'praise' },
      { text: 'b', label: 'question' },
    ])
    expect(() => parseRows('{"text": "a", "label": "joy"}', 'f', labels)).toThrow('f:1: expected {text, label} with label 0-2, one of question, complaint, praise, or null')
  })
})

describe('buildLongTexts', () => {
  const opts = { count: 10, minChars: 40, maxRows: 5, seed: 7 }

  it('joins rows of one label, each row once, until the text is long enough', () => {
    const texts = buildLongTexts(rows, opts)
    expect(texts.length).toBe(10)
    const seen = new Set<string>()
    for (const t of texts) {
      expect(t.rows.every((r) => r.label === t.label)).toBe(true)
      expect(t.rows.length).toBeGreaterThanOrEqual(2)
      expect(t.rows.length).toBeLessThanOrEqual(5)
      // Long enough, or stopped at maxRows.
      expect(t.text.length >= 40 || t.rows.length === 5).toBe(true)
      expect(t.text).toBe(joinRows(t.rows.map((r) => r.text)))
      for (const r of t.rows) {
        expect(seen.has(r.text)).toBe(false)
        seen.add(r.text)
      }
    }
  })

  it('builds the same texts from the same seed, others from another', () => {
    expect(buildLongTexts(rows, opts)).toEqual(buildLongTexts(rows, opts))
    expect(buildLongTexts(rows, { ...opts, seed: 8 }).map((t) => t.text)).not.toEqual(buildLongTexts(rows, opts).map((t) => t.text))
  })

  it('stops when the rows run out', () => {
    expect(buildLongTexts(rows.slice(0, 6), { ...opts, maxRows: 2 }).length).toBe(3)
  })

  it('writes the texts as a split evaluate reads and parseRows reads back (--write-data)', () => {
    const texts = buildLongTexts(rows, opts)
    const jsonl = longTextsJsonl(texts)
    expect(jsonl.endsWith('\n') && !jsonl.includes('\n\n')).toBe(true)
    expect(parseRows(jsonl, 'long.jsonl', ['joy', 'anger', 'fear'])).toEqual(texts.map((t) => ({ text: t.text, label: t.label })))
  })
})

describe('helpers', () => {
  it('ends every row as a sentence', () => {
    expect(joinRows(['im so happy', 'What?', 'he said "no."', 'ok…'])).toBe('im so happy. What? he said "no." ok…')
  })

  it('takes the label of the summed scores', () => {
    expect(meanLabel([{ joy: 0.6, anger: 0.4 }, { joy: 0.1, anger: 0.9 }])).toBe('anger')
  })

  it('rewrites the results between the markers and keeps the rest', () => {
    const doc = '# T\n\nintro\n\n<!-- a -->\nold\n<!-- b -->\n\nafter\n'
    expect(replaceSection(doc, 'new', '<!-- a -->', '<!-- b -->')).toBe('# T\n\nintro\n\n<!-- a -->\nnew\n<!-- b -->\n\nafter\n')
    expect(replaceSection('# T\n', 'new', '<!-- a -->', '<!-- b -->')).toBe('# T\n\n<!-- a -->\nnew\n<!-- b -->\n')
  })
})
