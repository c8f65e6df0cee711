/**
 * @module
 * The fused `gqa`-layout graph's passes. A pass reads the past from row ranges of the slot buffer
 * of kv-cache.ts and leaves each new key and value at its row's next slots (gqa-forward.ts: the
 * graph's `new.*` outputs copied there, or the op writing in place), so no pass copies the cache:
 *
 * - prefill: the admitted prompts run, right-padded, straight into fresh rows after the running
 *   ones (`rows(numRows, n)`): their KV is in place when the pass returns, and they are counted
 *   as rows at once (staged: they do not decode in this step);
 * - decode: the rows that were running before the step (a prefix of the buffer) append one token
 *   each, written by the op at slot `length[r]`; the cache only counts it (`advance`);
 * - commit: staged rows that finished in their prefill (or were cancelled) are dropped, and those
 *   after a dropped one move down (one row copy each, rare: a `qra` sequence rarely ends at its
 *   first token); the last rows, the usual drop, cost nothing.
 *
 * The buffer's capacity covers the longest row plus the token a decode adds, and the longest
 * prompt of a prefill (the op writes `[rows, heads, max(capacity, total), dim]`, which must be the
 * buffer itself); no row may pass `maxPositions` (the rotary table), which the package's limits
 * already guarantee (model/package.ts).
 */
import type { GqaForward } from '../model/gqa-forward.js'
import type { BatchRunner, PrefillLogits } from './batch-runner.js'
import { planGqaDecode, planGqaPrefill } from './gqa-feeds.js'
import type { GqaFeeds } from './gqa-feeds.js'
import { KvCache } from './kv-cache.js'
import type { KvShape } from './kv-cache.js'

export class GqaRunner implements BatchRunner {
  readonly #forward: GqaForward
  readonly #kv: KvCache
  readonly #vocabSize: number
  readonly #pad: number
  readonly #maxPositions: number
  /** First row of the staged prompts and their count, until `commit`. */
  #staged: { first: number; count: number } | null = null

  constructor(
    forward: GqaForward,
    model: { shape: KvShape; vocabSize: number; pad: number; maxPositions: number },
    opts: { kvGranularity: number },
  ) {
    this.#forward = forward
    this.#kv = new KvCache(model.shape, { granularity: opts.kvGranularity, maxCapacity: model.maxPositions })
    this.#vocabSize = model.vocabSize
    this.#pad = model.pad
    this.#maxPositions = model.maxPositions
  }

  get numRows(): number {
    return this.#kv.numRows
  }

  /** The cache (tests look at its rows and capacity). */
  get kv(): KvCache {
    return this.#kv
  }

  async prefill(prompts: readonly (readonly number[])[]): Promise<PrefillLogits> {
    if (this.#staged) throw new Error('prefill before the last one was committed')
    const kv = this.#kv
    const feeds = planGqaPrefill(prompts, this.#pad, this.#maxPositions)
    const first = kv.numRows
    // Room for the prompts and for this step's decode of the running rows, in one reallocation.
    kv.reserve(first + prompts.length, Math.max(feeds.seq, ...kv.lengths.map((n) => n + 1)))
    const logits = await this.#run(feeds, first)
    kv.appendRows(prompts.map((p) => p.length))
    this.#staged = { first, count: prompts.length }
    const V = this.#vocabSize
    return { logits, offset: (i) => i * V }
  }

  async decode(tokens: readonly number[]): Promise<Float32Array> {
    const kv = this.#kv
    const staged = this.#staged?.count ?? 0
    if (tokens.length !== kv.numRows - staged) throw new Error(`${tokens.length} tokens for ${kv.numRows - staged} running rows`)
    const feeds = planGqaDecode(tokens, kv.lengths.slice(0, tokens.length), this.#maxPositions)
    // Every row keeps its tokens (staged ones included), running rows get one more slot.
    kv.reserve(kv.numRows, Math.max(...kv.lengths.map((n, r) => (r < tokens.length ? n + 1 : n))))
    const logits = await this.#run(feeds, 0)
    kv.advance(tokens.length)
    return logits
  }

  commit(keep: readonly boolean[]): number[] {
    const staged = this.#staged
    this.#staged = null
    if (!staged) throw new Error('commit without a prefill')
    if (keep.length !== staged.count) throw new Error(`commit: ${keep.length} flags for ${staged.count} staged prompts`)
    return this.#kv.compact(staged.first, keep)
  }

  removeRow(r: number): number {
    if (this.#staged) throw new Error('removeRow before commit')
    return this.#kv.removeRow(r)
  }

  /** Runs `feeds` over rows `first .. first + feeds.batch - 1` of the buffer, in place. */
  #run(feeds: GqaFeeds, first: number): Promise<Float32Array> {
    const kv = this.#kv
    const layers = Array.from({ length: kv.shape.numLayers }, (_, l) => l)
    return this.#forward({
      ...feeds,
      capacity: kv.capacity,
      keys: layers.map((l) => kv.rows(l, 'key', first, feeds.batch)),
      values: layers.map((l) => kv.rows(l, 'value', first, feeds.batch)),
    })
  }
}
