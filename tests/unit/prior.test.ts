/**
 * The lexical prior (src/model/prior.ts): featurisation and log-probabilities on a tiny prior.json
 * whose numbers can be checked by hand, prior.json's validation, and the manifest's `prior` entry;
 * the same for a tiny registers prior (gate, experts, weights and the register temperature).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ManifestSchema, PackageError, checkManifest, labelCalibration, sequenceTemperature } from '../../src/model/manifest.js'
import {
  addPrior,
  gateProbs,
  labelLogProbs,
  loadPrior,
  mixtureLogProbs,
  mixtureWeight,
  parsePrior,
  parseRegistersPrior,
  priorLogits,
  sequencePrior,
} from '../../src/model/prior.js'
import type { LexicalPrior, PackagePrior, RegistersPrior } from '../../src/model/prior.js'
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

/** `p` as the single prior it must be. */
const single = (p: PackagePrior): LexicalPrior => {
  if (p.method !== 'tfidf-logreg') throw new Error(`a ${p.method} prior`)
  return p
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
  // The embedded package without the prior it may ship with (nor a register temperature, which needs a registers prior).
  const { prior: _, calibration: ___, ...base } = JSON.parse(readFileSync(`${QRA}/manifest.json`, 'utf8')) as Record<string, unknown> & { files: Record<string, string> }
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
    const p = single((await loadPrior(dir, m))!)
    expect(p.weight).toBe(0.8)
    expect(labelLogProbs(p, 'anything')).toEqual(labelLogProbs(p, ''))
    expect(await loadPrior(dir, ManifestSchema.parse(base))).toBeNull()
    writeFileSync(join(dir, 'prior.json'), '{"format": ')
    await expect(loadPrior(dir, m)).rejects.toThrow(`${join(dir, 'prior.json')}: invalid JSON (`)
    rmSync(join(dir, 'prior.json'))
    await expect(loadPrior(dir, m)).rejects.toThrow(`${join(dir, 'prior.json')}: cannot read (ENOENT)`)
  })
})

// A registers prior over labels sadness, joy, love; registers tw and xed. The gate has one term,
// "lol": for a text with it, z = [ln 3, 0] and g = [3/4, 1/4]; without it g = [1/2, 1/2]. The
// experts have no terms: tw gives p = [1/4, 1/2, 1/4] whatever the text, xed (which has no love)
// [3/4, 1/4] over sadness and joy.
const RLABELS = ['sadness', 'joy', 'love']
const linear = (labels: string[], vocabulary: string[], coef: number[][], intercept: number[]) => ({
  format: 'tfidf-logreg-v1',
  labels,
  lowercase: true,
  token_pattern: '[a-z0-9]+|[!?]+',
  ngram_range: [1, 2],
  sublinear_tf: true,
  vocabulary,
  idf: vocabulary.map(() => 1),
  coef,
  intercept,
})
const REGISTERS_FILE = {
  format: 'tfidf-logreg-registers-v1',
  labels: RLABELS,
  registers: ['tw', 'xed'],
  gate: linear(['tw', 'xed'], ['lol'], [[Math.log(3), 0]], [0, 0]),
  experts: [linear(RLABELS, [], [], [0, Math.log(2), 0]), linear(['sadness', 'joy'], [], [], [Math.log(3), 0])],
}
const WEIGHTS = { xed: 0.4, tw: 2 }
const makeRegisters = (changes: Record<string, unknown> = {}, weights: Record<string, number> = WEIGHTS): RegistersPrior =>
  parseRegistersPrior({ ...REGISTERS_FILE, ...changes }, { labels: RLABELS, weights, manifestPath: '/pkg/manifest.json' }, PATH)
const registersProblem = (changes: Record<string, unknown>, weights: Record<string, number> = WEIGHTS, labels = RLABELS): string => {
  try {
    parseRegistersPrior({ ...REGISTERS_FILE, ...changes }, { labels, weights, manifestPath: '/pkg/manifest.json' }, PATH)
  } catch (e) {
    expect(e).toBeInstanceOf(PackageError)
    return (e as Error).message
  }
  throw new Error('accepted')
}

describe('registers prior', () => {
  const p = makeRegisters()
  const enc = new TextEncoder()
  const closeTo = (got: ArrayLike<number>, want: number[]) => {
    expect(got).toHaveLength(want.length)
    want.forEach((w, k) => expect(got[k], `[${k}]`).toBeCloseTo(w, 14))
  }

  it("reads the gate's probabilities of the registers from the text", () => {
    closeTo(gateProbs(p, 'LOL what'), [3 / 4, 1 / 4])
    closeTo(gateProbs(p, 'what'), [1 / 2, 1 / 2])
  })

  it("mixes the experts' probabilities by the gate's; an expert without a label adds nothing to it", () => {
    // lol: sadness 3/4 x 1/4 + 1/4 x 3/4 = 3/8, joy 3/4 x 1/2 + 1/4 x 1/4 = 7/16, love 3/4 x 1/4 = 3/16.
    closeTo(mixtureLogProbs(p, 'lol', gateProbs(p, 'lol')), [3 / 8, 7 / 16, 3 / 16].map(Math.log))
    // Without: sadness 1/8 + 3/8, joy 1/4 + 1/8, love 1/8.
    closeTo(mixtureLogProbs(p, 'what', gateProbs(p, 'what')), [1 / 2, 3 / 8, 1 / 8].map(Math.log))
  })

  it('floors at 1e-12 the probability of a label no expert has', () => {
    const q = makeRegisters({ experts: [linear(['sadness', 'joy'], [], [], [0, 0]), REGISTERS_FILE.experts[1]] })
    const lp = mixtureLogProbs(q, 'lol', gateProbs(q, 'lol'))
    expect(lp[2]).toBe(Math.log(1e-12))
    // sadness 3/4 x 1/2 + 1/4 x 3/4 = 9/16
    expect(lp[0]).toBeCloseTo(Math.log(9 / 16), 14)
  })

  it('with missing "abstain", leaves a label to the experts that know it', () => {
    const q = makeRegisters({ missing: 'abstain' })
    expect(p.missing).toBe('zero')
    expect(q.missing).toBe('abstain')
    // lol: sadness and joy as with "zero" (both experts know them: the gate's mass on them is 1), love
    // the tweet expert's alone: (3/4 x 1/4) / (3/4) = 1/4.
    closeTo(mixtureLogProbs(q, 'lol', gateProbs(q, 'lol')), [3 / 8, 7 / 16, 1 / 4].map(Math.log))
    expect(registersProblem({ missing: 'ignore' })).toMatch(/missing/)
  })

  it('weighs by the gate too: w = sum of g_r x weights[r], and adds w x log p', () => {
    // lol: 3/4 x 2 + 1/4 x 0.4 = 1.6; without: 1/2 x 2 + 1/2 x 0.4 = 1.2.
    expect(mixtureWeight(p, gateProbs(p, 'lol'))).toBeCloseTo(1.6, 14)
    expect(mixtureWeight(p, gateProbs(p, 'what'))).toBeCloseTo(1.2, 14)
    const lol = sequencePrior(p, enc.encode('lol'))
    closeTo(lol.logits, [3 / 8, 7 / 16, 3 / 16].map((v) => 1.6 * Math.log(v)))
    closeTo(lol.gate!, [3 / 4, 1 / 4])
    expect(priorLogits(p, enc.encode('lol'))).toEqual(lol.logits)
    closeTo(sequencePrior(p, enc.encode('what')).logits, [1 / 2, 3 / 8, 1 / 8].map((v) => 1.2 * Math.log(v)))
  })

  it('sums in the order the contract writes, float64 (bit for bit)', () => {
    // Terms in the experts too, so that nothing cancels: the same sums written out here.
    const q = makeRegisters({
      experts: [linear(RLABELS, ['lol', 'what'], [[0.3, 1.1, -0.7], [2, 0.1, 0.05]], [0.2, 0.1, 0]), linear(['sadness', 'joy'], ['what'], [[0.9, -1.3]], [1, 0])],
    }, { tw: 0.7, xed: 1.3 })
    const text = 'lol what lol'
    const g = labelLogProbs(q.gate, text).map(Math.exp)
    const [a, b] = [labelLogProbs(q.experts[0]!.model, text), labelLogProbs(q.experts[1]!.model, text)]
    const mix = [0 + g[0]! * Math.exp(a[0]!) + g[1]! * Math.exp(b[0]!), 0 + g[0]! * Math.exp(a[1]!) + g[1]! * Math.exp(b[1]!), 0 + g[0]! * Math.exp(a[2]!)]
    const w = 0 + g[0]! * 0.7 + g[1]! * 1.3
    const got = sequencePrior(q, enc.encode(text))
    expect([...got.gate!]).toEqual([...g])
    expect([...got.logits]).toEqual(mix.map((v) => w * Math.log(Math.max(v, 1e-12))))
  })

  it('gives each sequence the temperature its gate mixes from the registers', () => {
    const calibration = labelCalibration({ calibration: { method: 'register-temperature', temperatures: { xed: 3, tw: 1 } } }, p.registers, '/pkg/manifest.json')
    // lol: 3/4 x 1 + 1/4 x 3 = 1.5; without: 1/2 + 3/2 = 2.
    expect(sequenceTemperature(calibration, sequencePrior(p, enc.encode('lol')).gate)).toBeCloseTo(1.5, 14)
    expect(sequenceTemperature(calibration, sequencePrior(p, enc.encode('what')).gate)).toBeCloseTo(2, 14)
    // A single temperature is the same for every sequence.
    expect(sequenceTemperature(labelCalibration({ calibration: { method: 'temperature', temperature: 1.7 } }, p.registers, ''), sequencePrior(p, enc.encode('lol')).gate)).toBe(1.7)
  })

  it('indexes the registers, the weights in their order, and counts the terms of gate and experts', () => {
    expect(p.registers).toEqual(['tw', 'xed'])
    expect([...p.weights]).toEqual([2, 0.4])
    expect(p.numTerms).toBe(1)
    expect([...p.experts[1]!.column]).toEqual([0, 1, -1])
  })
})

describe('registers prior.json validation', () => {
  it('refuses a missing expert, or more experts than registers', () => {
    expect(registersProblem({ experts: REGISTERS_FILE.experts.slice(0, 1) })).toBe(
      `${PATH}: experts: 1 for 2 registers ["tw","xed"]; it needs one per register, in that order`,
    )
    expect(registersProblem({ experts: [...REGISTERS_FILE.experts, REGISTERS_FILE.experts[0]] })).toMatch(/^\/pkg\/prior\.json: experts: 3 for 2 registers /)
  })

  it("refuses an expert's label that is not the package's, or out of the package's order", () => {
    const expert = (labels: string[]) => ({ experts: [REGISTERS_FILE.experts[0], linear(labels, [], [], labels.map(() => 0))] })
    expect(registersProblem(expert(['sadness', 'anger']))).toBe(
      `${PATH}: experts.1.labels: "anger" (register "xed") is not one of the package's labels ["sadness","joy","love"]`,
    )
    expect(registersProblem(expert(['joy', 'sadness']))).toBe(
      `${PATH}: experts.1.labels: ["joy","sadness"] (register "xed") are not in the order of the package's labels ["sadness","joy","love"]`,
    )
    expect(registersProblem(expert(['joy', 'joy']))).toMatch(/^\/pkg\/prior\.json: experts\.1\.labels: .* are not in the order /)
  })

  it('refuses manifest weights that do not name exactly the registers', () => {
    expect(registersProblem({}, { tw: 1 })).toBe(
      `/pkg/manifest.json: prior.weights: names ["tw"], not the registers of ${PATH} ["tw","xed"]; it needs one weight per register`,
    )
    expect(registersProblem({}, { tw: 1, xed: 1, dair: 1 })).toMatch(/^\/pkg\/manifest\.json: prior\.weights: names \["dair","tw","xed"\], not /)
    expect(registersProblem({}, { tw: 1, XED: 1 })).toMatch(/^\/pkg\/manifest\.json: prior\.weights: names \["XED","tw"\], not /)
  })

  it("refuses a gate whose labels are not the registers, and the package's labels not in order", () => {
    expect(registersProblem({ gate: { ...REGISTERS_FILE.gate, labels: ['xed', 'tw'] } })).toBe(
      `${PATH}: gate.labels: ["xed","tw"] are not the registers ["tw","xed"]`,
    )
    expect(registersProblem({ labels: ['joy', 'sadness', 'love'] })).toMatch(/^\/pkg\/prior\.json: labels: \["joy","sadness","love"\] are not the package's labels /)
    expect(registersProblem({ registers: ['tw', 'tw'] })).toBe(`${PATH}: registers: "tw" is listed twice; registers must be unique`)
    expect(registersProblem({ registers: [] })).toMatch(/^\/pkg\/prior\.json: registers: /)
  })

  it('checks the gate and each expert as a tfidf-logreg-v1 object, naming the field inside it', () => {
    expect(registersProblem({ gate: { ...REGISTERS_FILE.gate, idf: [] } })).toBe(`${PATH}: gate.idf: 0 entries for 1 terms of vocabulary; it needs one per term`)
    expect(registersProblem({ experts: [{ ...REGISTERS_FILE.experts[0], intercept: [0, 'x', 0] }, REGISTERS_FILE.experts[1]] })).toMatch(
      /^\/pkg\/prior\.json: experts\.0\.intercept\.1: /,
    )
    expect(registersProblem({ experts: [REGISTERS_FILE.experts[0], { ...REGISTERS_FILE.experts[1], format: 'tfidf-logreg-registers-v1' }] })).toMatch(
      /^\/pkg\/prior\.json: experts\.1\.format: .*tfidf-logreg-v1/,
    )
    expect(registersProblem({ format: 'tfidf-logreg-v1' })).toMatch(/^\/pkg\/prior\.json: format: .*tfidf-logreg-registers-v1/)
  })
})

describe('manifest registers prior', () => {
  const { prior: _, calibration: __, ...base } = JSON.parse(readFileSync(`${QRA}/manifest.json`, 'utf8')) as Record<string, unknown> & { files: Record<string, string> }
  const labels = base.labels as string[]
  const entry = { method: 'tfidf-logreg-registers', file: 'prior.json', weights: { tw: 2, xed: 0.4 }, registers: ['tw', 'xed'], fitted_on: 'train' }
  const files = { ...base.files, 'prior.json': '0'.repeat(64) }
  const dir = mkdtempSync(join(tmpdir(), 'because-registers-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('keeps provenance keys and refuses weights that are not finite numbers >= 0', () => {
    const m = ManifestSchema.parse({ ...base, prior: entry, files })
    expect(m.prior).toEqual(entry)
    expect(checkManifest(m)).toBeNull()
    for (const weight of [-0.1, '1', null, Infinity, NaN]) {
      expect(ManifestSchema.safeParse({ ...base, prior: { ...entry, weights: { tw: 1, xed: weight } } }).error?.issues[0]!.path, String(weight)).toEqual(['prior', 'weights', 'xed'])
    }
    expect(ManifestSchema.safeParse({ ...base, prior: { ...entry, weights: undefined } }).error?.issues[0]!.path).toEqual(['prior', 'weights'])
    // The single prior's weight is still required for its method.
    expect(ManifestSchema.safeParse({ ...base, prior: { method: 'tfidf-logreg', file: 'prior.json', weights: { tw: 1 } } }).error?.issues[0]!.path).toEqual(['prior', 'weight'])
  })

  it('loads the form prior.method names, with the weights in register order', async () => {
    const m = ManifestSchema.parse({ ...base, prior: entry, files })
    const file = {
      ...REGISTERS_FILE,
      labels,
      experts: [linear(labels, [], [], labels.map(() => 0)), linear(labels.slice(0, 2), [], [], [0, 0])],
    }
    writeFileSync(join(dir, 'prior.json'), JSON.stringify(file))
    const p = (await loadPrior(dir, m))!
    expect(p.method).toBe('tfidf-logreg-registers')
    expect((p as RegistersPrior).registers).toEqual(['tw', 'xed'])
    expect([...(p as RegistersPrior).weights]).toEqual([2, 0.4])
    await expect(loadPrior(dir, ManifestSchema.parse({ ...base, prior: { ...entry, weights: { tw: 1 } }, files }))).rejects.toThrow(
      `${join(dir, 'manifest.json')}: prior.weights: names ["tw"], not the registers of ${join(dir, 'prior.json')} ["tw","xed"]`,
    )
    // A single prior's file under the registers method, and the other way round.
    writeFileSync(join(dir, 'prior.json'), JSON.stringify({ ...FILE, labels, coef: FILE.coef.map(() => labels.map(() => 0)), intercept: labels.map(() => 0) }))
    await expect(loadPrior(dir, m)).rejects.toThrow(new RegExp(`^${join(dir, 'prior.json')}: format: .*tfidf-logreg-registers-v1`))
    writeFileSync(join(dir, 'prior.json'), JSON.stringify(file))
    await expect(loadPrior(dir, ManifestSchema.parse({ ...base, prior: { method: 'tfidf-logreg', file: 'prior.json', weight: 1 }, files }))).rejects.toThrow(
      new RegExp(`^${join(dir, 'prior.json')}: format: .*tfidf-logreg-v1`),
    )
  })

  it('refuses a register-temperature calibration without a registers prior', () => {
    const calibration = { method: 'register-temperature', temperatures: { tw: 1, xed: 3 } }
    const single = ManifestSchema.parse({ ...base, calibration, prior: { method: 'tfidf-logreg', file: 'prior.json', weight: 1 }, files })
    expect(checkManifest(single)).toMatch(/^calibration: method register-temperature needs a registers prior /)
    expect(checkManifest(ManifestSchema.parse({ ...base, calibration, prior: entry, files }))).toBeNull()
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
