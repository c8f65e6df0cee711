/**
 * @module
 * `manifest.json` of a model package (docs/model-package.md): its schema, its consistency rules
 * and the sha256 check of every file it lists.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { NORMALIZE_RULES } from './normalize.js'

/** The emoji and emoticon table of `natural-v1`, a file of the package. */
export const EMOJI_FILE = 'emoji.json'

const tokenId = z.number().int().nonnegative()

/**
 * The I/O layouts a graph may have (docs/model-package.md, "ONNX graph"): `optimum` takes
 * `attention_mask` and `position_ids` and returns logits for every position and `past + new` as
 * `present`; `gqa` is the fused GroupQueryAttention graph (right-padded prefill, `seqlens_k`,
 * `total_sequence_length`, logits at each row's last position, each pass's new keys and values as `new.*`).
 */
export const GRAPH_LAYOUTS = ['optimum', 'gqa'] as const
export type GraphLayout = (typeof GRAPH_LAYOUTS)[number]
/** The weights' type: it decides nothing in the engine (inputs and outputs are float32 either way). */
export const GRAPH_DTYPES = ['float32', 'int8'] as const
/** A graph's name, as `graphs` keys it and `--graph` names it. */
export const GRAPH_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

const GraphSchema = z.object({
  file: z.string().min(1),
  layout: z.enum(GRAPH_LAYOUTS),
  dtype: z.enum(GRAPH_DTYPES),
})
export type GraphSpec = z.infer<typeof GraphSchema>
/** The graph of a package that has no `graphs`: its `onnx.file`. */
export const DEFAULT_GRAPH_NAME = 'fp32'

// zod's number() refuses Infinity and NaN; the refinement says so for a manifest built in code.
const positiveFinite = z.number().positive().refine(Number.isFinite, 'must be a finite number')
const nonNegativeFinite = z.number().nonnegative().refine(Number.isFinite, 'must be a finite number')

export const ManifestSchema = z.object({
  schema_version: z.literal(1),
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/),
  kind: z.enum(['qra', 'qa']),
  // The package's own label set, in the order of its scores: the service has none of its own
  // (checkManifest: unique, and label_texts and label_token_ids one per label).
  labels: z.array(z.string().min(1, 'a label may not be empty')).min(2, 'needs at least 2 labels'),
  label_texts: z.array(z.string().min(1, 'a label text may not be empty')),
  label_token_ids: z.array(z.array(tokenId).min(1)),
  prompt: z.object({
    normalize: z.enum(NORMALIZE_RULES),
    template: z.string(),
    marker: z.string().min(1),
    eos: z.string().min(1),
  }),
  /** Where a `qra` package's labels are scored (docs/model-package.md, "Decoding"); absent: the marker. */
  label_scores_at: z.enum(['marker', 'first_label_token']).optional(),
  special_tokens: z.object({ bos: tokenId, eos: tokenId, pad: tokenId, sep: tokenId, marker: tokenId }),
  limits: z.object({
    max_input_tokens: z.number().int().positive(),
    max_reasoning_tokens: z.number().int().nonnegative(),
  }),
  onnx: z.object({
    file: z.string().min(1),
    num_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    num_kv_heads: z.number().int().positive(),
    head_dim: z.number().int().positive(),
    hidden_size: z.number().int().positive(),
    vocab_size: z.number().int().positive(),
    max_position_embeddings: z.number().int().positive(),
    dtype: z.literal('float32'),
  }),
  // The graphs the service can run (docs/model-package.md, "Graphs"); absent: one graph `fp32`,
  // `onnx.file` in the optimum layout. `onnx` stays the optimum-layout reference graph that peers
  // (transformers.js) load and the one that gives the dimensions.
  graphs: z.record(z.string(), GraphSchema).optional(),
  default_graph: z.string().optional(),
  // Label scores are softmax(label logits / T); absent, T is 1. `temperature`: one T for every
  // sequence; `register-temperature` (only with a registers prior): one per register, each
  // sequence's T the gate's mixture of them (`sequenceTemperature`). Other keys (what it was fitted
  // on, its effect) are provenance the service does not read.
  calibration: z
    .discriminatedUnion('method', [
      z.looseObject({ method: z.literal('temperature'), temperature: positiveFinite }),
      z.looseObject({ method: z.literal('register-temperature'), temperatures: z.record(z.string(), positiveFinite) }),
    ])
    .optional(),
  // A lexical prior (prior.ts): `weight x log p(label | text)` of a TF-IDF + logistic-regression
  // classifier in `file` is added to the label logits until a label is named; a registers prior
  // mixes one classifier per register, and one weight per register, by a gate's probabilities.
  // Other keys are provenance.
  prior: z
    .discriminatedUnion('method', [
      z.looseObject({ method: z.literal('tfidf-logreg'), file: z.string().min(1), weight: nonNegativeFinite }),
      z.looseObject({ method: z.literal('tfidf-logreg-registers'), file: z.string().min(1), weights: z.record(z.string(), nonNegativeFinite) }),
    ])
    .optional(),
  provenance: z.record(z.string(), z.unknown()).optional(),
  metrics: z.record(z.string(), z.unknown()).optional(),
  files: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)),
})
export type Manifest = z.infer<typeof ManifestSchema>

/** A package that cannot be served; the message is one line naming the file and the reason. */
export class PackageError extends Error {
  override name = 'PackageError'
}

/** Checks the rules the schema cannot express; returns the first violation or null. */
export function checkManifest(m: Manifest): string | null {
  const seen = new Set<string>()
  for (const label of m.labels) {
    if (seen.has(label)) return `labels: ${JSON.stringify(label)} is listed twice; labels must be unique`
    seen.add(label)
  }
  for (const field of ['label_texts', 'label_token_ids'] as const) {
    if (m[field].length !== m.labels.length) {
      const n = m[field].length
      return `${field}: ${n} ${n === 1 ? 'entry' : 'entries'} for ${m.labels.length} labels; it needs one per label, in the order of labels`
    }
  }
  if (m.prompt.template.split('{text}').length !== 2) return 'prompt.template must contain {text} once'
  for (const [k, ids] of m.label_token_ids.entries()) {
    if (ids.some((id) => id >= m.onnx.vocab_size)) return `label_token_ids[${k}] is outside the vocabulary`
  }
  // A label is scored by its first token's logit, so two labels sharing one could never differ.
  const firstOf = new Map<number, number>()
  for (const [k, ids] of m.label_token_ids.entries()) {
    const other = firstOf.get(ids[0]!)
    if (other !== undefined) {
      return `label_token_ids: labels ${JSON.stringify(m.labels[other])} and ${JSON.stringify(m.labels[k])} start with the same token id ${ids[0]}; every label needs a different first token`
    }
    firstOf.set(ids[0]!, k)
  }
  for (const [name, id] of Object.entries(m.special_tokens)) {
    if (id >= m.onnx.vocab_size) return `special_tokens.${name} is outside the vocabulary`
  }
  if (!(m.onnx.file in m.files)) return `files does not list onnx.file ${m.onnx.file}`
  const graphProblem = checkGraphs(m)
  if (graphProblem) return graphProblem
  for (const name of ['tokenizer.json', 'tokenizer_config.json']) {
    if (!(name in m.files)) return `files does not list ${name}`
  }
  if (m.prior && !(m.prior.file in m.files)) return `prior.file: files does not list ${m.prior.file} (every file is sha256-checked)`
  const calibrationProblem = checkRegisterTemperature(m)
  if (calibrationProblem) return calibrationProblem
  if (m.prompt.normalize === 'natural-v1' && !(EMOJI_FILE in m.files)) {
    return `files does not list ${EMOJI_FILE}, which normalize natural-v1 reads`
  }
  for (const name of Object.keys(m.files)) {
    if (name === 'manifest.json' || name.includes('..') || name.startsWith('/')) {
      return `files may not list ${name}`
    }
  }
  return null
}

/**
 * A `register-temperature` calibration: only with a registers prior, and one temperature per
 * register (the registers `prior.weights` names; loadPrior checks those against prior.json's).
 */
function checkRegisterTemperature(m: Manifest): string | null {
  if (m.calibration?.method !== 'register-temperature') return null
  if (m.prior?.method !== 'tfidf-logreg-registers') {
    return `calibration: method register-temperature needs a registers prior (prior.method tfidf-logreg-registers), and this package's prior is ${m.prior ? `method ${m.prior.method}` : 'absent'}`
  }
  const registers = Object.keys(m.prior.weights).sort()
  const named = Object.keys(m.calibration.temperatures).sort()
  if (named.length !== registers.length || named.some((name, r) => name !== registers[r])) {
    return `calibration.temperatures: names ${JSON.stringify(named)}, not the registers ${JSON.stringify(registers)} of prior.weights; it needs one temperature per register`
  }
  return null
}

/** `graphs` and `default_graph`: each graph's file listed (so sha256-checked), the default one of them. */
function checkGraphs(m: Manifest): string | null {
  if (m.graphs === undefined) {
    if (m.default_graph !== undefined && m.default_graph !== DEFAULT_GRAPH_NAME) {
      return `default_graph: ${JSON.stringify(m.default_graph)} is not a graph of this package (without graphs it has only ${DEFAULT_GRAPH_NAME})`
    }
    return null
  }
  const names = Object.keys(m.graphs)
  if (names.length === 0) return 'graphs: lists no graph; leave it out to serve onnx.file'
  for (const [name, g] of Object.entries(m.graphs)) {
    if (!GRAPH_NAME.test(name)) return `graphs.${name}: a graph name is letters, digits, ".", "_" or "-" (--graph names it)`
    if (!(g.file in m.files)) return `graphs.${name}.file: files does not list ${g.file} (every graph file is sha256-checked)`
  }
  if (m.default_graph !== undefined && !(m.default_graph in m.graphs)) {
    return `default_graph: ${JSON.stringify(m.default_graph)} is not in graphs (${names.join(', ')})`
  }
  return null
}

/** The graphs a package offers: its `graphs`, or `fp32` = `onnx.file` (optimum layout, float32). */
export function packageGraphs(m: Manifest): Record<string, GraphSpec> {
  return m.graphs ?? { [DEFAULT_GRAPH_NAME]: { file: m.onnx.file, layout: 'optimum', dtype: m.onnx.dtype } }
}

/** A graph chosen for serving. */
export interface SelectedGraph extends GraphSpec {
  name: string
}

/**
 * The graph to serve: `name` (`--graph`) when given, else the package's `default_graph`, else
 * `fp32`. Throws a one-line `PackageError` naming the package and its graphs when it has no such graph.
 */
export function selectGraph(m: Manifest, name: string | null): SelectedGraph {
  const graphs = packageGraphs(m)
  const wanted = name ?? m.default_graph ?? DEFAULT_GRAPH_NAME
  const spec = Object.hasOwn(graphs, wanted) ? graphs[wanted] : undefined
  if (!spec) {
    throw new PackageError(
      `${name === null ? 'default graph' : '--graph'} ${JSON.stringify(wanted)}: package ${m.id} has no such graph; its graphs: ${Object.keys(graphs).join(', ')}`,
    )
  }
  return { name: wanted, ...spec }
}

/** The parsed JSON of a package file; a one-line `PackageError` naming it when unreadable or not JSON. */
export async function readJsonFile(path: string): Promise<unknown> {
  let raw: string
  try {
    raw = await readFile(path, 'utf8')
  } catch (e) {
    throw new PackageError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`)
  }
  try {
    return JSON.parse(raw) as unknown
  } catch (e) {
    throw new PackageError(`${path}: invalid JSON (${(e as Error).message})`)
  }
}

/** Reads and checks `dir/manifest.json`. */
export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, 'manifest.json')
  const json = await readJsonFile(path)
  const parsed = ManifestSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new PackageError(`${path}: ${issue.path.join('.') || '(root)'}: ${issue.message}`)
  }
  const problem = checkManifest(parsed.data)
  if (problem) throw new PackageError(`${path}: ${problem}`)
  return parsed.data
}

/**
 * How a package's label logits are divided before the softmax: one temperature for every sequence
 * (1 when the package is not calibrated), or one per register of its registers prior, in prior.json's
 * register order, that each sequence's gate mixes (`sequenceTemperature`).
 */
export type LabelCalibration =
  | { method: 'temperature'; temperature: number }
  | { method: 'register-temperature'; temperatures: Float64Array }

/**
 * The calibration of a package whose registers prior has `registers` (prior.json's, in order; null:
 * no registers prior). A manifest `readManifest` accepted and `loadPrior` matched never fails here;
 * one read without them (the bench peer) gets a one-line `PackageError` naming `path`.
 */
export function labelCalibration(
  m: { calibration?: { method?: string; temperature?: number; temperatures?: Record<string, number> } },
  registers: readonly string[] | null,
  path: string,
): LabelCalibration {
  const c = m.calibration
  const positive = (t: number, field: string): number => {
    if (!(Number.isFinite(t) && t > 0)) throw new PackageError(`${path}: ${field}: must be a positive finite number, not ${t}`)
    return t
  }
  if (c?.method !== 'register-temperature') return { method: 'temperature', temperature: positive(c?.temperature ?? 1, 'calibration.temperature') }
  if (!registers) throw new PackageError(`${path}: calibration: method register-temperature needs a registers prior (prior.method tfidf-logreg-registers)`)
  const temperatures = c.temperatures ?? {}
  const named = Object.keys(temperatures)
  if (named.length !== registers.length || registers.some((r) => !Object.hasOwn(temperatures, r))) {
    throw new PackageError(`${path}: calibration.temperatures: names ${JSON.stringify(named.sort())}, not the registers ${JSON.stringify(registers)}; it needs one temperature per register`)
  }
  return { method: 'register-temperature', temperatures: Float64Array.from(registers, (r) => positive(temperatures[r]!, `calibration.temperatures.${r}`)) }
}

/**
 * The temperature a sequence's label logits are divided by: the package's one, or, for a
 * register temperature, the sum over the registers in order of `gate[r] x temperatures[r]`, with
 * `gate` the sequence's register probabilities (prior.ts `sequencePrior`), float64, as evaluate sums it.
 */
export function sequenceTemperature(c: LabelCalibration, gate: Float64Array | null): number {
  if (c.method === 'temperature') return c.temperature
  if (!gate || gate.length !== c.temperatures.length) {
    throw new Error(`a register temperature needs the gate's ${c.temperatures.length} register probabilities, not ${gate ? gate.length : 'none'}`)
  }
  let t = 0
  for (let r = 0; r < gate.length; r++) t += gate[r]! * c.temperatures[r]!
  return t
}

/** sha256 of a file, hex. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** Verifies that every file in `manifest.files` exists and has the recorded sha256. */
export async function verifyFiles(dir: string, manifest: Manifest): Promise<void> {
  for (const [name, expected] of Object.entries(manifest.files)) {
    const path = join(dir, name)
    try {
      await stat(path)
    } catch {
      throw new PackageError(`${path}: missing (listed in manifest.json files)`)
    }
    const actual = await sha256File(path)
    if (actual !== expected) {
      throw new PackageError(
        `${path}: sha256 ${actual.slice(0, 12)}... does not match manifest.json (${expected.slice(0, 12)}...); the file is truncated or was changed`,
      )
    }
  }
}
