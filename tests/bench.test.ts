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
import type { Sample } from '../bench/lib/client.js'
import { buildWindowTexts, checkWindows, windowCounter, windowsPlan, windowsRequests, windowsResult, windowsSection, windowTextsByN, withCosts } from '../bench/lib/windows.js'
import { joinRows } from '../bench/long-text-data.js'
import { prepareText } from '../src/http/long-text/prepare.js'
import type { ServedModel } from '../src/http/service.js'
import { sequenceTemperature } from '../src/model/manifest.js'
import { loadPackage } from '../src/model/package.js'
import type { ModelPackage } from '../src/model/package.js'
import { sequencePrior } from '../src/model/prior.js'
import { required } from './support/required.js'

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
    expect(o.graph).toBeNull()
    expect(o.spinWait).toBe(false)
    expect(parseBenchArgs(['--spin-wait']).spinWait).toBe(true)
    expect(o.threads).toBe(2)
    expect(o.systems).toEqual(['engine', 'peer'])
    expect(o.out).toBeNull()
    expect(o.windows).toEqual([1, 2, 4, 8])
    expect(parseBenchArgs(['--quick']).windows).toEqual([1, 2, 4, 8])
  })

  it('splits the threads among the engine workers unless --engine-threads says otherwise', () => {
    expect(parseBenchArgs([])).toMatchObject({ engineWorkers: 1, engineThreads: 1 })
    expect(parseBenchArgs(['--threads', '4'])).toMatchObject({ engineWorkers: 1, engineThreads: 3 })
    expect(parseBenchArgs(['--engine-workers', '2'])).toMatchObject({ threads: 2, engineWorkers: 2, engineThreads: 1 })
    expect(parseBenchArgs(['--threads', '2', '--engine-workers', '4'])).toMatchObject({ engineWorkers: 4, engineThreads: 1 })
    expect(parseBenchArgs(['--threads', '9', '--engine-workers', '2'])).toMatchObject({ engineWorkers: 2, engineThreads: 4 })
    expect(parseBenchArgs(['--engine-workers', '2', '--engine-threads', '3'])).toMatchObject({ engineWorkers: 2, engineThreads: 3 })
    expect(() => parseBenchArgs(['--engine-workers', '0'])).toThrow(/--engine-workers/)
  })

  it('reads the windows Ns (ascending, once each) and --no-windows', () => {
    expect(parseBenchArgs(['--windows', '8,1,2,2']).windows).toEqual([1, 2, 8])
    expect(parseBenchArgs(['--windows=3']).windows).toEqual([3])
    expect(parseBenchArgs(['--no-windows', '--quick']).windows).toEqual([])
    expect(() => parseBenchArgs(['--windows', '1,0'])).toThrow(/--windows/)
    expect(() => parseBenchArgs(['--windows', '2', '--no-windows'])).toThrow(UsageError)
    expect(() => parseBenchArgs(['--no-windows=1'])).toThrow(UsageError)
  })

  it('reads flags in both spellings; --quick shrinks the run', () => {
    const o = parseBenchArgs(['--levels', '1,32', '--requests=500', '--model', 'models/x', '--systems', 'peer', '--graph', 'fused-int8'])
    expect(o).toMatchObject({ levels: [1, 32], requests: 500, model: 'models/x', systems: ['peer'], graph: 'fused-int8' })
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

describe('windows section', () => {
  // A stand-in count: a window per 10 words, so a row of w words adds w / 10 of one.
  const byWords = (text: string) => Math.ceil(text.split(' ').length / 10)
  const rows = Array.from({ length: 200 }, (_, i) => `row${i} ${'w '.repeat(i % 5).trim()}`.trim())

  it('builds texts of exactly N windows, each the longest run of consecutive rows', () => {
    for (const n of [1, 2, 4, 8]) {
      const texts = buildWindowTexts(rows, n, 3, byWords)
      expect(texts).toHaveLength(3)
      let at = 0
      for (const t of texts) {
        expect(byWords(t)).toBe(n)
        const first = rows.findIndex((r) => t.startsWith(`${r}.`))
        expect(first).toBe(at) // consecutive rows, none skipped here
        const used = t.split('. ').length
        expect(t).toBe(joinRows(rows.slice(first, first + used)))
        expect(byWords(joinRows(rows.slice(first, first + used + 1)))).toBeGreaterThan(n) // one row more: N + 1
        at = first + used
      }
    }
  })

  it('skips a row that jumps past N, and fails loudly when the rows run out', () => {
    const jump = ['a b c', 'w '.repeat(21).trim(), 'p '.repeat(12).trim(), 'q r', 's t']
    // The second row takes 'a b c' from 1 window to 3: both are skipped, the next text starts after them.
    expect(buildWindowTexts(jump, 2, 1, byWords)).toEqual([joinRows(jump.slice(2))])
    expect(() => buildWindowTexts(jump, 2, 2, byWords)).toThrow(/only 1 of 2 texts of 2 windows/)
    expect(() => buildWindowTexts(rows, 8, 1000, byWords)).toThrow(/only \d+ of 1000 texts of 8 windows from the 200 texts/)
    expect([...windowTextsByN(rows, [1, 4], 2, byWords).keys()]).toEqual([1, 4])
  })

  it('gives texts the service itself reads in N windows (the real encoder and prepareText)', async () => {
    const pkg = await loadPackage('models/emotion-qra-natural', { verify: false })
    const max = pkg.manifest.limits.max_input_tokens
    const encoder = pkg.tokenizer.encoder
    const model = { id: pkg.manifest.id, maxInputTokens: max, encoder } as unknown as ServedModel
    const texts = parseTexts(readFileSync(required('shared data', resolve('../shared/data/emotion/validation.jsonl')), 'utf8'))
    const count = windowCounter(encoder, max)
    for (const [n, built] of windowTextsByN(texts, [1, 2, 4, 8], 2, count)) {
      for (const text of built) {
        expect(prepareText(model, text, encoder.encode(text), 'windows', 'text').windows).toHaveLength(n)
        expect(count(text)).toBe(n)
      }
    }
  })

  it('sizes a measured N from its warm-up; --quick is 2C requests', () => {
    expect(windowsPlan(true, 3)).toEqual({ concurrency: 8, texts: 8, seconds: 0 })
    expect(windowsPlan(false, 18).seconds).toBe(6)
    expect(windowsPlan(false, 2).seconds).toBe(2)
    expect(windowsRequests(100, windowsPlan(true, 3))).toBe(16)
    expect(windowsRequests(10, windowsPlan(false, 18))).toBe(60)
    expect(windowsRequests(Number.NaN, windowsPlan(false, 18))).toBe(16)
  })

  const sample = (n: number, totalMs: number, ok = true): Sample => ({
    textIndex: 0,
    ok,
    ...(ok ? {} : { error: 'http_429: full' }),
    ttftMs: Number.NaN,
    totalMs,
    startMs: 0,
    endMs: totalMs,
    windows: n,
    inputTokens: 100 * n,
    reasoningTokens: 15 * n,
  })

  it('checks every answer\'s window count', () => {
    expect(() => checkWindows([sample(2, 10), sample(2, 10, false)], 2, 'measured', false)).not.toThrow()
    expect(() => checkWindows([sample(2, 10), sample(2, 10, false)], 2, 'warm-up', true)).toThrow(/warm-up failed: http_429/)
    expect(() => checkWindows([sample(2, 10), sample(3, 10)], 2, 'measured', false)).toThrow(/in 3 windows, not 2/)
  })

  it('reports texts/s, windows/s and the cost per text relative to the first N', () => {
    const one = windowsResult(1, 8, 8, { samples: Array.from({ length: 40 }, () => sample(1, 100)), elapsedMs: 2000 })
    const four = windowsResult(4, 8, 8, { samples: [...Array.from({ length: 10 }, () => sample(4, 400)), sample(4, 1, false)], elapsedMs: 2000 })
    expect(one).toMatchObject({ textsPerS: 20, windowsPerS: 20, meanInputTokens: 100, errors: 0 })
    expect(four).toMatchObject({ requests: 11, textsPerS: 5, windowsPerS: 20, meanReasoningTokens: 60, errors: 1, firstError: 'http_429: full' })
    expect(four.e2e.p50).toBe(400)
    const [a, b] = withCosts([one, four])
    expect(a).toMatchObject({ costPerText: 1, costPerWindow: 1 })
    expect(b).toMatchObject({ costPerText: 4, costPerWindow: 1 })
    const section = windowsSection([a!, b!], '').join('\n')
    expect(section).toMatch(/^## Long texts \(windows\)\n/)
    expect(section).toContain('the peer (transformers.js) has no windows mode')
    expect(section).toContain('| N | texts | requests | seconds | texts/s | windows/s | e2e p50 ms | e2e p99 ms | errors | input tok/text | reasoning tok/text | cost per text vs N=1 | per window |')
    expect(section).toContain('| 4 | 8 | 11 | 2.0 | 5.00 | 20.0 | 400 | 400 | 1 | 400 | 60.0 | 4.00x | 1.00 |')
    expect(windowsSection(undefined, '`--no-windows`').join('\n')).toContain('- Not measured: `--no-windows`.')
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

  it("adds the package's lexical prior to the label logits until a label is named, as the engine does", () => {
    const ids = [0n, 3n]
    const p = new ReasoningProcessor(ids.length, manifest, grounding, true, Float64Array.of(-50, -0.25))
    expect(step(p, ids, { 6: 10, 9: 9 })).toBe(9) // 10 - 50 < 9 - 0.25
    expect(step(p, ids, { 6: 10, 9: 9 })).toBe(6) // named: nothing is added any more
    expect(step(p, ids, { 4: 20 })).toBe(4)
    p._call([ids], new Tensor('float32', new Float32Array(V), [1, V]))
    expect(p.labelLogits).toEqual([-40, 8.75])
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
  let pkg: ModelPackage

  beforeAll(async () => {
    // The same model with another emoji table and calibration temperature, to check what the peer reads.
    const dir = join(tmp, 'emotion-qra-copy')
    const m = JSON.parse(readFileSync(join(QRA, 'manifest.json'), 'utf8'))
    pkg = await loadPackage(QRA, { verify: false })
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
    // The package's own temperature for this text: its one, or its register temperature mixed by the gate.
    const gate = pkg.prior ? sequencePrior(pkg.prior, peer.encode(same).source).gate : null
    const packageT = sequenceTemperature(pkg.calibration, gate)
    const powered = a.scores.map((s) => s ** (packageT / 1.7))
    const sum = powered.reduce((x, y) => x + y, 0)
    b.scores.forEach((s, k) => expect(s).toBeCloseTo(powered[k]! / sum, 6))
  })
})
