/**
 * @module
 * The lexical prior of a model package (`manifest.prior`, its file `prior.json`): TF-IDF over the
 * word n-grams of the input and a logistic regression over them. `weight x log p(label | text)` is
 * added to the label logits until a sequence names a label (engine.ts).
 *
 * `labelLogProbs` follows training/because_train/prior.py `LexicalPrior.log_probs` operation for
 * operation (float64, the same order of sums), so that the service and `evaluate` decode alike
 * row for row: do not reorder, vectorise or "simplify" it.
 */
import { join } from 'node:path'
import { z } from 'zod'
import { PackageError, readJsonFile } from './manifest.js'
import type { Manifest } from './manifest.js'

export const PRIOR_FORMAT = 'tfidf-logreg-v1'

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

/** A checked prior.json, ready to score texts, with the manifest's fusion weight. */
export interface LexicalPrior {
  /** `manifest.prior.weight`: what the log-probabilities are multiplied by. */
  weight: number
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

/**
 * Checks a parsed prior.json against the package (`labels`, the manifest's, in order) and builds
 * the prior; throws a one-line `PackageError` naming `path`, the field and what is wrong.
 */
export function parsePrior(json: unknown, pkg: { labels: readonly string[]; weight: number }, path: string): LexicalPrior {
  const parsed = PriorFileSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new PackageError(`${path}: ${issue.path.join('.') || '(root)'}: ${issue.message}`)
  }
  const p = parsed.data
  const fail = (message: string): never => {
    throw new PackageError(`${path}: ${message}`)
  }
  if (p.labels.length !== pkg.labels.length || p.labels.some((l, k) => l !== pkg.labels[k])) {
    fail(`labels: ${JSON.stringify(p.labels)} are not the package's labels ${JSON.stringify(pkg.labels)} (manifest.json, in that order)`)
  }
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
    weight: pkg.weight,
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

/** Reads `manifest.prior.file` of the package in `dir`; null when the package has no prior. */
export async function loadPrior(dir: string, manifest: Pick<Manifest, 'labels' | 'prior'>): Promise<LexicalPrior | null> {
  if (!manifest.prior) return null
  const path = join(dir, manifest.prior.file)
  return parsePrior(await readJsonFile(path), { labels: manifest.labels, weight: manifest.prior.weight }, path)
}

/** log p(label | text), in label order; `text` as the model reads it (prior.py `log_probs`). */
export function labelLogProbs(p: LexicalPrior, text: string): Float64Array {
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

// Python's bytes.decode('utf-8', errors='replace'): invalid bytes become U+FFFD, a BOM is kept.
const UTF8 = new TextDecoder('utf-8', { ignoreBOM: true })

/**
 * What the prior adds to the label logits of a sequence whose input bytes (the text ids' bytes, as
 * grounded quoting sees them) are `source`: `weight x log p`, one per label (prior.py `for_source`).
 */
export function priorLogits(p: LexicalPrior, source: Uint8Array): Float64Array {
  const lp = labelLogProbs(p, UTF8.decode(source))
  for (let k = 0; k < lp.length; k++) lp[k] = p.weight * lp[k]!
  return lp
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
