/**
 * @module
 * The `optimum`-layout graph's passes (docs/engine.md, "The KV cache"): a prefill left-pads the
 * prompts with positions counting real tokens only and an empty past, and its `present` tensors
 * are held until `commit` copies each generating prompt's real tokens into a fresh slot row; a
 * decode step feeds the slot buffer as the past with a mask over each row's own slots, and copies
 * only the new position of `present` back (kv-cache.ts `appendStep`).
 */
import type { Forward, ForwardInputs, ForwardOutputs } from '../model/session.js'
import type { BatchRunner, PrefillLogits } from './batch-runner.js'
import { KvCache } from './kv-cache.js'
import type { KvShape } from './kv-cache.js'

export class OptimumRunner implements BatchRunner {
  readonly #forward: Forward
  readonly #kv: KvCache
  readonly #vocabSize: number
  readonly #pad: number
  /** The last prefill's outputs and prompt lengths, until `commit`. */
  #staged: { out: ForwardOutputs; len: number; lengths: number[] } | null = null

  constructor(forward: Forward, model: { shape: KvShape; vocabSize: number; pad: number }, opts: { kvGranularity: number }) {
    this.#forward = forward
    this.#kv = new KvCache(model.shape, { granularity: opts.kvGranularity })
    this.#vocabSize = model.vocabSize
    this.#pad = model.pad
  }

  get numRows(): number {
    return this.#kv.numRows
  }

  async prefill(prompts: readonly (readonly number[])[]): Promise<PrefillLogits> {
    this.#staged = null
    const len = Math.max(...prompts.map((p) => p.length))
    const out = await this.#forward(prefillInputs(prompts, len, this.#pad, this.#kv.shape.numLayers))
    this.#staged = { out, len, lengths: prompts.map((p) => p.length) }
    const V = this.#vocabSize
    return { logits: out.logits, offset: (i) => (i * len + len - 1) * V }
  }

  async decode(tokens: readonly number[]): Promise<Float32Array> {
    const kv = this.#kv
    if (tokens.length !== kv.numRows) throw new Error(`${tokens.length} tokens for ${kv.numRows} rows`)
    kv.reserve(kv.numRows, Math.max(...kv.lengths) + 1)
    const layers = Array.from({ length: kv.shape.numLayers }, (_, l) => l)
    const o = await this.#forward({
      batch: kv.numRows,
      seq: 1,
      pastLen: kv.capacity,
      inputIds: BigInt64Array.from(tokens, (t) => BigInt(t)),
      attentionMask: kv.decodeMask(),
      positionIds: BigInt64Array.from(kv.lengths, (n) => BigInt(n)),
      pastKeys: layers.map((l) => kv.past(l, 'key')),
      pastValues: layers.map((l) => kv.past(l, 'value')),
    })
    kv.appendStep({ keys: o.presentKeys, values: o.presentValues, len: kv.capacity + 1 })
    return o.logits
  }

  commit(keep: readonly boolean[]): number[] {
    const staged = this.#staged
    this.#staged = null
    if (!staged) throw new Error('commit without a prefill')
    const kv = this.#kv
    const joining = staged.lengths.filter((_, i) => keep[i])
    if (joining.length === 0) return keep.map(() => -1)
    kv.reserve(kv.numRows + joining.length, Math.max(...kv.lengths, ...joining) + 1)
    const present = { keys: staged.out.presentKeys, values: staged.out.presentValues, len: staged.len }
    return staged.lengths.map((n, i) => (keep[i] ? kv.addRow(present, i, n) : -1))
  }

  removeRow(r: number): number {
    return this.#kv.removeRow(r)
  }
}

/** Left-padded to `len`; padded positions masked, with position 0; real ones count from 0 (as training/ decode.py does). */
function prefillInputs(prompts: readonly (readonly number[])[], len: number, pad: number, numLayers: number): ForwardInputs {
  const n = prompts.length
  const inputIds = new BigInt64Array(n * len).fill(BigInt(pad))
  const attentionMask = new BigInt64Array(n * len)
  const positionIds = new BigInt64Array(n * len)
  prompts.forEach((p, i) => {
    const padding = len - p.length
    p.forEach((id, j) => {
      inputIds[i * len + padding + j] = BigInt(id)
      attentionMask[i * len + padding + j] = 1n
      positionIds[i * len + padding + j] = BigInt(j)
    })
  })
  const empty = Array.from({ length: numLayers }, () => new Float32Array(0))
  return { batch: n, seq: len, pastLen: 0, inputIds, attentionMask, positionIds, pastKeys: empty, pastValues: empty }
}
