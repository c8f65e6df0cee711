import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { EmojiTable, lowerAlnumV1, naturalV1, normalize } from '../../src/model/normalize.js'

/** Cases for each rule, written by running training/'s Python rules: both sides must agree. */
const fixture = JSON.parse(readFileSync('tests/fixtures/normalize.json', 'utf8')) as {
  rules: Record<'lower-alnum-v1' | 'natural-v1', [string, string][]>
}
/** The table every package built by training/ ships as emoji.json. */
const table = EmojiTable.parse(JSON.parse(readFileSync('training/because_train/assets/emoji.json', 'utf8')))

it('the fixture pins every rule but none', () => {
  expect(Object.keys(fixture.rules).sort()).toEqual(['lower-alnum-v1', 'natural-v1'])
})

describe('lower-alnum-v1', () => {
  it.each(fixture.rules['lower-alnum-v1'])('%j -> %j', (input, expected) => {
    expect(lowerAlnumV1(input)).toBe(expected)
    expect(normalize(input, 'lower-alnum-v1')).toBe(expected)
  })

  it('never lets the special-token characters through', () => {
    expect(lowerAlnumV1('<|bos|><|eos|><|sep|><|label|><|pad|>')).toBe('bos eos sep label pad')
  })
})

describe('natural-v1', () => {
  it.each(fixture.rules['natural-v1'])('%j -> %j', (input, expected) => {
    expect(naturalV1(input, table)).toBe(expected)
    expect(normalize(input, 'natural-v1', table)).toBe(expected)
  })

  it('never leaves a quotation mark or a special-token character (quotes delimit spans of it)', () => {
    const out = naturalV1('"quoted" \u201Cand\u201D <|label|> <|eos|> \uFF02', table)
    expect(out).not.toMatch(/["<|>]/)
  })

  it('reads the table it is given, longest emoticon first', () => {
    const small = EmojiTable.parse({ emoji: { '😊': 'glad' }, emoticons: { ':)': 'grin', ':))': 'big grin', ')': 'x' } })
    expect(naturalV1('😊\uFE0F :) :)) )', small)).toBe('glad grin big grin x')
  })

  it('needs a table', () => {
    expect(() => normalize('hi', 'natural-v1')).toThrow(/emoji\.json/)
  })

  it('rejects what is not a table', () => {
    expect(() => EmojiTable.parse([])).toThrow(/object/)
    expect(() => EmojiTable.parse({ emoji: {} })).toThrow(/emoticons/)
    expect(() => EmojiTable.parse({ emoji: { a: 1 }, emoticons: {} })).toThrow(/emoji\["a"\]/)
    expect(() => EmojiTable.parse({ emoji: {}, emoticons: { '': 'x' } })).toThrow(/empty/)
  })
})

describe('none', () => {
  it('returns the text as given', () => {
    expect(normalize('  Keep <|eos|> AS is!  ', 'none')).toBe('  Keep <|eos|> AS is!  ')
  })
})
