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
  for (const b of token) {
    if (b === QUOTE) {
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
    } else if (inside) {
      const grown = new Uint8Array(quote.length + 1)
      grown.set(quote)
      grown[quote.length] = b
      if (!occursAsWords(source, grown, false)) return null
      quote = grown
    }
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

/** One pass of `pickGrounded`, with repeated quotations allowed or not; `null`: nothing allowed. */
function pickOnce(
  logits: Float32Array,
  offset: number,
  size: number,
  ctx: GroundingContext,
  state: QuoteState,
  repeatOk: boolean,
): { token: number; state: QuoteState } | null {
  let best = -1
  let bestValue = -Infinity
  for (let i = 0; i < size; i++) {
    const v = logits[offset + i]!
    if (v > bestValue && !ctx.banned.has(i)) {
      best = i
      bestValue = v
    }
  }
  if (best < 0) return null
  const next = allowed(ctx, state, best, repeatOk)
  if (next) return { token: best, state: next }
  // Otherwise walk the rest in order (logit descending, id ascending), as decode.py does. Inside a
  // quotation this happens on most steps, and the allowed token is nearly always among the next few:
  // a scan for the next one in that order costs far less than sorting the whole vocabulary.
  let prev = best
  for (let k = 0; k < LAZY_SCANS; k++) {
    const t = nextInOrder(logits, offset, size, ctx.banned, prev)
    if (t < 0) return null
    const s = allowed(ctx, state, t, repeatOk)
    if (s) return { token: t, state: s }
    prev = t
  }
  const pv = logits[offset + prev]!
  const order: number[] = []
  for (let i = 0; i < size; i++) {
    const v = logits[offset + i]!
    if (v > -Infinity && (v < pv || (v === pv && i > prev)) && !ctx.banned.has(i)) order.push(i)
  }
  order.sort((a, b) => logits[offset + b]! - logits[offset + a]! || a - b)
  for (const t of order) {
    const s = allowed(ctx, state, t, repeatOk)
    if (s) return { token: t, state: s }
  }
  return null
}

/** Successive-maximum scans `pickOnce` tries before it sorts what is left. */
const LAZY_SCANS = 16

/**
 * The token after `prev` in the order logit descending, id ascending (banned ids, -Infinity and NaN
 * left out); -1 when none is left.
 */
function nextInOrder(logits: Float32Array, offset: number, size: number, banned: ReadonlySet<number>, prev: number): number {
  const pv = logits[offset + prev]!
  let next = -1
  let nextValue = -Infinity
  for (let i = 0; i < size; i++) {
    const v = logits[offset + i]!
    if (!(v > nextValue) || v > pv || (v === pv && i <= prev)) continue
    if (!banned.has(i)) {
      next = i
      nextValue = v
    }
  }
  return next
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
  return (
    pickOnce(logits, offset, size, ctx, state, false) ??
    pickOnce(logits, offset, size, ctx, state, true) ?? { token: ctx.marker, state }
  )
}
