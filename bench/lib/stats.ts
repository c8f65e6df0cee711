/**
 * @module
 * Pure helpers of `npm run bench` and bench/measure-kv.ts: summaries (on the tools' one
 * `percentile`, loadtest/lib/stats.ts), the model's arithmetic per classification (FLOPs),
 * command-line options, and number formatting. No I/O here, so tests/bench.test.ts can pin them.
 */

import { percentile } from '../../loadtest/lib/stats.js'

export { percentile }

export interface Summary {
  n: number
  mean: number
  p50: number
  p99: number
  max: number
}

/**
 * The bench report's figures for one level, unrounded (the report formats them) and NaN when
 * empty (printed as n/a); loadtest/lib/stats.ts `summarize` is the load runner's, rounded.
 */
export function summarize(values: readonly number[]): Summary {
  const n = values.length
  const mean = n === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / n
  return { n, mean, p50: percentile(values, 50), p99: percentile(values, 99), max: n === 0 ? Number.NaN : Math.max(...values) }
}

/** The shapes that fix a Llama decoder's arithmetic (manifest `onnx` plus the MLP width). */
export interface ModelShape {
  numLayers: number
  hiddenSize: number
  numAttentionHeads: number
  numKvHeads: number
  headDim: number
  intermediateSize: number
  vocabSize: number
}

/**
 * Weights that take part in a matrix multiply for every token: per layer the q, k, v and o
 * projections and the three MLP matrices, plus the output projection (`hidden x vocab`, tied to the
 * embedding or not). Norm weights and the embedding lookup do no multiply-adds worth counting.
 */
export function matmulWeights(s: ModelShape): number {
  const q = s.hiddenSize * s.numAttentionHeads * s.headDim
  const kv = 2 * s.hiddenSize * s.numKvHeads * s.headDim
  const o = s.numAttentionHeads * s.headDim * s.hiddenSize
  const mlp = 3 * s.hiddenSize * s.intermediateSize
  return s.numLayers * (q + kv + o + mlp) + s.hiddenSize * s.vocabSize
}

/**
 * The MLP width implied by a parameter count, for packages whose config lacks it: parameters =
 * embedding (`vocab x hidden`, tied to the output) + per layer (q, k, v, o, 3 x MLP, two norms) +
 * the final norm. Returns a non-integer when the count does not fit that layout.
 */
export function intermediateFromParameters(
  parameters: number,
  s: Omit<ModelShape, 'intermediateSize'>,
  tied = true,
): number {
  const embed = s.vocabSize * s.hiddenSize * (tied ? 1 : 2)
  const attn = s.hiddenSize * s.numAttentionHeads * s.headDim * 2 + 2 * s.hiddenSize * s.numKvHeads * s.headDim
  const perLayerRest = attn + 2 * s.hiddenSize
  return (parameters - embed - s.hiddenSize - s.numLayers * perLayerRest) / (s.numLayers * 3 * s.hiddenSize)
}

export interface Flops {
  /** Tokens the model processes: the prompt, every reasoning token, the marker. */
  tokens: number
  /** 2 x matmul weights x tokens. */
  linear: number
  /** Q.K^T and attention.V over the positions each token attends to. */
  attention: number
  total: number
}

/**
 * FLOPs (one multiply-add = 2) of one classification with a KV cache: the prompt's `promptTokens`
 * (template tokens included) in prefill, then each of `reasoningTokens` fed back, then the marker,
 * whose logits score the labels. Token `t` (0-based) attends to `t + 1` positions. The graph
 * computes logits at every prefill position, so by default the output projection counts for every
 * token; `allLogits: false` counts it only where the logits are used (the least work possible).
 * Element-wise work (norms, rotary, softmax, SiLU) is left out: well under 1% at these sizes.
 */
export function flopsPerClassification(
  s: ModelShape,
  promptTokens: number,
  reasoningTokens: number,
  opts: { allLogits?: boolean } = {},
): Flops {
  const tokens = promptTokens + reasoningTokens + 1
  // With `allLogits: false`, only the positions whose logits are used: the last prompt position,
  // every reasoning token fed back, the marker.
  const logitPositions = (opts.allLogits ?? true) ? tokens : reasoningTokens + 2
  const head = s.hiddenSize * s.vocabSize
  const linear = 2 * (matmulWeights(s) - head) * tokens + 2 * head * logitPositions
  // Per layer and attended position: q.k (2 x heads x head_dim) and p.v (the same).
  const positions = (tokens * (tokens + 1)) / 2
  const attention = s.numLayers * 4 * s.numAttentionHeads * s.headDim * positions
  return { tokens, linear, attention, total: linear + attention }
}

/** Command-line options of `npm run bench`. */
export interface BenchOptions {
  levels: number[]
  /** Measured requests per level and system; null: sized from the warm-up to last `seconds`. */
  requests: number | null
  /** Target length of a measured level when `requests` is null. */
  seconds: number
  model: string
  /** The package's graph the engine runs (`--graph` of the service); null: the package's default. The peer always loads model.onnx. */
  graph: string | null
  /**
   * The busy threads each system is given: the peer's intra-op threads (its generate() and its HTTP
   * share the thread that calls run()); the engine's HTTP thread plus workers x threads.
   */
  threads: number
  /** The engine's `--workers` (default 1, the service's default). */
  engineWorkers: number
  /** The engine's `--threads` per worker (default: (threads - 1) / engineWorkers, at least 1). */
  engineThreads: number
  /** The engine's `--spin-wait on` (the peer always spins: transformers.js leaves ONNX Runtime's default). */
  spinWait: boolean
  quick: boolean
  systems: ('engine' | 'peer')[]
  /** Texts: JSON lines with a `text` field, or plain lines. */
  texts: string
  /** Markdown report; null: the default for the run (docs/benchmarks.md, or test-output for --quick). */
  out: string | null
  /** Texts sent to both systems one by one to compare their reasoning. */
  agreement: number
  /** The windows section (engine only): texts of N windows for each N here, ascending; empty: skipped. */
  windows: number[]
}

export const BENCH_USAGE = `usage: npm run bench -- [options]

  --levels 1,8,32,64   concurrency levels (closed loop: C clients, each sends its next request
                       when the previous one ends)
  --requests N         measured requests per level and system (default: sized from each
                       level's warm-up to last about --seconds)
  --seconds S          target length of a measured level (default 18; --quick 3)
  --model DIR          model package folder (default models/emotion-qra-natural)
  --graph NAME         the package's graph the engine runs (the service's --graph; default: the
                       package's default_graph, else fp32); the peer always loads model.onnx (fp32)
  --threads N          busy threads for each system (default 2): the peer's ONNX Runtime
                       intra-op threads (its HTTP runs on the thread that calls run()); the
                       engine's HTTP thread plus --threads N - 1 (at least 1), the service's
                       own default on an N-core host
  --engine-workers W   the engine's --workers (default 1); its --threads is then (N - 1) / W
                       (at least 1)
  --engine-threads T   the engine's --threads per worker instead
  --spin-wait          the engine with ONNX Runtime's spin-waiting on (the service's --spin-wait
                       on), as the peer always has it; default: off, the service's default
  --systems LIST       engine,peer (default both)
  --texts PATH         texts (default ../shared/data/emotion/validation.jsonl)
  --agreement N        texts compared between the engine and the peer (default 24; --quick 8)
  --out PATH           markdown report (default docs/benchmarks.md; --quick: test-output/bench/quick.md)
  --windows 1,2,4,8    the engine on texts it reads in N windows, for each N (POST /classify,
                       truncate "windows", concurrency 8, about min(--seconds, 6) s each; --quick
                       2C requests each); the peer has no windows mode
  --no-windows         skip that section
  --quick              smoke test: levels 1,8, about 3 s a level
  --help               print this`

export class UsageError extends Error {
  override name = 'UsageError'
}

export function positiveInt(raw: string, name: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new UsageError(`${name}: expected a positive integer, got ${JSON.stringify(raw)}`)
  return Number(raw)
}

/**
 * Splits `argv` into options with a value (`--name value` or `--name=value`, names in `valued`)
 * and switches (exactly `--name`, names in `switches`); throws `UsageError` on anything else.
 */
export function parseFlags(
  argv: readonly string[],
  valued: readonly string[],
  switches: readonly string[] = [],
): { values: Map<string, string>; switches: Set<string> } {
  const values = new Map<string, string>()
  const on = new Set<string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (switches.includes(arg)) {
      on.add(arg)
      continue
    }
    const eq = arg.indexOf('=')
    const name = eq >= 0 ? arg.slice(0, eq) : arg
    if (!valued.includes(name)) throw new UsageError(`unknown option ${JSON.stringify(arg)}`)
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i]
    if (value === undefined) throw new UsageError(`${name}: missing value`)
    values.set(name, value)
  }
  return { values, switches: on }
}

/** Parses `argv` (flags as `--name value` or `--name=value`); throws `UsageError`. */
export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const valued = ['--levels', '--requests', '--seconds', '--model', '--graph', '--threads', '--engine-workers', '--engine-threads', '--systems', '--texts', '--out', '--agreement', '--windows']
  const { values: raw, switches } = parseFlags(argv, valued, ['--quick', '--no-windows', '--spin-wait'])
  const quick = switches.has('--quick')
  if (switches.has('--no-windows') && raw.has('--windows')) throw new UsageError('--windows and --no-windows: give one')
  const levelsRaw = raw.get('--levels') ?? (quick ? '1,8' : '1,8,32,64')
  const levels = levelsRaw.split(',').map((s) => positiveInt(s.trim(), '--levels'))
  const systemsRaw = (raw.get('--systems') ?? 'engine,peer').split(',').map((s) => s.trim())
  for (const s of systemsRaw) {
    if (s !== 'engine' && s !== 'peer') throw new UsageError(`--systems: expected engine and/or peer, got ${JSON.stringify(s)}`)
  }
  const secondsRaw = raw.get('--seconds')
  const seconds = secondsRaw === undefined ? (quick ? 3 : 18) : Number(secondsRaw)
  if (!(seconds > 0)) throw new UsageError(`--seconds: expected a positive number, got ${JSON.stringify(secondsRaw)}`)
  const requests = raw.has('--requests') ? positiveInt(raw.get('--requests')!, '--requests') : null
  const threads = raw.has('--threads') ? positiveInt(raw.get('--threads')!, '--threads') : 2
  const engineWorkers = raw.has('--engine-workers') ? positiveInt(raw.get('--engine-workers')!, '--engine-workers') : 1
  const engineThreads = raw.has('--engine-threads') ? positiveInt(raw.get('--engine-threads')!, '--engine-threads') : Math.max(1, Math.floor((threads - 1) / engineWorkers))
  return {
    levels,
    requests,
    seconds,
    model: raw.get('--model') ?? 'models/emotion-qra-natural',
    graph: raw.get('--graph') ?? null,
    threads,
    engineWorkers,
    engineThreads,
    spinWait: switches.has('--spin-wait'),
    quick,
    systems: [...new Set(systemsRaw)] as ('engine' | 'peer')[],
    texts: raw.get('--texts') ?? '../shared/data/emotion/validation.jsonl',
    out: raw.get('--out') ?? null,
    agreement: raw.has('--agreement') ? positiveInt(raw.get('--agreement')!, '--agreement') : quick ? 8 : 24,
    windows: switches.has('--no-windows') ? [] : parseIntList(raw.get('--windows') ?? '1,2,4,8', '--windows'),
  }
}

/** `1,2,4` as ascending distinct positive integers; throws `UsageError`. */
export function parseIntList(raw: string, name: string): number[] {
  return [...new Set(raw.split(',').map((s) => positiveInt(s.trim(), name)))].sort((a, b) => a - b)
}

/**
 * Measured requests for a level: `fixed` when given, otherwise enough for about `seconds` at the
 * warm-up's rate, at least 8 rounds of the concurrency and at least 20 requests.
 */
export function requestsForLevel(fixed: number | null, warmupRate: number, seconds: number, concurrency: number): number {
  if (fixed !== null) return fixed
  const byTime = Number.isFinite(warmupRate) && warmupRate > 0 ? Math.ceil(warmupRate * seconds) : 0
  return Math.max(byTime, 8 * concurrency, 20)
}

export { parseTexts } from '../../loadtest/lib/texts.js'

/** A number with `digits` significant figures at most, thousands grouped: 1234.5 -> "1,235". */
export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return 'n/a'
  if (x === 0) return '0'
  const magnitude = Math.floor(Math.log10(Math.abs(x)))
  const decimals = Math.max(0, digits - 1 - magnitude)
  return x.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals })
}

/** A ratio as "5.2x"; n/a when either side is missing. */
export function ratio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return 'n/a'
  return `${fmt(a / b, 2)}x`
}

/** A markdown table. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n')
}
