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

/** The six labels, in the order every package must list them. */
export const LABELS = ['sadness', 'joy', 'love', 'anger', 'fear', 'surprise'] as const
export type Label = (typeof LABELS)[number]

const tokenId = z.number().int().nonnegative()

export const ManifestSchema = z.object({
  schema_version: z.literal(1),
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/),
  kind: z.enum(['qra', 'qa']),
  labels: z.array(z.string()).length(LABELS.length),
  label_texts: z.array(z.string()).length(LABELS.length),
  label_token_ids: z.array(z.array(tokenId).min(1)).length(LABELS.length),
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
  // Label scores are softmax(label logits / temperature); absent, the temperature is 1. Other keys
  // (what the temperature was fitted on, its effect) are provenance the service does not read.
  calibration: z
    .looseObject({
      method: z.literal('temperature'),
      temperature: z.number().positive().refine(Number.isFinite, 'must be a finite number'),
    })
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
  if (m.labels.join() !== LABELS.join()) return `labels must be ${LABELS.join(', ')} in that order`
  if (m.prompt.template.split('{text}').length !== 2) return 'prompt.template must contain {text} once'
  for (const [k, ids] of m.label_token_ids.entries()) {
    if (ids.some((id) => id >= m.onnx.vocab_size)) return `label_token_ids[${k}] is outside the vocabulary`
  }
  const firsts = new Set(m.label_token_ids.map((ids) => ids[0]))
  if (firsts.size !== LABELS.length) return 'label_token_ids must start with six different ids'
  for (const [name, id] of Object.entries(m.special_tokens)) {
    if (id >= m.onnx.vocab_size) return `special_tokens.${name} is outside the vocabulary`
  }
  if (!(m.onnx.file in m.files)) return `files does not list onnx.file ${m.onnx.file}`
  for (const name of ['tokenizer.json', 'tokenizer_config.json']) {
    if (!(name in m.files)) return `files does not list ${name}`
  }
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

/** Reads and checks `dir/manifest.json`. */
export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, 'manifest.json')
  let raw: string
  try {
    raw = await readFile(path, 'utf8')
  } catch (e) {
    throw new PackageError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`)
  }
  let json: unknown
  try {
    json = JSON.parse(raw)
  } catch (e) {
    throw new PackageError(`${path}: invalid JSON (${(e as Error).message})`)
  }
  const parsed = ManifestSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new PackageError(`${path}: ${issue.path.join('.') || '(root)'}: ${issue.message}`)
  }
  const problem = checkManifest(parsed.data)
  if (problem) throw new PackageError(`${path}: ${problem}`)
  return parsed.data
}

/** The temperature the label logits are divided by (1 when the package is not calibrated). */
export function labelTemperature(m: Manifest): number {
  return m.calibration?.temperature ?? 1
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
