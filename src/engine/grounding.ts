/**
 * @module
 * Grounded quoting (docs/model-package.md, "Decoding"): while the reasoning is inside a quotation
 * ("..."), only tokens that keep the quoted bytes whole words of the input are allowed, so every quote
 * the model writes occurs in the text it read (normalised, as the model sees it). Pure functions,
 * the same rules as `training/because_train/decode.py` (`advance_quote`, `Grounding.pick`).
 */

/** `"`: natural-v1 never leaves one in the input, so in the reasoning it always delimits a quote. */
export const QUOTE = 0x22

/**
 * Where the reasoning stands: inside a quotation or not, the bytes quoted so far, and the
 * quotations already closed (each as a string of one char per byte).
 */
export interface QuoteState {
  readonly inside: boolean
  readonly quote: Uint8Array
  readonly quoted: ReadonlySet<string>
}

export const OUTSIDE: QuoteState = { inside: false, quote: new Uint8Array(0), quoted: new Set() }

function key(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes)
}

const SPACE = 0x20

/**
 * Whether `needle` occurs in `source` where a word starts (at the start or after a space) and, when
 * `closed`, ends where a word ends (at the end or before a space): `decode.py`'s
 * `b" " + needle in b" " + source` (open) and `b" " + needle + b" " in b" " + source + b" "` (closed).
 */
export function occursAsWords(source: Uint8Array, needle: Uint8Array, closed: boolean): boolean {
  const n = needle.length
  const m = source.length
  outer: for (let i = 0; i + n <= m; i++) {
    if (i > 0 && source[i - 1] !== SPACE) continue
    if (closed && i + n < m && source[i + n] !== SPACE) continue
    for (let j = 0; j < n; j++) if (source[i + j] !== needle[j]) continue outer
    return true
  }
  return false
}

/**
 * The state after `token`, or `null` when the token would quote what is not a phrase of `source`:
 * an empty quotation, a quotation opened where the input is empty, or quoted bytes that are not
 * whole words of `source` (a quote starts where a word starts and closes where one ends, so "hate"
 * is no quote of "hated"); and, unless `repeatOk`, a phrase the reasoning has already quoted, or
 * a quotation that can only become one.
 */
export function advanceQuote(
  state: QuoteState,
  token: Uint8Array,
  source: Uint8Array,
  repeatOk = false,
): QuoteState | null {
  let inside = state.inside
  let quote = state.quote
  let quoted = state.quoted
  // The token's bytes between quotation marks, a run at a time: a quote that occurs where a word
  // starts has every prefix occurring there too, so checking a run's end checks each of its bytes.
  for (let at = 0; at <= token.length; ) {
    const mark = token.indexOf(QUOTE, at)
    const end = mark < 0 ? token.length : mark
    if (inside && end > at) {
      const grown = new Uint8Array(quote.length + end - at)
      grown.set(quote)
      grown.set(token.subarray(at, end), quote.length)
      if (!occursAsWords(source, grown, false)) return null
      quote = grown
    }
    if (mark < 0) break
    if (inside) {
      if (quote.length === 0 || !occursAsWords(source, quote, true)) return null
      const k = key(quote)
      if (quoted.has(k) && !repeatOk) return null
      if (!quoted.has(k)) quoted = new Set([...quoted, k])
    } else if (source.length === 0) {
      return null
    }
    inside = !inside
    quote = new Uint8Array(0)
    at = mark + 1
  }
  // Every phrase this quotation could still become was quoted already: turned away before the
  // model is committed to a repeat (a closing mark alone could refuse it only when nothing else
  // can follow).
  if (inside && !repeatOk && !leadsToNew(source, quote, quoted)) return null
  return inside === state.inside && quote === state.quote ? state : { inside, quote, quoted }
}

/**
 * Whether some phrase of whole words of `source` that starts with `prefix` is not in `quoted`
 * (`decode.py`'s `leads_to_new`).
 */
export function leadsToNew(source: Uint8Array, prefix: Uint8Array, quoted: ReadonlySet<string>): boolean {
  if (quoted.size === 0) return true
  const m = source.length
  const n = prefix.length
  outer: for (let i = 0; i + n <= m; i++) {
    if (i > 0 && source[i - 1] !== SPACE) continue
    for (let j = 0; j < n; j++) if (source[i + j] !== prefix[j]) continue outer
    for (let e = i + n; ; ) {
      if (e > i && (e === m || source[e] === SPACE) && !quoted.has(key(source.subarray(i, e)))) return true
      if (e >= m) break
      const next = source.indexOf(SPACE, e + 1)
      e = next < 0 ? m : next
    }
  }
  return false
}

/** The grounding of one sequence: its input bytes and the table of every token's bytes. */
export interface GroundingContext {
  readonly source: Uint8Array
  readonly tokenBytes: readonly Uint8Array[]
  readonly banned: ReadonlySet<number>
  readonly marker: number
}

/** The state after `token` if it is allowed now, else `null`; the marker only outside a quotation. */
function allowed(ctx: GroundingContext, state: QuoteState, token: number, repeatOk: boolean): QuoteState | null {
  if (token === ctx.marker) return state.inside ? null : state
  const bytes = ctx.tokenBytes[token]!
  if (!state.inside && !bytes.includes(QUOTE)) return state
  return advanceQuote(state, bytes, ctx.source, repeatOk)
}

/**
 * One row's candidates in the order logit descending, id ascending (banned ids, -Infinity and NaN
 * left out), as decode.py walks them, worked out only as far as they are asked for. Inside a
 * quotation the allowed token is nearly always among the first few: one scan keeping the best
 * TOP_CANDIDATES costs about what finding the maximum does. Past them (about one pick in ten
 * inside quotations) the rest goes into a heap, popped one at a time, shared by both passes of
 * `pickGrounded`. Measured on 4096 random logits (Node 20, the 2-core box): 15 us for the first
 * scan; 99 us for a pick whose allowed token is the 200th candidate (scan, heap, 176 pops),
 * against 957 us for the comparator sort of the rest that the fallback did before.
 */
class Candidates {
  readonly #order: number[]
  #rest: KeyHeap | null = null
  readonly #row: () => KeyHeap

  constructor(logits: Float32Array, offset: number, size: number, banned: ReadonlySet<number>) {
    this.#order = topInOrder(logits, offset, size, banned, TOP_CANDIDATES)
    const prev = this.#order.at(-1)
    this.#row = () => new KeyHeap(restKeys(logits, offset, size, banned, prev!))
    if (this.#order.length < TOP_CANDIDATES) this.#rest = new KeyHeap(new Float64Array(0))
  }

  /** The i-th candidate, or -1 past the last. */
  at(i: number): number {
    while (i >= this.#order.length) {
      this.#rest ??= this.#row()
      const id = this.#rest.pop()
      if (id < 0) return -1
      this.#order.push(id)
    }
    return this.#order[i]!
  }
}

/** One pass of `pickGrounded`, with repeated quotations allowed or not; `null`: nothing allowed. */
function pickOnce(
  candidates: Candidates,
  ctx: GroundingContext,
  state: QuoteState,
  repeatOk: boolean,
): { token: number; state: QuoteState } | null {
  for (let i = 0; ; i++) {
    const t = candidates.at(i)
    if (t < 0) return null
    const s = allowed(ctx, state, t, repeatOk)
    if (s) return { token: t, state: s }
  }
}

/** Candidates `Candidates` takes in one scan before it heaps what is left. */
const TOP_CANDIDATES = 24

const bits = new Float32Array(1)
const bitsU32 = new Uint32Array(bits.buffer)
/** Room for the id below the value in a sort key: vocabularies up to 2^21 tokens. */
const ID_SPAN = 2 ** 21

/**
 * Sort keys of the candidates after `prev` in the order logit descending, id ascending (banned
 * ids, -Infinity and NaN left out), unordered: each the logit's bits made to sort descending
 * times ID_SPAN plus the id, one float64 (exact below 2^53), so ascending keys are that order.
 */
function restKeys(logits: Float32Array, offset: number, size: number, banned: ReadonlySet<number>, prev: number): Float64Array {
  if (size > ID_SPAN) throw new Error(`a vocabulary of ${size} tokens; at most ${ID_SPAN}`)
  const pv = logits[offset + prev]!
  const keys = new Float64Array(size)
  let n = 0
  for (let i = 0; i < size; i++) {
    const v = logits[offset + i]!
    if (!(v > -Infinity) || v > pv || (v === pv && i <= prev) || banned.has(i)) continue
    bits[0] = v + 0 // -0 as +0: equal logits tie by id
    const u = bitsU32[0]!
    // Float bits ordered as numbers (negative: all bits flipped; positive: sign bit set), then reversed.
    const ascending = u & 0x80000000 ? ~u >>> 0 : (u | 0x80000000) >>> 0
    keys[n++] = (0xffffffff - ascending) * ID_SPAN + i
  }
  return keys.subarray(0, n)
}

/** A binary min-heap over sort keys (restKeys), built in place; `pop` gives ids in key order. */
class KeyHeap {
  readonly #keys: Float64Array
  #size: number

  constructor(keys: Float64Array) {
    this.#keys = keys
    this.#size = keys.length
    for (let i = (this.#size >> 1) - 1; i >= 0; i--) this.#down(i)
  }

  /** The id of the smallest key left, or -1. */
  pop(): number {
    if (this.#size === 0) return -1
    const keys = this.#keys
    const top = keys[0]!
    keys[0] = keys[--this.#size]!
    this.#down(0)
    return top % ID_SPAN
  }

  #down(i: number): void {
    const keys = this.#keys
    const n = this.#size
    const x = keys[i]!
    for (;;) {
      let c = 2 * i + 1
      if (c >= n) break
      if (c + 1 < n && keys[c + 1]! < keys[c]!) c++
      if (keys[c]! >= x) break
      keys[i] = keys[c]!
      i = c
    }
    keys[i] = x
  }
}

/** The candidates after `prev`, in order (what `Candidates` pops one at a time; for tests). */
export function restInOrder(logits: Float32Array, offset: number, size: number, banned: ReadonlySet<number>, prev: number): number[] {
  const heap = new KeyHeap(restKeys(logits, offset, size, banned, prev))
  const out: number[] = []
  for (let id = heap.pop(); id >= 0; id = heap.pop()) out.push(id)
  return out
}

/**
 * The first `k` ids of `logits[offset, offset + size)` in the order logit descending, id ascending,
 * banned ids, -Infinity and NaN left out (fewer when fewer are left).
 */
export function topInOrder(logits: Float32Array, offset: number, size: number, banned: ReadonlySet<number>, k: number): number[] {
  const ids: number[] = []
  const values: number[] = []
  for (let i = 0; i < size; i++) {
    const v = logits[offset + i]!
    // Ids come in ascending order, so a tie with the k-th never displaces it.
    if (!(v > -Infinity) || (ids.length === k && !(v > values[k - 1]!))) continue
    if (banned.has(i)) continue
    let at = ids.length === k ? k - 1 : ids.length
    while (at > 0 && values[at - 1]! < v) {
      ids[at] = ids[at - 1]!
      values[at] = values[at - 1]!
      at--
    }
    ids[at] = i
    values[at] = v
  }
  return ids
}

/**
 * Greedy choice under grounding: the highest-logit token in `logits[offset, offset + size)` that is
 * neither banned nor ungrounded (lowest id on ties, NaN never wins). Inside a quotation the marker
 * comes last (it would leave the quotation open), and a phrase already quoted may be quoted again
 * only where nothing else can follow; outside, the marker is an ordinary candidate. As decode.py's
 * `Grounding.pick`.
 */
export function pickGrounded(
  logits: Float32Array,
  offset: number,
  size: number,
  ctx: GroundingContext,
  state: QuoteState,
): { token: number; state: QuoteState } {
  // Nearly every pick is the best token itself (outside a quotation, any token without '"'):
  // one plain scan finds it, and the ordered candidates are only worked out when it is refused.
  const best = bestId(logits, offset, size, ctx.banned)
  if (best < 0) return { token: ctx.marker, state }
  const next = allowed(ctx, state, best, false)
  if (next) return { token: best, state: next }
  const candidates = new Candidates(logits, offset, size, ctx.banned)
  return pickOnce(candidates, ctx, state, false) ?? pickOnce(candidates, ctx, state, true) ?? { token: ctx.marker, state }
}

/**
 * The id of the highest logit in `logits[offset, offset + size)`, the lowest id on ties, banned
 * ids, -Infinity and NaN left out; -1 when none is left. The first candidate of `topInOrder`.
 */
export function bestId(logits: Float32Array, offset: number, size: number, banned: ReadonlySet<number>): number {
  let best = -1
  let bestValue = -Infinity
  for (let i = 0; i < size; i++) {
    const v = logits[offset + i]!
    // Strictly greater: a tie keeps the lower id, and NaN or -Infinity never enter.
    if (v > bestValue && !banned.has(i)) {
      best = i
      bestValue = v
    }
  }
  return best
}
