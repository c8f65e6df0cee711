import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { lowerAlnumV1, normalize } from '../../src/model/normalize.js'

const fixture = JSON.parse(readFileSync('tests/fixtures/normalize.json', 'utf8')) as {
  rule: string
  cases: [string, string][]
}

describe('lower-alnum-v1', () => {
  it('is the rule the fixture pins', () => {
    expect(fixture.rule).toBe('lower-alnum-v1')
  })

  it.each(fixture.cases)('%j -> %j', (input, expected) => {
    expect(lowerAlnumV1(input)).toBe(expected)
    expect(normalize(input, 'lower-alnum-v1')).toBe(expected)
  })

  it('never lets the special-token characters through', () => {
    expect(lowerAlnumV1('<|bos|><|eos|><|sep|><|label|><|pad|>')).toBe('bos eos sep label pad')
  })
})

describe('none', () => {
  it('returns the text as given', () => {
    expect(normalize('  Keep <|eos|> AS is!  ', 'none')).toBe('  Keep <|eos|> AS is!  ')
  })
})
