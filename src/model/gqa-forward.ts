/**
 * @module
 * One pass of a fused `gqa`-layout graph (docs/model-package.md, "ONNX graph"): the thin I/O shell
 * around `session.run`. What to feed is decided by src/engine/gqa-feeds.ts.
 *
 * The KV cache is not copied into or out of the pass in JS: each layer's key and value buffers
 * (row ranges of the engine's cache, `[batch, kv_heads, capacity, head_dim]`) go in as one
 * `ort.Tensor` that is both the `past_key_values.*` feed and the pre-allocated `present.*` fetch,
 * so GroupQueryAttention reads the past from that memory and writes the new positions into it.
 * onnxruntime-node 1.30 still copies every fetched output into a fresh ArrayBuffer on the way out
 * (a memcpy of the cache views in the binding, measured in docs/engine.md); those copies are
 * dropped at once, only `logits` is kept.
 */
import ort from 'onnxruntime-node'

/** One pass: the feeds of gqa-feeds.ts plus the cache views it reads and writes in place. */
export interface GqaInputs {
  batch: number
  seq: number
  /** `[batch, seq]`, right-padded. */
  inputIds: BigInt64Array
  /** `[batch]`. */
  seqlensK: Int32Array
  totalSequenceLength: number
  /** Slots per row of the cache views. */
  capacity: number
  /** Per layer, `[batch, kvHeads, capacity, headDim]`: the past, and where the pass writes the new positions. */
  keys: readonly Float32Array[]
  values: readonly Float32Array[]
}

/** Returns the logits `[batch, vocab]`, at each row's last real position. */
export type GqaForward = (inputs: GqaInputs) => Promise<Float32Array>

/** Binds a session of a `gqa` graph to the package's shapes. */
export function makeGqaForward(
  session: ort.InferenceSession,
  shape: { numLayers: number; numKvHeads: number; headDim: number },
): GqaForward {
  const { numLayers, numKvHeads, headDim } = shape
  return async function forward(x) {
    const dims = [x.batch, numKvHeads, x.capacity, headDim]
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', x.inputIds, [x.batch, x.seq]),
      seqlens_k: new ort.Tensor('int32', x.seqlensK, [x.batch]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.of(x.totalSequenceLength), []),
    }
    const fetches: Record<string, ort.Tensor | null> = { logits: null }
    for (let i = 0; i < numLayers; i++) {
      for (const [which, bufs] of [['key', x.keys], ['value', x.values]] as const) {
        // One tensor as past and as present: ONNX Runtime binds the same memory to both.
        const t = new ort.Tensor('float32', bufs[i]!, dims)
        feeds[`past_key_values.${i}.${which}`] = t
        fetches[`present.${i}.${which}`] = t
      }
    }
    const out = await session.run(feeds, fetches)
    return out.logits!.data as Float32Array
  }
}
