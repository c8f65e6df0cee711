/**
 * @module
 * Opens a package's ONNX Runtime session on one of its graphs and builds the `LoadedModel` the
 * engine runs (used by the worker, the measurement scripts and tests that drive the engine without
 * a worker).
 */
import { selectGraph } from '../model/manifest.js'
import type { SelectedGraph } from '../model/manifest.js'
import type { ModelPackage } from '../model/package.js'
import { makeGqaForward } from '../model/gqa-forward.js'
import { createSession, graphIoProblem, makeForward } from '../model/session.js'
import type { CreatedSession } from '../model/session.js'
import type { Device } from '../config.js'
import type { ModelPasses } from './batch-runner.js'
import type { LoadedModel } from './engine.js'

export interface LoadOptions {
  /** The graph (`--graph`); null or absent: the package's default. */
  graph?: string | null
  /** ONNX Runtime's spin-waiting in the intra-op pool (session.ts); off when absent. */
  spinning?: boolean
}

export async function loadModel(
  pkg: ModelPackage,
  device: Device,
  threads: number,
  opts: LoadOptions = {},
): Promise<{ model: LoadedModel; session: CreatedSession; graph: SelectedGraph }> {
  const m = pkg.manifest
  const graph = selectGraph(m, opts.graph ?? null)
  const path = `${pkg.dir}/${graph.file}`
  const created = await createSession(path, device, threads, { spinning: opts.spinning ?? false })
  const shape = { numLayers: m.onnx.num_layers, numKvHeads: m.onnx.num_kv_heads, headDim: m.onnx.head_dim }
  const problem = graphIoProblem(graph.layout, created.session, shape.numLayers)
  if (problem) {
    await created.session.release()
    throw new Error(`${path} (graph ${graph.name}): ${problem}; check graphs.${graph.name}.layout in manifest.json`)
  }
  const passes: ModelPasses =
    graph.layout === 'optimum'
      ? { layout: 'optimum', forward: makeForward(created.session, shape) }
      : { layout: 'gqa', forward: makeGqaForward(created.session, shape), maxPositions: m.onnx.max_position_embeddings }
  const model: LoadedModel = {
    ...passes,
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
    calibration: pkg.calibration,
    scoresAtFirstLabel: m.kind === 'qra' && m.label_scores_at === 'first_label_token',
    prior: pkg.prior,
  }
  return { model, session: created, graph }
}
