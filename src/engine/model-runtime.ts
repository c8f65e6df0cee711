/**
 * @module
 * Opens a package's ONNX Runtime session and builds the `LoadedModel` the engine runs (used by
 * the worker, the measurement script and tests that drive the engine without a worker).
 */
import { labelTemperature } from '../model/manifest.js'
import type { ModelPackage } from '../model/package.js'
import { createSession, makeForward } from '../model/session.js'
import type { CreatedSession } from '../model/session.js'
import type { Device } from '../config.js'
import type { LoadedModel } from './engine.js'

export async function loadModel(
  pkg: ModelPackage,
  device: Device,
  threads: number,
): Promise<{ model: LoadedModel; session: CreatedSession }> {
  const m = pkg.manifest
  const created = await createSession(`${pkg.dir}/${m.onnx.file}`, device, threads)
  const shape = { numLayers: m.onnx.num_layers, numKvHeads: m.onnx.num_kv_heads, headDim: m.onnx.head_dim }
  const model: LoadedModel = {
    forward: makeForward(created.session, shape),
    shape,
    vocabSize: m.onnx.vocab_size,
    kind: m.kind,
    specials: m.special_tokens,
    labelFirstIds: m.label_token_ids.map((ids) => ids[0]!),
    maxReasoningTokens: m.limits.max_reasoning_tokens,
    tokenBytes: pkg.tokenizer.tokenBytes,
    quoteBytes: pkg.tokenizer.quoteBytes,
    template: {
      numPrefixTokens: pkg.tokenizer.encoder.numPrefixTokens,
      numSuffixTokens: pkg.tokenizer.encoder.numSuffixTokens,
    },
    labelTemperature: labelTemperature(m),
    scoresAtFirstLabel: m.kind === 'qra' && m.label_scores_at === 'first_label_token',
  }
  return { model, session: created }
}
