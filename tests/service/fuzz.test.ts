/**
 * Property-based tests (fast-check) against the real server and model: generated bodies, bytes,
 * content types, headers, methods and paths. Whatever a client sends, the answer is never a 5xx
 * (503 and 504 are the contract's answers to load and deadlines), an error is always
 * `{error: {code, message}}` with the status its code maps to, and a 200 is a well-formed result.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ERROR_STATUS } from '../../src/http/errors.js'
import type { RunningService } from '../../src/server.js'
import { QRA, expectValidResult, parseSse, startTestService } from '../support/service.js'
import type { Result } from '../support/service.js'

const KEY = 'fuzz-key-0123456789'
let svc: RunningService
let url: string

beforeAll(async () => {
  svc = await startTestService({ models: [QRA], apiKeys: [KEY], maxBodyBytes: 8192, maxTexts: 4, maxTextChars: 200, timeoutMs: 20_000 })
  url = svc.url
})
afterAll(() => svc?.close())

interface Sent {
  method?: string
  path?: string
  headers?: Record<string, string>
  body?: string | Uint8Array
}

/** Sends one request and checks the contract on whatever comes back. */
async function check(req: Sent): Promise<number> {
  const res = await fetch(`${url}${req.path ?? '/classify'}`, {
    method: req.method ?? 'POST',
    headers: req.headers ?? {},
    ...(req.body !== undefined ? { body: req.body } : {}),
  })
  const status = res.status
  const text = await res.text()
  const what = `${status} for ${JSON.stringify({ ...req, body: typeof req.body === 'string' ? req.body.slice(0, 200) : req.body?.length })}: ${text.slice(0, 300)}`
  expect(status >= 500 && status !== 503 && status !== 504, what).toBe(false)
  if (status >= 400) {
    const body = JSON.parse(text) as { error: { code: keyof typeof ERROR_STATUS; message: string } }
    expect(Object.keys(body), what).toEqual(['error'])
    expect(typeof body.error.message, what).toBe('string')
    expect(ERROR_STATUS[body.error.code], what).toBe(status)
  } else if (status === 200 && (req.path ?? '/classify') !== '/classify' && res.headers.get('content-type')?.startsWith('text/event-stream')) {
    const events = parseSse(text)
    expect(['done', 'error'], what).toContain(events.at(-1)!.event)
  } else if (status === 200 && ['/classify', '/explain'].includes(req.path ?? '/classify') && (req.method ?? 'POST') === 'POST') {
    const body = JSON.parse(text) as Result & { results?: Result[] }
    for (const r of body.results ?? [body]) expectValidResult(r)
  }
  return status
}

const json = { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }
const RUNS = Number(process.env.FUZZ_RUNS ?? 1)

/** Strings with every kind of UTF-16 unit: controls, lone surrogates, emoji, the model's markers. */
const anyText = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 40 }),
  fc.constantFrom('<|label|> joy <|eos|>', '\u0000', '\ud800', 'i feel \t fine\r\n', '😊'.repeat(30), ' '),
)

describe('no input yields a 5xx', () => {
  it('request-shaped bodies with generated texts and fields (the model runs on the valid ones)', async () => {
    const body = fc.record(
      {
        text: fc.oneof(anyText, fc.jsonValue({ maxDepth: 2 })),
        texts: fc.oneof(fc.array(anyText, { maxLength: 5 }), fc.jsonValue({ maxDepth: 2 })),
        model: fc.oneof(fc.constant('emotion-qra-natural'), fc.string({ maxLength: 10 })),
        timeout_ms: fc.oneof(fc.integer({ min: -5, max: 30_000 }), fc.double(), fc.string({ maxLength: 4 })),
        truncate: fc.oneof(fc.constantFrom('none', 'start', 'end', 'windows'), fc.jsonValue({ maxDepth: 1 })),
        windows_detail: fc.oneof(fc.boolean(), fc.jsonValue({ maxDepth: 1 })),
        extra: fc.jsonValue({ maxDepth: 1 }),
      },
      { requiredKeys: [] },
    )
    await fc.assert(
      fc.asyncProperty(body, fc.constantFrom('/classify', '/explain'), fc.boolean(), async (b, path, sse) => {
        await check({ path, headers: { ...json, ...(sse ? { accept: 'text/event-stream' } : {}) }, body: JSON.stringify(b) })
      }),
      { numRuns: 120 * RUNS },
    )
  })

  it('generated texts alone, through the tokenizer and the model', async () => {
    const statuses = new Map<number, number>()
    await fc.assert(
      fc.asyncProperty(fc.oneof(anyText, fc.array(anyText, { minLength: 1, maxLength: 4 })), fc.boolean(), async (t, sse) => {
        const body = JSON.stringify(typeof t === 'string' ? { text: t } : { texts: t })
        const path = sse && typeof t === 'string' ? '/explain' : '/classify'
        const status = await check({ path, headers: { ...json, ...(sse ? { accept: 'text/event-stream' } : {}) }, body })
        statuses.set(status, (statuses.get(status) ?? 0) + 1)
      }),
      { numRuns: 80 * RUNS },
    )
    // The generators reach the model, not only the validation.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(10)
  })

  it('any JSON value, and any bytes, as the body', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.jsonValue().map((v) => JSON.stringify(v) ?? ''), fc.uint8Array({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 100 })),
        fc.constantFrom('/classify', '/explain'),
        async (body, path) => {
          await check({ path, headers: json, body })
        },
      ),
      { numRuns: 150 * RUNS },
    )
  })

  it('invalid UTF-8 inside a JSON string is a 400, never replaced', async () => {
    const bad = fc.oneof(
      fc.constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80]),
      fc.uint8Array({ minLength: 1, maxLength: 4 }).filter((b) => !isUtf8(b)).map((b) => [...b]),
    )
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 10 }).filter((s) => !/["\\\u0000-\u001f]/.test(s)), bad, async (prefix, bytes) => {
        const enc = new TextEncoder()
        const body = new Uint8Array([...enc.encode(`{"text": "i feel ${prefix}`), ...bytes, ...enc.encode(' fine"}')])
        const res = await fetch(`${url}/classify`, { method: 'POST', headers: json, body })
        expect(res.status).toBe(400)
        const err = ((await res.json()) as { error: { code: string; message: string } }).error
        expect(err.code).toBe('malformed_json')
        expect(err.message).toMatch(/^request body is not valid UTF-8 \(invalid byte sequence at byte \d+\)$/)
      }),
      { numRuns: 40 * RUNS },
    )
  })

  it('control characters in a text are a 422 naming the field and the index', async () => {
    const control = fc.oneof(fc.integer({ min: 0, max: 0x1f }).filter((c) => c !== 9 && c !== 10 && c !== 13), fc.integer({ min: 0x7f, max: 0x9f }))
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom('i', 'feel', 'happy', '😊', ' '), { maxLength: 6 }), control, async (words, c) => {
        const before = words.join(' ')
        const text = `${before}${String.fromCharCode(c)}ok`
        const res = await fetch(`${url}/classify`, { method: 'POST', headers: json, body: JSON.stringify({ texts: ['fine', text] }) })
        expect(res.status).toBe(422)
        const err = ((await res.json()) as { error: { code: string; message: string } }).error
        expect(err.code).toBe('invalid_request')
        const hex = c.toString(16).toUpperCase().padStart(4, '0')
        expect(err.message).toBe(
          `texts[1]: control character U+${hex} at index ${[...before].length} (characters from 0); control characters other than tab, newline and carriage return are not allowed`,
        )
      }),
      { numRuns: 30 * RUNS },
    )
  })

  it('generated content types, accept and authorization headers, methods and paths', async () => {
    const printable = (max: number) => fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: max })
    const contentType = fc.oneof(
      fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/json; charset=latin1', 'APPLICATION/JSON', 'application/x+json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json;', ''),
      printable(40),
    )
    const authorization = fc.oneof(fc.constant(`Bearer ${KEY}`), fc.constant(`Bearer ${KEY}`), printable(40), fc.constant('Bearer'), fc.constant(`Bearer  ${KEY} `))
    const headers = fc.record(
      { 'content-type': contentType, authorization, accept: fc.oneof(fc.constant('text/event-stream'), printable(30)), 'x-request-id': printable(60) },
      { requiredKeys: [] },
    )
    await fc.assert(
      fc.asyncProperty(
        headers,
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'),
        fc.oneof(fc.constantFrom('/classify', '/explain', '/metrics', '/readyz', '/healthz', '/', '/openapi.yaml'), printable(20).map((p) => `/${encodeURIComponent(p)}`)),
        fc.oneof(fc.constant('{"text": "i am happy"}'), fc.constant('{"texts": ["a b", "c d"]}'), fc.jsonValue().map((v) => JSON.stringify(v) ?? '')),
        async (h, method, path, body) => {
          await check({ method, path, headers: h as Record<string, string>, ...(method === 'GET' ? {} : { body }) })
        },
      ),
      { numRuns: 150 * RUNS },
    )
  })
})

function isUtf8(b: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b)
    return true
  } catch {
    return false
  }
}
