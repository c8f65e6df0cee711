/**
 * @module
 * Label scoring (docs/model-package.md, "Decoding"): a pure function over one row of logits,
 * shared by the engine and its tests. The greedy pick of reasoning tokens is in grounding.ts.
 */

/** Label scores: a softmax over the logits of each label's first token, divided by a temperature. */
export interface LabelScores {
  /** Index into the label list of the best label (lowest index on ties). */
  index: number
  /** One probability per label, in label order, summing to 1. */
  scores: number[]
}

/**
 * Scores labels from the logits at the marker position: softmax(logits / `temperature`), the
 * package's calibration (a positive number; 1 leaves the logits as they are). The best label does
 * not depend on it.
 */
export function scoreLabels(
  logits: Float32Array,
  offset: number,
  labelFirstIds: readonly number[],
  temperature = 1,
): LabelScores {
  const values = labelFirstIds.map((id) => logits[offset + id]! / temperature)
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
