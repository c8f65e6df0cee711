/**
 * @module
 * The project's load-test runner: `npm run loadtest -- [scenario] [options]`.
 *
 * Reads loadtest/scenarios.json (the file the k6 scripts read), starts the service on a free
 * loopback port (or targets a running one with --url), waits for /readyz, reads the default
 * model's labels from /info (answers are checked against them), drives the scenario
 * open loop, stops the server with SIGTERM, prints a summary and writes the full result as JSON.
 * Exit status: 0 when every threshold passes, 1 when one fails, 2 on a usage or start-up error.
 */

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { sendRequest } from './lib/client.js'
import { drive, type LiveCounters } from './lib/driver.js'
import { fetchLabels } from './lib/info.js'
import { buildResult, formatResult, rssReport } from './lib/report.js'
import {
  resolveScenario,
  validateScenarioFile,
  type Endpoint,
  type ResolvedScenario,
  type ScenarioFile,
} from './lib/scenarios.js'
import { commandFromStartScript, freePort, RssSampler, ServerProcess, type ExitInfo } from './lib/server.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

const USAGE = `usage: npm run loadtest -- [scenario] [options]

  scenario                 a name from the scenario file (default: smoke); --list shows them
  --file PATH              scenario file (default: loadtest/scenarios.json)
  --url URL                target a running server instead of starting one (loopback only)
  --pid N                  with --url: sample this process's RSS
  --server-cmd CMD         start the server with CMD (sh -c) instead of package.json's start
  --server-env K=V         extra environment for the started server (repeatable)
  --sustainable-rps N      override sustainable_rps (scales every rate_x_sustainable part)
  --duration S             override the duration of constant-rate and constant-vus parts
  --scale X                multiply every arrival rate and VU count
  --texts-file PATH        texts to send instead of the file's samples: JSON lines with a
                           "text" field (e.g. ../shared/data/emotion/validation.jsonl) or plain lines
  --api-key KEY            bearer token (default: $LOADTEST_API_KEY)
  --ready-timeout S        how long to wait for /readyz (default 180)
  --out PATH               result JSON (default: test-output/loadtest/<scenario>-<time>.json)
  --quiet                  no progress lines
  --list                   list the scenarios and exit`

/** Only loopback targets: this tool is for the service on this machine, never a third party. */
export function isLoopbackUrl(raw: string): boolean {
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    return false
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return false
  if (u.username || u.password) return false
  const h = u.hostname
  return h === 'localhost' || h === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
}

import { parseTexts as parseTextsFile } from './lib/texts.js'

export { parseTextsFile }

function fail(msg: string): never {
  process.stderr.write(`loadtest: ${msg}\n`)
  process.exit(2)
}

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '')
}

function progress(l: LiveCounters): void {
  process.stderr.write(
    `  t=${l.elapsed_s.toFixed(0).padStart(4)}s sent ${l.sent} ok ${l.ok} rejected ${l.rejected} failed ${l.failed} unfinished ${l.unfinished} in-flight ${l.in_flight} dropped ${l.dropped}\n`,
  )
}

async function warmup(baseUrl: string, s: ResolvedScenario, texts: string[], labels: readonly string[], apiKey?: string): Promise<void> {
  const endpoints = new Set<Endpoint>(s.parts.map((p) => p.endpoint))
  const t0 = performance.now()
  let ok = 0
  let tried = 0
  const reasons: string[] = []
  for (let i = 0; i < s.warmup_requests; i++) {
    for (const endpoint of endpoints) {
      tried++
      const out = await sendRequest({
        baseUrl,
        part: 'warmup',
        endpoint,
        texts: [texts[i % texts.length]!],
        labels,
        clientTimeoutMs: s.client_timeout_ms,
        apiKey,
        abandon: new AbortController().signal,
        t0,
        due_ms: 0,
      })
      if (out.cls === 'ok') ok++
      else reasons.push(`${endpoint}: ${out.cls} ${out.reason ?? ''} (status ${out.status})`)
    }
  }
  if (tried > 0 && ok === 0) throw new Error(`every warm-up request failed: ${reasons.join('; ')}`)
  if (reasons.length > 0) process.stderr.write(`loadtest: warm-up problems: ${reasons.join('; ')}\n`)
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      scenario: { type: 'string', short: 's' },
      file: { type: 'string' },
      url: { type: 'string' },
      pid: { type: 'string' },
      'server-cmd': { type: 'string' },
      'server-env': { type: 'string', multiple: true },
      'sustainable-rps': { type: 'string' },
      duration: { type: 'string' },
      scale: { type: 'string' },
      'texts-file': { type: 'string' },
      'api-key': { type: 'string' },
      'ready-timeout': { type: 'string' },
      out: { type: 'string' },
      quiet: { type: 'boolean' },
      list: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    process.stdout.write(USAGE + '\n')
    return 0
  }
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined
    const n = Number(v)
    if (!Number.isFinite(n) || n <= 0) fail(`--${name}: expected a number > 0, got "${v}"`)
    return n
  }

  const filePath = resolve(values.file ?? join(ROOT, 'loadtest/scenarios.json'))
  const raw: unknown = JSON.parse(readFileSync(filePath, 'utf8'))
  const errors = validateScenarioFile(raw)
  if (errors.length > 0) fail(`${filePath}:\n  ${errors.join('\n  ')}`)
  const file = raw as ScenarioFile

  if (values.list) {
    for (const [name, s] of Object.entries(file.scenarios)) process.stdout.write(`${name.padEnd(20)} ${s.description}\n`)
    return 0
  }

  const name = values.scenario ?? positionals[0] ?? 'smoke'
  let scenario: ResolvedScenario
  try {
    scenario = resolveScenario(file, name, {
      sustainable_rps: num('sustainable-rps', values['sustainable-rps']),
      duration_s: num('duration', values.duration),
      scale: num('scale', values.scale),
    })
  } catch (e) {
    fail((e as Error).message)
  }
  const texts = values['texts-file'] ? parseTextsFile(readFileSync(values['texts-file'], 'utf8')) : file.texts
  if (texts.length === 0) fail(`no texts in ${values['texts-file']}`)
  const apiKey = values['api-key'] ?? process.env.LOADTEST_API_KEY

  const outDir = join(ROOT, 'test-output/loadtest')
  mkdirSync(outDir, { recursive: true })
  const runId = `${name}-${stamp()}`
  const outPath = resolve(values.out ?? join(outDir, `${runId}.json`))

  let server: ServerProcess | undefined
  let sampler: RssSampler | undefined
  let baseUrl: string
  const target: Record<string, unknown> = {}
  const samplerT0 = performance.now()

  const onSignal = () => {
    server?.killNow()
    process.exit(130)
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  if (values.url) {
    if (!isLoopbackUrl(values.url)) fail(`--url must be a loopback http(s) URL, got "${values.url}"`)
    baseUrl = values.url.replace(/\/+$/, '')
    target.base_url = baseUrl
    target.started_server = false
    if (values.pid) {
      sampler = new RssSampler(Number(values.pid))
      target.pid = Number(values.pid)
    }
  } else {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts?: { start?: string } }
    const start = pkg.scripts?.start
    if (!values['server-cmd'] && !start) fail('package.json has no start script; pass --server-cmd or --url')
    const argv = values['server-cmd'] ? ['sh', '-c', values['server-cmd']] : commandFromStartScript(start!)
    const env: Record<string, string> = {}
    for (const kv of values['server-env'] ?? []) {
      const i = kv.indexOf('=')
      if (i <= 0) fail(`--server-env: expected KEY=VALUE, got "${kv}"`)
      env[kv.slice(0, i)] = kv.slice(i + 1)
    }
    const port = await freePort()
    const logPath = join(outDir, `${runId}.server.log`)
    server = new ServerProcess({
      argv,
      cwd: ROOT,
      host: '127.0.0.1',
      port,
      env,
      logPath,
      readyTimeoutMs: (num('ready-timeout', values['ready-timeout']) ?? 180) * 1000,
    })
    baseUrl = server.baseUrl
    sampler = new RssSampler(server.pid)
    Object.assign(target, {
      base_url: baseUrl,
      started_server: true,
      argv,
      env,
      pid: server.pid,
      log: relative(ROOT, logPath),
    })
    process.on('exit', () => server?.killNow())
  }
  sampler?.start(samplerT0)

  let exit: ExitInfo | undefined
  try {
    if (server) {
      process.stderr.write(`loadtest: starting ${target.argv ? (target.argv as string[]).join(' ') : ''} on ${baseUrl}\n`)
      target.ready_ms = Math.round(await server.waitReady())
      process.stderr.write(`loadtest: ready after ${target.ready_ms} ms\n`)
    }
    const labels = await fetchLabels(baseUrl, apiKey)
    target.labels = labels
    await warmup(baseUrl, scenario, texts, labels, apiKey)
    process.stderr.write(`loadtest: running ${name} for ${scenario.duration_s} s (${scenario.parts.map(describePart).join('; ')})\n`)
    const run = await drive({ baseUrl, scenario, texts, labels, apiKey, onTick: values.quiet ? undefined : progress })
    target.metrics_after = await scrapeMetrics(baseUrl, apiKey)
    if (server) {
      sampler?.sample()
      exit = await server.stop()
    }
    sampler?.stop()
    const runStart = run.t0 - samplerT0
    const rss = sampler ? rssReport(sampler.samples, runStart, runStart + run.arrivals_end_ms) : undefined
    const result = buildResult(scenario, run, target, rss, exit)
    writeFileSync(outPath, JSON.stringify(result, null, 2) + '\n')
    process.stdout.write(formatResult(result) + '\n')
    process.stdout.write(`  written to ${relative(process.cwd(), outPath)}\n`)
    return result.pass ? 0 : 1
  } catch (e) {
    process.stderr.write(`loadtest: ${(e as Error).message}\n`)
    return 2
  } finally {
    sampler?.stop()
    if (server?.running) await server.stop(10_000)
  }
}

/**
 * The server's own counters after the load (rejections by reason, cancellations, worker
 * restarts...): the sample lines of GET /metrics, comments dropped, at most 2,000 lines;
 * undefined when the route is missing.
 */
async function scrapeMetrics(baseUrl: string, apiKey?: string): Promise<string[] | undefined> {
  try {
    const headers: Record<string, string> = apiKey ? { authorization: `Bearer ${apiKey}` } : {}
    const res = await fetch(`${baseUrl}/metrics`, { headers, signal: AbortSignal.timeout(5000) })
    const text = await res.text()
    if (res.status !== 200) return undefined
    return text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).slice(0, 2000)
  } catch {
    return undefined
  }
}

function describePart(p: ResolvedScenario['parts'][number]): string {
  const what = p.endpoint + (p.batch_size > 1 ? ` x${p.batch_size}` : '')
  if (p.executor === 'constant-vus') return `${p.name}: ${what}, ${p.vus} VUs`
  if (p.executor === 'constant-arrival-rate') return `${p.name}: ${what} at ${+p.start_rate.toFixed(2)}/s`
  return `${p.name}: ${what} ramping ${p.start_rate} -> ${p.stages.map((s) => s.target).join(' -> ')}/s`
}

// Run only as a script, so that tests can import the helpers above.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`loadtest: ${(e as Error).stack ?? String(e)}\n`)
      process.exit(2)
    },
  )
}
