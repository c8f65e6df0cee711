/**
 * Operations over real HTTP against the real model: API keys, CORS, /metrics (cancellation and a
 * worker crash seen in them), request ids, and logs that never hold keys or texts.
 * One service: two keys, one CORS origin, a small batch (4 rows) so that requests queue.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RunningService } from '../../src/server.js'
import { QRA, captureLogger, expectValidResult, metricValue, post, readSse, readUntilFirstReasoning, startTestService } from '../support/service.js'
import type { Result } from '../support/service.js'

const KEY = 'sk-test-4f8a1c9e2b7d4e6f'
const KEY2 = 'second-key-with-=-and-_'
const ORIGIN = 'https://chat.example.com'
const MODEL = '{model="emotion-qra-natural"}'
// A text no log line may ever contain (the secret sentence), and what the access log may say.
const SECRET_TEXT = 'i feel zanzibar quokka melancholy tonight'

let svc: RunningService
let url: string
const { logger, lines } = captureLogger('trace')
const auth = (key = KEY) => ({ authorization: `Bearer ${key}` })

beforeAll(async () => {
  svc = await startTestService({ models: [QRA], apiKeys: [KEY, KEY2], corsOrigins: [ORIGIN], maxBatch: 4, maxBatchTokens: 512 }, logger, { crashDrill: true })
  url = svc.url
})
afterAll(() => svc?.close())

async function metrics(): Promise<string> {
  const res = await fetch(`${url}/metrics`, { headers: auth() })
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return res.text()
}

async function until(what: string, cond: () => Promise<boolean> | boolean, ms = 3000): Promise<void> {
  const t = performance.now()
  while (!(await cond())) {
    if (performance.now() - t > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe('API keys', () => {
  it.each([
    ['no Authorization', {}, 'this service needs an API key: send Authorization: Bearer <key>'],
    ['a wrong key', auth('sk-test-4f8a1c9e2b7d4e6X'), 'Authorization: the API key is not valid'],
    ['a prefix of the key', auth(KEY.slice(0, -1)), 'Authorization: the API key is not valid'],
    ['another scheme', { authorization: `Basic ${KEY}` }, 'Authorization: expected Bearer <key>'],
    ['an empty bearer', { authorization: 'Bearer ' }, 'Authorization: expected Bearer <key>'],
  ])('401 unauthorized with WWW-Authenticate for %s', async (_what, headers, message) => {
    const res = await post(`${url}/classify`, { text: 'i am happy' }, headers as Record<string, string>)
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="because"')
    expect(await res.json()).toEqual({ error: { code: 'unauthorized', message } })
  })

  it('checks the key before reading the body', async () => {
    const res = await post(`${url}/explain`, '{"text": broken', { accept: 'text/event-stream' })
    expect(res.status).toBe(401)
  })

  it('serves each configured key, case-insensitive scheme', async () => {
    for (const headers of [auth(), auth(KEY2), { authorization: `bearer ${KEY}` }]) {
      const res = await post(`${url}/classify`, { text: 'i am so happy today' }, headers)
      expect(res.status).toBe(200)
      expectValidResult((await res.json()) as Result)
    }
  })

  it('leaves /healthz, /readyz, / and /openapi.yaml open; /metrics needs the key', async () => {
    for (const path of ['/healthz', '/readyz', '/', '/openapi.yaml']) expect((await fetch(`${url}${path}`)).status, path).toBe(200)
    const res = await fetch(`${url}/metrics`)
    expect(res.status).toBe(401)
    expect((await fetch(`${url}/metrics`, { headers: auth(KEY2) })).status).toBe(200)
  })

  it('answers an unknown route 401 without a key (nothing is learnt about routes) and 404 with one', async () => {
    expect((await fetch(`${url}/admin`)).status).toBe(401)
    expect((await fetch(`${url}/admin`, { headers: auth() })).status).toBe(404)
  })
})

describe('CORS', () => {
  it('answers the preflight of a JSON POST with Authorization from an allowed origin', async () => {
    const res = await fetch(`${url}/explain`, {
      method: 'OPTIONS',
      headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization' },
    })
    expect(res.status).toBe(204)
    expect(res.headers.get('access-control-allow-origin')).toBe(ORIGIN)
    expect(res.headers.get('access-control-allow-methods')).toContain('POST')
    expect(res.headers.get('access-control-allow-headers')!.toLowerCase().split(',')).toEqual(expect.arrayContaining(['content-type', 'authorization']))
    expect(res.headers.get('access-control-max-age')).toBe('600')
  })

  it('allows the origin on responses, errors included, and exposes Retry-After and the request id', async () => {
    const ok = await post(`${url}/classify`, { text: 'i am happy' }, { ...auth(), origin: ORIGIN })
    expect(ok.headers.get('access-control-allow-origin')).toBe(ORIGIN)
    expect(ok.headers.get('access-control-expose-headers')).toContain('Retry-After')
    expect(ok.headers.get('access-control-expose-headers')).toContain('X-Request-Id')
    const denied = await post(`${url}/classify`, { text: 'i am happy' }, { origin: ORIGIN })
    expect(denied.status).toBe(401)
    expect(denied.headers.get('access-control-allow-origin')).toBe(ORIGIN)
  })

  it('sends no allow-origin to another origin', async () => {
    const res = await fetch(`${url}/classify`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    })
    expect(res.headers.get('access-control-allow-origin')).toBeNull()
    const get = await fetch(`${url}/healthz`, { headers: { origin: 'https://evil.example' } })
    expect(get.headers.get('access-control-allow-origin')).toBeNull()
  })
})

describe('request ids', () => {
  it('echoes a valid x-request-id, makes one otherwise, on success and error alike', async () => {
    const mine = await post(`${url}/classify`, { text: 'i am happy' }, { ...auth(), 'x-request-id': 'trace-abc-123' })
    expect(mine.headers.get('x-request-id')).toBe('trace-abc-123')
    const made = await post(`${url}/classify`, { text: 5 }, auth())
    expect(made.status).toBe(422)
    expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
  })
})

describe('/metrics', () => {
  it('counts requests by route and status, rejections by reason, tokens and latencies', async () => {
    const before = await metrics()
    const ok = (metricValue(before, 'because_http_requests_total', '{route="/classify",method="POST",status="200"}') ?? 0) + 1
    const bad = (metricValue(before, 'because_rejections_total', '{reason="invalid_request"}') ?? 0) + 1
    const tokens = metricValue(before, 'because_generated_tokens_total', MODEL)!
    const r = (await (await post(`${url}/classify`, { text: 'i am so happy today' }, auth())).json()) as Result
    await post(`${url}/classify`, { text: 'a\u0000b' }, auth())
    const events = await readSse(await post(`${url}/explain`, { text: 'i am scared of the dark' }, { ...auth(), accept: 'text/event-stream' }))
    expect(events.at(-1)!.event).toBe('done')
    const after = await metrics()
    expect(metricValue(after, 'because_http_requests_total', '{route="/classify",method="POST",status="200"}')).toBe(ok)
    expect(metricValue(after, 'because_http_requests_total', '{route="/explain",method="POST",status="200"}')).toBeGreaterThanOrEqual(1)
    expect(metricValue(after, 'because_rejections_total', '{reason="invalid_request"}')).toBe(bad)
    expect(metricValue(after, 'because_rejections_total', '{reason="unauthorized"}')).toBeGreaterThanOrEqual(1)
    const reasoningTokens = (events.at(-1)!.data as Result).usage.reasoning_tokens
    expect(metricValue(after, 'because_generated_tokens_total', MODEL)).toBe(tokens + r.usage.reasoning_tokens + reasoningTokens)
    for (const name of ['because_time_to_first_token_seconds', 'because_inter_token_latency_seconds', 'because_request_duration_seconds', 'because_queue_time_seconds']) {
      expect(metricValue(after, `${name}_count`, MODEL), name).toBeGreaterThan(0)
    }
    expect(metricValue(after, 'because_batch_size_count', '{model="emotion-qra-natural",pass="decode"}')).toBeGreaterThan(0)
    expect(metricValue(after, 'because_batch_size_count', '{model="emotion-qra-natural",pass="prefill"}')).toBeGreaterThan(0)
    for (const name of ['because_queue_depth', 'because_running_sequences', 'because_sequences_in_flight']) expect(metricValue(after, name, MODEL), name).toBe(0)
    expect(metricValue(after, 'because_worker_up', MODEL)).toBe(1)
    expect(metricValue(after, 'process_resident_memory_bytes')).toBeGreaterThan(0)
    // Client-made paths do not become label values.
    await fetch(`${url}/no/such/path/${Math.random()}`, { headers: auth() })
    expect(await metrics()).toMatch(/because_http_requests_total\{route="other",method="GET",status="404"\} \d/)
  })

  it('shows queue depth and running sequences under load, and a full batch of 4', async () => {
    const texts = Array.from({ length: 24 }, (_, i) => `i feel nervous about test ${i}`)
    const pending = post(`${url}/classify`, { texts }, auth())
    let seen = { waiting: 0, running: 0 }
    await until('a queue', async () => {
      const m = await metrics()
      seen = { waiting: metricValue(m, 'because_queue_depth', MODEL)!, running: metricValue(m, 'because_running_sequences', MODEL)! }
      return seen.waiting > 0 && seen.running > 0
    }, 10_000)
    expect(seen.running).toBeLessThanOrEqual(4)
    expect((await pending).status).toBe(200)
    const m = await metrics()
    expect(metricValue(m, 'because_batch_size_bucket', '{le="4",model="emotion-qra-natural",pass="decode"}')).toBe(
      metricValue(m, 'because_batch_size_count', '{model="emotion-qra-natural",pass="decode"}'),
    )
  })

  it('shows a cancellation: a stream whose client hangs up is counted and leaves the batch within a step', async () => {
    const engine = svc.engines[0]!
    // Hang up right after the first reasoning delta, while the sequence still runs. A fast graph can
    // finish a short reasoning before the hang-up lands (then no cancellation is counted): try the
    // next text.
    let hungUp = false
    let waited = 0
    for (let attempt = 0; attempt < 5 && !hungUp; attempt++) {
      const before = metricValue(await metrics(), 'because_cancellations_total', MODEL)!
      const controller = new AbortController()
      const text = `i feel like everything is falling apart around me and nobody cares ${attempt}`
      const res = await post(`${url}/explain`, { text }, { ...auth(), accept: 'text/event-stream' }, { signal: controller.signal })
      await readUntilFirstReasoning(res)
      controller.abort()
      const t = performance.now()
      await until('the stream to end', () => engine.numInFlight === 0)
      const m = await metrics()
      hungUp = metricValue(m, 'because_cancellations_total', MODEL) === before + 1
      if (hungUp) {
        await until('the running sequence to leave', async () => metricValue(await metrics(), 'because_running_sequences', MODEL) === 0)
        waited = performance.now() - t
      }
    }
    expect(hungUp).toBe(true)
    // A decode step of one row takes a few ms; allow a loaded machine's scheduling on top.
    expect(waited).toBeLessThan(2000)
    const m = await metrics()
    expect(metricValue(m, 'because_sequences_in_flight', MODEL)).toBe(0)
    expect(metricValue(m, 'because_rejections_total', '{reason="client_closed_request"}')).toBeGreaterThanOrEqual(1)
  })
})

describe('worker crash (killed through the test-only crash drill while requests are in flight)', () => {
  it('fails held requests with an error, /readyz reflects it, the worker restarts, service resumes, the metric counts it', async () => {
    const engine = svc.engines[0]!
    const restarts = metricValue(await metrics(), 'because_worker_restarts_total', MODEL)!
    const numRestarts = engine.numRestarts
    // 40 sequences through 4 rows: most of them are held when the worker dies.
    const batch = post(`${url}/classify`, { texts: Array.from({ length: 40 }, (_, i) => `i am angry about thing ${i}`) }, auth())
    const stream = await post(`${url}/explain`, { text: 'i am so lonely without my friends' }, { ...auth(), accept: 'text/event-stream' })
    expect(stream.status).toBe(200)
    await until('sequences in flight', () => engine.numInFlight > 4)
    await engine.crashWorker()

    const res = await batch
    expect(res.status).toBe(500)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('engine_failed')
    const events = await readSse(stream)
    expect(events.at(-1)).toMatchObject({ event: 'error', data: { error: { code: 'engine_failed' } } })

    expect(engine.ready).toBe(false)
    const ready = await fetch(`${url}/readyz`)
    expect(ready.status).toBe(503)
    expect(((await ready.json()) as { error: { code: string } }).error.code).toBe('not_ready')
    const during = await post(`${url}/classify`, { text: 'i am happy' }, auth())
    expect(during.status).toBe(503)
    expect(during.headers.get('retry-after')).toBe('1')
    expect(metricValue(await metrics(), 'because_worker_up', MODEL)).toBe(0)

    await until('the restarted worker', async () => (await fetch(`${url}/readyz`)).status === 200, 30_000)
    expect(engine.ready).toBe(true)
    expect(engine.numRestarts).toBe(numRestarts + 1)
    const again = await post(`${url}/classify`, { text: 'i am so happy today' }, auth())
    expect(again.status).toBe(200)
    expectValidResult((await again.json()) as Result)
    const m = await metrics()
    expect(metricValue(m, 'because_worker_restarts_total', MODEL)).toBe(restarts + 1)
    expect(metricValue(m, 'because_worker_up', MODEL)).toBe(1)
    expect(metricValue(m, 'because_rejections_total', '{reason="engine_failed"}')).toBeGreaterThanOrEqual(2)
    expect(metricValue(m, 'because_sequences_in_flight', MODEL)).toBe(0)
  })
})

describe('logs', () => {
  it('never hold an API key or a text; they hold request ids and sizes', async () => {
    const before = lines.length
    await post(`${url}/classify`, { text: SECRET_TEXT }, auth())
    await post(`${url}/classify`, { texts: [SECRET_TEXT, 'x\u0007'] }, auth())
    await readSse(await post(`${url}/explain`, { text: SECRET_TEXT }, { ...auth(KEY2), accept: 'text/event-stream' }))
    await post(`${url}/classify`, { text: SECRET_TEXT }, auth('wrong-key-value-1234'))
    await post(`${url}/classify`, `{"text": "${SECRET_TEXT}"`, auth())
    await post(`${url}/classify`, { text: SECRET_TEXT, timeout_ms: 1 }, auth())
    await post(`${url}/explain`, { text: SECRET_TEXT, timeout_ms: 1 }, { ...auth(), accept: 'text/event-stream' }).then((r) => r.text())
    const logged = lines.slice(before)
    expect(logged.length).toBeGreaterThanOrEqual(7)
    const all = lines.join('\n')
    for (const secret of [KEY, KEY2, 'wrong-key-value-1234', 'zanzibar', 'quokka']) expect(all).not.toContain(secret)
    const requests = logged.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request')
    expect(requests.length).toBeGreaterThanOrEqual(7)
    for (const l of requests) expect(l.req_id).toEqual(expect.any(String))
    expect(requests[0]).toMatchObject({ path: '/classify', status: 200, texts: 1, chars: SECRET_TEXT.length, tokens: expect.any(Number), bytes: expect.any(Number) })
    expect(requests.find((l) => l.status === 401)).toMatchObject({ code: 'unauthorized' })
  })
})
