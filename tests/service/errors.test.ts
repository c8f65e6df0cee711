/**
 * Error statuses and codes over real HTTP (real model), plus the paths a real model cannot be made
 * to produce on demand (not ready) through `app.request()` with a fake engine.
 */
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EngineError } from '../../src/engine/types.js'
import { createApp } from '../../src/http/app.js'
import type { ServedModel } from '../../src/http/service.js'
import type { RunningService } from '../../src/server.js'
import { QRA, post, startTestService } from '../support/service.js'

let svc: RunningService
let url: string

beforeAll(async () => {
  // Small limits so that each can be hit cheaply; max_batch 1 and max_queue 1 for the 429.
  svc = await startTestService({ models: [QRA], maxTexts: 3, maxTextChars: 50, maxBodyBytes: 2000, timeoutMs: 20_000, maxBatch: 1, maxBatchTokens: 512, maxQueue: 1 })
  url = svc.url
})
afterAll(() => svc?.close())

async function expectError(res: Response, status: number, code: string, message?: string | RegExp) {
  const body = (await res.json()) as { error: { code: string; message: string } }
  expect({ status: res.status, code: body.error.code }).toEqual({ status, code })
  if (typeof message === 'string') expect(body.error.message).toBe(message)
  else if (message) expect(body.error.message).toMatch(message)
  return body
}

describe('4xx for bad requests', () => {
  it('400 malformed JSON', async () => {
    await expectError(await post(`${url}/classify`, '{"text": '), 400, 'malformed_json', /not valid JSON/)
  })

  it('413 body too large', async () => {
    await expectError(await post(`${url}/classify`, { text: 'a'.repeat(3000) }), 413, 'body_too_large', 'request body: at most 2000 bytes (--max-body-bytes)')
  })

  it('415 wrong content type', async () => {
    const res = await fetch(`${url}/classify`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"text":"hi"}' })
    await expectError(res, 415, 'unsupported_media_type', 'Content-Type must be application/json')
  })

  it.each([
    [{ text: 5 }, 'text: expected string, received number'],
    [{ texts: ['ok', 7] }, 'texts[1]: expected string, received number'],
    [{ text: 'hi', txt: 'x' }, 'body: unknown field "txt"; allowed: text, texts, model, timeout_ms, truncate, windows_detail'],
    [[1, 2], 'body: expected object, received array'],
    [{}, 'body: exactly one of text (a string) and texts (an array of strings) is required'],
    [{ text: 'a', texts: ['b'] }, 'body: exactly one of text (a string) and texts (an array of strings) is required'],
    [{ texts: [] }, 'texts: at least one text is required'],
    [{ text: 'hi', timeout_ms: 0 }, /^timeout_ms: /],
    [{ text: 'hi', timeout_ms: 1.5 }, /^timeout_ms: /],
    [{ text: 'hi', timeout_ms: 20_001 }, 'timeout_ms: must be at most 20000 (the server maximum), got 20001'],
  ] as const)('422 invalid_request for %j', async (body, message) => {
    await expectError(await post(`${url}/classify`, body), 422, 'invalid_request', message)
  })

  it('422 unknown_model names the models there are', async () => {
    await expectError(await post(`${url}/classify`, { text: 'hi', model: 'gpt-5' }), 422, 'unknown_model', 'model: unknown model "gpt-5"; available: emotion-qra-natural')
  })

  it('422 too_many_texts', async () => {
    await expectError(await post(`${url}/classify`, { texts: ['a', 'b', 'c', 'd'] }), 422, 'too_many_texts', 'texts: at most 3 texts per request, got 4')
  })

  it('422 text_too_long in characters', async () => {
    await expectError(await post(`${url}/classify`, { texts: ['ok', 'x'.repeat(51)] }), 422, 'text_too_long', 'texts[1]: at most 50 characters, got 51')
  })

  it('422 text_too_long in tokens, with truncate "none" only', async () => {
    const svc2 = await startTestService({ models: [QRA] })
    try {
      const text = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ')
      await expectError(
        await post(`${svc2.url}/classify`, { text, truncate: 'none' }),
        422,
        'text_too_long',
        /^text: at most 128 tokens for model emotion-qra-natural, got \d+ \(truncate "none"; "windows", "start" or "end" read it\)$/,
      )
    } finally {
      await svc2.close()
    }
  })

  it('422 text_empty after normalisation', async () => {
    // Nothing here survives either rule (natural-v1 would keep the emoji and "!" as words).
    await expectError(await post(`${url}/explain`, { text: '... -- *** "" ~' }), 422, 'text_empty', /^text: nothing left to classify/)
  })

  it('422 for /explain without text, or with texts', async () => {
    await expectError(await post(`${url}/explain`, { texts: ['a'] }), 422, 'invalid_request', 'text: required (expected string)')
    await expectError(await post(`${url}/explain`, { text: 'a', texts: ['a'] }), 422, 'invalid_request', 'body: unknown field "texts"; allowed: text, model, timeout_ms, truncate, windows_detail')
  })

  it('404 for an unknown route, as JSON', async () => {
    await expectError(await fetch(`${url}/nope`), 404, 'not_found', 'no route GET /nope; see /openapi.yaml')
  })

  it('504 when the deadline passes', async () => {
    await expectError(await post(`${url}/classify`, { text: 'i feel so happy today', timeout_ms: 1 }), 504, 'deadline_exceeded', /deadline/)
  })

  it('429 with Retry-After when the queue is full (max_batch 1 + max_queue 1)', async () => {
    const texts = Array.from({ length: 6 }, (_, i) => `i feel test number ${i}`)
    const responses = await Promise.all(texts.map((text) => post(`${url}/classify`, { text })))
    const statuses = responses.map((r) => r.status)
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(2)
    const rejected = responses.filter((r) => r.status === 429)
    expect(rejected.length).toBeGreaterThan(0)
    expect(rejected[0]!.headers.get('retry-after')).toBe('1')
    await expectError(rejected[0]!, 429, 'queue_full', /at most 2 \(workers x max_batch \+ max_queue\)/)
    // A batch larger than the whole capacity is refused outright.
    await expectError(await post(`${url}/classify`, { texts: ['a b', 'c d', 'e f'] }), 429, 'queue_full')
  })
})

describe('503 not ready (fake engine)', () => {
  const notReady: ServedModel = {
    id: 'm',
    kind: 'qra',
    labels: ['sadness', 'joy', 'love', 'anger', 'fear', 'surprise'],
    labelTokenCounts: [1, 1, 1, 1, 1, 1],
    normalize: 'lower-alnum-v1',
    maxInputTokens: 128,
    maxReasoningTokens: 64,
    card: { graph: 'fp32', layout: 'optimum', dtype: 'float32', onnxSha256: '0'.repeat(64), calibration: null, prior: null, provider: 'cpu' },
    encoder: { encode: (t: string) => ({ ids: [0, 5, 3], numTextTokens: 1, normalized: t }) } as never,
    engine: {
      ready: false,
      submit: () => {
        throw new EngineError('not_ready', 'model m is not ready')
      },
    },
  }
  const app = createApp({
    service: { models: [notReady], limits: { maxTexts: 4, maxTextChars: 100, maxBodyBytes: 1000, timeoutMs: 1000, truncate: 'windows' }, runtime: { device: 'cpu', provider: 'cpu', threads: 1, workers: 1 } },
    logger: pino({ level: 'silent' }),
  })

  it('/readyz is 503', async () => {
    const res = await app.request('/readyz')
    await expectError(res, 503, 'not_ready', 'not ready: m')
  })

  it('inference routes are 503 with Retry-After', async () => {
    const res = await app.request('/classify', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":"hi"}' })
    expect(res.headers.get('retry-after')).toBe('1')
    await expectError(res, 503, 'not_ready', 'model m is not ready')
    const sse = await app.request('/explain', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: '{"text":"hi"}',
    })
    await expectError(sse, 503, 'not_ready')
  })
})
