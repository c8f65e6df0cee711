/**
 * @module
 * One pass of a fused `gqa`-layout graph (docs/model-package.md, "ONNX graph"): the thin I/O shell
 * around `session.run`. What to feed is decided by src/engine/gqa-feeds.ts.
 *
 * The engine's KV cache (row ranges of kv-cache.ts's buffers, `[batch, kv_heads, capacity,
 * head_dim]`) is the `past_key_values.*` feed, read by ONNX Runtime in place. How the pass's new
 * keys and values get into it depends on the graph:
 *
 * - graphs with `new.{i}.key|value` outputs (the rotated keys and the values of this pass's
 *   tokens, `[batch, seq, kv_heads * head_dim]`): only those are fetched, and `writeNewPositions`
 *   copies each row's real tokens into its slots. `present.*` is not fetched: onnxruntime-node
 *   1.30 copies every fetched output into a fresh ArrayBuffer, and for the whole cache that copy
 *   (and the garbage it leaves) made a B=28 decode pass 2 to 3 times slower (docs/engine.md).
 *   A first prompt's pass gets an empty past (its content would be ignored).
 * - older fused graphs without them: the same `ort.Tensor` is the past feed and the pre-allocated
 *   `present.*` fetch, so GroupQueryAttention writes the new positions into the cache itself and
 *   the binding's copies of `present` are dropped.
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

/**
 * Where row b's new tokens go, as the graph places them: a first prompt (total_sequence_length ===
 * seq, right-padded) starts at slot 0 and has seqlens_k[b] + 1 tokens; otherwise the row's past is
 * seqlens_k[b] + 1 - seq and all seq tokens are real.
 */
export function newPositions(x: Pick<GqaInputs, 'seq' | 'seqlensK' | 'totalSequenceLength'>, b: number): { start: number; count: number } {
  const end = x.seqlensK[b]! + 1
  return x.totalSequenceLength === x.seq ? { start: 0, count: end } : { start: end - x.seq, count: x.seq }
}

/**
 * Copies `fresh` (`[batch, seq, heads * dim]`, one layer's new keys or values) into `cache`
 * (`[batch, heads, capacity, dim]`) at each row's new positions; padded tokens are skipped.
 */
export function writeNewPositions(
  cache: Float32Array,
  fresh: Float32Array,
  x: Pick<GqaInputs, 'batch' | 'seq' | 'seqlensK' | 'totalSequenceLength' | 'capacity'>,
  heads: number,
  dim: number,
): void {
  for (let b = 0; b < x.batch; b++) {
    const { start, count } = newPositions(x, b)
    for (let s = 0; s < count; s++) {
      const from = (b * x.seq + s) * heads * dim
      for (let h = 0; h < heads; h++) {
        const src = from + h * dim
        cache.set(fresh.subarray(src, src + dim), ((b * heads + h) * x.capacity + start + s) * dim)
      }
    }
  }
}

/** Binds a session of a `gqa` graph to the package's shapes. */
export function makeGqaForward(
  session: ort.InferenceSession,
  shape: { numLayers: number; numKvHeads: number; headDim: number },
): GqaForward {
  const { numLayers, numKvHeads, headDim } = shape
  const layers = Array.from({ length: numLayers }, (_, i) => i)
  const kinds = [['key', 'keys'], ['value', 'values']] as const
  const hasNew = layers.every((i) => kinds.every(([t]) => session.outputNames.includes(`new.${i}.${t}`)))
  const empty = new Float32Array(0)
  return async function forward(x) {
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', x.inputIds, [x.batch, x.seq]),
      seqlens_k: new ort.Tensor('int32', x.seqlensK, [x.batch]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.of(x.totalSequenceLength), []),
    }
    const fetches: Record<string, ort.Tensor | null> = { logits: null }
    const firstPrompt = x.totalSequenceLength === x.seq
    for (const i of layers) {
      for (const [which, views] of kinds) {
        const past = hasNew && firstPrompt ? empty : x[views][i]!
        // In the older graphs, one tensor as past and as present: ONNX Runtime binds the same memory to both.
        const t = new ort.Tensor('float32', past, [x.batch, numKvHeads, past.length ? x.capacity : 0, headDim])
        feeds[`past_key_values.${i}.${which}`] = t
        if (hasNew) fetches[`new.${i}.${which}`] = null
        else fetches[`present.${i}.${which}`] = t
      }
    }
    const out = await session.run(feeds, fetches)
    if (hasNew) {
      for (const i of layers) {
        for (const [which, views] of kinds) {
          writeNewPositions(x[views][i]!, out[`new.${i}.${which}`]!.data as Float32Array, x, numKvHeads, headDim)
        }
      }
    }
    return out.logits!.data as Float32Array
  }
}
