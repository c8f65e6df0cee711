/**
 * @module
 * Streaming detokenizer for byte-level BPE: token ids -> bytes -> incremental UTF-8.
 *
 * A multi-byte character split over two tokens is never emitted in halves: `TextDecoder` in
 * streaming mode keeps an incomplete sequence until its last byte arrives. The reasoning is
 * trimmed at both ends (docs/model-package.md, "Decoding"), so leading whitespace is dropped and
 * trailing whitespace is held back until something follows it. The deltas therefore concatenate
 * to exactly `text` at the end.
 */

/**
 * Whitespace trimmed from both ends of the reasoning. Python's `str.strip()` (what `evaluate`
 * uses) strips the characters of `str.isspace()`; this class is that set.
 */
const LEADING_SPACE = /^[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/
const TRAILING_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/

/** Trims the whitespace set of Python's `str.strip()` from both ends. */
export function trimReasoning(text: string): string {
  return text.replace(LEADING_SPACE, '').replace(TRAILING_SPACE, '')
}

/** The bytes of each token id; special ids map to an empty array (they are never pushed). */
export type TokenBytes = readonly Uint8Array[]

export class StreamingDetokenizer {
  /** Bytes of every id in the vocabulary. */
  readonly #tokenBytes: TokenBytes
  readonly #decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true })
  /** Everything decoded so far, untrimmed. */
  #raw = ''
  /** Length of the prefix of the trimmed text already handed out as deltas. */
  #numEmitted = 0
  #finished = false

  constructor(tokenBytes: TokenBytes) {
    this.#tokenBytes = tokenBytes
  }

  /** Adds one token; returns the newly stable text (possibly ''). */
  push(id: number): string {
    if (this.#finished) throw new Error('detokenizer already finished')
    const bytes = this.#tokenBytes[id]
    if (bytes === undefined) throw new Error(`token id ${id} is outside the vocabulary`)
    this.#raw += this.#decoder.decode(bytes, { stream: true })
    return this.#take(this.#raw.replace(LEADING_SPACE, '').replace(TRAILING_SPACE, ''))
  }

  /** Flushes an unfinished byte sequence (as U+FFFD) and returns the last delta. */
  finish(): string {
    if (this.#finished) return ''
    this.#finished = true
    this.#raw += this.#decoder.decode()
    return this.#take(trimReasoning(this.#raw))
  }

  /** The trimmed text so far (all of it after `finish()`). */
  get text(): string {
    return trimReasoning(this.#raw)
  }

  #take(stable: string): string {
    // NOTE: `stable` only ever grows by appending (the start is fixed once a non-space arrived,
    // and trailing spaces are held back), so the slice is always the unsent suffix.
    const delta = stable.slice(this.#numEmitted)
    this.#numEmitted = stable.length
    return delta
  }
}
