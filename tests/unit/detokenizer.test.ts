import { describe, expect, it } from 'vitest'
import { BYTE_TO_CHAR, tokenToBytes } from '../../src/model/byte-level.js'
import { StreamingDetokenizer, trimReasoning } from '../../src/model/detokenizer.js'

/** A vocabulary of byte strings: id i spells `pieces[i]`. */
function vocab(pieces: Uint8Array[]): Uint8Array[] {
  return pieces
}
const enc = new TextEncoder()

describe('byte-level table', () => {
  it('maps 256 bytes to 256 distinct characters and back', () => {
    expect(new Set(BYTE_TO_CHAR).size).toBe(256)
    for (let b = 0; b < 256; b++) expect(tokenToBytes(BYTE_TO_CHAR[b]!)).toEqual(new Uint8Array([b]))
  })

  it('spells a space as Ġ, as GPT-2 does', () => {
    expect(BYTE_TO_CHAR[0x20]).toBe('Ġ')
    expect(tokenToBytes('Ġjoy')).toEqual(enc.encode(' joy'))
  })

  it('rejects a token outside the table', () => {
    expect(tokenToBytes('<|eos|>')).not.toBeNull() // plain ASCII is in the table
    expect(tokenToBytes(' ')).toBeNull() // a raw space is not (it is spelled Ġ)
  })
})

describe('StreamingDetokenizer', () => {
  it('never splits a multi-byte character, and deltas join to the text', () => {
    const smile = enc.encode('😊') // 4 bytes
    const pieces = vocab([
      enc.encode(' i'),
      enc.encode(' feel'),
      enc.encode(' '),
      smile.subarray(0, 1),
      smile.subarray(1, 3),
      smile.subarray(3),
      enc.encode(' ok'),
    ])
    const d = new StreamingDetokenizer(pieces)
    const deltas = [0, 1, 2, 3, 4, 5, 6].map((id) => d.push(id))
    deltas.push(d.finish())
    expect(deltas).toEqual(['i', ' feel', '', '', '', ' 😊', ' ok', ''])
    expect(deltas.join('')).toBe('i feel 😊 ok')
    expect(d.text).toBe('i feel 😊 ok')
    for (const delta of deltas) expect(delta).not.toContain('\uFFFD')
  })

  it('trims leading and trailing whitespace, holding trailing spaces until text follows', () => {
    const pieces = vocab([enc.encode('  '), enc.encode('a'), enc.encode(' \n'), enc.encode('b'), enc.encode(' ')])
    const d = new StreamingDetokenizer(pieces)
    const deltas = [0, 1, 2, 3, 4].map((id) => d.push(id))
    deltas.push(d.finish())
    expect(deltas).toEqual(['', 'a', '', ' \nb', '', ''])
    expect(deltas.join('')).toBe(trimReasoning('  a \nb '))
  })

  it('turns an unfinished sequence into U+FFFD at the end, like a lossy UTF-8 decode', () => {
    const pieces = vocab([enc.encode('x'), new Uint8Array([0xe6, 0x97])])
    const d = new StreamingDetokenizer(pieces)
    expect(d.push(0)).toBe('x')
    expect(d.push(1)).toBe('')
    expect(d.finish()).toBe('\uFFFD')
    expect(d.text).toBe('x\uFFFD')
  })

  it('matches a one-shot decode on random byte splits', () => {
    const text = ' les émotions 😊 日本語 joy, fear & love'
    const bytes = enc.encode(text)
    let seed = 7
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
    for (let trial = 0; trial < 50; trial++) {
      const pieces: Uint8Array[] = []
      for (let i = 0; i < bytes.length; ) {
        const n = 1 + Math.floor(rand() * 4)
        pieces.push(bytes.subarray(i, i + n))
        i += n
      }
      const d = new StreamingDetokenizer(pieces)
      let joined = ''
      for (let id = 0; id < pieces.length; id++) {
        const delta = d.push(id)
        expect(delta).not.toContain('\uFFFD')
        joined += delta
      }
      joined += d.finish()
      expect(joined).toBe(text.trim())
    }
  })

  it('uses the whitespace set of Python str.strip()', () => {
    expect(trimReasoning('\u00a0\u3000 a b\x1f\u2029')).toBe('a b')
    expect(trimReasoning('\ufeffa')).toBe('\ufeffa') // not whitespace to Python
  })
})
