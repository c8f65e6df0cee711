/**
 * @module
 * The running batch's KV cache: one preallocated buffer per layer for keys and one for values,
 * laid out `[row, kv_head, slot, head_dim]`, which is exactly the `past_key_values.{i}.*` input
 * layout. Row `r` of the batch is sequence `r`; its tokens sit in slots `0 .. length[r] - 1`.
 *
 * Why this layout (measured, see docs/engine.md): the model's `present` output is the past plus
 * the new position, so each decode step produces `[rows, heads, capacity + 1, dim]`. Instead of
 * re-assembling per-sequence caches into a batch tensor every step (a copy of every cache, twice:
 * in and out), the buffer is fed as the past directly (the first `rows` rows are one contiguous
 * range: no copy), and only the new position (`present[..., capacity, :]`) is copied back into
 * slot `length[r]`. Rows shorter than the capacity leave a gap of masked slots; attention does not
 * care where a key sits, only whether it is masked, since RoPE was applied when the key was made.
 * A finishing sequence's row is filled by moving the last row into it (one row copied), a new
 * sequence's prefill output is copied into a fresh row (its own tokens only), and the capacity
 * grows in steps of `granularity` slots (the engine uses 8), copying everything only then. It never
 * shrinks: shrinking when the batch's longest row got shorter made one request at a time grow the
 * buffers again every 8 tokens, a reallocation and its garbage each time (measured: 1.7x the
 * classifications/s at concurrency 1 and 1.1-1.3x at 32 without it, and still ahead after a long
 * text had grown the capacity to ~200 slots). Memory stays bounded by `maxCapacity x rows`.
 *
 * The fused `gqa` graph (gqa-runner.ts) uses the same buffers without `present` copies at all: its
 * GroupQueryAttention writes each new key and value at slot `length[r]` of the very buffer it reads
 * as the past, so a pass is handed row ranges of these buffers (`rows`) and the cache only counts
 * (`appendRows` after a prefill into fresh rows, `advance` after a decode pass).
 */

export interface KvShape {
  numLayers: number
  numKvHeads: number
  headDim: number
}

/** A batch of `present` tensors as returned by a forward pass, `[batch, heads, len, dim]` each. */
export interface PresentTensors {
  keys: readonly Float32Array[]
  values: readonly Float32Array[]
  /** Length of the position axis of the present tensors. */
  len: number
}

export class KvCache {
  readonly shape: KvShape
  readonly granularity: number
  /** Slots per row. */
  capacity = 0
  /** Rows allocated (grows by doubling). */
  rowCapacity = 0
  /** Tokens cached per active row. */
  readonly lengths: number[] = []
  keys: Float32Array[] = []
  values: Float32Array[] = []

  /** Most slots per row (the `gqa` graph's rotary table ends there); the granularity never rounds past it. */
  readonly maxCapacity: number

  constructor(shape: KvShape, opts: { granularity?: number; maxCapacity?: number } = {}) {
    this.shape = shape
    this.granularity = opts.granularity ?? 8
    this.maxCapacity = opts.maxCapacity ?? Number.MAX_SAFE_INTEGER
  }

  get numRows(): number {
    return this.lengths.length
  }

  /** Floats in one row of one layer's buffer. */
  get rowSize(): number {
    return this.shape.numKvHeads * this.capacity * this.shape.headDim
  }

  /**
   * Makes room for `numRows` rows of at least `minCapacity` slots each (the capacity only grows).
   * Returns true when it reallocated.
   */
  reserve(numRows: number, minCapacity: number): boolean {
    const g = this.granularity
    if (minCapacity > this.maxCapacity) throw new Error(`a row needs ${minCapacity} slots; at most ${this.maxCapacity}`)
    const wantCapacity = Math.min(Math.max(g, Math.ceil(minCapacity / g) * g), this.maxCapacity)
    const growCapacity = wantCapacity > this.capacity
    const growRows = numRows > this.rowCapacity
    if (!growCapacity && !growRows) return false
    let rowCapacity = Math.max(this.rowCapacity, 1)
    while (rowCapacity < numRows) rowCapacity *= 2
    this.#reallocate(rowCapacity, growCapacity ? wantCapacity : this.capacity)
    return true
  }

  #reallocate(rowCapacity: number, capacity: number): void {
    const { numLayers, numKvHeads: H, headDim: D } = this.shape
    const oldCap = this.capacity
    const copy = (old: Float32Array | undefined): Float32Array => {
      const next = new Float32Array(rowCapacity * H * capacity * D)
      if (!old) return next
      for (let r = 0; r < this.numRows; r++) {
        const n = Math.min(this.lengths[r]!, capacity) * D
        for (let h = 0; h < H; h++) {
          const src = (r * H + h) * oldCap * D
          next.set(old.subarray(src, src + n), (r * H + h) * capacity * D)
        }
      }
      return next
    }
    const keys: Float32Array[] = []
    const values: Float32Array[] = []
    for (let l = 0; l < numLayers; l++) {
      keys.push(copy(this.keys[l]))
      values.push(copy(this.values[l]))
    }
    this.keys = keys
    this.values = values
    this.capacity = capacity
    this.rowCapacity = rowCapacity
  }

  /**
   * Appends a row holding row `b` of a prefill pass's present tensors, whose real tokens are the
   * last `length` positions (left padding before them is skipped). Call `reserve` first.
   */
  addRow(present: PresentTensors, b: number, length: number): number {
    const { numLayers, numKvHeads: H, headDim: D } = this.shape
    const r = this.numRows
    if (r >= this.rowCapacity || length > this.capacity) throw new Error('addRow without reserve')
    const pad = present.len - length
    for (let l = 0; l < numLayers; l++) {
      for (const [src, dst] of [
        [present.keys[l]!, this.keys[l]!],
        [present.values[l]!, this.values[l]!],
      ] as const) {
        for (let h = 0; h < H; h++) {
          const from = ((b * H + h) * present.len + pad) * D
          dst.set(src.subarray(from, from + length * D), (r * H + h) * this.capacity * D)
        }
      }
    }
    this.lengths.push(length)
    return r
  }

  /**
   * Removes row `r` by moving the last row into it. Returns the index the moved row had (equal
   * to `r` when `r` was the last row), so the caller can re-point that sequence.
   */
  removeRow(r: number): number {
    const last = this.numRows - 1
    if (r < 0 || r > last) throw new Error(`no row ${r}`)
    if (r !== last) {
      const size = this.rowSize
      const n = this.lengths[last]!
      const { numKvHeads: H, headDim: D } = this.shape
      for (const buf of [...this.keys, ...this.values]) {
        if (n * D === this.capacity * D) {
          buf.copyWithin(r * size, last * size, last * size + size)
        } else {
          for (let h = 0; h < H; h++) {
            const src = (last * H + h) * this.capacity * D
            buf.copyWithin((r * H + h) * this.capacity * D, src, src + n * D)
          }
        }
      }
      this.lengths[r] = n
    }
    this.lengths.pop()
    return last
  }

  /**
   * After a decode pass over all rows (`present.len === capacity + 1`), stores each row's new
   * position (the last one) in slot `lengths[r]` and counts it.
   */
  appendStep(present: PresentTensors): void {
    const { numLayers, numKvHeads: H, headDim: D } = this.shape
    const cap = this.capacity
    if (present.len !== cap + 1) throw new Error(`present length ${present.len} != capacity + 1`)
    for (let r = 0; r < this.numRows; r++) {
      if (this.lengths[r]! >= cap) throw new Error(`row ${r} is full; reserve before the step`)
    }
    for (let l = 0; l < numLayers; l++) {
      for (const [src, dst] of [
        [present.keys[l]!, this.keys[l]!],
        [present.values[l]!, this.values[l]!],
      ] as const) {
        for (let r = 0; r < this.numRows; r++) {
          const slot = this.lengths[r]!
          for (let h = 0; h < H; h++) {
            const from = ((r * H + h) * (cap + 1) + cap) * D
            const to = ((r * H + h) * cap + slot) * D
            for (let i = 0; i < D; i++) dst[to + i] = src[from + i]!
          }
        }
      }
    }
    for (let r = 0; r < this.numRows; r++) this.lengths[r]!++
  }

  /**
   * Rows `first .. first + count - 1` of a layer's buffer, uncopied (one contiguous range,
   * `[count, kv_heads, capacity, head_dim]`): what an in-place pass reads and writes.
   */
  rows(layer: number, which: 'key' | 'value', first: number, count: number): Float32Array {
    if (first < 0 || count < 0 || first + count > this.rowCapacity) throw new Error(`rows ${first}..${first + count - 1} outside ${this.rowCapacity}`)
    const buf = which === 'key' ? this.keys[layer]! : this.values[layer]!
    return buf.subarray(first * this.rowSize, (first + count) * this.rowSize)
  }

  /**
   * Counts rows `numRows ..` as holding `lengths` tokens each: a pass has already written them in
   * place (a `gqa` prefill into `rows(numRows, lengths.length)`). Call `reserve` first.
   */
  appendRows(lengths: readonly number[]): void {
    if (this.numRows + lengths.length > this.rowCapacity) throw new Error('appendRows without reserve')
    for (const n of lengths) {
      if (n > this.capacity) throw new Error(`a row of ${n} tokens in ${this.capacity} slots`)
      this.lengths.push(n)
    }
  }

  /** Counts one more token in each of the first `count` rows (written in place by a decode pass). */
  advance(count: number): void {
    for (let r = 0; r < count; r++) {
      if (this.lengths[r]! >= this.capacity) throw new Error(`row ${r} is full; reserve before the step`)
      this.lengths[r]!++
    }
  }

  /**
   * Keeps the rows from `first` on whose `keep` entry is true, moved down in order over those that
   * are not (one row copied per kept row that had a dropped one before it); drops the others.
   * Returns the new index of each kept row (-1 for a dropped one).
   */
  compact(first: number, keep: readonly boolean[]): number[] {
    if (first + keep.length !== this.numRows) throw new Error('compact: keep must cover the rows from first to the end')
    const out: number[] = []
    let to = first
    for (const [i, k] of keep.entries()) {
      if (!k) {
        out.push(-1)
        continue
      }
      if (to !== first + i) this.#copyRow(first + i, to)
      out.push(to++)
    }
    this.lengths.length = to
    return out
  }

  /** Copies row `from`'s tokens (and its length) into row `to`. */
  #copyRow(from: number, to: number): void {
    const { numKvHeads: H, headDim: D } = this.shape
    const n = this.lengths[from]! * D
    for (const buf of [...this.keys, ...this.values]) {
      for (let h = 0; h < H; h++) {
        const src = (from * H + h) * this.capacity * D
        buf.copyWithin((to * H + h) * this.capacity * D, src, src + n)
      }
    }
    this.lengths[to] = this.lengths[from]!
  }

  /** The first `numRows` rows of a layer's buffer: the `past_key_values` input, uncopied. */
  past(layer: number, which: 'key' | 'value'): Float32Array {
    const buf = which === 'key' ? this.keys[layer]! : this.values[layer]!
    return buf.subarray(0, this.numRows * this.rowSize)
  }

  /**
   * The decode pass's attention mask, `[numRows, capacity + 1]`: each row's own slots, then the
   * new position.
   */
  decodeMask(): BigInt64Array {
    const width = this.capacity + 1
    const mask = new BigInt64Array(this.numRows * width)
    for (let r = 0; r < this.numRows; r++) {
      mask.fill(1n, r * width, r * width + this.lengths[r]!)
      mask[r * width + this.capacity] = 1n
    }
    return mask
  }
}
