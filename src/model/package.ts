/**
 * @module
 * Loading a model package folder: manifest, file hashes, tokenizer. The ONNX session is created
 * in the engine worker (it belongs to the thread that runs it).
 */
import { resolve } from 'node:path'
import type { Manifest } from './manifest.js'
import { PackageError, readManifest, verifyFiles } from './manifest.js'
import type { LoadedTokenizer } from './tokenizer.js'
import { loadTokenizer } from './tokenizer.js'

export interface ModelPackage {
  /** Absolute folder. */
  dir: string
  manifest: Manifest
  tokenizer: LoadedTokenizer
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
  return { dir: abs, manifest, tokenizer }
}
