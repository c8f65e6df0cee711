/**
 * @module
 * Greedy decoding and label scoring (docs/model-package.md, "Decoding"). Pure functions over one
 * row of logits, shared by the engine and its tests.
 */

/**
 * Index of the largest logit in `logits[offset, offset + size)`, skipping `maskedIds` (treated as
 * -inf). Ties go to the lowest index; NaN never wins.
 */
export function argmaxMasked(
  logits: Float32Array,
  offset: number,
  size: number,
  maskedIds: ReadonlySet<number>,
): number {
  let best = -1
  let bestValue = -Infinity
  for (let i = 0; i < size; i++) {
    const v = logits[offset + i]!
    // Strictly greater: the first (lowest) index keeps a tie.
    if (v > bestValue && !maskedIds.has(i)) {
      best = i
      bestValue = v
    }
  }
  if (best < 0) {
    // Every unmasked logit is -inf or NaN: fall back to the lowest unmasked id, deterministically.
    for (let i = 0; i < size; i++) if (!maskedIds.has(i)) return i
    throw new Error('every id is masked')
  }
  return best
}

/** Label scores: a softmax over the logits of each label's first token. */
export interface LabelScores {
  /** Index into the label list of the best label (lowest index on ties). */
  index: number
  /** One probability per label, in label order, summing to 1. */
  scores: number[]
}

/** Scores labels from the logits at the marker position. */
export function scoreLabels(
  logits: Float32Array,
  offset: number,
  labelFirstIds: readonly number[],
): LabelScores {
  const values = labelFirstIds.map((id) => logits[offset + id]!)
  let index = 0
  for (let k = 1; k < values.length; k++) if (values[k]! > values[index]!) index = k
  const max = values[index]!
  const exps = values.map((v) => Math.exp(v - max))
  const sum = exps.reduce((a, b) => a + b, 0)
  const scores = exps.map((e) => e / sum)
  if (!Number.isFinite(sum) || scores.some((s) => !Number.isFinite(s))) {
    // Non-finite logits (a broken model): a uniform distribution still satisfies the contract.
    return { index: 0, scores: values.map(() => 1 / values.length) }
  }
  return { index, scores }
}
