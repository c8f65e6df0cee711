/**
 * The batch engine without a worker or a server.
 *
 * A fake model whose next token depends on every cached token it attends to makes any KV mix-up
 * visible (a row reading another row's cache, a lost or stale slot, a bad mask): each sequence
 * must come out exactly as it does alone, whatever joins and leaves the batch around it, under
 * tiny budgets that force continuous joining.
 */
import { describe, expect, it } from 'vitest'
import { BatchEngine } from '../../src/engine/engine.js'
import type { GqaModel, OptimumModel } from '../../src/engine/engine.js'
import type { SequenceEvent } from '../../src/engine/protocol.js'
import type { GqaInputs } from '../../src/model/gqa-forward.js'
import type { ForwardInputs, ForwardOutputs } from '../../src/model/session.js'

const V = 16
const SPECIALS = { bos: 0, eos: 1, pad: 2, sep: 3, marker: 4 }
const LABEL_IDS = [10, 11, 12, 13, 14, 15]
const enc = new TextEncoder()

/**
 * Keys and values hold the token id of each position. For every new position, `h` is the sum of
 * the token ids it attends to (masked past plus itself and earlier new positions). Logits: eos
 * always highest (must be masked), then reasoning token 5 + h % 4, the marker once h > limit;
 * after the marker the label 10 + h % 6 wins.
 */
function fakeForward(limit: number) {
  const calls: { batch: number; seq: number; pastLen: number }[] = []
  const forward = async (x: ForwardInputs): Promise<ForwardOutputs> => {
    calls.push({ batch: x.batch, seq: x.seq, pastLen: x.pastLen })
    const total = x.pastLen + x.seq
    const present = new Float32Array(x.batch * total)
    const logits = new Float32Array(x.batch * x.seq * V)
    for (let b = 0; b < x.batch; b++) {
      for (let p = 0; p < x.pastLen; p++) present[b * total + p] = x.pastKeys[0]![b * x.pastLen + p]!
      for (let s = 0; s < x.seq; s++) present[b * total + x.pastLen + s] = Number(x.inputIds[b * x.seq + s]!)
      for (let s = 0; s < x.seq; s++) {
        let h = 0
        for (let p = 0; p <= x.pastLen + s; p++) {
          if (x.attentionMask[b * total + p] === 1n) h += present[b * total + p]!
        }
        fakeLogits(logits, (b * x.seq + s) * V, h, Number(x.inputIds[b * x.seq + s]!), limit)
      }
    }
    return { logits, presentKeys: [present], presentValues: [present.slice()] }
  }
  return { forward, calls }
}

/** The logits `fakeForward` writes for a position whose attended ids sum to `h`, after token `last`. */
function fakeLogits(logits: Float32Array, o: number, h: number, last: number, limit: number): void {
  logits[o + SPECIALS.eos] = 100
  logits[o + SPECIALS.pad] = 99
  if (last === SPECIALS.marker) {
    LABEL_IDS.forEach((id, k) => (logits[o + id] = k === h % 6 ? 10 : k * 0.1))
  } else {
    logits[o + 5 + (h % 4)] = 10
    logits[o + SPECIALS.marker] = h > limit ? 20 : 0
  }
}

/** Written into the slots of a prefill's right padding, as the real op leaves garbage there: reading it shows. */
const GARBAGE = 1000

/**
 * The same model in the fused `gqa` layout, acting as GroupQueryAttention on a shared buffer
 * (`[batch, 1, capacity, 1]`, keys = values = token ids): a prefill (total = seq) starts every row
 * at slot 0, a decode step (seq 1) writes row b's token at slot seqlens_k[b]; each new position
 * attends to slots 0 .. its own; logits `[batch, vocab]` at each row's last real position. It
 * refuses what the op refuses (a multi-token chunk after a past) and a buffer smaller than the pass.
 */
function fakeGqaForward(limit: number) {
  const calls: { batch: number; seq: number; prefill: boolean; capacity: number; firstRow: number }[] = []
  const forward = async (x: GqaInputs): Promise<Float32Array> => {
    const prefill = x.totalSequenceLength === x.seq
    // The views are ranges of the cache's buffer: the offset tells the first row the pass writes.
    const firstRow = x.keys[0]!.byteOffset / Float32Array.BYTES_PER_ELEMENT / x.capacity
    calls.push({ batch: x.batch, seq: x.seq, prefill, capacity: x.capacity, firstRow })
    if (!prefill && x.seq !== 1) throw new Error('a prompt chunk after a past')
    if (x.totalSequenceLength > x.capacity) throw new Error('buffer smaller than the pass')
    const [keys, values] = [x.keys[0]!, x.values[0]!]
    if (keys.length !== x.batch * x.capacity || values.length !== keys.length) throw new Error('bad buffer view')
    const logits = new Float32Array(x.batch * V)
    for (let b = 0; b < x.batch; b++) {
      const past = prefill ? 0 : x.seqlensK[b]!
      const n = x.seqlensK[b]! + 1 - past
      const row = b * x.capacity
      for (let s = 0; s < x.seq; s++) {
        const id = s < n ? Number(x.inputIds[b * x.seq + s]!) : GARBAGE
        keys[row + past + s] = id
        values[row + past + s] = id
      }
      let h = 0
      for (let p = 0; p < past + n; p++) h += keys[row + p]!
      fakeLogits(logits, b * V, h, Number(x.inputIds[b * x.seq + n - 1]!), limit)
    }
    return logits
  }
  return { forward, calls }
}

function gqaModel(limit = 150, maxReasoningTokens = 64, kind: 'qra' | 'qa' = 'qra') {
  const fake = fakeGqaForward(limit)
  const { model: m } = model(limit, maxReasoningTokens, kind)
  const { layout: _, forward: __, ...facts } = m
  const g: GqaModel = { ...facts, layout: 'gqa', forward: fake.forward, maxPositions: 512 }
  return { model: g, calls: fake.calls }
}

function model(limit = 150, maxReasoningTokens = 64, kind: 'qra' | 'qa' = 'qra') {
  const fake = fakeForward(limit)
  // Tokens 5-8 spell a, b, c, d with a space; others spell nothing.
  const tokenBytes = Array.from({ length: V }, (_, id) => (id >= 5 && id <= 8 ? enc.encode(` ${'abcd'[id - 5]}`) : new Uint8Array(0)))
  const m: OptimumModel = {
    layout: 'optimum',
    forward: fake.forward,
    shape: { numLayers: 1, numKvHeads: 1, headDim: 1 },
    vocabSize: V,
    kind,
    specials: SPECIALS,
    labelFirstIds: LABEL_IDS,
    maxReasoningTokens,
    tokenBytes,
    quoteBytes: tokenBytes,
    // Prompts are [bos, ...text, sep].
    template: { numPrefixTokens: 1, numSuffixTokens: 1 },
    calibration: { method: 'temperature', temperature: 1 },
    scoresAtFirstLabel: false,
  }
  return { model: m, calls: fake.calls }
}

interface Outcome {
  events: string[]
  /** The deltas, joined: the reasoning crosses only as deltas. */
  reasoning: string
  label: number
  scores: number[]
  reasoningTokens: number
}

async function runAll(engine: BatchEngine, prompts: Map<number, number[]>, cancelAtStep = new Map<number, number>()) {
  const out = new Map<number, Outcome>()
  for (const [id, p] of prompts) {
    engine.enqueue(id, p)
    out.set(id, { events: [], reasoning: '', label: -1, scores: [], reasoningTokens: -1 })
  }
  const emit = (events: SequenceEvent[]) => {
    for (const e of events) {
      const o = out.get(e.id)!
      o.events.push(e.type)
      if (e.type === 'token') o.reasoning += e.delta
      if (e.type === 'done') [o.label, o.scores, o.reasoningTokens] = [e.labelIndex, e.scores, e.numReasoningTokens]
    }
  }
  let step = 0
  while (engine.hasWork()) {
    for (const [id, at] of cancelAtStep) if (at === step) engine.cancel(id)
    await engine.step(emit)
    if (++step > 10_000) throw new Error('engine does not finish')
  }
  return out
}

const prompts = new Map<number, number[]>(
  Array.from({ length: 12 }, (_, i) => [i, [SPECIALS.bos, ...Array.from({ length: 1 + ((i * 7) % 9) }, (_, j) => 5 + ((i + j) % 4)), SPECIALS.sep]]),
)

describe('BatchEngine', () => {
  it('gives each sequence its lone result inside a churning batch (tiny budgets)', async () => {
    const alone = new Map<number, Outcome>()
    for (const [id, p] of prompts) {
      const { model: m } = model()
      const r = await runAll(new BatchEngine(m, { maxBatch: 1, maxBatchTokens: 64 }), new Map([[id, p]]))
      alone.set(id, r.get(id)!)
    }
    for (const limits of [
      { maxBatch: 3, maxBatchTokens: 12 },
      { maxBatch: 5, maxBatchTokens: 30 },
      { maxBatch: 64, maxBatchTokens: 4096 },
    ]) {
      const { model: m, calls } = model()
      const batched = await runAll(new BatchEngine(m, limits), prompts)
      for (const [id, o] of batched) expect(o, `seq ${id} with ${JSON.stringify(limits)}`).toEqual(alone.get(id))
      for (const c of calls) {
        expect(c.batch).toBeLessThanOrEqual(limits.maxBatch)
        if (c.pastLen === 0 && c.batch > 1) expect(c.batch * c.seq).toBeLessThanOrEqual(limits.maxBatchTokens)
      }
    }
  })

  it('gives each sequence the same result in the gqa layout, the cache written in place, inside a churning batch', async () => {
    const { model: ref } = model()
    const want = await runAll(new BatchEngine(ref, { maxBatch: 64, maxBatchTokens: 4096 }), prompts)
    for (const limits of [
      { maxBatch: 1, maxBatchTokens: 64 },
      { maxBatch: 3, maxBatchTokens: 12 },
      { maxBatch: 5, maxBatchTokens: 30 },
      { maxBatch: 64, maxBatchTokens: 4096 },
    ]) {
      const { model: m, calls } = gqaModel()
      const got = await runAll(new BatchEngine(m, limits), prompts)
      for (const [id, o] of got) expect(o, `seq ${id} with ${JSON.stringify(limits)}`).toEqual(want.get(id))
      for (const c of calls) {
        expect(c.batch).toBeLessThanOrEqual(limits.maxBatch)
        if (!c.prefill) expect([c.seq, c.firstRow]).toEqual([1, 0])
        expect(c.capacity % 8).toBe(0)
      }
      // Prompts of different lengths share prefill passes (right padding with garbage slots).
      if (limits.maxBatch === 64) expect(calls.some((c) => c.prefill && c.batch > 1)).toBe(true)
    }
  })

  it('gqa: scores qa prompts at prefill (no row kept), and drops cancelled sequences as the optimum layout does', async () => {
    const qa = new Map([...prompts].map(([id, p]) => [id, [...p, SPECIALS.marker]]))
    const { model: refQa } = model(60, 64, 'qa')
    const { model: mQa, calls } = gqaModel(60, 64, 'qa')
    const engineQa = new BatchEngine(mQa, { maxBatch: 6, maxBatchTokens: 64 })
    expect(await runAll(engineQa, qa)).toEqual(await runAll(new BatchEngine(refQa, { maxBatch: 6, maxBatchTokens: 64 }), qa))
    // Every prompt finished at its prefill: none stays in the cache, each prefill writes from row 0.
    expect(calls.every((c) => c.prefill && c.firstRow === 0)).toBe(true)
    expect(engineQa.numRunning).toBe(0)

    const cancel = new Map([[0, 2], [5, 0], [7, 3], [9, 6]])
    const { model: ref } = model()
    const { model: m } = gqaModel()
    const want = await runAll(new BatchEngine(ref, { maxBatch: 4, maxBatchTokens: 64 }), prompts, cancel)
    const engine = new BatchEngine(m, { maxBatch: 4, maxBatchTokens: 64 })
    expect(await runAll(engine, prompts, cancel)).toEqual(want)
    expect(engine.numRunning + engine.numWaiting).toBe(0)
  })

  it('emits start, tokens, done in order; deltas join to the whole reasoning; eos/pad are masked', async () => {
    const { model: m } = model()
    const out = await runAll(new BatchEngine(m, { maxBatch: 4, maxBatchTokens: 64 }), prompts)
    expect([...out.values()].filter((o) => o.reasoningTokens > 3).length).toBeGreaterThan(6)
    for (const o of out.values()) {
      expect(o.events[0]).toBe('start')
      expect(o.events.at(-1)).toBe('done')
      expect(o.events.slice(1, -1).every((e) => e === 'token')).toBe(true)
      expect(o.reasoning).toMatch(/^([abcd]( [abcd])*)?$/)
      expect(o.reasoning.length).toBe(Math.max(0, 2 * o.reasoningTokens - 1))
      expect(o.scores.reduce((a, b) => a + b)).toBeCloseTo(1, 12)
    }
  })

  it('forces the marker once the reasoning budget is spent', async () => {
    const { model: m } = model(1e9, 3)
    const out = await runAll(new BatchEngine(m, { maxBatch: 4, maxBatchTokens: 64 }), prompts)
    for (const o of out.values()) {
      expect(o.reasoningTokens).toBe(3)
      expect(o.events.at(-1)).toBe('done')
    }
  })

  it('scores qa prompts at prefill, with no reasoning and no decode pass', async () => {
    const { model: m, calls } = model(60, 64, 'qa')
    const qa = new Map([...prompts].map(([id, p]) => [id, [...p, SPECIALS.marker]]))
    const out = await runAll(new BatchEngine(m, { maxBatch: 64, maxBatchTokens: 4096 }), qa)
    for (const o of out.values()) {
      expect(o.events).toEqual(['start', 'done'])
      expect(o.reasoning).toBe('')
    }
    expect(calls.every((c) => c.pastLen === 0)).toBe(true)
  })

  it('drops a cancelled sequence at the next step and leaves the others as they were', async () => {
    const { model: m } = model()
    const full = await runAll(new BatchEngine(m, { maxBatch: 4, maxBatchTokens: 64 }), prompts)
    const { model: m2 } = model()
    const engine = new BatchEngine(m2, { maxBatch: 4, maxBatchTokens: 64 })
    const cut = await runAll(engine, prompts, new Map([[0, 2], [5, 0], [9, 6]]))
    for (const id of [0, 5, 9]) expect(cut.get(id)!.events).not.toContain('done')
    expect(cut.get(5)!.events).toEqual([])
    for (const [id, o] of cut) if (![0, 5, 9].includes(id)) expect(o).toEqual(full.get(id))
    expect(engine.numRunning + engine.numWaiting).toBe(0)
  })

  it('fails the sequences of a pass that throws, and goes on with the others', async () => {
    const { model: m } = model()
    let n = 0
    const inner = m.forward
    m.forward = async (x) => {
      if (x.pastLen > 0 && ++n === 3) throw new Error('boom\nsecond line')
      return inner(x)
    }
    const engine = new BatchEngine(m, { maxBatch: 2, maxBatchTokens: 64 })
    const errors: string[] = []
    for (const [id, p] of prompts) engine.enqueue(id, p)
    const done = new Set<number>()
    while (engine.hasWork()) {
      await engine.step((events) => {
        for (const e of events) {
          if (e.type === 'error') errors.push(`${e.id}: ${e.message}`)
          if (e.type === 'done') done.add(e.id)
        }
      })
    }
    // Every row of the third decode pass failed with the first line of the error; the rest finished.
    expect(errors.length).toBeGreaterThan(0)
    for (const e of errors) expect(e).toMatch(/^\d+: decode failed: boom$/)
    expect(done.size).toBe(prompts.size - errors.length)
  })
})
