/**
 * The OpenAI-compatible routes over real HTTP against the real models, driven by the official
 * `openai` SDK (what chat UIs and applications use), plus raw reads that pin the wire format:
 * the chunks of a stream, error bodies, statuses and headers.
 */
import fc from 'fast-check'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ERROR_STATUS } from '../../src/http/errors.js'
import type { RunningService } from '../../src/server.js'
import { LABELS, QA, QRA, expectValidResult, metricValue, post, startTestService } from '../support/service.js'
import type { Result } from '../support/service.js'

const KEY = 'sk-openai-test-5d1e'
const TEXT = 'i feel like im losing my mind and i hate it'
let svc: RunningService
let url: string
let client: OpenAI

beforeAll(async () => {
  svc = await startTestService({ models: [QRA, QA], apiKeys: [KEY] })
  url = svc.url
  // No retries: a 429 or 5xx must surface here, not be retried away.
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0 })
})
afterAll(() => svc?.close())

const auth = { authorization: `Bearer ${KEY}` }

/** What the service's own route says about a text (the reference for every OpenAI answer). */
async function classify(text: string, model = 'emotion-qra-natural'): Promise<Result> {
  const res = await post(`${url}/classify`, { text, model }, auth)
  expect(res.status).toBe(200)
  return (await res.json()) as Result
}

/** The extension fields, which the SDK's types do not know. */
type Extended = { reasoning_content?: string; scores?: Record<string, number> }

describe('through the openai SDK', () => {
  it('lists the served models, the default first', async () => {
    const page = await client.models.list()
    expect(page.data.map((m) => m.id)).toEqual(['emotion-qra-natural', 'emotion-qa-natural'])
    for (const m of page.data) {
      expect(m).toMatchObject({ object: 'model', owned_by: 'because' })
      expect(Number.isInteger(m.created)).toBe(true)
    }
  })

  it('answers a completion: label as content, reasoning, scores and usage as /classify has them', async () => {
    const completion = await client.chat.completions.create({
      model: 'emotion-qra-natural',
      messages: [
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'user', content: 'an earlier message, not classified' },
        { role: 'assistant', content: 'joy' },
        { role: 'user', content: TEXT },
      ],
      temperature: 0.7,
      max_tokens: 5,
    })
    const want = await classify(TEXT)
    expect(completion.object).toBe('chat.completion')
    expect(completion.id).toMatch(/^chatcmpl-[\w-]+$/)
    expect(completion.model).toBe('emotion-qra-natural')
    expect(completion.choices).toHaveLength(1)
    const [choice] = completion.choices
    expect(choice!.finish_reason).toBe('stop')
    const message = choice!.message as typeof choice.message & Extended
    expect(message.role).toBe('assistant')
    expect(message.content).toBe(want.label)
    expect(message.reasoning_content).toBe(want.reasoning)
    expectValidResult({ label: message.content!, scores: message.scores!, reasoning: message.reasoning_content!, usage: want.usage })
    for (const l of LABELS) expect(message.scores![l]).toBeCloseTo(want.scores[l]!, 9)
    // Every label of these models is one token.
    expect(completion.usage).toEqual({
      prompt_tokens: want.usage.input_tokens,
      completion_tokens: want.usage.reasoning_tokens + 1,
      total_tokens: want.usage.input_tokens + want.usage.reasoning_tokens + 1,
      input_tokens_dropped: 0,
    })
  })

  it('joins text parts with a newline and classifies them as one text', async () => {
    const completion = await client.chat.completions.create({
      model: 'emotion-qra-natural',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'i am so scared' }, { type: 'text', text: 'of the dark' }] }],
    })
    const want = await classify('i am so scared\nof the dark')
    expect(completion.choices[0]!.message.content).toBe(want.label)
    expect((completion.choices[0]!.message as Extended).reasoning_content).toBe(want.reasoning)
  })

  it('streams: role, reasoning deltas joining to the reasoning, the label, stop, usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'emotion-qra-natural',
      messages: [{ role: 'user', content: TEXT }],
      stream: true,
      stream_options: { include_usage: true },
    })
    const chunks = []
    for await (const chunk of stream) chunks.push(chunk)
    const want = await classify(TEXT)
    const deltas = chunks.flatMap((c) => c.choices.map((ch) => ch.delta as typeof ch.delta & Extended))
    expect(deltas[0]).toEqual({ role: 'assistant', content: '' })
    const reasoning = deltas.filter((d) => d.reasoning_content !== undefined).map((d) => d.reasoning_content)
    expect(reasoning.length).toBeGreaterThan(0)
    expect(reasoning.join('')).toBe(want.reasoning)
    const labelled = deltas.filter((d) => d.content)
    expect(labelled.map((d) => d.content)).toEqual([want.label])
    expect(Object.keys(labelled[0]!.scores!)).toEqual([...LABELS])
    expect(chunks.flatMap((c) => c.choices.map((ch) => ch.finish_reason)).filter((f) => f !== null)).toEqual(['stop'])
    expect(chunks.at(-1)!.choices).toEqual([])
    expect(chunks.at(-1)!.usage).toEqual({
      prompt_tokens: want.usage.input_tokens,
      completion_tokens: want.usage.reasoning_tokens + 1,
      total_tokens: want.usage.input_tokens + want.usage.reasoning_tokens + 1,
      input_tokens_dropped: 0,
    })
  })

  it('serves the qa model by id: the label at once, no reasoning', async () => {
    const completion = await client.chat.completions.create({ model: 'emotion-qa-natural', messages: [{ role: 'user', content: 'i am scared' }] })
    expect(completion.model).toBe('emotion-qa-natural')
    expect(LABELS).toContain(completion.choices[0]!.message.content)
    expect((completion.choices[0]!.message as Extended).reasoning_content).toBe('')
    expect(completion.usage!.completion_tokens).toBe(1)
  })

  it('an unknown model is a NotFoundError naming the model field', async () => {
    const err = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(OpenAI.NotFoundError)
    const e = err as InstanceType<typeof OpenAI.NotFoundError>
    expect(e.status).toBe(404)
    expect(e.code).toBe('unknown_model')
    expect(e.param).toBe('model')
    expect(e.type).toBe('invalid_request_error')
    expect(e.message).toMatch(/unknown model "gpt-4o"; available: emotion-qra-natural, emotion-qa-natural/)
  })

  it('parameters that would change the answer are a BadRequestError naming them', async () => {
    const base = { model: 'emotion-qra-natural', messages: [{ role: 'user' as const, content: 'i am happy' }] }
    const cases: [Record<string, unknown>, string][] = [
      [{ n: 2 }, 'n'],
      [{ tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }, 'tools'],
      [{ response_format: { type: 'json_object' } }, 'response_format'],
      [{ logprobs: true }, 'logprobs'],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }] }, 'messages[0].content[0].type'],
      [{ messages: [{ role: 'system', content: 'only a system prompt' }] }, 'messages'],
    ]
    for (const [extra, param] of cases) {
      const err = await client.chat.completions.create({ ...base, ...extra } as never).catch((e: unknown) => e)
      expect(err, param).toBeInstanceOf(OpenAI.BadRequestError)
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).param, param).toBe(param)
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).message, param).toContain(`${param}: `)
    }
  })

  it('a wrong key is an AuthenticationError', async () => {
    const wrong = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'not-the-key', maxRetries: 0 })
    await expect(wrong.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError)
    await expect(wrong.chat.completions.create({ model: 'emotion-qra-natural', messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(
      OpenAI.AuthenticationError,
    )
  })
})

/** The `data:` payloads of a whole SSE body, checking that no event is named (OpenAI's framing). */
function dataFrames(body: string): string[] {
  expect(body.endsWith('\n\n')).toBe(true)
  return body
    .slice(0, -2)
    .split('\n\n')
    .map((block) => {
      const lines = block.split('\n')
      expect(lines.every((l) => l.startsWith('data: ')), block).toBe(true)
      return lines.map((l) => l.slice(6)).join('\n')
    })
}

/** A request for the default model whose last user message holds `content`. */
const ask = (content: unknown, extra: Record<string, unknown> = {}) => ({ model: 'emotion-qra-natural', messages: [{ role: 'user', content }], ...extra })

const chat = (body: Record<string, unknown>, headers: Record<string, string> = auth, init: RequestInit = {}) =>
  post(`${url}/v1/chat/completions`, body, headers, init)

describe('the wire format (raw HTTP)', () => {
  it('streams chunks with one id, created and model, deltas in order, then [DONE]', async () => {
    const res = await chat({ model: 'emotion-qra-natural', messages: [{ role: 'user', content: TEXT }], stream: true })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const frames = dataFrames(await res.text())
    expect(frames.at(-1)).toBe('[DONE]')
    const chunks = frames.slice(0, -1).map((f) => JSON.parse(f) as Record<string, any>)
    const { id, created } = chunks[0]!
    expect(id).toMatch(/^chatcmpl-/)
    expect(Number.isInteger(created)).toBe(true)
    for (const chunk of chunks) {
      // Without include_usage, no usage key at all.
      expect(Object.keys(chunk)).toEqual(['id', 'object', 'created', 'model', 'choices'])
      expect(chunk).toMatchObject({ id, created, model: 'emotion-qra-natural', object: 'chat.completion.chunk' })
      expect(chunk.choices).toHaveLength(1)
      expect(Object.keys(chunk.choices[0])).toEqual(['index', 'delta', 'logprobs', 'finish_reason'])
      expect(chunk.choices[0]).toMatchObject({ index: 0, logprobs: null })
    }
    const kinds = chunks.map(({ choices: [c] }) =>
      c.finish_reason === 'stop' ? 'stop' : c.delta.role ? 'role' : c.delta.reasoning_content !== undefined ? 'reasoning' : 'label',
    )
    expect(kinds.join(' ')).toMatch(/^role( reasoning)+ label stop$/)
    expect(chunks[0]!.choices[0].delta).toEqual({ role: 'assistant', content: '' })
    const label = chunks.at(-2)!.choices[0]
    expect(Object.keys(label.delta)).toEqual(['content', 'scores'])
    expect(label.finish_reason).toBeNull()
    expect(chunks.at(-1)!.choices[0]).toEqual({ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' })
    for (const c of chunks.slice(1, -2)) expect(Object.keys(c.choices[0].delta)).toEqual(['reasoning_content'])
    const want = await classify(TEXT)
    expect(chunks.slice(1, -2).map((c) => c.choices[0].delta.reasoning_content).join('')).toBe(want.reasoning)
    expect(label.delta.content).toBe(want.label)
  })

  it('with include_usage: usage null on every chunk, then a last one with empty choices and the usage', async () => {
    const res = await chat({ model: 'emotion-qa-natural', messages: [{ role: 'user', content: 'i am scared' }], stream: true, stream_options: { include_usage: true } })
    const frames = dataFrames(await res.text())
    const chunks = frames.slice(0, -1).map((f) => JSON.parse(f) as Record<string, any>)
    expect(frames.at(-1)).toBe('[DONE]')
    // qa: role, label, stop, usage.
    expect(chunks).toHaveLength(4)
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull()
    expect(chunks[3]).toMatchObject({ choices: [], usage: { completion_tokens: 1 } })
    expect(chunks[3]!.usage.total_tokens).toBe(chunks[3]!.usage.prompt_tokens + 1)
  })

  it('answers the JSON completion with the OpenAI fields in place', async () => {
    const res = await chat({ model: 'emotion-qra-natural', messages: [{ role: 'user', content: 'i feel so happy today' }] })
    expect(res.status).toBe(200)
    const body = (await res.json()) as Record<string, any>
    expect(Object.keys(body)).toEqual(['id', 'object', 'created', 'model', 'choices', 'usage'])
    expect(Object.keys(body.choices[0].message)).toEqual(['role', 'content', 'reasoning_content', 'refusal', 'scores'])
    expect(body.choices[0]).toMatchObject({ index: 0, logprobs: null, finish_reason: 'stop', message: { refusal: null } })
    expect(res.headers.get('x-request-id')).toBe(body.id.replace(/^chatcmpl-/, ''))
  })

  it.each([
    ['malformed JSON', 400, 'malformed_json', null, '{"model": '],
    ['a missing model', 400, 'invalid_request', 'model', { messages: [{ role: 'user', content: 'hi' }] }],
    ['a content of the wrong type', 400, 'invalid_request', 'messages[0].content', ask(5)],
    ['no messages', 400, 'invalid_request', 'messages', { model: 'emotion-qra-natural', messages: [] }],
    ['a text with nothing to classify', 400, 'text_empty', 'messages[0].content', ask('... --')],
    ['a control character', 400, 'invalid_request', 'messages[0].content', ask('hi\u0007')],
    ['a timeout over the maximum', 400, 'invalid_request', 'timeout_ms', ask('hi', { timeout_ms: 10 ** 9 })],
    ['tool_choice "required"', 400, 'invalid_request', 'tool_choice', ask('hi', { tool_choice: 'required' })],
  ] as const)('%s: %i %s (param %s) in OpenAI error shape', async (_what, status, code, param, body) => {
    const res = await chat(body as never)
    expect(res.status).toBe(status)
    const got = (await res.json()) as { error: Record<string, unknown> }
    expect(Object.keys(got.error)).toEqual(['message', 'type', 'param', 'code'])
    expect(got.error).toMatchObject({ type: 'invalid_request_error', param, code })
    if (param) expect(got.error.message).toMatch(new RegExp(`^${param.replace(/[[\]]/g, '\\$&')}: `))
  })

  it('401 (with WWW-Authenticate) and unknown /v1/ paths in OpenAI error shape; /info needs no key', async () => {
    const res = await chat({ model: 'emotion-qra-natural', messages: [{ role: 'user', content: 'hi' }] }, {})
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="because"')
    expect(await res.json()).toEqual({
      error: { message: 'this service needs an API key: send Authorization: Bearer <key>', type: 'authentication_error', param: null, code: 'unauthorized' },
    })
    const missing = await fetch(`${url}/v1/embeddings`, { headers: auth })
    expect(missing.status).toBe(404)
    expect(((await missing.json()) as { error: { type: string; code: string } }).error).toMatchObject({ type: 'invalid_request_error', code: 'not_found' })
    expect((await fetch(`${url}/info`)).status).toBe(200)
  })

  it('a deadline that passes is a 504, or on a stream an error event without [DONE]', async () => {
    const body = { model: 'emotion-qra-natural', messages: [{ role: 'user', content: 'i feel so happy today' }], timeout_ms: 1 }
    const res = await chat(body)
    expect(res.status).toBe(504)
    expect(((await res.json()) as { error: unknown }).error).toMatchObject({ type: 'server_error', code: 'deadline_exceeded', param: null })
    const stream = await chat({ ...body, stream: true })
    expect(stream.status).toBe(200)
    const frames = dataFrames(await stream.text())
    expect(frames).not.toContain('[DONE]')
    expect(JSON.parse(frames.at(-1)!)).toEqual({ error: { message: expect.stringContaining('deadline'), type: 'server_error', param: null, code: 'deadline_exceeded' } })
  })

  it('a client that hangs up mid-stream cancels its sequence, and requests are counted per route', async () => {
    const engine = svc.engines[0]!
    const rejected = async (): Promise<number> =>
      metricValue(await (await fetch(`${url}/metrics`, { headers: auth })).text(), 'because_rejections_total', '{reason="client_closed_request"}') ?? 0
    // Hang up right after the first reasoning delta, while the sequence still runs. A fast graph can
    // finish a short reasoning before the hang-up lands (then it is no rejection): try another text.
    let hungUp = false
    for (let attempt = 0; attempt < 5 && !hungUp; attempt++) {
      const before = await rejected()
      const controller = new AbortController()
      const content = `i feel like everything is falling apart around me and nobody cares ${attempt}`
      const res = await chat({ model: 'emotion-qra-natural', messages: [{ role: 'user', content }], stream: true }, auth, { signal: controller.signal })
      const reader = res.body!.getReader()
      let seen = ''
      while (!seen.includes('reasoning_content')) {
        const { value, done } = await reader.read()
        if (done) break
        seen += new TextDecoder().decode(value)
      }
      controller.abort()
      const t = performance.now()
      while (engine.numInFlight > 0 && performance.now() - t < 3000) await new Promise((r) => setTimeout(r, 10))
      expect(engine.numInFlight).toBe(0)
      // The rejection is counted when the server sees the closed stream, which may be after the
      // engine has let the sequence go.
      while (!hungUp && performance.now() - t < 3000) {
        hungUp = (await rejected()) > before
        if (!hungUp) await new Promise((r) => setTimeout(r, 20))
      }
    }
    expect(hungUp).toBe(true)
    const m = await (await fetch(`${url}/metrics`, { headers: auth })).text()
    expect(metricValue(m, 'because_http_requests_total', '{route="/v1/chat/completions",method="POST",status="200"}')).toBeGreaterThan(0)
    expect(metricValue(m, 'because_http_requests_total', '{route="/v1/models",method="GET",status="200"}')).toBeGreaterThan(0)
  })
})

describe('no input yields a 5xx (generated chat requests)', () => {
  const anyContent = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.constantFrom('i feel so happy today', '<|label|> joy <|eos|>', '\u0000', '\ud800', '', ' '),
    fc.array(fc.record({ type: fc.constantFrom('text', 'image_url', 5), text: fc.oneof(fc.string({ maxLength: 20 }), fc.integer()) }, { requiredKeys: ['type'] }), { maxLength: 3 }),
    fc.jsonValue({ maxDepth: 1 }),
  )
  const anyBody = fc.record(
    {
      model: fc.oneof(fc.constant('emotion-qra-natural'), fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 0 })),
      messages: fc.oneof(
        fc.array(fc.record({ role: fc.constantFrom('user', 'system', 'assistant', 'robot'), content: anyContent }, { requiredKeys: ['role'] }), { maxLength: 3 }),
        fc.jsonValue({ maxDepth: 1 }),
      ),
      stream: fc.oneof(fc.boolean(), fc.constant(null), fc.string({ maxLength: 3 })),
      stream_options: fc.oneof(fc.record({ include_usage: fc.oneof(fc.boolean(), fc.integer()) }), fc.jsonValue({ maxDepth: 0 })),
      n: fc.oneof(fc.integer({ min: -1, max: 3 }), fc.double()),
      timeout_ms: fc.oneof(fc.integer({ min: -5, max: 60_000 }), fc.string({ maxLength: 3 })),
      tools: fc.jsonValue({ maxDepth: 1 }),
      response_format: fc.oneof(fc.record({ type: fc.constantFrom('text', 'json_object') }), fc.jsonValue({ maxDepth: 0 })),
      temperature: fc.oneof(fc.double(), fc.string({ maxLength: 3 })),
      extra: fc.jsonValue({ maxDepth: 1 }),
    },
    { requiredKeys: [] },
  )
  // Mostly valid requests, so that the model runs too: generated texts and options.
  const nearlyValid = fc.record(
    {
      model: fc.constant('emotion-qra-natural'),
      messages: fc.tuple(fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom('i feel so happy today', 'i am scared of the dark', '😊'))).map(([content]) => [{ role: 'user', content }]),
      stream: fc.boolean(),
      stream_options: fc.record({ include_usage: fc.boolean() }),
      n: fc.constantFrom(1, null),
      temperature: fc.double({ noNaN: true }),
      max_tokens: fc.integer({ min: 1, max: 100 }),
    },
    { requiredKeys: ['model', 'messages'] },
  )
  const body = fc.oneof(anyBody, nearlyValid)

  it('answers every request with a completion, a stream ending in [DONE] or an error, or an OpenAI error body with its status', async () => {
    const statuses = new Map<number, number>()
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const res = await chat(b)
        const text = await res.text()
        const what = `${res.status} for ${JSON.stringify(b).slice(0, 300)}: ${text.slice(0, 300)}`
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
        expect(res.status >= 500 && res.status !== 503 && res.status !== 504, what).toBe(false)
        if (res.status >= 400) {
          const { error } = JSON.parse(text) as { error: { code: keyof typeof ERROR_STATUS; type: string; param: unknown; message: string } }
          expect(Object.keys(error), what).toEqual(['message', 'type', 'param', 'code'])
          expect(error.code in ERROR_STATUS, what).toBe(true)
          const native = ERROR_STATUS[error.code]
          expect(res.status, what).toBe(error.code === 'unknown_model' ? 404 : native === 422 ? 400 : native)
        } else if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
          const frames = dataFrames(text)
          expect(frames.at(-1) === '[DONE]' || 'error' in (JSON.parse(frames.at(-1)!) as object), what).toBe(true)
        } else {
          expect((JSON.parse(text) as { object: string }).object, what).toBe('chat.completion')
        }
      }),
      { numRuns: 100 },
    )
    // The generators reach the model, not only the validation.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(3)
  })
})

describe('limits (a service with a small queue and body limit)', () => {
  let small: RunningService
  beforeAll(async () => {
    small = await startTestService({ models: [QRA], maxBatch: 1, maxBatchTokens: 512, maxQueue: 1, maxBodyBytes: 2000 })
  })
  afterAll(() => small?.close())
  const send = (body: unknown) => post(`${small.url}/v1/chat/completions`, body)

  it('429 rate_limit_error with Retry-After when the queue is full, streaming or not', async () => {
    const responses = await Promise.all(Array.from({ length: 6 }, (_, i) => send(ask(`i feel test number ${i}`, { stream: i % 2 === 1 }))))
    const rejected = responses.filter((r) => r.status === 429)
    expect(rejected.length).toBeGreaterThan(0)
    expect(responses.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(2)
    for (const r of rejected) {
      expect(r.headers.get('retry-after')).toBe('1')
      expect(r.headers.get('content-type')).toMatch(/^application\/json/)
      expect(((await r.json()) as { error: unknown }).error).toMatchObject({ type: 'rate_limit_error', code: 'queue_full', param: null })
    }
    await Promise.all(responses.filter((r) => r.status === 200).map((r) => r.text()))
  })

  it('413 for a body over --max-body-bytes', async () => {
    const res = await send(ask('a'.repeat(3000)))
    expect(res.status).toBe(413)
    expect(((await res.json()) as { error: unknown }).error).toMatchObject({ type: 'invalid_request_error', code: 'body_too_large' })
  })

  it('503 shutting_down with Retry-After while draining', async () => {
    small.service.lifecycle!.draining = true
    try {
      const res = await send(ask('i am happy'))
      expect(res.status).toBe(503)
      expect(res.headers.get('retry-after')).toBe('1')
      expect(((await res.json()) as { error: unknown }).error).toMatchObject({ type: 'server_error', code: 'shutting_down' })
    } finally {
      small.service.lifecycle!.draining = false
    }
  })
})
