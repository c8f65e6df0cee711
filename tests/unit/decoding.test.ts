import { describe, expect, it } from 'vitest'
import { scoreLabels } from '../../src/engine/decoding.js'

describe('scoreLabels', () => {
  it('is a softmax over the label ids only, summing to 1', () => {
    const logits = new Float32Array(20)
    logits[19] = 100 // not a label: ignored
    const ids = [3, 5, 7, 9, 11, 13]
    ids.forEach((id, k) => (logits[id] = k === 2 ? 2 : 0))
    const { index, scores } = scoreLabels(logits, 0, ids)
    expect(index).toBe(2)
    expect(scores.reduce((a, b) => a + b)).toBeCloseTo(1, 12)
    expect(scores[2]! / scores[0]!).toBeCloseTo(Math.exp(2), 9)
  })

  it('breaks ties toward the lowest label index', () => {
    const { index, scores } = scoreLabels(new Float32Array(6), 0, [0, 1, 2, 3, 4, 5])
    expect(index).toBe(0)
    for (const s of scores) expect(s).toBeCloseTo(1 / 6, 12)
  })

  it('stays a distribution for non-finite logits', () => {
    const { scores } = scoreLabels(new Float32Array([NaN, 1, 2, 3, 4, 5]), 0, [0, 1, 2, 3, 4, 5])
    expect(scores.reduce((a, b) => a + b)).toBeCloseTo(1, 12)
  })

  it('divides the logits by the temperature, keeping the best label', () => {
    const logits = new Float32Array([0.5, 3, -1, 2, 0, 1])
    const ids = [0, 1, 2, 3, 4, 5]
    const plain = scoreLabels(logits, 0, ids)
    expect(scoreLabels(logits, 0, ids, 1)).toEqual(plain)
    for (const t of [0.25, 2, 40]) {
      const { index, scores } = scoreLabels(logits, 0, ids, t)
      expect(index).toBe(1)
      expect(scores.reduce((a, b) => a + b)).toBeCloseTo(1, 12)
      // softmax(z / T): each ratio is exp((z_i - z_j) / T).
      expect(scores[1]! / scores[3]!).toBeCloseTo(Math.exp((3 - 2) / t), 9)
    }
    // A temperature above 1 flattens the distribution, below 1 sharpens it.
    expect(scoreLabels(logits, 0, ids, 2).scores[1]!).toBeLessThan(plain.scores[1]!)
    expect(scoreLabels(logits, 0, ids, 0.5).scores[1]!).toBeGreaterThan(plain.scores[1]!)
  })
})
