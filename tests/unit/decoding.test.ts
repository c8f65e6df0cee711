import { describe, expect, it } from 'vitest'
import { argmaxMasked, scoreLabels } from '../../src/engine/decoding.js'

describe('argmaxMasked', () => {
  it('skips masked ids and keeps the lowest index on ties', () => {
    const logits = new Float32Array([9, 1, 5, 5, 9])
    expect(argmaxMasked(logits, 0, 5, new Set())).toBe(0)
    expect(argmaxMasked(logits, 0, 5, new Set([0]))).toBe(4)
    expect(argmaxMasked(logits, 0, 5, new Set([0, 4]))).toBe(2)
  })

  it('reads one row at an offset', () => {
    const logits = new Float32Array([0, 0, 0, 1, 3, 2])
    expect(argmaxMasked(logits, 3, 3, new Set())).toBe(1)
  })

  it('never picks NaN, and falls back to the lowest unmasked id', () => {
    expect(argmaxMasked(new Float32Array([NaN, 2, NaN]), 0, 3, new Set())).toBe(1)
    expect(argmaxMasked(new Float32Array([NaN, NaN, -Infinity]), 0, 3, new Set([0]))).toBe(1)
  })
})

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
})
