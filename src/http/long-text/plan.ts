/**
 * @module
 * Where a text longer than the model's limit is cut into windows (docs/long-texts.md): at sentence
 * boundaries, then at spaces inside a sentence too long for one window, then inside a word too long
 * for one. Pure functions over spans of the text as sent (UTF-16 offsets); the caller supplies the
 * token count, so the plan is exact for whatever the model's encoder does.
 */

/** `text.slice(start, end)`. */
export interface Span {
  start: number
  end: number
}

/** The model's text tokens of `text.slice(start, end)` (normalised, then encoded). */
export type CountTokens = (start: number, end: number) => number

/**
 * A sentence ends after `.`, `!`, `?` or `…` (a run of them, then closing quotes or brackets) that
 * is followed by white space or the end, and at every line break. Abbreviations ("Mr. Smith") end
 * one too: harmless, since windows join sentences again and only their edges fall on these cuts.
 */
const SENTENCE_END = /[.!?\u2026]+["'\u201D\u2019\u00BB)\]]*(?=\s|$)|\n/g
const WORD = /\S+/g
/**
 * How full a cut inside a word aims to make a window: the word's tokens per code point are an
 * average, and a cut that overshoots has to be halved.
 */
const CHUNK_FILL = 0.9

/** `span` without the white space at its ends, or null when nothing else is in it. */
function trimmed(text: string, start: number, end: number): Span | null {
  while (start < end && /\s/.test(text[start]!)) start++
  while (end > start && /\s/.test(text[end - 1]!)) end--
  return start < end ? { start, end } : null
}

/** The sentences of `text`, trimmed, in order; white space between them belongs to none. */
export function splitSentences(text: string): Span[] {
  const spans: Span[] = []
  let start = 0
  for (const m of text.matchAll(SENTENCE_END)) {
    const end = m[0] === '\n' ? m.index : m.index + m[0].length
    const s = trimmed(text, start, end)
    if (s) spans.push(s)
    start = m.index + m[0].length
  }
  const last = trimmed(text, start, text.length)
  if (last) spans.push(last)
  return spans
}

/** The words (runs of non-space) inside `span`. */
export function splitWords(text: string, span: Span): Span[] {
  const inner = text.slice(span.start, span.end)
  return [...inner.matchAll(WORD)].map((m) => ({ start: span.start + m.index, end: span.start + m.index + m[0].length }))
}

/** `span` cut every `size` code points (never inside a surrogate pair). */
export function splitCodePoints(text: string, span: Span, size: number): Span[] {
  const spans: Span[] = []
  let start = span.start
  let at = span.start
  let n = 0
  while (at < span.end) {
    at += text.codePointAt(at)! > 0xffff ? 2 : 1
    if (++n === size || at >= span.end) {
      spans.push({ start, end: Math.min(at, span.end) })
      start = at
      n = 0
    }
  }
  return spans
}

/** A piece too long for one window even when cut at every character; the text cannot be planned. */
export class UnplannableError extends Error {
  override name = 'UnplannableError'
}

/**
 * Pieces that each fit `maxTokens`, covering every sentence of `text` in order: a sentence that
 * fits is one piece; one that does not is cut at spaces; a word that does not fit (an emoji run, a
 * pasted hash) is cut every so many code points, as many as its average tokens per code point
 * lets fit, and such a cut is halved until it fits.
 */
function fittingPieces(text: string, maxTokens: number, count: CountTokens): { pieces: Span[]; counts: number[] } {
  const pieces: Span[] = []
  const counts: number[] = []
  const fit = (span: Span, level: 'sentence' | 'word' | 'chunk', known?: number) => {
    const n = known ?? count(span.start, span.end)
    if (n <= maxTokens) {
      pieces.push(span)
      counts.push(n)
      return
    }
    const numCodePoints = [...text.slice(span.start, span.end)].length
    if (level === 'sentence') {
      const words = splitWords(text, span)
      // A sentence of one word is that word: its count is known.
      for (const w of words) fit(w, 'word', words.length === 1 ? n : undefined)
    } else if (level === 'word') {
      const size = Math.max(1, Math.floor((CHUNK_FILL * maxTokens * numCodePoints) / n))
      for (const c of splitCodePoints(text, span, size)) fit(c, 'chunk')
    } else {
      if (numCodePoints <= 1) throw new UnplannableError(`one character at ${span.start} alone is ${n} tokens, over ${maxTokens}`)
      const [a, b] = splitCodePoints(text, span, Math.ceil(numCodePoints / 2)) as [Span, Span]
      fit(a, 'chunk')
      fit(b, 'chunk')
    }
  }
  for (const s of splitSentences(text)) fit(s, 'sentence')
  return { pieces, counts }
}

/**
 * Consecutive, non-overlapping windows over `text`, each at most `maxTokens` tokens by `count`,
 * together holding every character but the white space between them. Greedy: a window takes
 * pieces (sentences where they fit) while their summed counts fit, then its exact count is checked
 * (tokens of a joined span need not be the sum of its pieces' counts) and it gives pieces back to
 * the next window until it fits. Windows with no tokens (only characters the model drops) are left
 * out. Throws `UnplannableError` when a single character is over `maxTokens`.
 */
export function planWindows(text: string, maxTokens: number, count: CountTokens): Span[] {
  const { pieces, counts } = fittingPieces(text, maxTokens, count)
  const windows: Span[] = []
  let i = 0
  while (i < pieces.length) {
    let j = i
    let sum = counts[i]!
    while (j + 1 < pieces.length && sum + counts[j + 1]! <= maxTokens) sum += counts[++j]!
    // NOTE: a window of one piece is that piece, whose own count fits: the loop always ends.
    let exact = j > i ? count(pieces[i]!.start, pieces[j]!.end) : counts[i]!
    while (exact > maxTokens) {
      j--
      exact = j > i ? count(pieces[i]!.start, pieces[j]!.end) : counts[i]!
    }
    if (exact > 0) windows.push({ start: pieces[i]!.start, end: pieces[j]!.end })
    i = j + 1
  }
  return windows
}

/** `spans` (UTF-16 offsets, in order) as code point offsets, how the API counts characters. */
export function toCodePoints(text: string, spans: readonly Span[]): Span[] {
  const offsets = spans.flatMap((s) => [s.start, s.end])
  const out: number[] = []
  let unit = 0
  let point = 0
  for (const target of offsets) {
    if (target < unit) throw new Error('toCodePoints: spans must be in order')
    while (unit < target) {
      unit += text.codePointAt(unit)! > 0xffff ? 2 : 1
      point++
    }
    out.push(point)
  }
  return spans.map((_, k) => ({ start: out[2 * k]!, end: out[2 * k + 1]! }))
}
