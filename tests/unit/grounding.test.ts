/**
 * Grounded quoting, the pure rules (src/engine/grounding.ts, the same as training/ decode.py): a
 * quotation the reasoning opens must stay whole words of the input's bytes, and the greedy pick
 * walks down the candidates until one keeps it so.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { OUTSIDE, advanceQuote, bestId, leadsToNew, occursAsWords, pickGrounded, restInOrder, topInOrder } from '../../src/engine/grounding.js'
import type { GroundingContext, QuoteState } from '../../src/engine/grounding.js'

const utf8 = (s: string) => new TextEncoder().encode(s)

/** Python's `needle in haystack` on bytes: the oracle occursAsWords is checked against. */
function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer
    return true
  }
  return false
}
const bytes = (...xs: number[]) => Uint8Array.from(xs)
const inside = (quote: string | Uint8Array, quoted: string[] = []): QuoteState => ({
  inside: true,
  quote: typeof quote === 'string' ? utf8(quote) : quote,
  quoted: new Set(quoted),
})
/** A state as plain data, to compare with toEqual. */
const plain = (s: QuoteState | null) => s && { inside: s.inside, quote: [...s.quote] }

describe('containsBytes and occursAsWords', () => {
  it('finds a byte string anywhere, the empty one always', () => {
    const h = utf8('abcabd')
    expect(containsBytes(h, utf8('abd'))).toBe(true)
    expect(containsBytes(h, utf8('abcabd'))).toBe(true)
    expect(containsBytes(h, utf8('abe'))).toBe(false)
    expect(containsBytes(h, utf8('abdx'))).toBe(false)
    expect(containsBytes(h, new Uint8Array(0))).toBe(true)
    expect(containsBytes(new Uint8Array(0), utf8('a'))).toBe(false)
  })

  it('finds a byte string where a word starts and, when closed, ends where a word ends', () => {
    const h = utf8('i hated it so')
    expect(occursAsWords(h, utf8('hate'), false)).toBe(true)
    expect(occursAsWords(h, utf8('hate'), true)).toBe(false)
    expect(occursAsWords(h, utf8('hated'), true)).toBe(true)
    expect(occursAsWords(h, utf8('ated'), false)).toBe(false)
    expect(occursAsWords(h, utf8('i'), true)).toBe(true)
    expect(occursAsWords(h, utf8('it so'), true)).toBe(true)
    expect(occursAsWords(h, utf8('s'), true)).toBe(false)
    // An open quotation may not run past the end of the input: no closing mark could follow.
    expect(occursAsWords(h, utf8('so '), false)).toBe(false)
    expect(occursAsWords(h, utf8('it '), false)).toBe(true)
    expect(occursAsWords(h, utf8('so '), true)).toBe(false)
  })

  it('is decode.py\'s b" " + needle in b" " + source (open) or b" " + needle + b" " in b" " + source + b" " (closed)', () => {
    const text = fc.string({ unit: fc.constantFrom('a', 'b', ' '), maxLength: 8 }).map(utf8)
    fc.assert(
      fc.property(text, text, fc.boolean(), (source, needle, closed) => {
        const padded = Uint8Array.from([0x20, ...source, ...(closed ? [0x20] : [])])
        const wanted = Uint8Array.from([0x20, ...needle, ...(closed ? [0x20] : [])])
        expect(occursAsWords(source, needle, closed)).toBe(containsBytes(padded, wanted))
      }),
      { numRuns: 5000 },
    )
  })
})

describe('advanceQuote', () => {
  const source = utf8('i feel so happy today')

  it('leaves the state alone for a token with no quotation mark outside a quotation', () => {
    expect(advanceQuote(OUTSIDE, utf8(' joy because'), source)).toBe(OUTSIDE)
  })

  it('opens a quotation and grows it while it stays words of the input', () => {
    const opened = advanceQuote(OUTSIDE, utf8(' "'), source)
    expect(plain(opened)).toEqual(plain(inside('')))
    const grown = advanceQuote(opened!, utf8('so hap'), source)
    expect(plain(grown)).toEqual(plain(inside('so hap')))
    expect(plain(advanceQuote(grown!, utf8('py"'), source))).toEqual(plain(OUTSIDE))
  })

  it('rejects an empty quotation', () => {
    expect(advanceQuote(OUTSIDE, utf8('""'), source)).toBeNull()
    expect(advanceQuote(inside(''), utf8('"'), source)).toBeNull()
  })

  it('rejects quoted bytes the input does not hold, at the first byte that strays', () => {
    expect(advanceQuote(inside(''), utf8('sad'), source)).toBeNull()
    expect(advanceQuote(inside('so'), utf8(' sad'), source)).toBeNull()
    // "happy today" is there, but not after "so ".
    expect(advanceQuote(inside('so '), utf8('today'), source)).toBeNull()
    expect(advanceQuote(OUTSIDE, utf8(' "happy" and "sad"'), source)).toBeNull()
  })

  it('rejects a quotation that starts or ends inside a word', () => {
    expect(advanceQuote(inside(''), utf8('eel'), source)).toBeNull()
    expect(advanceQuote(inside(''), utf8(' feel'), source)).toBeNull()
    expect(plain(advanceQuote(inside(''), utf8('hap'), source))).toEqual(plain(inside('hap')))
    expect(advanceQuote(inside('hap'), utf8('"'), source)).toBeNull()
    expect(advanceQuote(inside('so'), utf8(' "'), source)).toBeNull()
  })

  it('never lets an open quotation run past the end of the input, where it could not be closed', () => {
    expect(advanceQuote(inside('happy'), utf8(' '), utf8('so happy'))).toBeNull()
    expect(advanceQuote(inside('happy'), utf8('"'), utf8('so happy'))).not.toBeNull()
  })

  it('takes a token that closes and reopens (`" "`) as two quotations', () => {
    expect(plain(advanceQuote(inside('feel'), utf8('" "'), source))).toEqual(plain(inside('')))
    expect(advanceQuote(inside('feel'), utf8('" "happy'), source)).not.toBeNull()
    expect(advanceQuote(inside('feel'), utf8('" "sad'), source)).toBeNull()
    // The first of the two would be empty, or not a whole word.
    expect(advanceQuote(inside(''), utf8('" "'), source)).toBeNull()
    expect(advanceQuote(inside('fee'), utf8('" "'), source)).toBeNull()
    // Outside, it opens a quotation starting with a space: no word starts with one.
    expect(advanceQuote(OUTSIDE, utf8('" "'), source)).toBeNull()
  })

  it('compares bytes, so a quotation may go on inside a multi-byte character but not end there', () => {
    const src = utf8('café 😊 naïve')
    const smile = utf8('😊')
    const half = advanceQuote(inside(''), smile.subarray(0, 2), src)
    expect(plain(half)).toEqual(plain(inside(smile.subarray(0, 2))))
    expect(advanceQuote(half!, utf8('"'), src)).toBeNull()
    const whole = advanceQuote(half!, smile.subarray(2), src)
    expect(plain(whole)).toEqual(plain(inside(smile)))
    expect(plain(advanceQuote(whole!, utf8('"'), src))).toEqual(plain(OUTSIDE))
    expect(plain(advanceQuote(inside('caf'), bytes(0xc3), src))).toEqual(plain(inside(utf8('caf\u00c3').subarray(0, 4))))
    // é is C3 A9; C3 followed by AF (the ï of "naïve" is C3 AF) after "caf" is not in the input.
    expect(advanceQuote(inside('caf'), bytes(0xc3, 0xaf), src)).toBeNull()
    expect(plain(advanceQuote(inside('na'), utf8('ïve"'), src))).toEqual(plain(OUTSIDE))
  })

  it('never opens a quotation over an empty input', () => {
    const empty = new Uint8Array(0)
    expect(advanceQuote(OUTSIDE, utf8('"'), empty)).toBeNull()
    expect(advanceQuote(OUTSIDE, utf8(' joy'), empty)).toBe(OUTSIDE)
  })
})

describe('pickGrounded', () => {
  // 0 bos (banned), 1 marker, then tokens spelling these bytes.
  const spelled = ['<|bos|>', '<|label|>', ' "', 'happy', 'sad', 'hap', '"', ' joy', ' "happy"', ' "sad"']
  const ctx: GroundingContext = {
    source: utf8('so happy'),
    tokenBytes: spelled.map(utf8),
    banned: new Set([0]),
    marker: 1,
  }
  const V = spelled.length
  /** Logits with the given values, every other id at -inf. */
  const logits = (values: Record<number, number>) => {
    const row = new Float32Array(V).fill(-Infinity)
    for (const [id, v] of Object.entries(values)) row[Number(id)] = v
    return row
  }

  it('takes the best token outside a quotation, skipping banned ids, lowest id on ties', () => {
    expect(pickGrounded(logits({ 0: 9, 4: 5, 7: 5 }), 0, V, ctx, OUTSIDE)).toEqual({ token: 4, state: OUTSIDE })
  })

  it('reads one row at an offset and never picks NaN', () => {
    const row = new Float32Array(2 * V).fill(-Infinity)
    row[V + 7] = 2
    row[V + 4] = NaN
    row[7] = 9
    expect(pickGrounded(row, V, V, ctx, OUTSIDE).token).toBe(7)
  })

  it('moves into a quotation and keeps its state', () => {
    const r = pickGrounded(logits({ 2: 3, 7: 1 }), 0, V, ctx, OUTSIDE)
    expect(r.token).toBe(2)
    expect(plain(r.state)).toEqual(plain(inside('')))
  })

  it('falls back through the candidates in logit order until one is grounded, ties to the lower id', () => {
    // Inside a quotation: "sad" (best) is not in the input; "happy" and "hap" tie next.
    const r = pickGrounded(logits({ 4: 9, 3: 5, 5: 5, 7: 1 }), 0, V, ctx, inside(''))
    expect(r.token).toBe(3)
    expect(plain(r.state)).toEqual(plain(inside('happy')))
    // A whole quotation in one token: ' "sad"' loses to ' "happy"'.
    const whole = pickGrounded(logits({ 9: 9, 8: 4 }), 0, V, ctx, OUTSIDE)
    expect(whole.token).toBe(8)
    expect(whole.state.inside).toBe(false)
    expect([...whole.state.quoted]).toEqual(['happy'])
    // Closing right after opening is an empty quotation: the next candidate wins.
    expect(pickGrounded(logits({ 6: 9, 5: 2 }), 0, V, ctx, inside('')).token).toBe(5)
  })

  it('gives the marker when nothing else is allowed, and always allows it', () => {
    expect(pickGrounded(logits({ 4: 9, 6: 3 }), 0, V, ctx, inside('')).token).toBe(1)
    expect(pickGrounded(logits({ 0: 9 }), 0, V, ctx, OUTSIDE).token).toBe(1)
    expect(pickGrounded(new Float32Array(V).fill(NaN), 0, V, ctx, OUTSIDE).token).toBe(1)
    // Inside a quotation the marker ends the reasoning with the quotation left open.
    const open = inside('hap')
    expect(pickGrounded(logits({ 1: 9, 3: 8 }), 0, V, ctx, open)).toEqual({ token: 1, state: open })
  })
  it('walks the candidates in the order a full sort gives, however far down the first allowed one is', () => {
    // A vocabulary of `n` tokens where only `ok` spell grounded text ("happy"); the rest stray ("sad").
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 60 }),
        fc.array(fc.integer({ min: -3, max: 3 }), { minLength: 60, maxLength: 60 }),
        fc.uniqueArray(fc.integer({ min: 2, max: 59 }), { maxLength: 3 }),
        fc.uniqueArray(fc.integer({ min: 2, max: 59 }), { maxLength: 8 }),
        (n, values, ok, banned) => {
          const big: GroundingContext = {
            source: utf8('so happy'),
            tokenBytes: Array.from({ length: n }, (_, i) => utf8(i === 1 ? '<|label|>' : ok.includes(i) ? 'happy' : 'sad')),
            banned: new Set([0, ...banned]),
            marker: 1,
          }
          const row = Float32Array.from(values.slice(0, n), (v, i) => (i === 1 ? -Infinity : v))
          const order = [...row.keys()].filter((i) => row[i]! > -Infinity && !big.banned.has(i))
          order.sort((a, b2) => row[b2]! - row[a]! || a - b2)
          const expected = order.find((i) => ok.includes(i)) ?? 1
          expect(pickGrounded(row, 0, n, big, inside('')).token).toBe(expected)
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('bestId, topInOrder and restInOrder', () => {
  it('is the first k of a full sort (logit descending, id ascending), without banned ids, NaN or -Infinity', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: -4, max: 4 }), fc.constantFrom(Number.NaN, -Infinity, Infinity, -0, 0.5, -0.5)), { minLength: 1, maxLength: 80 }),
        fc.uniqueArray(fc.integer({ min: 0, max: 79 }), { maxLength: 10 }),
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 0, max: 3 }),
        (values, bannedIds, k, offset) => {
          const row = Float32Array.from([...Array(offset).fill(99), ...values])
          const banned = new Set(bannedIds)
          const order = values.map((_, i) => i).filter((i) => values[i]! > -Infinity && !banned.has(i))
          order.sort((a, b) => (values[b]! === values[a]! ? a - b : values[b]! > values[a]! ? 1 : -1))
          const top = topInOrder(row, offset, values.length, banned, k)
          expect(top).toEqual(order.slice(0, k))
          expect(bestId(row, offset, values.length, banned)).toBe(order[0] ?? -1)
          // and the rest after the k-th, by the packed-key sort
          if (top.length === k) expect(restInOrder(row, offset, values.length, banned, top[k - 1]!)).toEqual(order.slice(k))
        },
      ),
      { numRuns: 500 },
    )
  })
})

describe('repeated quotations', () => {
  const source = utf8('i hated it')
  const tokens = [utf8('<m>'), utf8('"'), utf8('hated'), utf8('it'), utf8(' it')]
  const ctx: GroundingContext = { source, tokenBytes: tokens, banned: new Set(), marker: 0 }

  it('refuses to close a phrase already quoted, unless asked to allow it', () => {
    expect(advanceQuote(inside('it', ['it']), utf8('"'), source)).toBeNull()
    const closed = advanceQuote(inside('it', ['it']), utf8('"'), source, true)
    expect(closed?.inside).toBe(false)
    expect([...closed!.quoted]).toEqual(['it'])
    expect([...advanceQuote(inside('hated'), utf8('"'), source)!.quoted]).toEqual(['hated'])
  })

  it('quotes a phrase again only where nothing else could close the quotation (as decode.py)', () => {
    // "it" is the last word: no longer quote is possible, so the repeat beats leaving it open.
    const again = pickGrounded(new Float32Array([5, 9, 1, 1, 1]), 0, 5, ctx, inside('it', ['it']))
    expect(again.token).toBe(1)
    // "hated" can grow into "hated it": the repeat is refused.
    const grown = pickGrounded(new Float32Array([0, 9, 1, 1, 1]), 0, 5, ctx, inside('hated', ['hated']))
    expect(grown.token).toBe(4)
  })

  it('turns a quotation away as soon as it can only become a phrase already quoted', () => {
    // "i got the job i feel so happy": "happy" quoted once; a new quotation may not head for it again.
    const text = utf8('i feel so happy')
    const quoted = ['happy']
    expect(leadsToNew(text, utf8('happy'), new Set(quoted))).toBe(false)
    expect(leadsToNew(text, utf8('hap'), new Set(quoted))).toBe(false)
    expect(leadsToNew(text, utf8('so'), new Set(quoted))).toBe(true) // "so", "so happy"
    expect(leadsToNew(text, new Uint8Array(0), new Set(quoted))).toBe(true)
    expect(leadsToNew(text, new Uint8Array(0), new Set(['i', 'i feel', 'i feel so', 'i feel so happy', 'feel', 'feel so', 'feel so happy', 'so', 'so happy', 'happy']))).toBe(false)
    expect(advanceQuote(inside('', quoted), utf8('happy'), text)).toBeNull()
    expect(advanceQuote(inside('', quoted), utf8('happy'), text, true)?.quote).toEqual(utf8('happy'))
    // In decoding the model's favourite, "happy" again, gives way to its next choice that can be new.
    const words = [utf8('<m>'), utf8('"'), utf8('happy'), utf8('so'), utf8('feel')]
    const c: GroundingContext = { source: text, tokenBytes: words, banned: new Set(), marker: 0 }
    expect(pickGrounded(new Float32Array([0, 1, 9, 5, 3]), 0, 5, c, inside('', quoted)).token).toBe(3)
  })
})
