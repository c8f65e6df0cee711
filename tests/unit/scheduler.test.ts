import { describe, expect, it } from 'vitest'
import { schedule } from '../../src/engine/scheduler.js'

const waiting = (...lens: number[]) => lens.map((n, i) => ({ id: 100 + i, numPromptTokens: n }))

describe('schedule', () => {
  it('decodes every running sequence and admits waiting ones into free rows', () => {
    const out = schedule({ waiting: waiting(5, 5, 5), running: [1, 2] }, { maxBatch: 4, maxBatchTokens: 100 })
    expect(out.decodeIds).toEqual([1, 2])
    expect(out.prefillIds).toEqual([100, 101])
    expect(out.numPrefillTokens).toBe(10)
    expect(out.numScheduledTokens).toBe(12)
  })

  it('counts padded prefill tokens against the budget left by decode rows', () => {
    // budget 20 - 2 decode rows = 18: one prompt of 6 fits (6), two pad to 2 x 9 = 18, three = 27.
    const out = schedule({ waiting: waiting(6, 9, 1), running: [1, 2] }, { maxBatch: 8, maxBatchTokens: 20 })
    expect(out.prefillIds).toEqual([100, 101])
    expect(out.numPrefillTokens).toBe(18)
  })

  it('does not let a later short prompt overtake one that does not fit', () => {
    const out = schedule({ waiting: waiting(50, 1), running: [1] }, { maxBatch: 8, maxBatchTokens: 20 })
    expect(out.prefillIds).toEqual([])
    expect(out.decodeIds).toEqual([1])
  })

  it('admits an oversized prompt alone when nothing runs (progress)', () => {
    const out = schedule({ waiting: waiting(50, 1), running: [] }, { maxBatch: 8, maxBatchTokens: 20 })
    expect(out.prefillIds).toEqual([100])
    expect(out.numScheduledTokens).toBe(50)
  })

  it('admits nothing when the batch is full', () => {
    const out = schedule({ waiting: waiting(1), running: [1, 2] }, { maxBatch: 2, maxBatchTokens: 100 })
    expect(out.prefillIds).toEqual([])
  })

  it('is idle with nothing to do', () => {
    const out = schedule({ waiting: [], running: [] }, { maxBatch: 2, maxBatchTokens: 100 })
    expect(out).toEqual({ prefillIds: [], numPrefillTokens: 0, decodeIds: [], numScheduledTokens: 0 })
  })

  it('rejects a running batch over max_batch', () => {
    expect(() => schedule({ waiting: [], running: [1, 2, 3] }, { maxBatch: 2, maxBatchTokens: 100 })).toThrow(/max_batch/)
  })

  it('keeps the invariants over random states', () => {
    let seed = 1
    const rand = (n: number) => (seed = (seed * 48271) % 2147483647) % n
    for (let t = 0; t < 500; t++) {
      const maxBatch = 1 + rand(6)
      const maxBatchTokens = maxBatch + rand(40) // the config keeps it >= max_batch
      const running = Array.from({ length: rand(maxBatch + 1) }, (_, i) => i)
      const w = Array.from({ length: rand(6) }, () => 1 + rand(12))
      const out = schedule({ waiting: waiting(...w), running }, { maxBatch, maxBatchTokens })
      expect(out.decodeIds.length + out.prefillIds.length).toBeLessThanOrEqual(maxBatch)
      expect(out.prefillIds).toEqual(waiting(...w).slice(0, out.prefillIds.length).map((r) => r.id))
      const forced = running.length === 0 && out.prefillIds.length === 1
      if (!forced) expect(out.numScheduledTokens).toBeLessThanOrEqual(maxBatchTokens)
      if (running.length === 0 && w.length > 0) expect(out.prefillIds.length).toBeGreaterThan(0)
    }
  })
})
