/**
 * @module
 * Loading a model package folder: manifest, file hashes, tokenizer, lexical prior. The ONNX session
 * is created in the engine worker (it belongs to the thread that runs it).
 */
import { resolve } from 'node:path'
import type { Manifest } from './manifest.js'
import { PackageError, readManifest, verifyFiles } from './manifest.js'
import { loadPrior } from './prior.js'
import type { LexicalPrior } from './prior.js'
import type { LoadedTokenizer } from './tokenizer.js'
import { loadTokenizer } from './tokenizer.js'

export interface ModelPackage {
  /** Absolute folder. */
  dir: string
  manifest: Manifest
  tokenizer: LoadedTokenizer
  /** `manifest.prior`'s file, checked against the package's labels; null: the package has none. */
  prior: LexicalPrior | null
}

/**
 * Loads `dir`. With `verify` (the default) every file's sha256 is checked against the manifest
 * first, so a missing, truncated or changed file stops here with a one-line `PackageError`.
 */
export async function loadPackage(dir: string, opts: { verify?: boolean } = {}): Promise<ModelPackage> {
  const abs = resolve(dir)
  const manifest = await readManifest(abs)
  if (opts.verify ?? true) await verifyFiles(abs, manifest)
  const tokenizer = await loadTokenizer(abs, manifest)
  const maxPrompt = manifest.limits.max_input_tokens + tokenizer.encoder.numTemplateTokens
  const maxSequence = maxPrompt + manifest.limits.max_reasoning_tokens + 1
  if (maxSequence > manifest.onnx.max_position_embeddings) {
    throw new PackageError(
      `${abs}/manifest.json: a longest sequence (${maxSequence} tokens: prompt ${maxPrompt}, reasoning ${manifest.limits.max_reasoning_tokens}, marker) exceeds onnx.max_position_embeddings ${manifest.onnx.max_position_embeddings}`,
    )
  }
  const prior = await loadPrior(abs, manifest)
  return { dir: abs, manifest, tokenizer, prior }
}
