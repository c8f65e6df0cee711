/**
 * The load-test tooling: pure statistics, arrival schedules, the SSE parser, the scenario file,
 * reporting and thresholds, the process helpers, an end-to-end run of the driver against the
 * stand-in server (no model needed), and a type-check of the runner and of the k6 scripts.
 */

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { arrivalOffsetsMs } from '../loadtest/lib/arrivals.js'
import type { Outcome } from '../loadtest/lib/client.js'
import { drive } from '../loadtest/lib/driver.js'
import { fetchLabels } from '../loadtest/lib/info.js'
import {
  buildResult,
  countOutcomes,
  evaluateThresholds,
  rssReport,
  serverCounters,
  statusBucket,
  thresholdValues,
  latencies,
} from '../loadtest/lib/report.js'
import {
  expectedArrivals,
  resolveScenario,
  validateScenarioFile,
  type ResolvedScenario,
  type ScenarioFile,
  type Thresholds,
} from '../loadtest/lib/scenarios.js'
import {
  commandFromStartScript,
  freePort,
  parseProcStatus,
  parseStatPpid,
  ServerProcess,
  treeRssMb,
} from '../loadtest/lib/server.js'
import { SseParser } from '../loadtest/lib/sse.js'
import { histogram, percentile, perSecond, summarize } from '../loadtest/lib/stats.js'
import { isLoopbackUrl, parseTextsFile } from '../loadtest/run.js'
import { required } from './support/required.js'

// A stub of the k6 modules, so that the k6 scripts' logic runs here (k6 itself is not installed).
const k6 = vi.hoisted(() => ({
  adds: [] as [string, number | boolean][],
  next: undefined as unknown,
  /** What GET /info answers. */
  info: { status: 200, body: JSON.stringify({ models: [{ labels: ['sadness', 'joy', 'love', 'anger', 'fear', 'surprise'] }] }) },
}))
vi.mock('k6', () => ({ check: () => true }))
vi.mock('k6/execution', () => ({ default: { scenario: { iterationInTest: 3 } } }))
vi.mock('k6/metrics', () => {
  class Metric {
    constructor(readonly name: string) {}
    add(v: number | boolean) {
      k6.adds.push([this.name, v])
    }
  }
  return { Counter: Metric, Rate: Metric, Trend: Metric }
})
vi.mock('k6/http', () => ({
  default: {
    expectedStatuses: () => ({}),
    get: (url: string) => (url.endsWith('/info') ? k6.info : { status: 200, body: '' }),
    post: () => k6.next,
  },
}))

const ROOT = resolve(import.meta.dirname, '..')
const SCENARIO_PATH = join(ROOT, 'loadtest/scenarios.json')
const file = JSON.parse(readFileSync(SCENARIO_PATH, 'utf8')) as ScenarioFile

describe('stats', () => {
  it('interpolates percentiles between ranks like numpy', () => {
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    expect(percentile(xs, 50)).toBeCloseTo(5.5)
    expect(percentile(xs, 90)).toBeCloseTo(9.1)
    expect(percentile(xs, 99)).toBeCloseTo(9.91)
    expect(percentile(xs, 0)).toBe(1)
    expect(percentile(xs, 100)).toBe(10)
    expect(percentile([42], 99)).toBe(42)
    expect(percentile([], 50)).toBeNaN()
  })

  it('summarizes unsorted values and empty input', () => {
    const s = summarize([30, 10, 20, 40])
    expect(s).toMatchObject({ count: 4, min: 10, max: 40, mean: 25, p50: 25 })
    expect(summarize([])).toEqual({ count: 0, min: 0, mean: 0, p50: 0, p90: 0, p95: 0, p99: 0, max: 0 })
  })

  it('puts values in the first bucket whose bound is >= the value, the rest in +Inf', () => {
    const h = histogram([0, 10, 10.5, 50, 100, 1000], [100, 10, 50])
    expect(h).toEqual([
      { le: 10, count: 2 },
      { le: 50, count: 2 },
      { le: 100, count: 1 },
      { le: Infinity, count: 1 },
    ])
  })

  it('bins event times per second and ignores those outside the run', () => {
    expect(perSecond([0, 999, 1000, 2500, -1, 3000], 3)).toEqual([2, 1, 1])
  })
})

describe('arrivals', () => {
  it('spaces a constant rate evenly from t = 0, the end excluded', () => {
    expect(arrivalOffsetsMs(1, [{ target: 1, duration_s: 3 }])).toEqual([0, 1000, 2000])
    const xs = arrivalOffsetsMs(2.5, [{ target: 2.5, duration_s: 2 }])
    expect(xs.map((x) => Math.round(x))).toEqual([0, 400, 800, 1200, 1600])
  })

  it('follows a linear ramp: N(t) = t^2/2 for 0 -> 10/s over 10 s', () => {
    const xs = arrivalOffsetsMs(0, [{ target: 10, duration_s: 10 }])
    expect(xs).toHaveLength(50)
    for (const k of [1, 8, 18, 49]) expect(xs[k]! / 1000).toBeCloseTo(Math.sqrt(2 * k), 6)
  })

  it('handles ramps down and several stages, ascending, as many as the integral', () => {
    const stages = [
      { target: 20, duration_s: 5 },
      { target: 5, duration_s: 4 },
      { target: 5, duration_s: 3 },
    ]
    const xs = arrivalOffsetsMs(10, stages)
    expect(xs.length).toBe(Math.ceil(expectedArrivals(10, stages)))
    for (let i = 1; i < xs.length; i++) expect(xs[i]!).toBeGreaterThanOrEqual(xs[i - 1]!)
    expect(xs[xs.length - 1]!).toBeLessThan(12_000)
  })

  it('refuses to schedule without bound', () => {
    expect(() => arrivalOffsetsMs(1000, [{ target: 1000, duration_s: 10 }], 100)).toThrow(/more than 100/)
  })
})

describe('SseParser', () => {
  const stream = 'event: reasoning\r\ndata: {"delta":"a"}\r\n\r\n: keep-alive\n\nevent:label\ndata: x\ndata:y\n\nid: 7\rdata: z\r\r'

  it('parses every line ending, comments, multi-line data and a missing space', () => {
    const evs = new SseParser().push(stream)
    expect(evs).toEqual([
      { event: 'reasoning', data: '{"delta":"a"}', id: undefined },
      { event: 'label', data: 'x\ny', id: undefined },
      { event: 'message', data: 'z', id: '7' },
    ])
  })

  it('gives the same events however the stream is chunked (CRLF split included)', () => {
    const whole = new SseParser().push(stream)
    for (const size of [1, 2, 3, 7]) {
      const p = new SseParser()
      const got = []
      for (let i = 0; i < stream.length; i += size) got.push(...p.push(stream.slice(i, i + size)))
      expect(got).toEqual(whole)
    }
  })

  it('does not dispatch an event without data or before its blank line', () => {
    const p = new SseParser()
    expect(p.push('event: done\n\nevent: label\ndata: 1\n')).toEqual([])
    expect(p.push('\n')).toEqual([{ event: 'label', data: '1', id: undefined }])
  })
})

describe('scenario file', () => {
  it('is valid, and every scenario resolves within the bounds', () => {
    expect(validateScenarioFile(file)).toEqual([])
    for (const name of Object.keys(file.scenarios)) expect(() => resolveScenario(file, name)).not.toThrow()
  })

  it('has the scenarios the docs and k6 examples name', () => {
    for (const name of ['smoke', 'classify_constant', 'classify_batch', 'explain_stream', 'capacity', 'overload', 'soak']) {
      expect(file.scenarios[name], name).toBeDefined()
    }
  })

  it('keeps the default run short and overload at 4x the sustainable rate for 60 s', () => {
    const smoke = resolveScenario(file, 'smoke')
    expect(smoke.duration_s).toBeGreaterThanOrEqual(10)
    expect(smoke.duration_s).toBeLessThanOrEqual(30)
    const over = resolveScenario(file, 'overload', { sustainable_rps: 10 })
    expect(over.duration_s).toBe(60)
    expect(over.parts.reduce((a, p) => a + p.start_rate, 0)).toBeCloseTo(40)
    expect(over.thresholds.error_rate_max).toBe(0)
    expect(over.thresholds.unfinished_max).toBe(0)
    const soak = resolveScenario(file, 'soak', { sustainable_rps: 10 })
    expect(soak.duration_s).toBe(600)
    expect(soak.parts.reduce((a, p) => a + p.start_rate, 0)).toBeCloseTo(10)
    expect(soak.thresholds.rss_growth_max).toBe(0.1)
  })

  it('applies overrides: duration, sustainable rate, scale', () => {
    const s = resolveScenario(file, 'classify_constant', { sustainable_rps: 8, duration_s: 5, scale: 0.5 })
    expect(s.parts[0]).toMatchObject({ start_rate: 4, duration_s: 5, stages: [{ target: 4, duration_s: 5 }] })
    const batch = resolveScenario(file, 'classify_batch', { sustainable_rps: 16 })
    expect(batch.parts[0]).toMatchObject({ start_rate: 2, batch_size: 8 })
  })

  it('names each problem in a broken file', () => {
    const bad = structuredClone(file) as unknown as Record<string, any>
    bad.sustainable_rps = 0
    bad.texts = ['ok', '']
    bad.default_thresholds.p50_ms = 3
    bad.scenarios.broken = {
      description: 'x',
      duration_s: 5,
      parts: {
        a: { endpoint: 'classify', executor: 'constant-arrival-rate', rate: 1, rate_x_sustainable: 1 },
        b: { endpoint: 'explain', executor: 'constant-vus', vus: 0, batch_size: 4 },
        c: { endpoint: 'nope', executor: 'ramping-arrival-rate', stages: [] },
      },
    }
    const errors = validateScenarioFile(bad)
    expect(errors).toEqual(
      expect.arrayContaining([
        'sustainable_rps: expected a number > 0',
        'texts[1]: expected a non-empty string',
        expect.stringMatching(/^default_thresholds\.p50_ms: unknown threshold/),
        'scenarios.broken.parts.a: give exactly one of rate, rate_x_sustainable',
        'scenarios.broken.parts.b.vus: expected an integer > 0',
        'scenarios.broken.parts.b.batch_size: only classify takes batches',
        'scenarios.broken.parts.c.endpoint: expected one of classify, explain',
        'scenarios.broken.parts.c.stages: expected a non-empty array',
      ]),
    )
  })

  it('rejects unknown names and runaway sizes', () => {
    expect(() => resolveScenario(file, 'nope')).toThrow(/unknown scenario "nope" \(known: smoke/)
    expect(() => resolveScenario(file, 'soak', { duration_s: 7200 })).toThrow(/exceeds 3600s/)
    expect(() => resolveScenario(file, 'overload', { sustainable_rps: 4000 })).toThrow(/exceeds 5000\/s/)
  })

  it('ships its own sample texts, not rows of the training data', () => {
    const rows = new Set(parseTextsFile(readFileSync(required('shared data', join(ROOT, '../shared/data/emotion/train.jsonl')), 'utf8')))
    for (const t of file.texts) expect(rows.has(t), t).toBe(false)
  })
})

function outcome(o: Partial<Outcome>): Outcome {
  return {
    part: 'p', endpoint: 'classify', due_ms: 0, start_ms: 0, end_ms: 100, status: 200, cls: 'ok', texts: 1, ...o,
  }
}

describe('report', () => {
  it("summarises the server's own counters from /metrics", () => {
    const lines = ['because_rejections_total{reason="queue_full"} 198', 'because_cancellations_total{model="m"} 2', 'because_worker_restarts_total{model="m"} 0', 'process_cpu_seconds_total 3']
    expect(serverCounters(lines)).toBe('rejected queue_full 198  cancellations 2  worker_restarts 0')
    expect(serverCounters(undefined)).toBeUndefined()
  })

  it('buckets statuses', () => {
    expect([0, 200, 204, 400, 413, 429, 500, 503, 504, 302].map(statusBucket)).toEqual([
      'none', '2xx', '2xx', '4xx', '4xx', '429', '5xx', '503', '504', 'other',
    ])
  })

  it('counts classes, reasons and contract violations', () => {
    const c = countOutcomes(
      [
        outcome({ texts: 4 }),
        outcome({ status: 429, cls: 'rejected', contract_violations: ['429_without_retry_after'] }),
        outcome({ status: 500, cls: 'failed', reason: 'http_500' }),
        outcome({ status: 0, cls: 'failed', reason: 'network' }),
        outcome({ endpoint: 'explain', cls: 'unfinished', reason: 'sse_error:deadline_exceeded' }),
      ],
      3,
    )
    expect(c).toMatchObject({ sent: 5, dropped: 3, ok: 1, rejected: 1, failed: 2, unfinished: 1, texts_ok: 4 })
    expect(c.status).toMatchObject({ '2xx': 2, '429': 1, '5xx': 1, none: 1 })
    expect(c.reasons).toEqual({ http_500: 1, network: 1, 'sse_error:deadline_exceeded': 1 })
    expect(c.contract_violations).toEqual({ '429_without_retry_after': 1 })
  })

  it('evaluates thresholds: over the limit fails, null limits are skipped, no data is n/a', () => {
    const outs = [outcome({ end_ms: 100 }), outcome({ end_ms: 300 }), outcome({ status: 503, cls: 'rejected' })]
    const values = thresholdValues(countOutcomes(outs), latencies(outs), undefined)
    expect(values.rejected_rate_max).toBeCloseTo(1 / 3)
    const t: Thresholds = {
      ...file.default_thresholds,
      classify_p95_ms: 250,
      rejected_rate_max: 0.5,
      explain_p95_ms: 100,
      rss_growth_max: null,
    }
    const r = Object.fromEntries(evaluateThresholds(t, values).map((x) => [x.key, x.pass]))
    expect(r.classify_p95_ms).toBe(false) // p95 of [100, 300] is 290
    expect(r.rejected_rate_max).toBe(true)
    expect(r.explain_p95_ms).toBeNull()
    expect('rss_growth_max' in r).toBe(false)
  })

  it('measures RSS growth from the first tenth of the load to its end', () => {
    const samples = [0, 1000, 2000, 3000, 4000, 5000, 12000].map((t, i) => ({
      t_ms: t, rss_mb: [50, 100, 110, 112, 115, 121, 60][i]!, processes: 1,
    }))
    const r = rssReport(samples, 1000, 11000)!
    expect(r).toMatchObject({ start_mb: 100, baseline_mb: 110, end_mb: 121, max_mb: 121 })
    expect(r.growth).toBeCloseTo(0.1)
    expect(rssReport([], 0, 1)).toBeUndefined()
  })
})

describe('process helpers', () => {
  it('runs a tsx start script under node directly, anything else in sh', () => {
    expect(commandFromStartScript('tsx src/main.ts', '/n')).toEqual(['/n', '--import', 'tsx', 'src/main.ts'])
    expect(commandFromStartScript('tsx src/main.ts --port 1', '/n')).toEqual([
      '/n', '--import', 'tsx', 'src/main.ts', '--port', '1',
    ])
    expect(commandFromStartScript('node dist/main.js', '/n')).toEqual(['sh', '-c', 'node dist/main.js'])
    expect(commandFromStartScript('tsx src/main.ts && echo', '/n')[0]).toBe('sh')
  })

  it('parses /proc status and stat text', () => {
    expect(parseProcStatus('Name:\tnode\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n')).toEqual({
      rss_kb: 102400,
      hwm_kb: 204800,
    })
    expect(parseProcStatus('Name:\tkthread\n')).toBeUndefined()
    expect(parseStatPpid('123 (odd) name)) S 45 123 123 0 -1')).toBe(45)
  })

  it('reads the RSS of a live process tree', () => {
    const r = treeRssMb(process.pid)
    expect(r?.rss_mb).toBeGreaterThan(10)
  })

  it('accepts only loopback targets', () => {
    for (const u of ['http://127.0.0.1:8080', 'http://localhost:1', 'http://[::1]:80/', 'https://127.9.0.1']) {
      expect(isLoopbackUrl(u), u).toBe(true)
    }
    for (const u of ['http://10.0.0.1', 'http://example.com', 'ftp://127.0.0.1', 'http://u:p@127.0.0.1', 'nope']) {
      expect(isLoopbackUrl(u), u).toBe(false)
    }
  })

  it('reads texts from JSON lines or plain lines', () => {
    expect(parseTextsFile('{"text":"a b","label":1}\n\nplain line\r\n{"label":2}\n')).toEqual(['a b', 'plain line'])
  })
})

describe('runner end to end against the stand-in server', () => {
  let server: ServerProcess

  beforeAll(async () => {
    server = new ServerProcess({
      argv: [process.execPath, '--import', 'tsx', join(ROOT, 'loadtest/testing/fake-server.ts')],
      cwd: ROOT,
      host: '127.0.0.1',
      port: await freePort(),
      env: { FAKE_SLOTS: '2', FAKE_MAX_QUEUE: '2', FAKE_TOKEN_MS: '25', FAKE_TOKENS: '4', FAKE_FAIL_EVERY: '25' },
      logPath: join(mkdtempSync(join(tmpdir(), 'because-lt-')), 'server.log'),
      readyTimeoutMs: 20_000,
    })
    await server.waitReady()
  }, 30_000)

  afterAll(async () => {
    const exit = await server?.stop(5000)
    expect(exit).toMatchObject({ code: 0, killed: false })
  })

  it('reads the labels from /info, and says why when it cannot', async () => {
    // The stand-in's labels are not the embedded emotions: nothing in the runner names a label.
    expect(await fetchLabels(server.baseUrl)).toEqual(['question', 'complaint', 'praise'])
    const nothing = `http://127.0.0.1:${await freePort()}`
    await expect(fetchLabels(nothing)).rejects.toThrow(/^GET http:\/\/127\.0\.0\.1:\d+\/info failed: /)
  })

  it('drives open-loop traffic and classifies every outcome', async () => {
    const base = resolveScenario(file, 'smoke')
    const scenario: ResolvedScenario = {
      ...base,
      drain_s: 5,
      parts: [
        { ...base.parts[0]!, start_rate: 40, stages: [{ target: 40, duration_s: 2 }], duration_s: 2 },
        { ...base.parts[1]!, start_rate: 10, stages: [{ target: 10, duration_s: 2 }], duration_s: 2 },
      ],
      duration_s: 2,
    }
    const run = await drive({ baseUrl: server.baseUrl, scenario, texts: file.texts, labels: await fetchLabels(server.baseUrl) })
    const doc = buildResult(scenario, run, { base_url: server.baseUrl })
    const c = doc.counts
    // Open loop: all 100 arrivals go out although the server serves 2 at a time (100 ms each)
    // and queues 2 more.
    expect(c.sent).toBe(100)
    expect(c.dropped).toBe(0)
    expect(c.ok + c.rejected + c.failed + c.unfinished).toBe(100)
    expect(c.ok).toBeGreaterThan(5)
    expect(c.rejected).toBeGreaterThan(10)
    expect(c.status['429']).toBe(c.rejected)
    expect(c.reasons.http_500).toBeGreaterThanOrEqual(1)
    expect(c.contract_violations).toEqual({})
    expect(c.unfinished).toBe(0)
    expect(doc.latency_ms.explain_ttft_ms.count).toBeGreaterThan(0)
    expect(doc.latency_ms.explain_ttft_ms.p50).toBeLessThan(doc.latency_ms.explain_ms.p50)
    expect(doc.by_part.explain!.counts.sent).toBe(20)
    const failed = Object.fromEntries(doc.thresholds.map((t) => [t.key, t.pass]))
    expect(failed.error_rate_max).toBe(false)
    expect(doc.pass).toBe(false)
    // A started server that does not exit 0 on SIGTERM fails the run by itself.
    const clean = { ...scenario, thresholds: { ...scenario.thresholds, error_rate_max: null, rejected_rate_max: null } }
    expect(buildResult(clean, run, {}, undefined, { code: 0, signal: null, shutdown_ms: 5, killed: false }).pass).toBe(true)
    expect(buildResult(clean, run, {}, undefined, { code: 1, signal: null, shutdown_ms: 5, killed: false }).pass).toBe(false)
    expect(buildResult(clean, run, {}, undefined, { code: null, signal: 'SIGKILL', shutdown_ms: null, killed: true }).pass).toBe(false)
  }, 30_000)

  it('abandons what is still in flight when the drain runs out, as unfinished', async () => {
    const base = resolveScenario(file, 'explain_stream')
    const scenario: ResolvedScenario = {
      ...base,
      drain_s: 0.001,
      parts: [{ ...base.parts[0]!, vus: 2, duration_s: 0.5 }],
      duration_s: 0.5,
    }
    const run = await drive({ baseUrl: server.baseUrl, scenario, texts: ['hello there'], labels: await fetchLabels(server.baseUrl) })
    const c = countOutcomes(run.outcomes)
    expect(c.sent).toBeGreaterThan(2)
    expect(c.reasons.abandoned ?? 0).toBeGreaterThanOrEqual(1)
    expect(c.unfinished).toBe(c.reasons.abandoned)
  }, 30_000)
})

describe('k6 scripts under a stub k6', () => {
  // Written out rather than `typeof import(...)`, which would pull @types/k6's globals (open,
  // __ENV) into the root program that type-checks src/.
  interface Lib {
    buildOptions(endpoints: string[]): { scenarios?: Record<string, object>; thresholds?: Record<string, string[]> }
    setup(): { labels: string[] }
    classify(data: { labels: string[] }): void
    explain(data: { labels: string[] }): void
    parseSse(body: string): { event: string; data: string }[]
  }
  const data = { labels: ['sadness', 'joy', 'love', 'anger', 'fear', 'surprise'] }
  const load = async (env: Record<string, string>, entry = 'lib'): Promise<Lib> => {
    vi.resetModules()
    const g = globalThis as Record<string, unknown>
    g.__ENV = env
    g.open = (p: string) => readFileSync(resolve(ROOT, 'loadtest/k6', p), 'utf8')
    return (await import(`../loadtest/k6/${entry}.ts`)) as Lib
  }
  beforeEach(() => {
    k6.adds = []
  })

  it('turns every scenario into k6 scenarios and thresholds', async () => {
    for (const name of Object.keys(file.scenarios)) {
      const lib = await load({ SCENARIO: name })
      const opts = lib.buildOptions(['classify', 'explain'])
      const parts = Object.keys(file.scenarios[name]!.parts)
      expect(Object.keys(opts.scenarios!), name).toEqual(parts)
      for (const sc of Object.values(opts.scenarios!)) {
        const x = sc as unknown as Record<string, unknown>
        expect(['classify', 'explain']).toContain(x.exec)
        for (const k of ['rate', 'startRate', 'vus']) {
          if (x[k] !== undefined) expect(Number.isInteger(x[k]), `${name} ${k}`).toBe(true)
        }
      }
      for (const metric of Object.keys(opts.thresholds ?? {})) {
        expect(['classify_duration', 'explain_duration', 'explain_ttft', 'failures', 'rejections', 'unfinished']).toContain(metric)
      }
    }
  })

  it('keeps fractional rates exact with a 100 s time unit, and takes SUSTAINABLE_RPS', async () => {
    const lib = await load({ SCENARIO: 'classify_batch', SUSTAINABLE_RPS: '20' })
    const sc = lib.buildOptions(['classify']).scenarios!.classify as unknown as Record<string, unknown>
    expect(sc).toMatchObject({ executor: 'constant-arrival-rate', rate: 250, timeUnit: '100s', duration: '60s' })
    expect(sc.env).toMatchObject({ BATCH: '8' })
  })

  it('entry scripts pick their endpoint and say when a scenario has none', async () => {
    const classify = await load({ SCENARIO: 'smoke' }, 'classify')
    expect(Object.keys((classify as unknown as { options: { scenarios: object } }).options.scenarios)).toEqual(['classify'])
    await expect(load({ SCENARIO: 'explain_stream' }, 'classify')).rejects.toThrow(/no classify part; try loadtest\/k6\/all.ts/)
    await expect(load({ SCENARIO: 'nope' })).rejects.toThrow(/unknown SCENARIO "nope"/)
  })

  it('setup() reads the labels from /info once, and fails when it cannot', async () => {
    const lib = await load({ SCENARIO: 'smoke' })
    expect(lib.setup()).toEqual(data)
    const saved = k6.info
    try {
      k6.info = { status: 404, body: '' }
      expect(() => lib.setup()).toThrow(/\/info answered 404/)
      k6.info = { status: 200, body: JSON.stringify({ models: [] }) }
      expect(() => lib.setup()).toThrow(/models\[0\]\.labels is not a list of labels/)
    } finally {
      k6.info = saved
    }
  })

  it('records classify outcomes like the runner: ok, rejected, failed, unfinished', async () => {
    const lib = await load({ SCENARIO: 'smoke' })
    const scores = { sadness: 0.1, joy: 0.5, love: 0.1, anger: 0.1, fear: 0.1, surprise: 0.1 }
    const cases: [unknown, string][] = [
      [{ status: 200, body: JSON.stringify({ label: 'joy', scores, reasoning: 'r' }), timings: { duration: 12 } }, 'ok'],
      [{ status: 200, body: JSON.stringify({ label: 'happy', scores }), timings: { duration: 12 } }, 'failed'],
      [{ status: 429, body: '', timings: { duration: 1 } }, 'rejected'],
      [{ status: 503, body: '', timings: { duration: 1 } }, 'rejected'],
      [{ status: 500, body: '', timings: { duration: 1 } }, 'failed'],
      [{ status: 0, error_code: 1050, body: '', timings: { duration: 1 } }, 'unfinished'],
      [{ status: 0, error_code: 1211, body: '', timings: { duration: 1 } }, 'failed'],
    ]
    for (const [res, want] of cases) {
      k6.adds = []
      k6.next = res
      lib.classify(data)
      const got = Object.fromEntries(k6.adds)
      expect(got.failures, want).toBe(want === 'failed' || want === 'unfinished')
      expect(got.rejections, want).toBe(want === 'rejected')
      expect(got.unfinished, want).toBe(want === 'unfinished' ? 1 : undefined)
      expect(got.classify_duration, want).toBe(want === 'ok' ? 12 : undefined)
    }
    // The labels checked are setup()'s, whatever they are.
    k6.adds = []
    k6.next = { status: 200, body: JSON.stringify({ label: 'calm', scores: { calm: 0.7, tense: 0.3 }, reasoning: 'r' }), timings: { duration: 5 } }
    lib.classify({ labels: ['calm', 'tense'] })
    expect(Object.fromEntries(k6.adds).failures).toBe(false)
  })

  it('reads a complete SSE body: ok needs label then done; error events are unfinished', async () => {
    const lib = await load({ SCENARIO: 'smoke' })
    const scores = { sadness: 0.1, joy: 0.5, love: 0.1, anger: 0.1, fear: 0.1, surprise: 0.1 }
    const ev = (e: string, d: unknown) => `event: ${e}\ndata: ${JSON.stringify(d)}\n\n`
    const done = ev('done', { model: 'm', reasoning: 'r', usage: {}, timings: { queue_ms: 3, ttft_ms: 40, total_ms: 90 } })
    const bodies: [string, string][] = [
      [ev('reasoning', { delta: 'a' }) + ev('label', { label: 'joy', scores }) + done, 'ok'],
      [ev('reasoning', { delta: 'a' }) + done, 'failed'],
      [ev('reasoning', { delta: 'a' }) + ev('error', { error: { code: 'deadline_exceeded', message: 'm' } }), 'unfinished'],
      [ev('reasoning', { delta: 'a' }), 'unfinished'],
    ]
    for (const [body, want] of bodies) {
      k6.adds = []
      k6.next = { status: 200, body, timings: { duration: 95 } }
      lib.explain(data)
      const got = Object.fromEntries(k6.adds)
      expect(got.failures, want).toBe(want !== 'ok')
      expect(got.explain_duration, want).toBe(want === 'ok' ? 95 : undefined)
      if (want === 'ok') expect(got.explain_ttft).toBe(40)
    }
    expect(lib.parseSse('data: a\r\ndata: b\r\n\r\n: c\n\nevent: x\ndata\n\n')).toEqual([
      { event: 'message', data: 'a\nb' },
      { event: 'x', data: '' },
    ])
  })
})

describe('type-checks', () => {
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc')

  /** tsc's own output, empty when the project type-checks. */
  const check = (project: string): string => {
    try {
      execFileSync(process.execPath, [tsc, '-p', project, '--noEmit'], { cwd: ROOT, stdio: 'pipe' })
      return ''
    } catch (e) {
      const err = e as { stdout?: Buffer; stderr?: Buffer }
      return `${err.stdout?.toString() ?? ''}${err.stderr?.toString() ?? ''}` || String(e)
    }
  }

  it('the runner (tsc -p loadtest)', () => {
    expect(check('loadtest')).toBe('')
  }, 120_000)

  it('the k6 scripts against @types/k6 (tsc -p loadtest/k6)', () => {
    expect(check('loadtest/k6')).toBe('')
  }, 120_000)
})
