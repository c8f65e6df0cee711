/**
 * @module
 * Text normalisation named by `manifest.prompt.normalize` (docs/model-package.md, "Building the input").
 * `tests/fixtures/normalize.json` pins it for this service and for `training/` alike: every rule
 * here is `training/because_train/normalize.py` step for step, and its output must be identical.
 */

/** The rules a model package may name. */
export const NORMALIZE_RULES = ['lower-alnum-v1', 'natural-v1', 'none'] as const
export type NormalizeRule = (typeof NORMALIZE_RULES)[number]

// U+0027 ', U+2018 ‘, U+2019 ’, U+02BC ʼ, U+0060 `, U+00B4 ´. Deleted first: NFKD would turn U+00B4
// into a space plus a combining mark, leaving a word split in two.
const APOSTROPHES = /['\u2018\u2019\u02BC`\u00B4]/g
const MARKS = /\p{M}/gu
const NOT_ALNUM = /[^a-z0-9]+/g

// natural-v1. The `u` and `i` flags together fold case as Python's `re.IGNORECASE` does on str
// patterns (U+017F long s matches "s"); without `u`, JavaScript would not fold it.
const URL_PATTERN = /(?:https?:\/\/|www\.)[^ \t\n\r\f\v]+/giu
const MASK = /\[(?:NAME|PERSON|RELIGION)\]/g
const ELONGATED = /([a-z!?])\1{2,}/g
// Runs of other characters collapse to one space whether they are counted in code points (Python)
// or UTF-16 units (here), so this one needs no `u` flag.
const NOT_KEPT = /[^a-z0-9!?]+/g
const PUNCT_RUN = /[!?]+/g
const SPACES = / +/g
// Characters that only shape an emoji (variation selectors, zero-width joiner, skin tones, flag
// letters): without them a toned or joined emoji is looked up as its base code points.
const EMOJI_SHAPING = /[\uFE0E\uFE0F\u200D\u{1F3FB}-\u{1F3FF}\u{1F1E6}-\u{1F1FF}]/gu
// ASCII whitespace only, as in Python's pattern: an emoticon glued to a word ("Note:Dan") is not one.
const EMOTICON_BEFORE = '(?<![^ \\t\\n\\r\\f\\v])'
const EMOTICON_AFTER = '(?![^ \\t\\n\\r\\f\\v])'

/** The shape of a package's `emoji.json` (written by `training/because_train/emoji_table.py`). */
export interface EmojiTableJson {
  version?: number
  source?: string
  /** One code point -> the words it becomes. */
  emoji: Record<string, string>
  /** An ASCII emoticon -> the words it becomes. */
  emoticons: Record<string, string>
}

/** Orders strings by code point, as Python compares str (UTF-16 order differs above U+FFFF). */
function compareCodePoints(a: string, b: string): number {
  const x = [...a]
  const y = [...b]
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!
    if (d !== 0) return d
  }
  return x.length - y.length
}

/** Escapes regex syntax characters; only these, since a needless escape is an error under `u`. */
function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')
}

/** `natural-v1`'s table of emoji and emoticons, parsed once per package. */
export class EmojiTable {
  readonly emoji: ReadonlyMap<string, string>
  readonly emoticons: ReadonlyMap<string, string>
  readonly emoticonPattern: RegExp

  constructor(doc: EmojiTableJson) {
    this.emoji = new Map(Object.entries(doc.emoji))
    this.emoticons = new Map(Object.entries(doc.emoticons))
    // Longest first (in code points), then by code point: the order Python builds its alternation
    // in, so that ":'(" is tried before anything it starts with and both sides pick the same match.
    const alts = [...this.emoticons.keys()]
      .sort((a, b) => [...b].length - [...a].length || compareCodePoints(a, b))
      .map(escapeRegExp)
    this.emoticonPattern =
      alts.length > 0 ? new RegExp(`${EMOTICON_BEFORE}(?:${alts.join('|')})${EMOTICON_AFTER}`, 'gu') : /(?!)/g
  }

  /**
   * Checks a parsed `emoji.json`; throws an `Error` with a one-line reason when it is not a table
   * (the caller adds the file name).
   */
  static parse(doc: unknown): EmojiTable {
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('expected a JSON object')
    const { emoji, emoticons } = doc as Record<string, unknown>
    for (const [name, value] of [['emoji', emoji], ['emoticons', emoticons]] as const) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new Error(`${name} must be an object of strings`)
      }
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw new Error(`${name}[${JSON.stringify(k)}] must be a string`)
        // An empty emoticon would match between any two spaces.
        if (k === '') throw new Error(`${name} has an empty key`)
      }
    }
    return new EmojiTable(doc as EmojiTableJson)
  }
}

/**
 * `lower-alnum-v1`: delete apostrophes, NFKD, drop combining marks, lower-case, every run of
 * characters outside `a-z0-9` becomes one space, trim.
 *
 * @example
 * ```ts
 * lowerAlnumV1("I didn't feel HUMILIATED!! 😊") // 'i didnt feel humiliated'
 * ```
 */
export function lowerAlnumV1(text: string): string {
  return text
    .replace(APOSTROPHES, '')
    .normalize('NFKD')
    .replace(MARKS, '')
    .toLowerCase()
    .replace(NOT_ALNUM, ' ')
    .trim()
}

/**
 * `natural-v1`: URLs and `[NAME]`-style masks become placeholder words, emoticons (between ASCII
 * whitespace) and then emoji (per code point, shaping characters dropped) become their names from
 * `table`; then as `lower-alnum-v1`, except that `!` and `?` survive as words of their own and
 * letters (or `!`/`?`) repeated three times or more are cut to two.
 *
 * @example
 * ```ts
 * naturalV1("I'm SOOOO happy!!! :)", table) // 'im soo happy !! slightly smiling face'
 * ```
 */
export function naturalV1(text: string, table: EmojiTable): string {
  let t = text.replace(URL_PATTERN, ' url ').replace(MASK, ' name ')
  t = t.replace(table.emoticonPattern, (m) => ` ${table.emoticons.get(m)!} `)
  t = t.replace(EMOJI_SHAPING, '')
  let named = ''
  for (const c of t) {
    const name = table.emoji.get(c)
    named += name === undefined ? c : ` ${name} `
  }
  return named
    .replace(APOSTROPHES, '')
    .normalize('NFKD')
    .replace(MARKS, '')
    .toLowerCase()
    .replace(ELONGATED, '$1$1')
    .replace(NOT_KEPT, ' ')
    .replace(PUNCT_RUN, ' $& ')
    .replace(SPACES, ' ')
    .trim()
}

/** Applies a named rule; `none` returns the text as given. `natural-v1` needs the package's table. */
export function normalize(text: string, rule: NormalizeRule, table?: EmojiTable): string {
  switch (rule) {
    case 'lower-alnum-v1':
      return lowerAlnumV1(text)
    case 'natural-v1':
      if (!table) throw new Error('normalize natural-v1 needs the package emoji table (emoji.json)')
      return naturalV1(text, table)
    case 'none':
      return text
  }
}
