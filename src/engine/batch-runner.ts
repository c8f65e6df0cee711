/**
 * @module
 * What the engine asks of a graph layout: run a prefill pass, run a decode pass, and keep the rows
 * of the KV cache. The engine decides what runs together (scheduler.ts) and what each row's logits
 * mean (engine.ts); a runner knows how its graph wants to be fed and where the cache lives:
 * optimum-runner.ts (`attention_mask`, `position_ids`, `present` = past + new, copied back slot by
 * slot) and gqa-runner.ts (`seqlens_k`, one buffer per layer written in place by the graph).
 *
 * A step calls, in this order: `prefill` (the admitted prompts, which the runner holds as staged
 * rows), `decode` (the rows that were running before the step), `commit` (the staged prompts that
 * go on generating become rows after them, the others are dropped), then `removeRow` for each row
 * that finished, in descending order.
 */
import type { Forward } from '../model/session.js'
import type { GqaForward } from '../model/gqa-forward.js'
import { GqaRunner } from './gqa-runner.js'
import type { KvShape } from './kv-cache.js'
import { OptimumRunner } from './optimum-runner.js'

/** A prefill pass's logits: the prompt `i`'s next-token logits start at `offset(i)`. */
export interface PrefillLogits {
  logits: Float32Array
  offset(i: number): number
}

export interface BatchRunner {
  /** Rows in the cache (staged prompts included while a step runs, for the `gqa` runner). */
  readonly numRows: number
  /** Runs the prompts (no past) and stages their KV; the rows that were running are untouched. */
  prefill(prompts: readonly (readonly number[])[]): Promise<PrefillLogits>
  /** One decode pass over rows `0 .. tokens.length - 1`, feeding `tokens[r]` to row `r`; logits `[rows, vocab]`. */
  decode(tokens: readonly number[]): Promise<Float32Array>
  /** After a prefill: the staged prompts with `keep[i]` become rows; returns each one's row (-1: dropped). */
  commit(keep: readonly boolean[]): number[]
  /** Frees row `r` by moving the last row into it; returns the moved row's old index. */
  removeRow(r: number): number
}

/** The passes of a model as loaded (model-runtime.ts), by layout. */
export type ModelPasses =
  | { layout: 'optimum'; forward: Forward }
  /** `maxPositions`: the rotary table's length; no row may be longer. */
  | { layout: 'gqa'; forward: GqaForward; maxPositions: number }

export function createRunner(
  passes: ModelPasses,
  model: { shape: KvShape; vocabSize: number; pad: number },
  opts: { kvGranularity: number },
): BatchRunner {
  return passes.layout === 'optimum'
    ? new OptimumRunner(passes.forward, model, opts)
    : new GqaRunner(passes.forward, { ...model, maxPositions: passes.maxPositions }, opts)
}
