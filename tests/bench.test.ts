import { describe, expect, it } from 'vitest'
import {
  UsageError,
  flopsPerClassification,
  fmt,
  intermediateFromParameters,
  markdownTable,
  matmulWeights,
  parseBenchArgs,
  parseTexts,
  percentile,
  ratio,
  requestsForLevel,
  summarize,
} from '../bench/lib/stats.js'
import type { ModelShape } from '../bench/lib/stats.js'

// The 4.2M-parameter model of the full training run (DESIGN.md's calibration model, MLP 768).
const TINY: ModelShape = {
  numLayers: 4,
  hiddenSize: 256,
  numAttentionHeads: 4,
  numKvHeads: 2,
  headDim: 64,
  intermediateSize: 768,
  vocabSize: 4096,
}

describe('percentile', () => {
  it('interpolates linearly between ranks, like numpy', () => {
    const xs = [15, 20, 35, 40, 50]
    expect(percentile(xs, 0)).toBe(15)
    expect(percentile(xs, 50)).toBe(35)
    expect(percentile(xs, 100)).toBe(50)
    expect(percentile(xs, 40)).toBeCloseTo(29) // numpy.percentile([15,20,35,40,50], 40) == 29.0
    expect(percentile([1, 2, 3, 4], 99)).toBeCloseTo(3.97)
  })

  it('does not depend on the input order and does not sort the caller array', () => {
    const xs = [5, 1, 4, 2, 3]
    expect(percentile(xs, 50)).toBe(3)
    expect(xs).toEqual([5, 1, 4, 2, 3])
  })

  it('is NaN for no values and rejects p outside 0..100', () => {
    expect(percentile([], 50)).toBeNaN()
    expect(() => percentile([1], 101)).toThrow(RangeError)
  })

  it('summarize gives n, mean, p50, p99, max', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1)
    const s = summarize(xs)
    expect(s.n).toBe(100)
    expect(s.mean).toBe(50.5)
    expect(s.p50).toBe(50.5)
    expect(s.p99).toBeCloseTo(99.01)
    expect(s.max).toBe(100)
  })
})

describe('FLOP counting', () => {
  it('counts the matmul weights of a Llama layer stack plus the output projection', () => {
    // per layer: q 256x256 + k,v 2x(256x128) + o 256x256 + MLP 3x256x768 = 786,432
    expect(matmulWeights(TINY)).toBe(4 * 786_432 + 256 * 4096)
  })

  it('recovers the MLP width from the parameter count (tied embeddings)', () => {
    const params = 4096 * 256 + 4 * (786_432 + 2 * 256) + 256
    const { intermediateSize: _, ...rest } = TINY
    expect(intermediateFromParameters(params, rest)).toBe(768)
  })

  it('is 2 x weights per token plus attention over the cached positions', () => {
    const f = flopsPerClassification(TINY, 10, 5)
    expect(f.tokens).toBe(16) // 10 prompt + 5 reasoning + the marker
    expect(f.linear).toBe(2 * matmulWeights(TINY) * 16)
    // token t attends to t + 1 positions: 1 + 2 + ... + 16 = 136; per layer 4 x heads x head_dim each
    expect(f.attention).toBe(4 * 4 * 4 * 64 * 136)
    expect(f.total).toBe(f.linear + f.attention)
  })

  it('can count the output projection only where logits are used', () => {
    const all = flopsPerClassification(TINY, 10, 5)
    const needed = flopsPerClassification(TINY, 10, 5, { allLogits: false })
    // logits used at 7 positions (last prompt token, 5 reasoning tokens, marker) instead of 16
    expect(all.linear - needed.linear).toBe(2 * 256 * 4096 * (16 - 7))
    expect(needed.attention).toBe(all.attention)
  })

  it('is close to 2 x parameters x tokens for a short sequence', () => {
    const params = 4_204_800
    const f = flopsPerClassification(TINY, 17, 28)
    expect(f.total / (2 * params * f.tokens)).toBeGreaterThan(0.95)
    expect(f.total / (2 * params * f.tokens)).toBeLessThan(1.1)
  })
})

describe('options', () => {
  it('has the documented defaults', () => {
    const o = parseBenchArgs([])
    expect(o.levels).toEqual([1, 8, 32, 64])
    expect(o.requests).toBeNull()
    expect(o.model).toBe('models/emotion-qra-tiny')
    expect(o.threads).toBe(2)
    expect(o.systems).toEqual(['engine', 'peer'])
    expect(o.out).toBeNull()
  })

  it('reads flags in both spellings; --quick shrinks the run', () => {
    const o = parseBenchArgs(['--levels', '1,32', '--requests=500', '--model', 'models/x', '--systems', 'peer'])
    expect(o).toMatchObject({ levels: [1, 32], requests: 500, model: 'models/x', systems: ['peer'] })
    const q = parseBenchArgs(['--quick'])
    expect(q.levels).toEqual([1, 8])
    expect(q.seconds).toBeLessThan(parseBenchArgs([]).seconds)
  })

  it('rejects unknown flags and bad values', () => {
    expect(() => parseBenchArgs(['--level', '1'])).toThrow(UsageError)
    expect(() => parseBenchArgs(['--levels', '1,x'])).toThrow(/--levels/)
    expect(() => parseBenchArgs(['--requests', '0'])).toThrow(/--requests/)
    expect(() => parseBenchArgs(['--systems', 'vllm'])).toThrow(/--systems/)
    expect(() => parseBenchArgs(['--model'])).toThrow(/missing value/)
  })

  it('sizes a level from the warm-up rate unless fixed', () => {
    expect(requestsForLevel(123, 1000, 18, 64)).toBe(123)
    expect(requestsForLevel(null, 100, 18, 8)).toBe(1800)
    expect(requestsForLevel(null, 10, 18, 64)).toBe(512) // at least 8 rounds
    expect(requestsForLevel(null, Number.NaN, 18, 1)).toBe(20)
  })
})

describe('texts and formatting', () => {
  it('reads JSON lines and plain lines', () => {
    expect(parseTexts('{"text": "i feel fine", "label": 1}\n\nplain line\n{"label": 2}\n')).toEqual(['i feel fine', 'plain line'])
  })

  it('formats with three significant figures and grouped thousands', () => {
    expect(fmt(1234.5)).toBe('1,235')
    expect(fmt(12.345)).toBe('12.3')
    expect(fmt(0.04567)).toBe('0.0457')
    expect(fmt(Number.NaN)).toBe('n/a')
    expect(ratio(50, 10)).toBe('5.0x')
    expect(ratio(1, 0)).toBe('n/a')
  })

  it('builds a markdown table', () => {
    expect(markdownTable(['a', 'b'], [['1', '2']])).toBe('| a | b |\n| --- | --- |\n| 1 | 2 |')
  })
})
