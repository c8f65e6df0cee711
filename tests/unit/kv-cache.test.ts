import { describe, expect, it } from 'vitest'
import { KvCache } from '../../src/engine/kv-cache.js'
import type { PresentTensors } from '../../src/engine/kv-cache.js'

const shape = { numLayers: 2, numKvHeads: 2, headDim: 3 }
const { numLayers: L, numKvHeads: H, headDim: D } = shape

/** A fake present: value = layer*1e6 + which*1e5 + row*1e4 + head*1e3 + pos*10 + d (unique). */
function present(batch: number, len: number, tag: (b: number, pos: number) => number): PresentTensors {
  const make = (l: number, which: number) => {
    const a = new Float32Array(batch * H * len * D)
    for (let b = 0; b < batch; b++)
      for (let h = 0; h < H; h++)
        for (let p = 0; p < len; p++)
          for (let d = 0; d < D; d++) a[((b * H + h) * len + p) * D + d] = l * 1e6 + which * 1e5 + tag(b, p) * 10 + h * 1e3 + d
    return a
  }
  return {
    keys: Array.from({ length: L }, (_, l) => make(l, 0)),
    values: Array.from({ length: L }, (_, l) => make(l, 1)),
    len,
  }
}

/** The cached entries of row r, as [layer][which][head][pos][d] values, for comparisons. */
function rowContents(kv: KvCache, r: number): number[] {
  const out: number[] = []
  for (let l = 0; l < L; l++)
    for (const buf of [kv.keys[l]!, kv.values[l]!])
      for (let h = 0; h < H; h++)
        for (let p = 0; p < kv.lengths[r]!; p++)
          for (let d = 0; d < D; d++) out.push(buf[((r * H + h) * kv.capacity + p) * D + d]!)
  return out
}

describe('KvCache', () => {
  it('copies only the real tokens of a left-padded prefill row', () => {
    const kv = new KvCache(shape, { granularity: 4 })
    kv.reserve(2, 6)
    const p = present(2, 5, (b, pos) => 100 * (b + 1) + pos)
    kv.addRow(p, 0, 3) // row 0 was padded by 2
    kv.addRow(p, 1, 5)
    expect(kv.lengths).toEqual([3, 5])
    expect(kv.capacity).toBe(8)
    // Row 0's first cached position is prefill position 2.
    expect(kv.keys[0]![0]).toBe(0 * 1e6 + 0 + (100 + 2) * 10)
    expect(kv.past(0, 'key').length).toBe(2 * H * 8 * D)
  })

  it('appends the new position of a decode step to each row, and masks the gap', () => {
    const kv = new KvCache(shape, { granularity: 4 })
    kv.reserve(2, 4)
    const p = present(2, 3, (b, pos) => 100 * (b + 1) + pos)
    kv.addRow(p, 0, 1)
    kv.addRow(p, 1, 3)
    expect(Array.from(kv.decodeMask())).toEqual([1, 0, 0, 0, 1, 1, 1, 1, 0, 1].map(BigInt))
    const before1 = rowContents(kv, 1)
    kv.appendStep(present(2, kv.capacity + 1, (b, pos) => (pos === kv.capacity ? 900 + b : -1)))
    expect(kv.lengths).toEqual([2, 4])
    const after1 = rowContents(kv, 1)
    expect(after1.slice(0, 0)).toEqual([])
    // Row 1 keeps its 3 positions per head and gains position 3 = tag 901.
    expect(kv.values[1]![((1 * H + 1) * kv.capacity + 3) * D + 2]).toBe(1e6 + 1e5 + 901 * 10 + 1e3 + 2)
    expect(after1.length).toBe((before1.length / 3) * 4)
  })

  it('fills a removed row with the last one and reports the move', () => {
    const kv = new KvCache(shape, { granularity: 4 })
    kv.reserve(3, 4)
    const p = present(3, 3, (b, pos) => 100 * (b + 1) + pos)
    for (let b = 0; b < 3; b++) kv.addRow(p, b, 3 - b)
    const last = rowContents(kv, 2)
    expect(kv.removeRow(0)).toBe(2)
    expect(kv.lengths).toEqual([1, 2])
    expect(rowContents(kv, 0)).toEqual(last)
    expect(kv.removeRow(1)).toBe(1)
    expect(kv.numRows).toBe(1)
  })

  it('keeps contents through growing the capacity, and never shrinks it', () => {
    const kv = new KvCache(shape, { granularity: 4 })
    kv.reserve(1, 4)
    kv.addRow(present(1, 3, (_b, pos) => 500 + pos), 0, 3)
    const before = rowContents(kv, 0)
    expect(kv.reserve(5, 30)).toBe(true)
    expect([kv.capacity, kv.rowCapacity]).toEqual([32, 8])
    expect(rowContents(kv, 0)).toEqual(before)
    expect(kv.reserve(5, 30)).toBe(false)
    // Shorter rows later: no reallocation (it cost a regrowth every few tokens at concurrency 1).
    expect(kv.reserve(5, 4)).toBe(false)
    expect(kv.capacity).toBe(32)
    expect(rowContents(kv, 0)).toEqual(before)
  })

  it('refuses a step that would overflow a row', () => {
    const kv = new KvCache(shape, { granularity: 4 })
    kv.reserve(1, 4)
    kv.addRow(present(1, 4, () => 1), 0, 4)
    expect(() => kv.appendStep(present(1, 5, () => 1))).toThrow(/full/)
  })

  it('rows are contiguous views of the buffer; appendRows and advance only count; compact closes holes in order', () => {
    const kv = new KvCache(shape, { granularity: 4, maxCapacity: 8 })
    kv.reserve(5, 3)
    expect(kv.capacity).toBe(4)
    // A pass writing rows 0..4 in place: row r's slots hold 100 * (r + 1) + slot.
    for (let l = 0; l < L; l++) {
      for (const which of ['key', 'value'] as const) {
        const view = kv.rows(l, which, 1, 4)
        expect(view.length).toBe(4 * H * kv.capacity * D)
        expect(view.byteOffset).toBe(kv.rowSize * 4)
        for (let r = 0; r < 5; r++)
          for (let h = 0; h < H; h++)
            for (let p = 0; p < kv.capacity; p++)
              for (let d = 0; d < D; d++) kv.rows(l, which, 0, 5)[((r * H + h) * kv.capacity + p) * D + d] = 100 * (r + 1) + p
      }
    }
    kv.appendRows([2, 3, 1, 2, 3])
    expect(kv.lengths).toEqual([2, 3, 1, 2, 3])
    const before = [0, 1, 2, 3, 4].map((r) => rowContents(kv, r))
    kv.advance(2)
    expect(kv.lengths).toEqual([3, 4, 1, 2, 3])
    expect(() => kv.advance(2)).toThrow(/full/)
    // Rows 2..4 staged: keep 3 and 4, drop 2: row 3 moves to 2, row 4 to 3.
    expect(kv.compact(2, [false, true, true])).toEqual([-1, 2, 3])
    expect(kv.lengths).toEqual([4, 4, 2, 3])
    expect(rowContents(kv, 2)).toEqual(before[3])
    expect(rowContents(kv, 3)).toEqual(before[4])
    expect(kv.compact(3, [false])).toEqual([-1])
    expect(kv.numRows).toBe(3)
    expect(() => kv.reserve(3, 9)).toThrow(/at most 8/)
    kv.reserve(3, 7)
    expect(kv.capacity).toBe(8)
    expect(rowContents(kv, 2)).toEqual(before[3])
  })
})
