/**
 * @module
 * The feeds of the fused `gqa` graph (docs/model-package.md, "ONNX graph", layout `gqa`) as pure
 * functions: what a prefill pass and a decode pass give `input_ids`, `seqlens_k` and
 * `total_sequence_length`. The graph's GroupQueryAttention takes each row's length from
 * `seqlens_k` (rotary positions, causal mask, which slots to read, where to write the new keys),
 * so there is no attention mask and no position ids, and padding goes on the right.
 *
 * Its two rules are checked here, where a violation would otherwise surface as a native error or
 * as wrong logits: a prefill starts every row from an empty past (`total_sequence_length` = the
 * padded width: the op recognises a first prompt by that, and refuses a chunk after a past for
 * more than one row), so a pass is either all prefill or all decode, never mixed; and no row may
 * reach past the rotary table (`max_position_embeddings` positions).
 */

/** The non-cache inputs of one pass. */
export interface GqaFeeds {
  batch: number
  /** New tokens per row (the padded width of a prefill, 1 for a decode step). */
  seq: number
  /** `[batch, seq]`, right-padded. */
  inputIds: BigInt64Array
  /** `[batch]`: each row's total length after this pass, minus 1. */
  seqlensK: Int32Array
  /** The longest row's total length after this pass. */
  totalSequenceLength: number
}

/**
 * A prefill over `prompts` (each row's whole prompt, no past): right-padded with `pad` to the
 * longest, `seqlens_k` = length - 1, `total_sequence_length` = the padded width.
 */
export function planGqaPrefill(prompts: readonly (readonly number[])[], pad: number, maxPositions: number): GqaFeeds {
  if (prompts.length === 0) throw new Error('a prefill pass needs at least one prompt')
  const seq = Math.max(...prompts.map((p) => p.length))
  if (prompts.some((p) => p.length === 0)) throw new Error('a prompt has no tokens')
  if (seq > maxPositions) throw new Error(`a prompt of ${seq} tokens exceeds the graph's ${maxPositions} positions`)
  const inputIds = new BigInt64Array(prompts.length * seq).fill(BigInt(pad))
  const seqlensK = new Int32Array(prompts.length)
  prompts.forEach((p, b) => {
    for (let j = 0; j < p.length; j++) inputIds[b * seq + j] = BigInt(p[j]!)
    seqlensK[b] = p.length - 1
  })
  return { batch: prompts.length, seq, inputIds, seqlensK, totalSequenceLength: seq }
}

/**
 * A decode step: row `b` holds `pastLengths[b]` cached tokens and appends `tokens[b]`, which the
 * op writes at slot `pastLengths[b]`; `total_sequence_length` = the longest row's past + 1.
 */
export function planGqaDecode(tokens: readonly number[], pastLengths: readonly number[], maxPositions: number): GqaFeeds {
  if (tokens.length === 0) throw new Error('a decode pass needs at least one row')
  if (tokens.length !== pastLengths.length) throw new Error(`${tokens.length} tokens for ${pastLengths.length} rows`)
  const total = Math.max(...pastLengths) + 1
  if (pastLengths.some((n) => n < 1)) throw new Error('a decode row needs a past (its prompt)')
  if (total > maxPositions) throw new Error(`a sequence of ${total} tokens exceeds the graph's ${maxPositions} positions`)
  return {
    batch: tokens.length,
    seq: 1,
    inputIds: BigInt64Array.from(tokens, (t) => BigInt(t)),
    seqlensK: Int32Array.from(pastLengths),
    totalSequenceLength: total,
  }
}
