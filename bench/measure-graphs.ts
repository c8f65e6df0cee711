/**
 * @module
 * Measures a package's graphs (docs/model-package.md, "Graphs") under ONNX Runtime thread settings
 * in onnxruntime-node, the way the engine runs them (docs/engine.md records the numbers). Usage:
 *
 *   npx tsx bench/measure-graphs.ts --model DIR [--graphs fp32,fused-fp32,fused-int8]
 *       [--settings 1,2,2spin] [--rounds 6] [--texts PATH] [--single 12]
 *
 * Settings: `1` one intra-op thread (no pool: the engine thread computes alone, so spinning means
 * nothing), `2` two threads without spin-waiting (the service's sessions), `2spin` two threads
 * with ONNX Runtime's default spin-waiting (what transformers.js leaves on).
 *
 * 1. Passes, inputs prepared in advance: decode B=1 and B=32 at 40 cached positions (capacity 48,
 *    the engine's 8-slot granularity) and prefill passes of 1 and 3 prompts of 26 tokens. The
 *    optimum graph gets the slot buffer as its past (kv-cache.ts), the gqa graphs the buffer as
 *    past and present (gqa-forward.ts), each call rewriting the same slot.
 * 2. One request at a time through the engine (no worker, no HTTP): milliseconds per
 *    classification of `--single` validation texts, each alone in the batch (concurrency 1).
 *
 * Every (graph, setting) has its own session; the variants alternate round by round in a rotating
 * order, with a pause between them so that a spinning pool has gone to sleep before the next one
 * runs: on a shared machine read the ratios, the milliseconds are only indicative.
 */
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BatchEngine } from '../src/engine/engine.js'
import type { LoadedModel } from '../src/engine/engine.js'
import { planGqaDecode, planGqaPrefill } from '../src/engine/gqa-feeds.js'
import { loadModel } from '../src/engine/model-runtime.js'
import { loadPackage } from '../src/model/package.js'
import { UsageError, parseFlags, parseTexts, positiveInt } from './lib/stats.js'

const USAGE = `usage: npx tsx bench/measure-graphs.ts [options]

  --model DIR       model package folder with graphs (default models/emotion-qra-natural)
  --graphs LIST     graphs to compare (default: all the package has)
  --settings LIST   thread settings among 1, 2, 2spin (default 1,2,2spin)
  --rounds N        alternating rounds (default 6)
  --single N        texts classified one at a time per variant and round (default 12)
  --texts PATH      texts (default ../shared/data/emotion/validation.jsonl)
  --help            print this`

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const SETTINGS = { '1': { threads: 1, spinning: false }, '2': { threads: 2, spinning: false }, '2spin': { threads: 2, spinning: true } } as const
type Setting = keyof typeof SETTINGS

const argv = process.argv.slice(2)
if (argv.includes('--help')) {
  console.log(USAGE)
  process.exit(0)
}
let opts: { model: string; graphs: string[] | null; settings: Setting[]; rounds: number; single: number; texts: string }
try {
  const { values } = parseFlags(argv, ['--model', '--graphs', '--settings', '--rounds', '--single', '--texts'])
  const settings = (values.get('--settings') ?? '1,2,2spin').split(',').map((s) => s.trim())
  for (const s of settings) if (!(s in SETTINGS)) throw new UsageError(`--settings: expected 1, 2 or 2spin, got ${JSON.stringify(s)}`)
  opts = {
    model: values.get('--model') ?? 'models/emotion-qra-natural',
    graphs: values.has('--graphs') ? values.get('--graphs')!.split(',').map((s) => s.trim()) : null,
    settings: settings as Setting[],
    rounds: values.has('--rounds') ? positiveInt(values.get('--rounds')!, '--rounds') : 6,
    single: values.has('--single') ? positiveInt(values.get('--single')!, '--single') : 12,
    texts: values.get('--texts') ?? '../shared/data/emotion/validation.jsonl',
  }
} catch (e) {
  if (!(e instanceof UsageError)) throw e
  process.stderr.write(`measure-graphs: ${e.message}\n\n${USAGE}\n`)
  process.exit(2)
}

const pkg = await loadPackage(resolve(ROOT, opts.model), { verify: false })
const graphs = opts.graphs ?? Object.keys(pkg.manifest.graphs ?? { fp32: null })
const variants: { name: string; model: LoadedModel }[] = []
for (const graph of graphs) {
  for (const setting of opts.settings) {
    const { model } = await loadModel(pkg, 'cpu', SETTINGS[setting].threads, { graph, spinning: SETTINGS[setting].spinning })
    variants.push({ name: `${graph} t${setting}`, model })
  }
}

const CAPACITY = 48
const PAST = 40

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n)
  for (let i = 0; i < n; i++) a[i] = Math.sin((i + seed) * 12.9898) * 0.5
  return a
}

/** One pass of `kind` on `model`, inputs prepared once. */
function pass(model: LoadedModel, kind: { batch: number; seq: number }): () => Promise<unknown> {
  const { numLayers: L, numKvHeads: H, headDim: D } = model.shape
  const B = kind.batch
  const tokens = Array.from({ length: B * kind.seq }, (_, i) => 5 + ((i * 37) % 4000))
  const prompts = Array.from({ length: B }, (_, b) => tokens.slice(b * kind.seq, (b + 1) * kind.seq))
  const layers = Array.from({ length: L }, (_, l) => l)
  const decode = kind.seq === 1
  if (model.layout === 'gqa') {
    const keys = layers.map((l) => rand(B * H * CAPACITY * D, l))
    const values = layers.map((l) => rand(B * H * CAPACITY * D, l + 100))
    const feeds = decode ? planGqaDecode(tokens, Array(B).fill(PAST), 512) : planGqaPrefill(prompts, model.specials.pad, 512)
    return () => model.forward({ ...feeds, capacity: CAPACITY, keys, values })
  }
  const big = (xs: number[]) => BigInt64Array.from(xs, (x) => BigInt(x))
  if (!decode) {
    const empty = layers.map(() => new Float32Array(0))
    const x = { batch: B, seq: kind.seq, pastLen: 0, inputIds: big(tokens), attentionMask: big(tokens.map(() => 1)), positionIds: big(tokens.map((_, i) => i % kind.seq)), pastKeys: empty, pastValues: empty }
    return () => model.forward(x)
  }
  const mask = new BigInt64Array(B * (CAPACITY + 1))
  for (let b = 0; b < B; b++) {
    mask.fill(1n, b * (CAPACITY + 1), b * (CAPACITY + 1) + PAST)
    mask[b * (CAPACITY + 1) + CAPACITY] = 1n
  }
  const x = {
    batch: B,
    seq: 1,
    pastLen: CAPACITY,
    inputIds: big(tokens),
    attentionMask: mask,
    positionIds: big(Array(B).fill(PAST)),
    pastKeys: layers.map((l) => rand(B * H * CAPACITY * D, l)),
    pastValues: layers.map((l) => rand(B * H * CAPACITY * D, l + 100)),
  }
  return () => model.forward(x)
}

const pause = () => new Promise((r) => setTimeout(r, 30))
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

/** Runs `fn(variant)` per variant per round, order rotating; returns each variant's samples. */
async function interleaved(run: (i: number) => Promise<number[]>): Promise<number[][]> {
  const samples = variants.map(() => [] as number[])
  for (let r = 0; r < opts.rounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const i = (k + r) % variants.length
      await pause()
      samples[i]!.push(...(await run(i)))
    }
  }
  return samples
}

function table(title: string, columns: string[], rows: number[][][]) {
  console.log(`\n${title}`)
  console.log(`| variant | ${columns.join(' | ')} |`)
  console.log(`|---|${columns.map(() => '---|').join('')}`)
  variants.forEach((v, i) => console.log(`| ${v.name} | ${rows.map((col) => median(col[i]!).toFixed(2)).join(' | ')} |`))
}

console.log(`model ${pkg.manifest.id}; ${variants.length} variants, ${opts.rounds} alternating rounds; median milliseconds`)
const kinds = [
  { name: 'decode B=1', batch: 1, seq: 1, reps: 20 },
  { name: 'decode B=32', batch: 32, seq: 1, reps: 5 },
  { name: 'prefill 1x26', batch: 1, seq: 26, reps: 10 },
  { name: 'prefill 3x26', batch: 3, seq: 26, reps: 5 },
]
const passSamples: number[][][] = []
for (const kind of kinds) {
  const fns = variants.map((v) => pass(v.model, kind))
  for (const fn of fns) for (let i = 0; i < 3; i++) await fn()
  passSamples.push(
    await interleaved(async (i) => {
      const out: number[] = []
      for (let n = 0; n < kind.reps; n++) {
        const t = performance.now()
        await fns[i]!()
        out.push(performance.now() - t)
      }
      return out
    }),
  )
}
table('passes (inputs prepared; ms)', kinds.map((k) => k.name), passSamples)

const texts = parseTexts(readFileSync(resolve(ROOT, opts.texts), 'utf8')).slice(0, opts.single)
const prompts = texts.map((t) => pkg.tokenizer.encoder.encode(t).ids)
const engines = variants.map((v) => new BatchEngine(v.model, { maxBatch: 64, maxBatchTokens: 2048 }))
const forwardShare = variants.map(() => ({ forward: 0, total: 0 }))
const single = await interleaved(async (i) => {
  const engine = engines[i]!
  const out: number[] = []
  for (const [id, p] of prompts.entries()) {
    const t = performance.now()
    const f0 = engine.stats.forwardMs
    engine.enqueue(id, p)
    while (engine.hasWork()) await engine.step(() => {})
    out.push(performance.now() - t)
    forwardShare[i]!.forward += engine.stats.forwardMs - f0
    forwardShare[i]!.total += performance.now() - t
  }
  return out
})
table(`one request at a time through the engine (${prompts.length} texts per round; ms per classification)`, ['ms'], [single])
console.log('\nshare of that time in ONNX Runtime passes')
variants.forEach((v, i) => console.log(`| ${v.name} | ${((100 * forwardShare[i]!.forward) / forwardShare[i]!.total).toFixed(0)}% |`))
