/**
 * @module
 * Measures what keeping KV caches across decode steps costs, next to the model itself
 * (docs/engine.md records the numbers). Usage:
 *
 *   npx tsx bench/measure-kv.ts [--model DIR] [--threads N] [--texts PATH]
 *
 * For a batch of B rows with P cached positions each, one decode step is timed three ways:
 * - `forward`: the forward pass alone, inputs prepared in advance (the floor);
 * - `concat`: per-sequence caches (`[1, H, len, D]` each) copied into batch tensors before the
 *   pass and the present split back into per-sequence caches after it;
 * - `slots`: the batch buffer of src/engine/kv-cache.ts fed as is, capacity rounded up to 8
 *   slots, only the new position copied back (what the engine does).
 * The three alternate round by round so that a busy machine slows all of them alike.
 *
 * Then the whole engine (no worker, no HTTP) on the first 192 texts of --texts, 64 rows at most,
 * for KV capacity granularities 8, 16 and 32 slots (slack attended every step vs reallocations),
 * alternating.
 */
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BatchEngine } from '../src/engine/engine.js'
import type { OptimumModel } from '../src/engine/engine.js'
import { KvCache } from '../src/engine/kv-cache.js'
import { loadModel } from '../src/engine/model-runtime.js'
import { loadPackage } from '../src/model/package.js'
import type { ForwardInputs } from '../src/model/session.js'
import { UsageError, parseFlags, parseTexts, positiveInt } from './lib/stats.js'

const USAGE = `usage: npx tsx bench/measure-kv.ts [options]

  --model DIR    model package folder (default models/emotion-qra-natural)
  --threads N    ONNX Runtime intra-op threads (default 2)
  --texts PATH   texts for the engine runs (default ../shared/data/emotion/validation.jsonl)
  --help         print this`

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const argv = process.argv.slice(2)
if (argv.includes('--help')) {
  console.log(USAGE)
  process.exit(0)
}
let opts: { model: string; threads: number; texts: string }
try {
  const { values } = parseFlags(argv, ['--model', '--threads', '--texts'])
  opts = {
    model: values.get('--model') ?? 'models/emotion-qra-natural',
    threads: values.has('--threads') ? positiveInt(values.get('--threads')!, '--threads') : 2,
    texts: values.get('--texts') ?? '../shared/data/emotion/validation.jsonl',
  }
} catch (e) {
  if (!(e instanceof UsageError)) throw e
  process.stderr.write(`measure-kv: ${e.message}\n\n${USAGE}\n`)
  process.exit(2)
}
const { threads } = opts
const pkg = await loadPackage(resolve(ROOT, opts.model), { verify: false })
// The KV strategies compared here are the optimum layout's (the fused gqa graph writes in place).
const loaded = (await loadModel(pkg, 'cpu', threads, { graph: 'fp32' })).model
if (loaded.layout !== 'optimum') throw new Error('measure-kv: the fp32 graph must have the optimum layout')
const model: OptimumModel = loaded
const { numLayers: L, numKvHeads: H, headDim: D } = model.shape

function rand(n: number): Float32Array {
  const a = new Float32Array(n)
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 12.9898) * 0.5
  return a
}

function decodeInputs(B: number, P: number, keys: Float32Array[], values: Float32Array[], mask?: BigInt64Array): ForwardInputs {
  return {
    batch: B,
    seq: 1,
    pastLen: P,
    inputIds: new BigInt64Array(B).fill(100n),
    attentionMask: mask ?? new BigInt64Array(B * (P + 1)).fill(1n),
    positionIds: new BigInt64Array(B).fill(BigInt(P)),
    pastKeys: keys,
    pastValues: values,
  }
}

async function measure(B: number, P: number, rounds: number) {
  // Per-sequence caches for `concat`.
  const perSeq = Array.from({ length: B }, () => ({
    keys: Array.from({ length: L }, () => rand(H * P * D)),
    values: Array.from({ length: L }, () => rand(H * P * D)),
  }))
  const fixedKeys = Array.from({ length: L }, () => rand(B * H * P * D))
  const fixedValues = Array.from({ length: L }, () => rand(B * H * P * D))
  // The slot buffer, filled with B rows of P positions.
  const kv = new KvCache(model.shape, { granularity: 8 })
  kv.reserve(B, P + 1)
  const one = { keys: Array.from({ length: L }, () => rand(H * P * D)), values: Array.from({ length: L }, () => rand(H * P * D)), len: P }
  for (let b = 0; b < B; b++) kv.addRow(one, 0, P)

  const t = { forward: 0, concat: 0, concatCopy: 0, slots: 0, slotsCopy: 0 }
  for (let round = 0; round < rounds + 2; round++) {
    const warm = round < 2
    // forward alone
    let s = performance.now()
    await model.forward(decodeInputs(B, P, fixedKeys, fixedValues))
    if (!warm) t.forward += performance.now() - s

    // concat: assemble, run, split
    s = performance.now()
    const keys: Float32Array[] = []
    const values: Float32Array[] = []
    for (let l = 0; l < L; l++) {
      const k = new Float32Array(B * H * P * D)
      const v = new Float32Array(B * H * P * D)
      for (let b = 0; b < B; b++) {
        k.set(perSeq[b]!.keys[l]!, b * H * P * D)
        v.set(perSeq[b]!.values[l]!, b * H * P * D)
      }
      keys.push(k)
      values.push(v)
    }
    let c = performance.now() - s
    const o = await model.forward(decodeInputs(B, P, keys, values))
    const s2 = performance.now()
    const split = Array.from({ length: B }, (_, b) => ({
      keys: o.presentKeys.map((a) => a.slice(b * H * (P + 1) * D, (b + 1) * H * (P + 1) * D)),
      values: o.presentValues.map((a) => a.slice(b * H * (P + 1) * D, (b + 1) * H * (P + 1) * D)),
    }))
    c += performance.now() - s2
    if (split.length !== B) throw new Error('unreachable')
    if (!warm) {
      t.concat += performance.now() - s
      t.concatCopy += c
    }

    // slots: feed the buffer, copy the new position back, then undo the append (same P each round)
    s = performance.now()
    const mask = kv.decodeMask()
    const layers = Array.from({ length: L }, (_, l) => l)
    let sc = performance.now() - s
    const o2 = await model.forward(
      decodeInputs(B, kv.capacity, layers.map((l) => kv.past(l, 'key')), layers.map((l) => kv.past(l, 'value')), mask),
    )
    const s3 = performance.now()
    kv.appendStep({ keys: o2.presentKeys, values: o2.presentValues, len: kv.capacity + 1 })
    sc += performance.now() - s3
    for (let r = 0; r < B; r++) kv.lengths[r]!--
    if (!warm) {
      t.slots += performance.now() - s
      t.slotsCopy += sc
    }
  }
  const f = (x: number) => (x / rounds).toFixed(2).padStart(7)
  console.log(
    `| ${String(B).padStart(3)} | ${String(P).padStart(3)} | ${f(t.forward)} | ${f(t.concat)} (${f(t.concatCopy)} copying) | ${f(t.slots)} (${f(t.slotsCopy)} copying, capacity ${kv.capacity}) |`,
  )
}

console.log(`model ${pkg.manifest.id}, ${threads} threads; milliseconds per decode step, mean of the rounds`)
console.log('|   B |   P | forward | concat | slots |')
console.log('|---|---|---|---|---|')
for (const [B, P] of [
  [1, 40],
  [8, 40],
  [32, 40],
  [64, 40],
  [32, 100],
  [64, 100],
] as const) {
  await measure(B, P, B >= 32 ? 10 : 30)
}

const texts = parseTexts(readFileSync(resolve(ROOT, opts.texts), 'utf8')).slice(0, 192)
const prompts = texts.map((t) => pkg.tokenizer.encoder.encode(t).ids)

async function engineRun(granularity: number) {
  const engine = new BatchEngine(model, { maxBatch: 64, maxBatchTokens: 2048 }, { kvGranularity: granularity })
  prompts.forEach((p, i) => engine.enqueue(i, p))
  const t = performance.now()
  while (engine.hasWork()) await engine.step(() => {})
  return { ms: performance.now() - t, stats: engine.stats }
}

console.log(`\nengine, ${prompts.length} validation texts, max_batch 64: generated tokens per second (3 alternating rounds)`)
const totals = new Map<number, { ms: number; tokens: number; forwardMs: number; stepMs: number; rows: number; passes: number }>()
for (let round = 0; round < 3; round++) {
  for (const g of [8, 16, 32]) {
    const { ms, stats } = await engineRun(g)
    const t = totals.get(g) ?? { ms: 0, tokens: 0, forwardMs: 0, stepMs: 0, rows: 0, passes: 0 }
    t.ms += ms
    t.tokens += stats.numGeneratedTokens
    t.forwardMs += stats.forwardMs
    t.stepMs += stats.stepMs
    t.rows += stats.numDecodeRows
    t.passes += stats.numDecodePasses
    totals.set(g, t)
  }
}
console.log('| granularity | tokens/s | forward share | mean decode rows |')
console.log('|---|---|---|---|')
for (const [g, t] of totals) {
  console.log(`| ${g} | ${((t.tokens / t.ms) * 1000).toFixed(0)} | ${((100 * t.forwardMs) / t.ms).toFixed(1)}% | ${(t.rows / t.passes).toFixed(1)} |`)
}

// Where a step's time goes under continuous arrival: 32 sequences kept in flight for 8 s, as 32
// closed-loop clients would (every finished sequence is replaced at once by the next text).
{
  const engine = new BatchEngine(model, { maxBatch: 64, maxBatchTokens: 2048 })
  let next = 0
  let inFlight = 0
  let done = 0
  const refill = () => {
    for (; inFlight < 32; inFlight++) engine.enqueue(next, prompts[next++ % prompts.length]!)
  }
  refill()
  const t = performance.now()
  while (performance.now() - t < 8000) {
    await engine.step((events) => {
      for (const e of events) if (e.type === 'done') [inFlight, done] = [inFlight - 1, done + 1]
    })
    refill()
  }
  const ms = performance.now() - t
  const s = engine.stats
  console.log(`\ncontinuous arrival, 32 in flight: ${((done / ms) * 1000).toFixed(1)} classifications/s`)
  console.log(`prefill: ${s.numPrefillPasses} passes, ${s.numPrefillTokens} padded tokens, ${s.prefillMs.toFixed(0)} ms (${((100 * s.prefillMs) / ms).toFixed(0)}%)`)
  console.log(`decode: ${s.numDecodePasses} passes, ${(s.numDecodeRows / s.numDecodePasses).toFixed(1)} rows each, ${s.decodeMs.toFixed(0)} ms (${((100 * s.decodeMs) / ms).toFixed(0)}%)`)
  console.log(`outside the passes: ${s.stepMs.toFixed(0)} ms (${((100 * s.stepMs) / ms).toFixed(0)}%)`)
}
