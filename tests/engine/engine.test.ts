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
import type { LoadedModel } from '../../src/engine/engine.js'
import type { SequenceEvent } from '../../src/engine/protocol.js'
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
        const o = (b * x.seq + s) * V
        const last = Number(x.inputIds[b * x.seq + s]!)
        logits[o + SPECIALS.eos] = 100
        logits[o + SPECIALS.pad] = 99
        if (last === SPECIALS.marker) {
          LABEL_IDS.forEach((id, k) => (logits[o + id] = k === h % 6 ? 10 : k * 0.1))
        } else {
          logits[o + 5 + (h % 4)] = 10
          logits[o + SPECIALS.marker] = h > limit ? 20 : 0
        }
      }
    }
    return { logits, presentKeys: [present], presentValues: [present.slice()] }
  }
  return { forward, calls }
}

function model(limit = 150, maxReasoningTokens = 64, kind: 'qra' | 'qa' = 'qra') {
  const fake = fakeForward(limit)
  // Tokens 5-8 spell a, b, c, d with a space; others spell nothing.
  const tokenBytes = Array.from({ length: V }, (_, id) => (id >= 5 && id <= 8 ? enc.encode(` ${'abcd'[id - 5]}`) : new Uint8Array(0)))
  const m: LoadedModel = {
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
    labelTemperature: 1,
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
