/**
 * The API over real HTTP against the real embedded models (qra default, qa by id): classify single
 * and batch, explain as JSON and as SSE, health, readiness, the page, the spec.
 */
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RunningService } from '../../src/server.js'
import { QA, QRA, expectValidResult, post, readSse, startTestService } from '../support/service.js'
import type { Result } from '../support/service.js'

let svc: RunningService
let url: string

beforeAll(async () => {
  svc = await startTestService({ models: [QRA, QA] })
  url = svc.url
})
afterAll(() => svc?.close())

describe('POST /classify', () => {
  it('classifies one text', async () => {
    const res = await post(`${url}/classify`, { text: "I didn't feel humiliated!!" })
    expect(res.status).toBe(200)
    const body = (await res.json()) as Result & { model: string }
    expect(body.model).toBe('emotion-qra-natural')
    expectValidResult(body)
    expect(body.usage.input_tokens).toBeGreaterThan(0)
    expect(body.usage.reasoning_tokens).toBeGreaterThanOrEqual(0)
    expect(body.usage.reasoning_tokens).toBeLessThanOrEqual(64)
    expect(body.reasoning).toBe(body.reasoning.trim())
  })

  it('classifies a batch in input order, each as it would be alone', async () => {
    const texts = ['i feel so happy today', 'i am furious at him', 'i feel scared of the dark']
    const res = await post(`${url}/classify`, { texts })
    expect(res.status).toBe(200)
    const body = (await res.json()) as { model: string; results: Result[] }
    expect(body.model).toBe('emotion-qra-natural')
    expect(body.results).toHaveLength(3)
    for (const r of body.results) expectValidResult(r)
    const alone = (await (await post(`${url}/classify`, { text: texts[1] })).json()) as Result
    expect(body.results[1]!.reasoning).toBe(alone.reasoning)
    expect(body.results[1]!.label).toBe(alone.label)
  })

  it('gives natural text the label its plain form gets', async () => {
    const pairs = [
      ["I'm SO happy 😊!!", 'im so happy'],
      ["I didn't feel HUMILIATED!!", 'i didnt feel humiliated'],
      ['I’m sooooo scared of the dark...', 'im so scared of the dark'],
    ]
    for (const [natural, plain] of pairs) {
      const a = (await (await post(`${url}/classify`, { text: natural })).json()) as Result
      const b = (await (await post(`${url}/classify`, { text: plain })).json()) as Result
      expect(a.label, `${natural}: ${a.reasoning}`).toBe(b.label)
    }
    // Only case and apostrophes differ: natural-v1 reads the same words, so the same answer.
    const c = (await (await post(`${url}/classify`, { text: "I Didn't Feel Humiliated" })).json()) as Result
    const d = (await (await post(`${url}/classify`, { text: 'i didnt feel humiliated' })).json()) as Result
    expect(c.reasoning).toBe(d.reasoning)
    for (const [k, v] of Object.entries(d.scores)) expect(c.scores[k as keyof typeof c.scores]).toBeCloseTo(v, 9)
  })

  it('serves the qa model by id: no reasoning, a label at once', async () => {
    const res = await post(`${url}/classify`, { text: 'i feel so happy today', model: 'emotion-qa-natural' })
    expect(res.status).toBe(200)
    const body = (await res.json()) as Result & { model: string }
    expect(body.model).toBe('emotion-qa-natural')
    expectValidResult(body)
    expect(body.reasoning).toBe('')
    expect(body.usage.reasoning_tokens).toBe(0)
  })
})

describe('POST /explain', () => {
  it('streams reasoning deltas, then the label, then done; deltas join to the reasoning', async () => {
    const text = 'i feel like im losing my mind and i hate it'
    const res = await post(`${url}/explain`, { text }, { accept: 'text/event-stream' })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const events = await readSse(res)
    const names = events.map((e) => e.event)
    const firstLabel = names.indexOf('label')
    expect(names.slice(0, firstLabel).every((n) => n === 'reasoning')).toBe(true)
    expect(names.slice(firstLabel)).toEqual(['label', 'done'])
    const deltas = events.filter((e) => e.event === 'reasoning').map((e) => (e.data as { delta: string }).delta)
    for (const d of deltas) expect(d.length).toBeGreaterThan(0)
    const label = events[firstLabel]!.data as { label: string; scores: Record<string, number> }
    const done = events.at(-1)!.data as {
      model: string
      reasoning: string
      usage: Result['usage']
      timings: { queue_ms: number; ttft_ms: number; total_ms: number }
    }
    expect(deltas.join('')).toBe(done.reasoning)
    expectValidResult({ ...label, reasoning: done.reasoning, usage: done.usage })
    expect(done.model).toBe('emotion-qra-natural')
    expect(done.timings.total_ms).toBeGreaterThanOrEqual(done.timings.ttft_ms)
    expect(done.timings.ttft_ms).toBeGreaterThanOrEqual(done.timings.queue_ms)

    // The same result as JSON (and as /classify).
    const plain = (await (await post(`${url}/explain`, { text })).json()) as Result & { timings: unknown }
    expect(plain.reasoning).toBe(done.reasoning)
    expect(plain.label).toBe(label.label)
    // Other tests' requests may share the batch: logits then differ in the last float bits.
    for (const [k, v] of Object.entries(label.scores)) expect(plain.scores[k as keyof typeof plain.scores]).toBeCloseTo(v, 9)
    expect(plain.timings).toBeDefined()
    const classified = (await (await post(`${url}/classify`, { text })).json()) as Result
    expect(classified.reasoning).toBe(done.reasoning)
  })

  it('streams a qa model as label then done', async () => {
    const res = await post(`${url}/explain`, { text: 'i am scared', model: 'emotion-qa-natural' }, { accept: 'text/event-stream' })
    const events = await readSse(res)
    expect(events.map((e) => e.event)).toEqual(['label', 'done'])
  })

  it('sends an error event when the deadline passes after the stream started', async () => {
    const res = await post(`${url}/explain`, { text: 'i feel so happy today', timeout_ms: 1 }, { accept: 'text/event-stream' })
    expect(res.status).toBe(200)
    const events = await readSse(res)
    expect(events.at(-1)).toEqual({
      event: 'error',
      data: { error: { code: 'deadline_exceeded', message: expect.stringContaining('deadline') } },
    })
  })
})

describe('operations', () => {
  it('GET /healthz', async () => {
    const res = await fetch(`${url}/healthz`)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ status: 'ok' })
  })

  it('GET /readyz names the models, device, provider and threads', async () => {
    const res = await fetch(`${url}/readyz`)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({
      status: 'ready',
      models: [
        { id: 'emotion-qra-natural', kind: 'qra' },
        { id: 'emotion-qa-natural', kind: 'qa' },
      ],
      device: 'cpu',
      provider: 'cpu',
      threads: 2,
      workers: 1,
    })
  })

  it('GET /openapi.yaml serves the committed spec', async () => {
    const res = await fetch(`${url}/openapi.yaml`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/yaml/)
    expect(await res.text()).toBe(readFileSync('openapi.yaml', 'utf8'))
  })

  it('GET / serves the chat page when it exists', async () => {
    const res = await fetch(`${url}/`)
    if (svc.service.pagePath) {
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toMatch(/^text\/html/)
    } else {
      expect(res.status).toBe(404)
    }
  })

  it('answers /healthz promptly while the engine is saturated', async () => {
    const load = Array.from({ length: 6 }, (_, i) =>
      post(`${url}/classify`, { texts: Array.from({ length: 32 }, (_, j) => `i feel number ${i} ${j} and it is strange`) }),
    )
    await new Promise((r) => setTimeout(r, 100))
    const times: number[] = []
    for (let i = 0; i < 10; i++) {
      const t = performance.now()
      const res = await fetch(`${url}/healthz`)
      expect(res.status).toBe(200)
      times.push(performance.now() - t)
      await new Promise((r) => setTimeout(r, 20))
    }
    const statuses = (await Promise.all(load)).map((r) => r.status)
    expect(statuses.every((s) => s === 200)).toBe(true)
    times.sort((a, b) => a - b)
    // The engine runs in its worker: the HTTP thread only waits for its own work.
    expect(times[Math.floor(times.length / 2)]!).toBeLessThan(100)
  })
})

describe('crash drill', () => {
  it('is off unless the service was started with it (a test-only hook)', async () => {
    await expect(svc.engines[0]!.crashWorker()).rejects.toThrow(/without crashDrill/)
    expect(svc.engines[0]!.numRestarts).toBe(0)
    expect((await fetch(`${url}/readyz`)).status).toBe(200)
  })
})
