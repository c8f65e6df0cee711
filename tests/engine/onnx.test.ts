/**
 * The real model through ONNX Runtime: the two layouts the engine relies on give the logits of a
 * plain unpadded row. (1) A left-padded prefill batch, positions counting real tokens only.
 * (2) A decode step over the slot buffer, where a row's cached positions are followed by masked
 * unused slots before the new position.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { KvCache } from '../../src/engine/kv-cache.js'
import { loadModel } from '../../src/engine/model-runtime.js'
import type { OptimumModel } from '../../src/engine/engine.js'
import { loadPackage } from '../../src/model/package.js'
import type { ForwardInputs, ForwardOutputs } from '../../src/model/session.js'
import { QRA } from '../support/service.js'

let model: OptimumModel
let prompts: number[][]

beforeAll(async () => {
  const pkg = await loadPackage(QRA)
  // This test feeds the optimum layout: the reference graph, whatever the package's default.
  const loaded = (await loadModel(pkg, 'cpu', 1, { graph: 'fp32' })).model
  if (loaded.layout !== 'optimum') throw new Error(`${QRA}'s fp32 graph is ${loaded.layout}, not optimum`)
  model = loaded
  prompts = ['i feel happy', 'i am so very angry at all of them today', 'scared'].map((t) => pkg.tokenizer.encoder.encode(t).ids)
})

const L = () => model.shape.numLayers
const rowSize = (len: number) => model.shape.numKvHeads * len * model.shape.headDim
const big = (xs: number[]) => BigInt64Array.from(xs.map(BigInt))

/** Prefill of one unpadded prompt. */
function single(ids: number[]): Promise<ForwardOutputs> {
  const empty = Array.from({ length: L() }, () => new Float32Array(0))
  return model.forward({
    batch: 1,
    seq: ids.length,
    pastLen: 0,
    inputIds: big(ids),
    attentionMask: big(ids.map(() => 1)),
    positionIds: big(ids.map((_, j) => j)),
    pastKeys: empty,
    pastValues: empty,
  })
}

function lastLogits(o: ForwardOutputs, b: number, seq: number): Float32Array {
  const V = model.vocabSize
  return o.logits.subarray((b * seq + seq - 1) * V, (b * seq + seq) * V)
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

describe('ONNX layouts', () => {
  it('left-padded prefill rows give the logits of unpadded rows', async () => {
    const len = Math.max(...prompts.map((p) => p.length))
    const ids: number[] = []
    const mask: number[] = []
    const pos: number[] = []
    for (const p of prompts) {
      const pad = len - p.length
      ids.push(...Array(pad).fill(model.specials.pad), ...p)
      mask.push(...Array(pad).fill(0), ...p.map(() => 1))
      pos.push(...Array(pad).fill(0), ...p.map((_, j) => j))
    }
    const empty = Array.from({ length: L() }, () => new Float32Array(0))
    const x: ForwardInputs = { batch: prompts.length, seq: len, pastLen: 0, inputIds: big(ids), attentionMask: big(mask), positionIds: big(pos), pastKeys: empty, pastValues: empty }
    const padded = await model.forward(x)
    for (const [b, p] of prompts.entries()) {
      const alone = await single(p)
      expect(maxDiff(lastLogits(padded, b, len), lastLogits(alone, 0, p.length))).toBeLessThan(1e-5)
    }
  })

  it('a decode step over the slot buffer gives the logits of a contiguous cache', async () => {
    const kv = new KvCache(model.shape, { granularity: 16 })
    const outs = await Promise.all(prompts.map((p) => single(p)))
    kv.reserve(prompts.length, Math.max(...prompts.map((p) => p.length)) + 1)
    outs.forEach((o, b) => kv.addRow({ keys: o.presentKeys, values: o.presentValues, len: prompts[b]!.length }, 0, prompts[b]!.length))
    const next = prompts.map((_, b) => 50 + b)
    const layers = Array.from({ length: L() }, (_, l) => l)
    const step = await model.forward({
      batch: prompts.length,
      seq: 1,
      pastLen: kv.capacity,
      inputIds: big(next),
      attentionMask: kv.decodeMask(),
      positionIds: big(prompts.map((p) => p.length)),
      pastKeys: layers.map((l) => kv.past(l, 'key')),
      pastValues: layers.map((l) => kv.past(l, 'value')),
    })
    for (const [b, p] of prompts.entries()) {
      const o = outs[b]!
      const contiguous = await model.forward({
        batch: 1,
        seq: 1,
        pastLen: p.length,
        inputIds: big([next[b]!]),
        attentionMask: big(Array(p.length + 1).fill(1)),
        positionIds: big([p.length]),
        pastKeys: o.presentKeys,
        pastValues: o.presentValues,
      })
      expect(maxDiff(lastLogits(step, b, 1), lastLogits(contiguous, 0, 1))).toBeLessThan(1e-5)
      expect(o.presentKeys[0]!.length).toBe(rowSize(p.length))
    }
  })
})
