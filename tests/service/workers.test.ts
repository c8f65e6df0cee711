/**
 * Two engine workers for one model (`--workers 2`), over real HTTP with the real model: requests
 * are spread over both, a text gets the same answer whichever worker runs it, and a worker that
 * dies fails only the requests it held while the other keeps serving (/readyz stays 200).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RunningService } from '../../src/server.js'
import { QRA, expectValidResult, metricValue, post, startTestService } from '../support/service.js'
import type { Result } from '../support/service.js'

const MODEL = '{model="emotion-qra-natural"}'
let svc: RunningService
let url: string

beforeAll(async () => {
  svc = await startTestService({ models: [QRA], workers: 2, threads: 1, maxBatch: 4, maxBatchTokens: 512 }, undefined, { crashDrill: true })
  url = svc.url
})
afterAll(() => svc?.close())

async function until(what: string, cond: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const t = performance.now()
  while (!(await cond())) {
    if (performance.now() - t > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const metrics = async () => (await fetch(`${url}/metrics`)).text()

describe('--workers 2', () => {
  it('reports its workers in /readyz and /metrics', async () => {
    const ready = await fetch(`${url}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toMatchObject({ threads: 1, workers: 2 })
    expect(metricValue(await metrics(), 'because_workers_ready', MODEL)).toBe(2)
  })

  it('gives a text the same answer on either worker, alone or among others', async () => {
    const text = 'I was so scared walking home alone last night'
    const alone = (await (await post(`${url}/classify`, { text })).json()) as Result
    // Eight requests at once: the first goes to one worker, the next to the other, and so on.
    const crowd = await Promise.all(Array.from({ length: 8 }, (_, i) => post(`${url}/classify`, { text: i % 2 ? text : `filler text number ${i}` })))
    for (const res of crowd) expect(res.status).toBe(200)
    const answers = (await Promise.all(crowd.map((r) => r.json()))) as Result[]
    for (const a of answers.filter((_, i) => i % 2)) {
      expect(a.label).toBe(alone.label)
      expect(a.reasoning).toBe(alone.reasoning)
      expect(a.scores).toEqual(alone.scores)
    }
  })

  it('when one worker dies, fails only the requests it held; the other serves on and /readyz stays 200', async () => {
    const engine = svc.engines[0]!
    // Sixteen requests of four texts at once, spread over the two workers (4 rows each) by
    // sequences in flight: most are still queued when the worker dies.
    const texts = (i: number) => Array.from({ length: 4 }, (_, j) => `i am furious about broken promise number ${i * 4 + j}`)
    const pending = Array.from({ length: 16 }, (_, i) => post(`${url}/classify`, { texts: texts(i) }))
    await until('both workers busy', () => engine.numInFlight >= 40, 5000)
    await engine.crashWorker('crash drill', 0)

    expect(engine.ready).toBe(true)
    expect((await fetch(`${url}/readyz`)).status).toBe(200)
    const during = await post(`${url}/classify`, { text: 'i am happy today' })
    expect(during.status).toBe(200)
    expectValidResult((await during.json()) as Result)

    const statuses = await Promise.all(pending.map(async (p) => (await p).status))
    const failed = statuses.filter((s) => s === 500).length
    const served = statuses.filter((s) => s === 200).length
    expect(failed + served).toBe(16)
    expect(failed).toBeGreaterThan(0)
    expect(served).toBeGreaterThan(0)

    await until('the restarted worker', async () => metricValue(await metrics(), 'because_workers_ready', MODEL) === 2)
    expect(engine.numRestarts).toBe(1)
    expect(metricValue(await metrics(), 'because_worker_restarts_total', MODEL)).toBe(1)
    expect(metricValue(await metrics(), 'because_sequences_in_flight', MODEL)).toBe(0)
  })
})
