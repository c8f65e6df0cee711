/**
 * @module
 * The lexical prior of a model package (`manifest.prior`, its file `prior.json`): TF-IDF over the
 * word n-grams of the input and a logistic regression over them. `weight x log p(label | text)` is
 * added to the label logits until a sequence names a label (engine.ts).
 *
 * Two forms (docs/model-package.md, "Decoding"): the single prior (`tfidf-logreg-v1`, one
 * classifier over the package's labels, `manifest.prior.weight`), and the registers prior
 * (`tfidf-logreg-registers-v1`): a gate telling the registers (sources) apart and one expert per
 * register, their probabilities mixed by the gate's, with a weight per register
 * (`manifest.prior.weights`) mixed the same way. The gate's probabilities also give a sequence its
 * temperature under `calibration.method: "register-temperature"` (manifest.ts `sequenceTemperature`).
 *
 * `labelLogProbs` and the mixture follow training/because_train/prior.py `Linear.log_probs` and
 * `LexicalPrior.log_probs` / `weight_for` operation for operation (float64, the same order of sums),
 * so that the service and `evaluate` decode alike row for row: do not reorder, vectorise or
 * "simplify" them.
 */
import { join } from 'node:path'
import { z } from 'zod'
import { PackageError, readJsonFile } from './manifest.js'
import type { Manifest } from './manifest.js'

export const PRIOR_FORMAT = 'tfidf-logreg-v1'
export const REGISTERS_FORMAT = 'tfidf-logreg-registers-v1'
/** A registers prior's mixture probability is floored here, so that its log stays finite (prior.py `FLOOR`). */
export const MIXTURE_FLOOR = 1e-12

// zod's number() refuses Infinity and NaN (JSON has neither anyway).
export const PriorFileSchema = z.object({
  format: z.literal(PRIOR_FORMAT),
  labels: z.array(z.string()),
  lowercase: z.boolean(),
  token_pattern: z.string().min(1),
  ngram_range: z.tuple([z.number().int().min(1), z.number().int().min(1)]),
  sublinear_tf: z.boolean(),
  vocabulary: z.array(z.string()),
  idf: z.array(z.number()),
  coef: z.array(z.array(z.number())),
  intercept: z.array(z.number()),
})
export type PriorFile = z.infer<typeof PriorFileSchema>

/** The registers prior.json; its gate and experts are `tfidf-logreg-v1` objects, checked as such. */
export const RegistersFileSchema = z.object({
  format: z.literal(REGISTERS_FORMAT),
  labels: z.array(z.string()),
  registers: z.array(z.string().min(1, 'a register name may not be empty')).min(1, 'needs at least 1 register'),
  // A label an expert lacks: "zero", its register says it never happens; "abstain", the register has no say.
  missing: z.enum(['zero', 'abstain']).default('zero'),
  gate: z.unknown(),
  experts: z.array(z.unknown()),
})

/** A checked `tfidf-logreg-v1` classifier, ready to score texts. */
export interface TfidfLogreg {
  /** Its classes: the package's labels (a single prior), some of them in order (an expert), the registers (a gate). */
  labels: readonly string[]
  numLabels: number
  numTerms: number
  lowercase: boolean
  /** `token_pattern` with the `g` flag: `String.match` then gives every match, as re.findall. */
  pattern: RegExp
  minN: number
  maxN: number
  sublinearTf: boolean
  /** Term -> its feature index (its position in `vocabulary`). */
  index: Map<string, number>
  idf: Float64Array
  /** `coef[j][k]` at `j * numLabels + k`. */
  coef: Float64Array
  intercept: Float64Array
}

/** The single prior (`prior.method: "tfidf-logreg"`): one classifier over the package's labels. */
export interface LexicalPrior extends TfidfLogreg {
  method: 'tfidf-logreg'
  /** `manifest.prior.weight`: what the log-probabilities are multiplied by. */
  weight: number
}

/** One register's expert: its classifier, and where each package label is among its labels. */
export interface RegisterExpert {
  model: TfidfLogreg
  /** Per package label `k`, its index among the expert's labels; -1: the expert lacks it (adds nothing to it). */
  column: Int32Array
}

/** The registers prior (`prior.method: "tfidf-logreg-registers"`): a gate and one expert per register. */
export interface RegistersPrior {
  method: 'tfidf-logreg-registers'
  /** prior.json's `registers`: the order of the gate's labels, the experts, `weights` and every sum over registers. */
  registers: readonly string[]
  /** prior.json's `missing`: what a label an expert lacks gets from that expert (see `mixtureLogProbs`). */
  missing: 'zero' | 'abstain'
  gate: TfidfLogreg
  experts: readonly RegisterExpert[]
  /** `manifest.prior.weights`, one per register, in register order. */
  weights: Float64Array
  /** The package's labels. */
  numLabels: number
  /** Terms of the gate's and every expert's vocabulary together (what /info reports). */
  numTerms: number
}

/** A package's prior, either form. */
export type PackagePrior = LexicalPrior | RegistersPrior

/** What a package's prior gives one sequence (computed once, when it is enqueued). */
export interface SequencePrior {
  /** What is added to each label's first-token logit until the sequence names a label, in label order. */
  logits: Float64Array
  /** p(register | text), in register order (a registers prior); null: a single prior. */
  gate: Float64Array | null
}

type Fail = (message: string) => never

/** A one-line `PackageError` naming the file `path`, the field at `at` and the zod issue. */
function schemaError(issues: readonly z.core.$ZodIssue[], path: string, at: string): never {
  const issue = issues[0]!
  const field = [at, ...issue.path.map(String)].filter((s) => s !== '').join('.')
  throw new PackageError(`${path}: ${field || '(root)'}: ${issue.message}`)
}

/**
 * Checks one `tfidf-logreg-v1` object of `path` (at `at`: '' for the whole file, `gate` or
 * `experts.1` inside a registers file) and builds its classifier; `labelsProblem` tells what is
 * wrong with its labels, if anything. Throws a one-line `PackageError` naming `path` and the field.
 */
function parseTfidfLogreg(json: unknown, path: string, at: string, labelsProblem: (labels: string[]) => string | null): TfidfLogreg {
  const parsed = PriorFileSchema.safeParse(json)
  if (!parsed.success) schemaError(parsed.error.issues, path, at)
  const p = parsed.data
  const prefix = at ? `${at}.` : ''
  const fail: Fail = (message) => {
    throw new PackageError(`${path}: ${prefix}${message}`)
  }
  const labelsWrong = labelsProblem(p.labels)
  if (labelsWrong) fail(`labels: ${labelsWrong}`)
  const [minN, maxN] = p.ngram_range
  if (minN > maxN) fail(`ngram_range: [${minN}, ${maxN}]: min_n exceeds max_n`)
  const pattern = tokenPattern(p.token_pattern, fail)
  const V = p.vocabulary.length
  const L = p.labels.length
  const entries = (n: number) => `${n} ${n === 1 ? 'entry' : 'entries'}`
  const perTerm = (field: string, n: number) => fail(`${field}: ${entries(n)} for ${V} terms of vocabulary; it needs one per term`)
  if (p.idf.length !== V) perTerm('idf', p.idf.length)
  if (p.coef.length !== V) perTerm('coef', p.coef.length)
  if (p.intercept.length !== L) fail(`intercept: ${entries(p.intercept.length)} for ${L} labels; it needs one per label`)
  const index = new Map<string, number>()
  const coef = new Float64Array(V * L)
  for (let j = 0; j < V; j++) {
    const term = p.vocabulary[j]!
    const other = index.get(term)
    if (other !== undefined) fail(`vocabulary: ${JSON.stringify(term)} is listed twice (terms ${other} and ${j}); terms must be unique`)
    index.set(term, j)
    const row = p.coef[j]!
    if (row.length !== L) fail(`coef.${j}: ${entries(row.length)} for ${L} labels; it needs one per label`)
    coef.set(row, j * L)
  }
  return {
    labels: p.labels,
    numLabels: L,
    numTerms: V,
    lowercase: p.lowercase,
    pattern,
    minN,
    maxN,
    sublinearTf: p.sublinear_tf,
    index,
    idf: Float64Array.from(p.idf),
    coef,
    intercept: Float64Array.from(p.intercept),
  }
}

/** Labels that must be `want`, in that order; `whose` names `want` in the message. */
const exactly =
  (want: readonly string[], whose: string) =>
  (labels: string[]): string | null =>
    labels.length === want.length && labels.every((l, k) => l === want[k])
      ? null
      : `${JSON.stringify(labels)} are not ${whose} ${JSON.stringify(want)}`

/**
 * Checks a parsed single prior.json (`tfidf-logreg-v1`) against the package (`labels`, the
 * manifest's, in order) and builds the prior; throws a one-line `PackageError` naming `path`, the
 * field and what is wrong.
 */
export function parsePrior(json: unknown, pkg: { labels: readonly string[]; weight: number }, path: string): LexicalPrior {
  const model = parseTfidfLogreg(json, path, '', (labels) => {
    const problem = exactly(pkg.labels, "the package's labels")(labels)
    return problem && `${problem} (manifest.json, in that order)`
  })
  return { method: 'tfidf-logreg', weight: pkg.weight, ...model }
}

/**
 * Checks a parsed registers prior.json (`tfidf-logreg-registers-v1`) against the package (its
 * `labels`, and `weights`: the manifest's `prior.weights`, which must name exactly its registers)
 * and builds the prior. The gate's labels are the registers, in order; one expert per register,
 * its labels some of the package's, in the package's order. Throws a one-line `PackageError`
 * naming `path` (or the manifest, for `weights`), the field and what is wrong.
 */
export function parseRegistersPrior(
  json: unknown,
  pkg: { labels: readonly string[]; weights: Readonly<Record<string, number>>; manifestPath?: string },
  path: string,
): RegistersPrior {
  const parsed = RegistersFileSchema.safeParse(json)
  if (!parsed.success) schemaError(parsed.error.issues, path, '')
  const p = parsed.data
  const fail: Fail = (message) => {
    throw new PackageError(`${path}: ${message}`)
  }
  const packageLabels = exactly(pkg.labels, "the package's labels")(p.labels)
  if (packageLabels) fail(`labels: ${packageLabels} (manifest.json, in that order)`)
  const R = p.registers.length
  const seen = new Set<string>()
  for (const name of p.registers) {
    if (seen.has(name)) fail(`registers: ${JSON.stringify(name)} is listed twice; registers must be unique`)
    seen.add(name)
  }
  const gate = parseTfidfLogreg(p.gate, path, 'gate', exactly(p.registers, 'the registers'))
  if (p.experts.length !== R) {
    fail(`experts: ${p.experts.length} for ${R} registers ${JSON.stringify(p.registers)}; it needs one per register, in that order`)
  }
  const experts = p.experts.map((json, r): RegisterExpert => {
    const model = parseTfidfLogreg(json, path, `experts.${r}`, (labels) => {
      let at = -1
      for (const label of labels) {
        const k = pkg.labels.indexOf(label)
        if (k < 0) return `${JSON.stringify(label)} (register ${JSON.stringify(p.registers[r])}) is not one of the package's labels ${JSON.stringify(pkg.labels)}`
        if (k <= at) return `${JSON.stringify(labels)} (register ${JSON.stringify(p.registers[r])}) are not in the order of the package's labels ${JSON.stringify(pkg.labels)}`
        at = k
      }
      return null
    })
    const column = new Int32Array(pkg.labels.length).fill(-1)
    model.labels.forEach((label, c) => (column[pkg.labels.indexOf(label)] = c))
    return { model, column }
  })
  const named = Object.keys(pkg.weights)
  if (named.length !== R || named.some((name) => !seen.has(name))) {
    throw new PackageError(
      `${pkg.manifestPath ?? 'manifest.json'}: prior.weights: names ${JSON.stringify([...named].sort())}, not the registers of ${path} ${JSON.stringify(p.registers)}; it needs one weight per register`,
    )
  }
  let numTerms = gate.numTerms
  for (const e of experts) numTerms += e.model.numTerms
  return {
    method: 'tfidf-logreg-registers',
    registers: p.registers,
    missing: p.missing,
    gate,
    experts,
    weights: Float64Array.from(p.registers, (name) => pkg.weights[name]!),
    numLabels: pkg.labels.length,
    numTerms,
  }
}

/** `token_pattern` compiled with the `g` flag; one without capturing groups (re.findall would return the groups). */
function tokenPattern(source: string, fail: (message: string) => never): RegExp {
  let pattern: RegExp
  try {
    pattern = new RegExp(source, 'g')
  } catch (e) {
    return fail(`token_pattern: not a valid regular expression (${(e as Error).message})`)
  }
  // `source|` always matches '', and its match array has one entry per group of `source`.
  if (new RegExp(`${source}|`).exec('')!.length > 1) {
    fail('token_pattern: has capturing groups; use (?:...), the tokens are whole matches')
  }
  return pattern
}

/**
 * Reads `manifest.prior.file` of the package in `dir`, in the form `prior.method` names; null when
 * the package has no prior.
 */
export async function loadPrior(dir: string, manifest: Pick<Manifest, 'labels' | 'prior'>): Promise<PackagePrior | null> {
  const entry = manifest.prior
  if (!entry) return null
  const path = join(dir, entry.file)
  const json = await readJsonFile(path)
  if (entry.method === 'tfidf-logreg') return parsePrior(json, { labels: manifest.labels, weight: entry.weight }, path)
  return parseRegistersPrior(json, { labels: manifest.labels, weights: entry.weights, manifestPath: join(dir, 'manifest.json') }, path)
}

/** log p(label | text) of one classifier, in its label order; `text` as the model reads it (prior.py `Linear.log_probs`). */
export function labelLogProbs(p: TfidfLogreg, text: string): Float64Array {
  if (p.lowercase) text = text.toLowerCase()
  const tokens = text.match(p.pattern) ?? []
  const counts = new Map<number, number>()
  for (let n = p.minN; n <= p.maxN; n++) {
    for (let i = 0; i + n <= tokens.length; i++) {
      const j = p.index.get(n === 1 ? tokens[i]! : tokens.slice(i, i + n).join(' '))
      if (j !== undefined) counts.set(j, (counts.get(j) ?? 0) + 1)
    }
  }
  const found = [...counts.keys()].sort((a, b) => a - b)
  const x = found.map((j) => {
    const c = counts.get(j)!
    return (p.sublinearTf ? 1 + Math.log(c) : c) * p.idf[j]!
  })
  let ss = 0
  for (const v of x) ss += v * v
  const norm = Math.sqrt(ss)
  if (norm > 0) for (let i = 0; i < x.length; i++) x[i] = x[i]! / norm
  const L = p.numLabels
  const z = new Float64Array(L)
  for (let k = 0; k < L; k++) {
    let acc = 0
    for (let i = 0; i < found.length; i++) acc += x[i]! * p.coef[found[i]! * L + k]!
    z[k] = acc + p.intercept[k]!
  }
  let m = z[0]!
  for (let k = 1; k < L; k++) if (z[k]! > m) m = z[k]!
  let s = 0
  for (let k = 0; k < L; k++) s += Math.exp(z[k]! - m)
  const lse = m + Math.log(s)
  for (let k = 0; k < L; k++) z[k] = z[k]! - lse
  return z
}

/** p(register | text), in register order: `exp` of the gate's log-probabilities (prior.py `gate_probs`). */
export function gateProbs(p: RegistersPrior, text: string): Float64Array {
  const g = labelLogProbs(p.gate, text)
  for (let r = 0; r < g.length; r++) g[r] = Math.exp(g[r]!)
  return g
}

/**
 * log p(label | text) of a registers prior whose gate gives `g`, in label order (prior.py
 * `log_probs`): `p_k` is the sum over the registers in order of `g_r x exp(expert r's log p of k)`,
 * an expert without label `k` adding nothing, floored at `MIXTURE_FLOOR` before the log.
 */
export function mixtureLogProbs(p: RegistersPrior, text: string, g: Float64Array): Float64Array {
  const mix = new Float64Array(p.numLabels)
  for (let r = 0; r < p.experts.length; r++) {
    const { model, column } = p.experts[r]!
    const lp = labelLogProbs(model, text)
    for (let k = 0; k < mix.length; k++) {
      const c = column[k]!
      if (c >= 0) mix[k] = mix[k]! + g[r]! * Math.exp(lp[c]!)
    }
  }
  if (p.missing === 'abstain') {
    // A label's mixture over the experts that know it: the others have no say on it.
    for (let k = 0; k < mix.length; k++) {
      let known = 0
      for (let r = 0; r < p.experts.length; r++) if (p.experts[r]!.column[k]! >= 0) known += g[r]!
      mix[k] = known > 0 ? mix[k]! / known : 0
    }
  }
  for (let k = 0; k < mix.length; k++) mix[k] = Math.log(Math.max(mix[k]!, MIXTURE_FLOOR))
  return mix
}

/** The fusion weight of a text whose register probabilities are `g`: the sum over the registers in order of `g_r x weights[r]` (prior.py `weight_for`). */
export function mixtureWeight(p: RegistersPrior, g: Float64Array): number {
  let w = 0
  for (let r = 0; r < p.weights.length; r++) w += g[r]! * p.weights[r]!
  return w
}

// Python's bytes.decode('utf-8', errors='replace'): invalid bytes become U+FFFD, a BOM is kept.
const UTF8 = new TextDecoder('utf-8', { ignoreBOM: true })

/**
 * What the prior gives a sequence whose input bytes (the text ids' bytes, as grounded quoting sees
 * them) are `source` (prior.py `for_source` and `gate_for_source`): what it adds to the label
 * logits, `weight x log p`, one per label, and for a registers prior the gate's probabilities,
 * which also mix the sequence's weight and temperature.
 */
export function sequencePrior(p: PackagePrior, source: Uint8Array): SequencePrior {
  const text = UTF8.decode(source)
  if (p.method === 'tfidf-logreg') {
    const lp = labelLogProbs(p, text)
    for (let k = 0; k < lp.length; k++) lp[k] = p.weight * lp[k]!
    return { logits: lp, gate: null }
  }
  const g = gateProbs(p, text)
  const w = mixtureWeight(p, g)
  const lp = mixtureLogProbs(p, text, g)
  for (let k = 0; k < lp.length; k++) lp[k] = w * lp[k]!
  return { logits: lp, gate: g }
}

/** What the prior adds to the label logits of a sequence whose input bytes are `source` (`sequencePrior`'s `logits`). */
export function priorLogits(p: PackagePrior, source: Uint8Array): Float64Array {
  return sequencePrior(p, source).logits
}

/**
 * Adds `prior` (one value per label) to each label's first-token logit in `logits[offset + id]`, in
 * place: each Float32Array store rounds the sum to float32, as evaluate does (decode.py `fuse`).
 */
export function addPrior(logits: Float32Array, offset: number, labelFirstIds: readonly number[], prior: Float64Array): void {
  for (let k = 0; k < labelFirstIds.length; k++) {
    const at = offset + labelFirstIds[k]!
    logits[at] = logits[at]! + prior[k]!
  }
}
