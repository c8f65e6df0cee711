import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Tensor } from '@huggingface/transformers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Peer, ReasoningProcessor, labelScores } from '../bench/lib/peer.js'
import { vocabularyBytes } from '../src/model/tokenizer.js'
import { EmojiTable, lowerAlnumV1, naturalV1 } from '../src/model/normalize.js'
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
    expect(o.model).toBe('models/emotion-qra-natural')
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

describe('peer decoding rules', () => {
  const enc = new TextEncoder()
  const dec = new TextDecoder()
  // 0-4 specials (4 the marker), then: ' "', 'ab', 'zz', '"', 'x'
  const spell = ['', '', '', '', '', ' "', 'ab', 'zz', '"', 'x']
  const V = spell.length
  const specials = { bos: 0, eos: 1, pad: 2, sep: 3, marker: 4 }
  const grounding = { source: enc.encode('x ab'), tokenBytes: spell.map((t) => enc.encode(t)), banned: new Set([0, 1, 2, 3]), marker: 4 }
  const manifest = { label_token_ids: [[6], [9]], special_tokens: specials, limits: { max_input_tokens: 8, max_reasoning_tokens: 4 } }

  /** Runs the processor over one step's logits and returns the single finite id. */
  function step(p: ReasoningProcessor, ids: bigint[], values: Record<number, number>, rest = -5): number {
    const data = new Float32Array(V).fill(rest)
    for (const [id, v] of Object.entries(values)) data[Number(id)] = v
    const out = p._call([ids], new Tensor('float32', data, [1, V])).data as Float32Array
    const finite = [...out.keys()].filter((i) => Number.isFinite(out[i]))
    expect(finite).toHaveLength(1)
    ids.push(BigInt(finite[0]!))
    return finite[0]!
  }

  it('leaves only the grounded choice finite and carries the quotation across steps', () => {
    const prompt = [0n, 9n, 3n]
    const ids = [...prompt]
    const p = new ReasoningProcessor(prompt.length, manifest, grounding)
    expect(step(p, ids, { 1: 50, 5: 10, 6: 9 })).toBe(5) // eos banned; the quote opens
    expect(step(p, ids, { 7: 10, 6: 9, 8: 8 })).toBe(6) // "zz" is not in the text, "ab" is
    expect(step(p, ids, { 8: 10, 6: 9 })).toBe(8) // a non-empty quote may close
    expect(step(p, ids, { 5: 10, 8: 9 })).toBe(5) // outside again: a new quote may open
    expect(step(p, ids, { 6: 10 })).toBe(4) // budget spent: the marker is forced
    const data = new Float32Array(V)
    data[6] = 3
    data[9] = -1
    p._call([ids], new Tensor('float32', data, [1, V]))
    expect(p.labelLogits).toEqual([3, -1])
    expect(dec.decode(Buffer.concat(ids.slice(prompt.length, -1).map((t) => grounding.tokenBytes[Number(t)]!)))).toBe(' "ab" "')
  })

  it('never closes an empty quotation and falls back to the marker when nothing is allowed', () => {
    const ids = [0n, 3n]
    const p = new ReasoningProcessor(ids.length, manifest, grounding)
    expect(step(p, ids, { 5: 10 })).toBe(5)
    expect(step(p, ids, { 8: 10, 6: 9 })).toBe(6) // '"' right after '"' would quote nothing
    const q = new ReasoningProcessor(ids.length, manifest, { ...grounding, source: new Uint8Array(0) })
    expect(step(q, [0n, 3n], { 5: 10, 8: 9 }, -Infinity)).toBe(4) // an empty input has nothing to quote
  })

  it('divides the label logits by the calibration temperature', () => {
    const plain = labelScores([2, 0, 1], 1)
    const z = [2, 0, 1].map(Math.exp)
    plain.scores.forEach((s, k) => expect(s).toBeCloseTo(z[k]! / (z[0]! + z[1]! + z[2]!), 12))
    const hot = labelScores([2, 0, 1], 2)
    expect(hot.index).toBe(0)
    expect(hot.scores[0]).toBeLessThan(plain.scores[0]!)
    expect(hot.scores[0]! / hot.scores[1]!).toBeCloseTo(Math.exp(1), 12)
    expect(labelScores([1, 3, 3], 0.5).index).toBe(1)
  })

  it('spells byte-level tokens as their bytes and added tokens as their content (the engine\'s table)', () => {
    const vocab = { added_tokens: [{ id: 0, content: '<|bos|>' }], model: { vocab: { '<|bos|>': 0, 'Ġ"': 1, 'Ã©': 2 } } }
    const { quoteBytes: table, tokenBytes } = vocabularyBytes(vocab, 4, 'tokenizer.json')
    expect(table).toHaveLength(4)
    expect([...tokenBytes[0]!]).toEqual([])
    // An id past the vocabulary is a broken package, for the peer as for the service.
    expect(() => vocabularyBytes({ model: { vocab: { ...vocab.model.vocab, ab: 5 } } }, 4, 'tokenizer.json')).toThrow(
      'tokenizer.json: token id 5 >= vocab_size 4',
    )
    expect(dec.decode(table[0])).toBe('<|bos|>')
    expect(dec.decode(table[1])).toBe(' "')
    expect(dec.decode(table[2])).toBe('é')
    expect([...table[3]!]).toEqual([])
  })
})

describe('peer on the embedded model', () => {
  const QRA = resolve('models/emotion-qra-natural')
  const tmp = mkdtempSync(join(tmpdir(), 'because-peer-'))
  const emoji = { emoji: { '😊': 'smiling face with smiling eyes' }, emoticons: { ':)': 'slightly smiling face' } }
  let peer: Peer
  let natural: Peer
  let packageT = 1

  beforeAll(async () => {
    // The same model with another emoji table and calibration temperature, to check what the peer reads.
    const dir = join(tmp, 'emotion-qra-copy')
    const m = JSON.parse(readFileSync(join(QRA, 'manifest.json'), 'utf8'))
    packageT = m.calibration.temperature
    m.calibration = { temperature: 1.7 }
    mkdirSync(dir)
    for (const f of readdirSync(QRA)) if (f !== 'manifest.json' && f !== 'emoji.json') symlinkSync(join(QRA, f), join(dir, f))
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m))
    writeFileSync(join(dir, 'emoji.json'), JSON.stringify(emoji))
    peer = await Peer.load(QRA, 1)
    natural = await Peer.load(dir, 1)
  })
  afterAll(() => rmSync(tmp, { recursive: true, force: true }))

  it('quotes only what the normalised text holds', async () => {
    const texts = ['i feel empty and i wait for new signs', 'i woke up often got up around am feeling pukey radiation and groggy', "I didn't feel humiliated!!"]
    for (const text of texts) {
      const r = await peer.classify(text)
      const source = new TextDecoder().decode(peer.encode(text).source)
      expect(source).toBe(naturalV1(text, EmojiTable.parse(JSON.parse(readFileSync(join(QRA, 'emoji.json'), 'utf8')))))
      for (const [, q] of r.reasoning.matchAll(/"([^"]*)"/g)) expect(source, r.reasoning).toContain(q)
      expect(r.scores.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9)
    }
  })

  it('normalises with the package rule and table, and applies its temperature', async () => {
    const text = "I'm SOOOO happy!!! :) 😊"
    const e = natural.encode(text)
    expect(new TextDecoder().decode(e.source)).toBe(naturalV1(text, EmojiTable.parse(emoji)))
    expect(e.textTokens).toBe(e.ids.length - 2)
    // Same prompt under both tables, so the scores differ by the temperature alone: p_T ~ p_T0^(T0/T).
    const same = 'i feel happy today'
    const [a, b] = [await peer.classify(same), await natural.classify(same)]
    expect(b.reasoning).toBe(a.reasoning)
    const powered = a.scores.map((s) => s ** (packageT / 1.7))
    const sum = powered.reduce((x, y) => x + y, 0)
    b.scores.forEach((s, k) => expect(s).toBeCloseTo(powered[k]! / sum, 6))
  })
})
