/**
 * The hardening middlewares on their own, through `app.request()`: bearer keys, strict JSON bodies
 * (and the UTF-8 scanner that names the bad byte), plus the new configuration options.
 */
import fc from 'fast-check'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadApiKeys, parseConfig } from '../../src/config.js'
import { errorResponse, toApiError } from '../../src/http/errors.js'
import { bearerAuth } from '../../src/http/middleware/auth.js'
import { firstInvalidUtf8, strictJsonBody } from '../../src/http/middleware/json-body.js'

function app(...mw: Parameters<Hono['use']>[1][]) {
  const a = new Hono()
  for (const m of mw) a.use(m)
  a.post('/x', async (c) => c.json({ got: await c.req.json() }))
  a.get('/open', (c) => c.text('open'))
  a.onError((e, c) => errorResponse(c, toApiError(e)))
  return a
}

describe('bearerAuth', () => {
  const a = app(bearerAuth({ keys: ['alpha', 'beta-2'], open: ['/open'] }))
  it('accepts every key and only them', async () => {
    for (const key of ['alpha', 'beta-2']) {
      expect((await a.request('/x', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '1' })).status).toBe(200)
    }
    for (const h of <Record<string, string>[]>[{}, { authorization: 'Bearer alph' }, { authorization: 'Bearer alphaa' }, { authorization: 'alpha' }, { authorization: 'Bearer alpha beta-2' }]) {
      const res = await a.request('/x', { method: 'POST', headers: h, body: '1' })
      expect(res.status).toBe(401)
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="because"')
    }
    expect((await a.request('/open')).status).toBe(200)
  })
  it('needs a key', () => {
    expect(() => bearerAuth({ keys: [] })).toThrow()
  })
})

describe('strictJsonBody', () => {
  const a = app(strictJsonBody())
  const send = (body: string | Uint8Array, type = 'application/json') => a.request('/x', { method: 'POST', headers: { 'content-type': type }, body })
  it('parses once and hands the value on', async () => {
    expect(await (await send('{"a":"é😊"}')).json()).toEqual({ got: { a: 'é😊' } })
    expect((await send('{"a":1}', 'application/json; charset=UTF-8')).status).toBe(200)
  })
  it('rejects invalid UTF-8 naming the byte, bad JSON, and a charset other than utf-8', async () => {
    const res = await send(new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]))
    expect(res.status).toBe(400)
    expect(await res.json()).toEqual({ error: { code: 'malformed_json', message: 'request body is not valid UTF-8 (invalid byte sequence at byte 6)' } })
    expect((await send('{"a":')).status).toBe(400)
    const latin = await send('{"a":1}', 'application/json; charset=latin1')
    expect(latin.status).toBe(415)
    expect(((await latin.json()) as { error: { message: string } }).error.message).toBe('Content-Type: charset must be utf-8, got "latin1"')
  })
})

describe('firstInvalidUtf8', () => {
  it('agrees with a fatal TextDecoder on any bytes', () => {
    const decoder = new TextDecoder('utf-8', { fatal: true })
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 16 }), fc.string({ unit: 'binary' }).map((s) => new TextEncoder().encode(s))), (b) => {
        let valid = true
        try {
          decoder.decode(b)
        } catch {
          valid = false
        }
        const at = firstInvalidUtf8(b)
        expect(at === -1).toBe(valid)
        // The prefix before the bad byte decodes.
        if (at >= 0) expect(() => decoder.decode(b.subarray(0, at))).not.toThrow()
      }),
      { numRuns: 2000 },
    )
  })
})

describe('hardening options', () => {
  it('parses keys, origins and the drain timeout, with defaults off / 10 s', () => {
    expect(parseConfig([], {})).toMatchObject({ apiKeys: [], apiKeysFile: null, corsOrigins: [], drainTimeoutMs: 10_000 })
    const c = parseConfig(['--cors-origins', 'https://a.example, http://localhost:3000', '--drain-timeout-ms=500'], { API_KEYS: 'k1, k2', API_KEYS_FILE: 'keys.txt' })
    expect(c).toMatchObject({ apiKeys: ['k1', 'k2'], apiKeysFile: 'keys.txt', corsOrigins: ['https://a.example', 'http://localhost:3000'], drainTimeoutMs: 500 })
    expect(parseConfig([], { CORS_ORIGINS: '*' }).corsOrigins).toEqual(['*'])
  })
  it('rejects a bad origin, and never echoes a key', () => {
    expect(() => parseConfig(['--cors-origins', 'https://a.example/path'], {})).toThrow(ConfigError)
    expect(() => parseConfig([], { API_KEYS: ' , ' })).toThrow(new ConfigError('API_KEYS: expected a comma-separated list of API keys'))
  })
  it('loadApiKeys joins --api-keys and the file, skipping blank lines and comments', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs')
    const { join } = await import('node:path')
    const { tmpdir } = await import('node:os')
    const file = join(mkdtempSync(join(tmpdir(), 'keys-')), 'keys')
    writeFileSync(file, '# team a\nkey-a\r\n\n  key-b  \n')
    expect(loadApiKeys({ apiKeys: ['inline'], apiKeysFile: file })).toEqual(['inline', 'key-a', 'key-b'])
  })
})
