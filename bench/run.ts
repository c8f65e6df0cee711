/**
 * @module
 * `npm run bench`: this engine against the peer a Node user would pick instead (transformers.js
 * generating per request), in one run, on one machine, on one model package.
 *
 * 1. Measures this CPU's fp32 matmul rate with onnxruntime-node (bench/matmul.onnx).
 * 2. For each system: starts its HTTP server as a child process on a free loopback port (the
 *    service: `node --import tsx src/main.ts`; the peer: `node --import tsx bench/peer-server.ts`),
 *    same model folder, same intra-op thread count; warms it up; sends the agreement texts one by
 *    one; then for each concurrency level a warm-up and a measured closed loop over streamed
 *    `/explain` requests (the same texts in the same order for both systems); the engine then, unless
 *    `--no-windows`, on texts it reads in N windows (bench/lib/windows.ts).
 * 3. Measures the matmul rate again, prints the tables, writes the markdown report
 *    (docs/benchmarks.md by default) and the raw samples as JSON under test-output/bench/.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { availableParallelism, loadavg } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, ServerProcess } from '../loadtest/lib/server.js'
import { selectGraph } from '../src/model/manifest.js'
import type { SelectedGraph } from '../src/model/manifest.js'
import { loadPackage } from '../src/model/package.js'
import { closedLoop } from './lib/client.js'
import type { Sample } from './lib/client.js'
import { measureMatmul } from './lib/matmul.js'
import type { MatmulRate } from './lib/matmul.js'
import {
  BENCH_USAGE,
  UsageError,
  flopsPerClassification,
  fmt,
  intermediateFromParameters,
  markdownTable,
  matmulWeights,
  parseBenchArgs,
  parseTexts,
  ratio,
  requestsForLevel,
  summarize,
} from './lib/stats.js'
import type { BenchOptions, ModelShape, Summary } from './lib/stats.js'
import { measureWindows, windowCounter, windowsPlan, windowsSection, windowsTable, windowTextsByN } from './lib/windows.js'
import type { WindowsPlan, WindowsResult } from './lib/windows.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const OUT_DIR = join(ROOT, 'test-output', 'bench')
const NOTES_MARKER = '<!-- bench:notes (everything below this line is kept when the report is rewritten) -->'
type System = 'engine' | 'peer'

interface LevelResult {
  system: System
  concurrency: number
  requests: number
  warmupRequests: number
  errors: number
  firstError?: string
  elapsedS: number
  clsPerS: number
  /** Reasoning tokens (the streamed ones) per second. */
  tokPerS: number
  ttft: Summary
  e2e: Summary
  meanPromptTokens: number
  meanReasoningTokens: number
  /** Useful model FLOPs per second (per-request FLOPs summed over the elapsed time). */
  gflops: number
  serverCpuPct: number
  clientCpuPct: number
  /** 1-minute load average when the level ended. */
  load1: number
}

/** What a system answered for each text index, over every measured level. */
interface Answers {
  byText: Map<number, { reasoning: string; label: string }>
  /** Samples whose reasoning or label differed from the same system's earlier answer for that text. */
  inconsistent: number
  firstInconsistent?: { textIndex: number; a: string; b: string }
}

/** What one system measured. */
interface SystemResult {
  levels: LevelResult[]
  agreement: Sample[]
  answers: Answers
  /** The windows section (the engine only). */
  windows?: WindowsResult[]
}

/** The windows section's texts per N and its plan; absent: not measured. */
interface WindowsInput {
  texts: Map<number, string[]>
  plan: WindowsPlan
}

interface AgreementRow {
  text: string
  engine?: Sample
  peer?: Sample
}

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`)
}

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown'
  const flags = /^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.split(/\s+/) ?? []
  const simd = ['avx2', 'fma', 'avx512f', 'avx512_vnni', 'amx_tile'].filter((f) => flags.includes(f))
  let nproc = availableParallelism()
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim())
  } catch {
    // availableParallelism() it is.
  }
  const require = createRequire(import.meta.url)
  const version = (pkg: string) => {
    try {
      return (require(`${pkg}/package.json`) as { version: string }).version
    } catch {
      return (JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version
    }
  }
  return {
    nproc,
    cpu: model,
    simd,
    node: process.version,
    ort: version('onnxruntime-node'),
    transformers: version('@huggingface/transformers'),
  }
}

function loadAvg(): string {
  return loadavg()
    .map((x) => x.toFixed(2))
    .join(' / ')
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/** User + system CPU seconds of a process (all its threads). */
function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

function gitCommit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src', 'bench'], { cwd: ROOT, encoding: 'utf8' }).trim()
    return dirty ? `${head} (src/ or bench/ modified)` : head
  } catch {
    return 'unknown'
  }
}

async function startServer(system: System, opts: BenchOptions, modelDir: string): Promise<ServerProcess> {
  const port = await freePort()
  const node = process.execPath
  const argv =
    system === 'engine'
      ? [node, '--import', 'tsx', 'src/main.ts', '--models', modelDir, ...(opts.graph ? ['--graph', opts.graph] : []), '--spin-wait', opts.spinWait ? 'on' : 'off', '--host', '127.0.0.1', '--port', String(port), '--workers', String(opts.engineWorkers), '--threads', String(opts.engineThreads), '--device', 'cpu', '--log-level', 'warn', '--log-format', 'json']
      : [node, '--import', 'tsx', 'bench/peer-server.ts', '--model', modelDir, '--host', '127.0.0.1', '--port', String(port), '--threads', String(opts.threads)]
  mkdirSync(OUT_DIR, { recursive: true })
  const server = new ServerProcess({ argv, cwd: ROOT, host: '127.0.0.1', port, logPath: join(OUT_DIR, `${system}.log`), readyTimeoutMs: 180_000 })
  const ms = await server.waitReady()
  log(`${system}: ready at ${server.baseUrl} after ${(ms / 1000).toFixed(1)} s (pid ${server.pid})`)
  return server
}

async function runSystem(
  system: System,
  opts: BenchOptions,
  modelDir: string,
  texts: string[],
  agreementTexts: string[],
  templateTokens: number,
  shape: ModelShape,
  windows?: WindowsInput,
): Promise<SystemResult> {
  const server = await startServer(system, opts, modelDir)
  const levels: LevelResult[] = []
  const answers: Answers = { byText: new Map(), inconsistent: 0 }
  try {
    const base = server.baseUrl
    const warmN = opts.quick ? 16 : 96
    const w = await closedLoop(base, texts, { concurrency: 8, requests: warmN, offset: Math.floor(texts.length / 2) })
    const werr = w.samples.filter((s) => !s.ok)
    if (werr.length > 0) throw new Error(`${system}: warm-up failed: ${werr[0]!.error}`)
    log(`${system}: warm-up ${warmN} requests at concurrency 8: ${fmt(warmN / (w.elapsedMs / 1000))} cls/s`)
    const agreement = (await closedLoop(base, agreementTexts, { concurrency: 1, requests: agreementTexts.length })).samples

    for (const c of opts.levels) {
      const warmupRequests = Math.max(2 * c, 16)
      const warm = await closedLoop(base, texts, { concurrency: c, requests: warmupRequests, offset: Math.floor(texts.length / 2) })
      const requests = requestsForLevel(opts.requests, warmupRequests / (warm.elapsedMs / 1000), opts.seconds, c)
      const server0 = processCpuSeconds(server.pid)
      const client0 = process.cpuUsage()
      const run = await closedLoop(base, texts, { concurrency: c, requests, offset: 0 })
      const serverCpu = processCpuSeconds(server.pid) - server0
      const clientUsage = process.cpuUsage(client0)
      const clientCpu = (clientUsage.user + clientUsage.system) / 1e6
      const elapsedS = run.elapsedMs / 1000
      const ok = run.samples.filter((s) => s.ok)
      const errors = run.samples.filter((s) => !s.ok)
      let reasoning = 0
      let prompt = 0
      let flops = 0
      for (const s of ok) {
        const seen = answers.byText.get(s.textIndex)
        if (!seen) answers.byText.set(s.textIndex, { reasoning: s.reasoning!, label: s.label! })
        else if (seen.reasoning !== s.reasoning || seen.label !== s.label) {
          answers.inconsistent++
          answers.firstInconsistent ??= { textIndex: s.textIndex, a: `${seen.label}: ${seen.reasoning}`, b: `${s.label}: ${s.reasoning}` }
        }
        const p = s.inputTokens! + templateTokens
        reasoning += s.reasoningTokens!
        prompt += p
        flops += flopsPerClassification(shape, p, s.reasoningTokens!).total
      }
      const result: LevelResult = {
        system,
        concurrency: c,
        requests,
        warmupRequests,
        errors: errors.length,
        ...(errors[0]?.error ? { firstError: errors[0].error } : {}),
        elapsedS,
        clsPerS: ok.length / elapsedS,
        tokPerS: reasoning / elapsedS,
        ttft: summarize(ok.map((s) => s.ttftMs)),
        e2e: summarize(ok.map((s) => s.totalMs)),
        meanPromptTokens: prompt / ok.length,
        meanReasoningTokens: reasoning / ok.length,
        gflops: flops / elapsedS / 1e9,
        serverCpuPct: (100 * serverCpu) / elapsedS,
        clientCpuPct: (100 * clientCpu) / elapsedS,
        load1: loadavg()[0]!,
      }
      levels.push(result)
      log(
        `${system} c=${c}: ${requests} requests in ${elapsedS.toFixed(1)} s: ${fmt(result.clsPerS)} cls/s, ${fmt(result.tokPerS)} tok/s, ` +
          `TTFT p50 ${fmt(result.ttft.p50)} p99 ${fmt(result.ttft.p99)} ms, e2e p50 ${fmt(result.e2e.p50)} p99 ${fmt(result.e2e.p99)} ms, ` +
          `${errors.length} errors, server CPU ${fmt(result.serverCpuPct)}%, client CPU ${fmt(result.clientCpuPct)}%, load ${loadAvg()}`,
      )
      if (errors.length > 0) log(`${system} c=${c}: first error: ${errors[0]!.error}`)
    }
    if (system !== 'engine' || !windows) return { levels, agreement, answers }
    return { levels, agreement, answers, windows: await measureWindows(base, windows.texts, windows.plan, log) }
  } finally {
    const exit = await server.stop()
    if (exit.code !== 0) log(`${system}: server exited with ${JSON.stringify(exit)}; log: ${relative(ROOT, join(OUT_DIR, `${system}.log`))}`)
  }
}

function compareAgreement(rows: AgreementRow[]) {
  let same = 0
  let sameLabel = 0
  let maxScoreDiff = 0
  let compared = 0
  const differing: AgreementRow[] = []
  for (const r of rows) {
    if (!r.engine?.ok || !r.peer?.ok) continue
    compared++
    if (r.engine.reasoning === r.peer.reasoning) same++
    else differing.push(r)
    if (r.engine.label === r.peer.label) sameLabel++
    for (const [k, v] of Object.entries(r.engine.scores ?? {})) {
      maxScoreDiff = Math.max(maxScoreDiff, Math.abs(v - (r.peer.scores?.[k] ?? Number.NaN)))
    }
  }
  return { compared, same, sameLabel, maxScoreDiff, differing }
}

/** The texts both systems answered during the measured levels: same reasoning, same label? */
function compareUnderLoad(engine: Answers | undefined, peer: Answers | undefined) {
  let compared = 0
  let same = 0
  let sameLabel = 0
  if (engine && peer) {
    for (const [i, e] of engine.byText) {
      const p = peer.byText.get(i)
      if (!p) continue
      compared++
      if (p.reasoning === e.reasoning) same++
      if (p.label === e.label) sameLabel++
    }
  }
  return { compared, same, sameLabel, engine, peer }
}

function levelRow(r: LevelResult | undefined): string[] {
  if (!r) return Array(13).fill('n/a')
  return [
    String(r.requests),
    r.elapsedS.toFixed(1),
    fmt(r.clsPerS),
    fmt(r.tokPerS),
    fmt(r.ttft.p50),
    fmt(r.ttft.p99),
    fmt(r.e2e.p50),
    fmt(r.e2e.p99),
    String(r.errors),
    fmt(r.meanReasoningTokens),
    fmt(r.serverCpuPct, 2),
    fmt(r.clientCpuPct, 2),
    r.load1.toFixed(2),
  ]
}

async function main(): Promise<void> {
  let opts: BenchOptions
  try {
    if (process.argv.includes('--help')) {
      console.log(BENCH_USAGE)
      return
    }
    opts = parseBenchArgs(process.argv.slice(2))
  } catch (e) {
    if (!(e instanceof UsageError)) throw e
    process.stderr.write(`bench: ${e.message}\n\n${BENCH_USAGE}\n`)
    process.exit(2)
  }
  const modelDir = resolve(ROOT, opts.model)
  const textsPath = resolve(ROOT, opts.texts)
  if (!existsSync(textsPath)) throw new Error(`texts file not found: ${textsPath} (--texts)`)
  const texts = parseTexts(readFileSync(textsPath, 'utf8'))
  if (texts.length === 0) throw new Error(`no texts in ${textsPath}`)

  const pkg = await loadPackage(modelDir)
  // The engine's graph, checked before any server starts (the peer always loads model.onnx).
  let graph: SelectedGraph
  try {
    graph = selectGraph(pkg.manifest, opts.graph)
  } catch (e) {
    process.stderr.write(`bench: --model ${opts.model}: ${(e as Error).message}\n`)
    process.exit(2)
  }
  // The raw file: the service's parsed manifest keeps only the fields it serves with.
  const manifest = JSON.parse(readFileSync(join(modelDir, 'manifest.json'), 'utf8')) as typeof pkg.manifest & {
    onnx: { parameters?: number }
    metrics?: { validation?: { accuracy?: number; n?: number } }
    files?: Record<string, string>
  }
  const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as { intermediate_size?: number; tie_word_embeddings?: boolean }
  const o = manifest.onnx
  const base = { numLayers: o.num_layers, hiddenSize: o.hidden_size, numAttentionHeads: o.num_attention_heads, numKvHeads: o.num_kv_heads, headDim: o.head_dim, vocabSize: o.vocab_size }
  const intermediate = config.intermediate_size ?? intermediateFromParameters(o.parameters ?? Number.NaN, base, config.tie_word_embeddings ?? true)
  const shape: ModelShape = { ...base, intermediateSize: intermediate }
  const templateTokens = pkg.tokenizer.encoder.numTemplateTokens

  const started = new Date()
  const info = machine()
  const loadStart = loadAvg()
  log(`${started.toISOString()}: ${info.nproc} CPUs (${info.cpu}), load average ${loadStart}; model ${manifest.id} (${modelDir}), engine graph ${graph.name} (${graph.layout}, ${graph.dtype})`)
  const matmulStart = await measureMatmul({ threads: opts.threads, seconds: opts.quick ? 1 : 3 })
  log(`matmul ${matmulStart.m}x${matmulStart.k} @ ${matmulStart.k}x${matmulStart.n}, ${opts.threads} threads: ${fmt(matmulStart.medianMs)} ms, ${fmt(matmulStart.gflops)} GFLOP/s`)

  const agreementTexts = [...texts.slice(0, Math.max(0, opts.agreement - 2)), "I didn't feel humiliated!!", "I'm SO happy 😊 and a bit nervous, honestly."]
  const windows = buildWindowsInput(opts, texts, pkg)
  const results: Partial<Record<System, SystemResult>> = {}
  for (const system of opts.systems) {
    results[system] = await runSystem(system, opts, modelDir, texts, agreementTexts, templateTokens, shape, windows)
  }
  const matmulEnd = await measureMatmul({ threads: opts.threads, seconds: opts.quick ? 1 : 3 })
  const loadEnd = loadAvg()
  const finished = new Date()
  log(`matmul again: ${fmt(matmulEnd.gflops)} GFLOP/s; load average ${loadEnd}`)

  const agreementRows: AgreementRow[] = agreementTexts.map((text, i) => ({
    text,
    ...(results.engine ? { engine: results.engine.agreement[i] } : {}),
    ...(results.peer ? { peer: results.peer.agreement[i] } : {}),
  }))
  const report = buildReport({
    opts,
    graph,
    modelDir,
    manifest,
    shape,
    templateTokens,
    info,
    started,
    finished,
    loadStart,
    loadEnd,
    matmul: [matmulStart, matmulEnd],
    results,
    agreement: compareAgreement(agreementRows),
    underLoad: compareUnderLoad(results.engine?.answers, results.peer?.answers),
  })
  console.log(report.console)

  const out = resolve(ROOT, opts.out ?? (opts.quick ? 'test-output/bench/quick.md' : 'docs/benchmarks.md'))
  mkdirSync(dirname(out), { recursive: true })
  let notes = ''
  if (existsSync(out)) {
    const old = readFileSync(out, 'utf8')
    const at = old.indexOf(NOTES_MARKER)
    if (at >= 0) notes = old.slice(at)
  }
  writeFileSync(out, `${report.markdown}\n${notes || `${NOTES_MARKER}\n`}`)
  const json = join(OUT_DIR, `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`)
  mkdirSync(OUT_DIR, { recursive: true })
  const levels = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.levels]))
  const windowsResults = results.engine?.windows ?? null
  writeFileSync(json, JSON.stringify({ opts, info, started, finished, loadStart, loadEnd, matmul: [matmulStart, matmulEnd], levels, windows: windowsResults, agreementRows }, null, 1))
  log(`wrote ${relative(ROOT, out)} and ${relative(ROOT, json)}`)
}

/**
 * The windows section's texts, built before any server starts so that a texts file too short for
 * them fails at once; undefined when the section is off (`--no-windows`, or no engine).
 */
function buildWindowsInput(opts: BenchOptions, texts: string[], pkg: Awaited<ReturnType<typeof loadPackage>>): WindowsInput | undefined {
  if (opts.windows.length === 0 || !opts.systems.includes('engine')) return undefined
  const t0 = performance.now()
  const plan = windowsPlan(opts.quick, opts.seconds)
  const count = windowCounter(pkg.tokenizer.encoder, pkg.manifest.limits.max_input_tokens)
  const byN = windowTextsByN(texts, opts.windows, plan.texts, count)
  const chars = [...byN].map(([n, ts]) => `N=${n} ${fmt(ts.reduce((a, t) => a + t.length, 0) / ts.length)}`).join(', ')
  log(`windows: ${plan.texts} texts per N built in ${((performance.now() - t0) / 1000).toFixed(1)} s (mean characters: ${chars})`)
  return { texts: byN, plan }
}

/** Why the windows section has no table. */
function windowsSkipped(opts: BenchOptions): string {
  if (opts.windows.length === 0) return '`--no-windows`'
  return opts.systems.includes('engine') ? 'no result' : 'the engine is not among `--systems`'
}

/** The Method bullet of the windows section. */
function windowsMethod(opts: BenchOptions): string {
  const plan = windowsPlan(opts.quick, opts.seconds)
  const length = plan.seconds > 0 ? `about ${plan.seconds} s (at least ${2 * plan.concurrency} requests)` : `${2 * plan.concurrency} requests (\`--quick\`)`
  return (
    `- Long texts (windows), the engine only (the peer has no windows mode; \`--no-windows\` skips it): for each N of \`--windows\` (default 1, 2, 4, 8), ${plan.texts} texts built from the texts file before any server starts. ` +
    'Each is the longest run of consecutive texts of the file, joined as bench/long-texts.ts joins rows (a full stop added to a text without end punctuation), that the service reads in exactly N windows, counted with the package\'s encoder and the service\'s own window planner (src/http/long-text/plan.ts); each text of the file goes into one text per N at most, and the bench stops when the file runs out. ' +
    `Per N: each text once at concurrency ${plan.concurrency} (the warm-up), then a closed loop of \`POST /classify\` (JSON, \`truncate: "windows"\`) at concurrency ${plan.concurrency} for ${length}; \`--requests\` does not apply. ` +
    'Every answer\'s `usage.windows` must be N, or the bench stops. texts/s and windows/s: completed texts and their windows / (last end - first send); e2e: from the send to the end of the response.'
  )
}

interface ReportInput {
  opts: BenchOptions
  /** The engine's graph. */
  graph: SelectedGraph
  modelDir: string
  manifest: { id: string; onnx: { file: string; parameters?: number }; metrics?: { validation?: { accuracy?: number; n?: number } }; files?: Record<string, string>; limits: { max_reasoning_tokens: number } }
  shape: ModelShape
  templateTokens: number
  info: ReturnType<typeof machine>
  started: Date
  finished: Date
  loadStart: string
  loadEnd: string
  matmul: [MatmulRate, MatmulRate]
  results: Partial<Record<System, SystemResult>>
  agreement: ReturnType<typeof compareAgreement>
  underLoad: ReturnType<typeof compareUnderLoad>
}

function buildReport(x: ReportInput): { markdown: string; console: string } {
  const { opts, shape, info, results } = x
  const engine = results.engine?.levels ?? []
  const peer = results.peer?.levels ?? []
  const at = (rs: LevelResult[], c: number) => rs.find((r) => r.concurrency === c)
  const rate = Math.max(x.matmul[0].gflops, x.matmul[1].gflops)
  const header = ['C', 'requests', 'seconds', 'cls/s', 'tok/s', 'TTFT p50 ms', 'TTFT p99 ms', 'e2e p50 ms', 'e2e p99 ms', 'errors', 'reasoning tok', 'server CPU %', 'client CPU %', 'load 1m']
  const table = (rs: LevelResult[]) => markdownTable(header, opts.levels.map((c) => [String(c), ...levelRow(at(rs, c))]))
  const ratioRows = opts.levels.map((c) => {
    const e = at(engine, c)
    const p = at(peer, c)
    return [
      String(c),
      e && p ? ratio(e.clsPerS, p.clsPerS) : 'n/a',
      e && p ? ratio(e.tokPerS, p.tokPerS) : 'n/a',
      e && p ? ratio(e.ttft.p50, p.ttft.p50) : 'n/a',
      e && p ? ratio(e.ttft.p99, p.ttft.p99) : 'n/a',
      e && p ? ratio(e.e2e.p50, p.e2e.p50) : 'n/a',
      e && p ? ratio(e.e2e.p99, p.e2e.p99) : 'n/a',
      e ? `${fmt(e.gflops)} (${fmt((100 * e.gflops) / rate, 2)}%)` : 'n/a',
      p ? `${fmt(p.gflops)} (${fmt((100 * p.gflops) / rate, 2)}%)` : 'n/a',
    ]
  })
  const ratioTable = markdownTable(
    ['C', 'cls/s', 'tok/s', 'TTFT p50', 'TTFT p99', 'e2e p50', 'e2e p99', 'engine GFLOP/s (share of matmul rate)', 'peer GFLOP/s (share)'],
    ratioRows,
  )

  // Targets at concurrency 32.
  const e32 = at(engine, 32)
  const p32 = at(peer, 32)
  let verdict = 'not measured (needs both systems at concurrency 32)'
  if (e32 && p32) {
    const speed = e32.clsPerS / p32.clsPerS
    const ttftOk = e32.ttft.p99 <= p32.ttft.p99
    verdict =
      `throughput ${fmt(speed, 2)}x the peer's (target at least 5x): ${speed >= 5 ? 'met' : 'NOT met'}; ` +
      `TTFT p99 ${fmt(e32.ttft.p99)} ms vs the peer's ${fmt(p32.ttft.p99)} ms (target: no worse): ${ttftOk ? 'met' : 'NOT met'}`
  }

  // Arithmetic: the measured mean token counts (engine's, else the peer's).
  const all = [...engine, ...peer]
  const meanPrompt = all.length ? all.reduce((a, r) => a + r.meanPromptTokens, 0) / all.length : Number.NaN
  const meanReasoning = all.length ? all.reduce((a, r) => a + r.meanReasoningTokens, 0) / all.length : Number.NaN
  const f = flopsPerClassification(shape, meanPrompt, meanReasoning)
  const fNeeded = flopsPerClassification(shape, meanPrompt, meanReasoning, { allLogits: false })
  const weights = matmulWeights(shape)
  const params = x.manifest.onnx.parameters
  const acc = x.manifest.metrics?.validation?.accuracy
  const a = x.agreement

  const lines: string[] = []
  lines.push('# Benchmarks')
  lines.push('')
  lines.push('Written by `npm run bench` (bench/run.ts); rerun it to refresh. Numbers from one run on one machine.')
  lines.push('')
  lines.push('## Run')
  lines.push('')
  lines.push(`- Date: ${x.started.toISOString()} to ${x.finished.toISOString()} (UTC)`)
  lines.push(`- Command: \`npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\` at commit ${gitCommit()}`)
  lines.push(`- Machine: \`nproc\` ${info.nproc}, CPU "${info.cpu}" (${info.simd.join(', ') || 'no AVX2'}); Node ${info.node}, onnxruntime-node ${info.ort}, @huggingface/transformers ${info.transformers}`)
  lines.push(`- Load average (1 / 5 / 15 min): ${x.loadStart} at the start, ${x.loadEnd} at the end. The machine is shared; other work running meanwhile lowers every number here.`)
  lines.push(
    `- Model: \`${relative(ROOT, x.modelDir)}\` (${x.manifest.id}, ${params ? `${fmt(params / 1e6, 3)}M parameters` : 'parameters not recorded'}, ` +
      `${shape.numLayers} layers, hidden ${shape.hiddenSize}, ${shape.numAttentionHeads} heads / ${shape.numKvHeads} KV heads of ${shape.headDim}, MLP ${fmt(shape.intermediateSize)}, vocabulary ${shape.vocabSize}; ` +
      `validation accuracy ${acc === undefined ? 'not recorded' : fmt(acc, 3)}; model.onnx sha256 ${(x.manifest.files?.['model.onnx'] ?? '?').slice(0, 12)})`,
  )
  lines.push(`- Threads: the engine ${opts.engineWorkers} engine worker${opts.engineWorkers === 1 ? '' : 's'} of ${opts.engineThreads} intra-op thread${opts.engineThreads === 1 ? '' : 's'} (\`--workers ${opts.engineWorkers} --threads ${opts.engineThreads}\`, spin-waiting ${opts.spinWait ? 'on (`--spin-wait`)' : 'off'}; plus its HTTP thread, so ${opts.engineWorkers * opts.engineThreads + 1} busy threads), the peer one session of ${opts.threads} intra-op threads (spin-waiting on; its HTTP and generate() share the thread that calls run(), so ${opts.threads} busy threads); CPU, greedy with grounded quoting, at most ${x.manifest.limits.max_reasoning_tokens} reasoning tokens; texts: \`${opts.texts}\` in file order, the same for both`)
  lines.push(
    `- Graphs: the engine runs the package's \`${x.graph.name}\` graph (\`${x.graph.file}\`, ${x.graph.layout} layout, ${x.graph.dtype}, sha256 ${(x.manifest.files?.[x.graph.file] ?? '?').slice(0, 12)}; \`--graph\`); the peer loads \`${x.manifest.onnx.file}\` (optimum layout, float32), the graph transformers.js can read`,
  )
  lines.push('')
  lines.push('## Targets (concurrency 32)')
  lines.push('')
  lines.push(`- ${verdict}`)
  lines.push('')
  lines.push('## Engine / peer')
  lines.push('')
  lines.push('Ratios engine / peer at each concurrency: above 1 is better for cls/s and tok/s, below 1 is better for latencies. Last two columns: useful model arithmetic per second (below) and its share of the measured matmul rate.')
  lines.push('')
  lines.push(ratioTable)
  lines.push('')
  lines.push('## This engine (the service over HTTP)')
  lines.push('')
  lines.push(table(engine))
  lines.push('')
  lines.push('## Peer (transformers.js, one generate() per request, bench/peer-server.ts)')
  lines.push('')
  lines.push(table(peer))
  lines.push('')
  lines.push(...windowsSection(results.engine?.windows, windowsSkipped(opts)))
  lines.push('## Arithmetic per classification')
  lines.push('')
  lines.push(
    `- Measured means: ${fmt(meanPrompt)} prompt tokens (the text plus ${x.templateTokens} template tokens) and ${fmt(meanReasoning)} reasoning tokens, so ` +
      `${fmt(f.tokens)} tokens pass through the model per classification (prompt, reasoning tokens fed back, the marker whose logits score the labels).`,
  )
  lines.push(
    `- Matmul weights per token: ${fmt(weights / 1e6, 3)}M (q, k, v, o and the three MLP matrices of ${shape.numLayers} layers, plus the ${shape.hiddenSize} x ${shape.vocabSize} output projection)` +
      `${params ? `; the package has ${fmt(params / 1e6, 3)}M parameters, so 2 x parameters x tokens = ${fmt((2 * params * f.tokens) / 1e6, 3)} MFLOP` : ''}.`,
  )
  lines.push(
    `- FLOPs per classification: ${fmt(f.linear / 1e6, 3)} M in matrix products with weights + ${fmt(f.attention / 1e6, 3)} M in attention (q.k and p.v over the cached positions) = **${fmt(f.total / 1e6, 3)} MFLOP**. ` +
      `Padding and unused cache slots the engine computes over are not counted. The optimum-layout graph (the peer's, and the engine's on such a graph) computes logits at every prompt position although only the last one is used (a gqa-layout graph only at the last); ` +
      `counting the output projection only where logits are used gives ${fmt(fNeeded.total / 1e6, 3)} MFLOP (${fmt((100 * (f.total - fNeeded.total)) / f.total, 2)}% less). Shares below use the graph's count.`,
  )
  lines.push(
    `- This CPU's fp32 matmul rate: ${fmt(x.matmul[0].gflops)} GFLOP/s at the start and ${fmt(x.matmul[1].gflops)} GFLOP/s at the end ` +
      `(${x.matmul[0].m}x${x.matmul[0].k} @ ${x.matmul[0].k}x${x.matmul[0].n} MatMul in onnxruntime-node, ${opts.threads} threads, median of ${x.matmul[0].runs} and ${x.matmul[1].runs} runs: ${fmt(x.matmul[0].medianMs)} and ${fmt(x.matmul[1].medianMs)} ms). ` +
      `Shares use the higher, ${fmt(rate)} GFLOP/s.`,
  )
  const best = engine.reduce<LevelResult | undefined>((b, r) => (!b || r.gflops > b.gflops ? r : b), undefined)
  if (best) {
    lines.push(
      `- The engine's best: ${fmt(best.gflops)} GFLOP/s of useful work at concurrency ${best.concurrency} = ${fmt((100 * best.gflops) / rate, 2)}% of the matmul rate` +
        ` (${fmt(best.clsPerS)} cls/s x ${fmt(f.total / 1e6, 3)} MFLOP).`,
    )
  }
  lines.push('')
  lines.push('## Agreement (same greedy decoding, two implementations)')
  lines.push('')
  if (a.compared === 0) {
    lines.push('- Not compared (needs both systems).')
  } else {
    lines.push(
      `- ${a.compared} texts sent one at a time to both (${a.compared - 2} validation texts and 2 natural ones with capitals, apostrophes and an emoji): ` +
        `identical reasoning for ${a.same}/${a.compared}, same label for ${a.sameLabel}/${a.compared}, largest score difference ${a.maxScoreDiff.toExponential(1)}.`,
    )
    for (const d of a.differing.slice(0, 3)) {
      lines.push(`- Differs: ${JSON.stringify(d.text.slice(0, 80))}: engine ${JSON.stringify(d.engine?.reasoning?.slice(0, 120))}, peer ${JSON.stringify(d.peer?.reasoning?.slice(0, 120))}`)
    }
  }
  const u = x.underLoad
  if (u.compared > 0) {
    lines.push(
      `- Under load: the ${u.compared} texts both systems answered during the measured levels (each text at several concurrencies, so inside batches of different sizes for the engine): ` +
        `identical reasoning for ${u.same}/${u.compared}, same label for ${u.sameLabel}/${u.compared}.`,
    )
  }
  for (const [name, ans] of [['engine', u.engine], ['peer', u.peer]] as const) {
    if (!ans) continue
    lines.push(
      `- ${name}: ${ans.inconsistent === 0 ? 'the same text always got the same reasoning and label' : `${ans.inconsistent} answers differed from the same system's earlier answer for that text (first: text ${ans.firstInconsistent?.textIndex}: ${JSON.stringify(ans.firstInconsistent?.a.slice(0, 100))} vs ${JSON.stringify(ans.firstInconsistent?.b.slice(0, 100))})`} across ${ans.byText.size} distinct texts.`,
    )
  }
  lines.push('')
  lines.push('## Method')
  lines.push('')
  lines.push(
    [
      '- Each system runs as its own child process on a free loopback port: the service with `node --import tsx src/main.ts --models DIR --workers W --threads T --device cpu --log-level warn` (request logging off, as the peer has none), the peer with `node --import tsx bench/peer-server.ts --model DIR --threads N`. One system at a time; the benchmark client runs in the parent process on the same cores.',
      '- The peer (bench/lib/peer.ts) loads the same folder with transformers.js (`env.allowRemoteModels = false`, `subfolder: \'\'`, `model_file_name: \'model\'`, dtype fp32, CPU, the engine\'s thread settings; ONNX Runtime\'s default spin-waiting, which the engine turns off) normalises each text with the package\'s rule (and its emoji.json for natural-v1), and calls `generate()` once per request with greedy decoding under grounded quoting: a logits processor picks each reasoning token with the engine\'s own `pickGrounded` (src/engine/grounding.ts; bos/eos/pad/sep banned, and inside a quotation only tokens that keep the quote a span of the request\'s text bytes), carrying the quotation state across steps, and leaves that token the only finite logit. That is one scan of the vocabulary per token (more only when the best token would misquote), the work the engine does per row and step, so grounding costs both systems the same and the comparison stays fair. The marker is forced after the reasoning budget, and `max_new_tokens` = budget + 2 so that the step that feeds the marker yields the label logits (read by the same processor, divided by the package\'s calibration temperature (for a register temperature, the gate\'s mix of them for that text) before the softmax, then a stopping criterion ends it): one prefill, one pass per reasoning token, one for the marker, as in the engine. A streamer sends each new piece of reasoning as an SSE `reasoning` event. Its HTTP layer is Hono on @hono/node-server with the service\'s event shapes.',
      '- Closed loop: C clients, each sending its next streamed `POST /explain` (`Accept: text/event-stream`) as soon as its previous one ended; request i gets text i of the list. Per level: a warm-up of max(2C, 16) requests (other texts), then the measured requests; without `--requests`, as many as the warm-up rate gives in about ' +
        `${opts.seconds} s (at least 8C). Before the levels, ${opts.quick ? 16 : 96} warm-up requests at concurrency 8 per system.`,
      windowsMethod(opts),
      '- cls/s: completed classifications / (last end - first send). tok/s: reasoning tokens (the streamed ones; the marker and label are not counted) / the same time. TTFT: from the send to the first non-empty `reasoning` event at the client. e2e: from the send to the `done` event. Percentiles interpolate linearly between ranks. Server and client CPU: user + system CPU time of the server process (all threads) and of the benchmark process, over the measured time (200% = both cores).',
    ].join('\n'),
  )
  lines.push('')
  const markdown = lines.join('\n')
  const console = [
    '',
    `engine / peer (engine ${opts.engineWorkers} workers x ${opts.engineThreads} threads, peer ${opts.threads} threads; ${info.nproc} CPUs, load ${x.loadStart} -> ${x.loadEnd}; engine graph ${x.graph.name}: ${x.graph.layout}, ${x.graph.dtype})`,
    ratioTable,
    '',
    'engine',
    table(engine),
    '',
    'peer',
    table(peer),
    '',
    results.engine?.windows ? `engine, texts of N windows (POST /classify, truncate "windows", concurrency ${results.engine.windows[0]?.concurrency})\n${windowsTable(results.engine.windows)}\n` : `windows: not measured (${windowsSkipped(opts)})\n`,
    `arithmetic: ${fmt(f.total / 1e6, 3)} MFLOP per classification (${fmt(f.tokens)} tokens); matmul rate ${fmt(x.matmul[0].gflops)} / ${fmt(x.matmul[1].gflops)} GFLOP/s (start / end)`,
    a.compared ? `agreement: reasoning ${a.same}/${a.compared}, label ${a.sameLabel}/${a.compared}, max score diff ${a.maxScoreDiff.toExponential(1)}` : 'agreement: not compared',
    x.underLoad.compared ? `agreement under load: reasoning ${x.underLoad.same}/${x.underLoad.compared}, label ${x.underLoad.sameLabel}/${x.underLoad.compared}; inconsistent answers: engine ${x.underLoad.engine?.inconsistent ?? 'n/a'}, peer ${x.underLoad.peer?.inconsistent ?? 'n/a'}` : '',
    `targets at C=32: ${verdict}`,
  ].join('\n')
  return { markdown, console }
}

main().catch((e) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`)
  process.exit(1)
})
