/**
 * @module
 * Text normalisation named by `manifest.prompt.normalize` (docs/model-package.md, "Building the input").
 * `tests/fixtures/normalize.json` pins it for this service and for `training/` alike.
 */

/** The rules a model package may name. */
export const NORMALIZE_RULES = ['lower-alnum-v1', 'none'] as const
export type NormalizeRule = (typeof NORMALIZE_RULES)[number]

// U+0027 ', U+2018 ‘, U+2019 ’, U+02BC ʼ, U+0060 `, U+00B4 ´. Deleted first: NFKD would turn U+00B4
// into a space plus a combining mark, leaving a word split in two.
const APOSTROPHES = /['\u2018\u2019\u02BC`\u00B4]/g
const MARKS = /\p{M}/gu
const NOT_ALNUM = /[^a-z0-9]+/g

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

/** Applies a named rule; `none` returns the text as given. */
export function normalize(text: string, rule: NormalizeRule): string {
  switch (rule) {
    case 'lower-alnum-v1':
      return lowerAlnumV1(text)
    case 'none':
      return text
  }
}
