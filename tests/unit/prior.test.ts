/**
 * The lexical prior (src/model/prior.ts): featurisation and log-probabilities on a tiny prior.json
 * whose numbers can be checked by hand, prior.json's validation, and the manifest's `prior` entry.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ManifestSchema, PackageError, checkManifest } from '../../src/model/manifest.js'
import { addPrior, labelLogProbs, loadPrior, parsePrior, priorLogits } from '../../src/model/prior.js'
import type { LexicalPrior } from '../../src/model/prior.js'
import { QRA } from '../support/service.js'

const LABELS = ['sadness', 'joy']
// Terms 0-3. With idf 1, 2, 3, 1.5 and the coefficients below, "happy day!" has features
// [happy, happy day, !] = [1, 3, 1.5] / 3.5 and logits sadness 1.5/3.5 x 7 = 3, joy 1/3.5 x 7 = 2.
const FILE = {
  format: 'tfidf-logreg-v1',
  labels: LABELS,
  lowercase: true,
  token_pattern: '[a-z0-9]+|[!?]+',
  ngram_range: [1, 2],
  sublinear_tf: true,
  vocabulary: ['happy', 'sad', 'happy day', '!'],
  idf: [1, 2, 3, 1.5],
  coef: [
    [0, 7],
    [4, -4],
    [0, 0],
    [7, 0],
  ],
  intercept: [0.5, -0.5],
}
const PATH = '/pkg/prior.json'
const make = (changes: Record<string, unknown> = {}, weight = 1): LexicalPrior =>
  parsePrior({ ...FILE, ...changes }, { labels: LABELS, weight }, PATH)
const problem = (changes: Record<string, unknown>, labels = LABELS): string => {
  try {
    parsePrior({ ...FILE, ...changes }, { labels, weight: 1 }, PATH)
  } catch (e) {
    expect(e).toBeInstanceOf(PackageError)
    return (e as Error).message
  }
  throw new Error('accepted')
}

/** log-softmax of `z`, for the hand-worked expectations. */
const logSoftmax = (z: number[]) => {
  const lse = Math.log(z.reduce((a, v) => a + Math.exp(v), 0))
  return z.map((v) => v - lse)
}
const close = (got: Float64Array, want: number[]) => {
  expect(got).toHaveLength(want.length)
  want.forEach((w, k) => expect(got[k]).toBeCloseTo(w, 12))
}

describe('labelLogProbs', () => {
  const p = make()

  it('lowercases, counts bigrams and ignores unknown terms', () => {
    // happy, happy day, ! (day and "day !" are not in the vocabulary); intercept 0.5, -0.5.
    const want = logSoftmax([3 + 0.5, 2 - 0.5])
    close(labelLogProbs(p, 'happy day!'), want)
    close(labelLogProbs(p, 'HAPPY Day !'), want)
    close(labelLogProbs(p, 'zebra happy day! xylophone'), want)
  })

  it('reads tokens with the pattern: punctuation runs are tokens, other characters separate', () => {
    // "happy,day" is still the bigram "happy day"; "!!" is a token of its own, not "!".
    close(labelLogProbs(p, 'happy,day!'), logSoftmax([3 + 0.5, 2 - 0.5]))
    const onlyHappyDay = [1, 3].map((v) => v / Math.sqrt(10))
    close(labelLogProbs(p, 'happy day!!'), logSoftmax([0.5, onlyHappyDay[0]! * 7 - 0.5]))
  })

  it('without lowercase, capitals are other terms', () => {
    close(labelLogProbs(make({ lowercase: false }), 'HAPPY'), logSoftmax([0.5, -0.5]))
    close(labelLogProbs(make({ lowercase: false }), 'happy'), logSoftmax([0.5, 7 - 0.5]))
  })

  it('damps repeated terms with sublinear tf (1 + ln count), or counts them', () => {
    // happy x3 and sad x1: [1 + ln 3, 2], L2-normalised.
    const sub = [(1 + Math.log(3)) * 1, 1 * 2]
    const n = Math.hypot(...sub)
    const z = (x: number[], norm: number) => [(x[1]! / norm) * 4 + 0.5, (x[0]! / norm) * 7 - (x[1]! / norm) * 4 - 0.5]
    close(labelLogProbs(p, 'happy happy sad happy'), logSoftmax(z(sub, n)))
    const raw = [3, 2]
    close(labelLogProbs(make({ sublinear_tf: false }), 'happy happy sad happy'), logSoftmax(z(raw, Math.hypot(...raw))))
  })

  it('honours ngram_range: bigrams only', () => {
    // Only "happy day" (idf 3) counts; its coefficients are 0.
    close(labelLogProbs(make({ ngram_range: [2, 2] }), 'happy day!'), logSoftmax([0.5, -0.5]))
  })

  it('gives the softmax of the intercept for an empty text or one of unknown words', () => {
    const want = logSoftmax([0.5, -0.5])
    close(labelLogProbs(p, ''), want)
    close(labelLogProbs(p, 'nothing known here'), want)
  })

  it('returns log-probabilities: they exponentiate to a distribution', () => {
    const lp = labelLogProbs(p, 'sad happy day')
    expect([...lp].reduce((a, v) => a + Math.exp(v), 0)).toBeCloseTo(1, 14)
  })
})

describe('priorLogits', () => {
  const enc = new TextEncoder()
  it('is weight x log p of the UTF-8 decoded source bytes', () => {
    const p = make({}, 0.8)
    const want = labelLogProbs(p, 'happy day!').map((v) => 0.8 * v)
    expect(priorLogits(p, enc.encode('happy day!'))).toEqual(want)
  })

  it('replaces invalid bytes (they separate tokens) and is all zeros with weight 0', () => {
    const p = make()
    const bytes = new Uint8Array([...enc.encode('happy'), 0xff, ...enc.encode('day')])
    expect(priorLogits(p, bytes)).toEqual(labelLogProbs(p, 'happy\uFFFDday'))
    expect([...priorLogits(make({}, 0), enc.encode('happy'))].every((v) => v === 0)).toBe(true)
  })
})

describe('prior.json validation', () => {
  it('accepts the file and indexes its terms', () => {
    const p = make()
    expect(p.numTerms).toBe(4)
    expect(p.index.get('happy day')).toBe(2)
  })

  it('refuses labels other than the package’s, in its order', () => {
    expect(problem({ labels: ['joy', 'sadness'] })).toBe(
      `${PATH}: labels: ["joy","sadness"] are not the package's labels ["sadness","joy"] (manifest.json, in that order)`,
    )
    expect(problem({}, ['sadness', 'joy', 'anger'])).toMatch(/^\/pkg\/prior\.json: labels: /)
  })

  it('refuses lengths that do not agree', () => {
    expect(problem({ idf: [1, 2, 3] })).toBe(`${PATH}: idf: 3 entries for 4 terms of vocabulary; it needs one per term`)
    expect(problem({ coef: FILE.coef.slice(1) })).toBe(`${PATH}: coef: 3 entries for 4 terms of vocabulary; it needs one per term`)
    expect(problem({ coef: [[0, 7], [4], [0, 0], [7, 0]] })).toBe(`${PATH}: coef.1: 1 entry for 2 labels; it needs one per label`)
    expect(problem({ intercept: [0] })).toBe(`${PATH}: intercept: 1 entry for 2 labels; it needs one per label`)
  })

  it('refuses another format, bad fields and a repeated term, naming the field', () => {
    expect(problem({ format: 'tfidf-logreg-v2' })).toMatch(/^\/pkg\/prior\.json: format: .*tfidf-logreg-v1/)
    expect(problem({ format: undefined })).toMatch(/^\/pkg\/prior\.json: format: /)
    expect(problem({ idf: [1, 2, 'x', 4] })).toMatch(/^\/pkg\/prior\.json: idf\.2: /)
    expect(problem({ ngram_range: [0, 2] })).toMatch(/^\/pkg\/prior\.json: ngram_range\.0: /)
    expect(problem({ ngram_range: [2, 1] })).toBe(`${PATH}: ngram_range: [2, 1]: min_n exceeds max_n`)
    expect(problem({ vocabulary: ['happy', 'sad', 'happy', '!'] })).toBe(
      `${PATH}: vocabulary: "happy" is listed twice (terms 0 and 2); terms must be unique`,
    )
  })

  it('refuses a token pattern that is no regular expression or has capturing groups', () => {
    expect(problem({ token_pattern: '[a-z' })).toMatch(/^\/pkg\/prior\.json: token_pattern: not a valid regular expression \(/)
    expect(problem({ token_pattern: '([a-z]+)' })).toBe(`${PATH}: token_pattern: has capturing groups; use (?:...), the tokens are whole matches`)
    expect(make({ token_pattern: '(?:[a-z]+)' }).numTerms).toBe(4)
  })
})

describe('manifest prior', () => {
  // The embedded package without the prior it may ship with.
  const { prior: _, ...base } = JSON.parse(readFileSync(`${QRA}/manifest.json`, 'utf8')) as Record<string, unknown> & { files: Record<string, string> }
  const { 'prior.json': __, ...files } = base.files
  base.files = files
  const entry = { method: 'tfidf-logreg', file: 'prior.json', weight: 0.8, c: 4, fitted_on: 'train' }
  const dir = mkdtempSync(join(tmpdir(), 'because-prior-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('is optional, keeps provenance keys, and needs its file among the files', () => {
    expect(ManifestSchema.parse({ ...base, prior: undefined }).prior).toBeUndefined()
    const m = ManifestSchema.parse({ ...base, prior: entry })
    expect(m.prior).toEqual(entry)
    expect(checkManifest(m)).toBe('prior.file: files does not list prior.json (every file is sha256-checked)')
    expect(checkManifest({ ...m, files: { ...m.files, 'prior.json': '0'.repeat(64) } })).toBeNull()
  })

  it('refuses another method and a weight that is not a finite number >= 0', () => {
    expect(ManifestSchema.safeParse({ ...base, prior: { ...entry, method: 'naive-bayes' } }).error?.issues[0]!.path).toEqual(['prior', 'method'])
    for (const weight of [-0.1, '1', null, Infinity, NaN]) {
      expect(ManifestSchema.safeParse({ ...base, prior: { ...entry, weight } }).error?.issues[0]!.path, String(weight)).toEqual(['prior', 'weight'])
    }
    expect(ManifestSchema.safeParse({ ...base, prior: { ...entry, weight: 0 } }).success).toBe(true)
  })

  it('loads the file against the manifest labels; a package without prior has none', async () => {
    const labels = base.labels as string[]
    const m = ManifestSchema.parse({ ...base, prior: entry })
    const file = { ...FILE, labels, coef: FILE.coef.map(() => labels.map(() => 0)), intercept: labels.map((_, k) => k) }
    writeFileSync(join(dir, 'prior.json'), JSON.stringify(file))
    const p = (await loadPrior(dir, m))!
    expect(p.weight).toBe(0.8)
    expect(labelLogProbs(p, 'anything')).toEqual(labelLogProbs(p, ''))
    expect(await loadPrior(dir, ManifestSchema.parse(base))).toBeNull()
    writeFileSync(join(dir, 'prior.json'), '{"format": ')
    await expect(loadPrior(dir, m)).rejects.toThrow(`${join(dir, 'prior.json')}: invalid JSON (`)
    rmSync(join(dir, 'prior.json'))
    await expect(loadPrior(dir, m)).rejects.toThrow(`${join(dir, 'prior.json')}: cannot read (ENOENT)`)
  })
})

describe('addPrior', () => {
  it('adds one value per label to its first-token logit in the row at offset, rounded to float32', () => {
    const logits = new Float32Array([9, 9, 1, 2, 3, 4])
    addPrior(logits, 2, [3, 1], Float64Array.from([0.5, 0.1]))
    // Row 2..5; label 0 is id 3 (logits[5]), label 1 is id 1 (logits[3]); the rest untouched.
    expect([...logits]).toEqual([9, 9, 1, Math.fround(2 + 0.1), 3, 4.5])
  })
})
