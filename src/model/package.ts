/**
 * @module
 * Loading a model package folder: manifest, file hashes, tokenizer, lexical prior, calibration. The ONNX session
 * is created in the engine worker (it belongs to the thread that runs it).
 */
import { join, resolve } from 'node:path'
import type { LabelCalibration, Manifest } from './manifest.js'
import { PackageError, labelCalibration, readManifest, verifyFiles } from './manifest.js'
import { loadPrior } from './prior.js'
import type { PackagePrior } from './prior.js'
import type { LoadedTokenizer } from './tokenizer.js'
import { loadTokenizer } from './tokenizer.js'

export interface ModelPackage {
  /** Absolute folder. */
  dir: string
  manifest: Manifest
  tokenizer: LoadedTokenizer
  /** `manifest.prior`'s file, checked against the package's labels; null: the package has none. */
  prior: PackagePrior | null
  /** `manifest.calibration`, a register temperature in the registers prior's order. */
  calibration: LabelCalibration
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
  const registers = prior?.method === 'tfidf-logreg-registers' ? prior.registers : null
  const calibration = labelCalibration(manifest, registers, join(abs, 'manifest.json'))
  return { dir: abs, manifest, tokenizer, prior, calibration }
}
