/**
 * @module
 * A stand-in for the service, for the error paths the real one cannot be made to produce on
 * demand: a connection cut mid-stream, a 500, an `event: error` after the stream started, a stream
 * slow enough to press Stop on, an /info that fails; and models of any label set, one or several,
 * at no cost. It serves the real src/page/index.html and
 * speaks the same /explain, /readyz and /info contract. Everything the real service can do is tested against the real
 * service (chat.test.ts).
 */
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { PAGE_PATH } from './page-core.js'

/** What the next POST /explain does. */
export type Behaviour =
  /** A normal answer: reasoning deltas `gapMs` apart, then label and done. */
  | { kind: 'answer'; deltas?: string[]; label?: string; gapMs?: number; dropped?: number }
  /** A long text read in windows: each window's event, then its deltas; `deciding` names the window whose reasoning done carries. */
  | { kind: 'windows'; windows: { start: number; end: number; deltas: string[] }[]; deciding: number }
  /** Some reasoning deltas, then the TCP connection is destroyed (no done, no error). */
  | { kind: 'drop'; deltas: string[]; gapMs?: number }
  /** Some reasoning deltas, then `event: error`. */
  | { kind: 'error-event'; deltas: string[]; code: string; message: string }
  /** A plain JSON error before any stream. */
  | { kind: 'status'; status: number; code: string; message: string; headers?: Record<string, string> }

export interface RecordedRequest {
  method: string
  path: string
  authorization: string | undefined
  body: string
}

/** A served model as GET /info lists it. */
export interface FakeModel {
  id: string
  labels: string[]
}

export interface FakeService {
  url: string
  /** Behaviours for the next /explain requests, in order; afterwards each answers normally. */
  script(...behaviours: Behaviour[]): void
  /** When set, /explain answers 401 unless `Authorization: Bearer <requireKey>` comes with it. */
  requireKey: string | null
  /** What GET /info lists, the first the default; null: /info answers 503. */
  models: FakeModel[] | null
  requests: RecordedRequest[]
  close(): Promise<void>
}

export const DEFAULT_DELTAS = ['the', ' words', ' "', 'feel', ' lucky', '"', ' carry', ' joy']
export const EMOTIONS: FakeModel = { id: 'fake-model', labels: ['sadness', 'joy', 'love', 'anger', 'fear', 'surprise'] }

/** `label` if the model has it, else its first label. */
const labelOf = (model: FakeModel, label: string) => (model.labels.includes(label) ? label : model.labels[0]!)

/** 0.9 for the label, the rest shared by the others, keyed in the model's order. */
function scoresFor(model: FakeModel, label: string): Record<string, number> {
  const rest = 0.1 / (model.labels.length - 1)
  return Object.fromEntries(model.labels.map((l) => [l, l === label ? 0.9 : rest]))
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function sse(res: ServerResponse, event: string, data: unknown): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

export async function startFakeService(): Promise<FakeService> {
  const html = readFileSync(PAGE_PATH)
  const pending: Behaviour[] = []
  const requests: RecordedRequest[] = []

  const fake: FakeService = {
    url: '',
    script: (...behaviours) => pending.push(...behaviours),
    requireKey: null,
    models: [EMOTIONS],
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
  const server = createServer(async (req, res) => {
    const body = await readBody(req)
    const path = new URL(req.url ?? '/', 'http://x').pathname
    requests.push({ method: req.method ?? '', path, authorization: req.headers.authorization, body })
    if (req.method === 'GET' && path === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(html)
    } else if (req.method === 'GET' && path === '/info') {
      if (fake.models === null) {
        res.writeHead(503, { 'Content-Type': 'application/json' })
        res.end(JSON.stringify({ error: { code: 'not_ready', message: 'not ready' } }))
        return
      }
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ version: 'fake', models: fake.models.map((m) => ({ id: m.id, kind: 'qra', labels: m.labels })) }))
    } else if (req.method === 'GET' && path === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ status: 'ready', models: (fake.models ?? [EMOTIONS]).map((m) => ({ id: m.id, kind: 'qra' })) }))
    } else if (req.method === 'POST' && path === '/explain') {
      if (fake.requireKey !== null && req.headers.authorization !== `Bearer ${fake.requireKey}`) {
        res.writeHead(401, { 'Content-Type': 'application/json', 'WWW-Authenticate': 'Bearer' })
        res.end(JSON.stringify({ error: { code: 'unauthorized', message: 'missing or unknown API key' } }))
        return
      }
      // As the real service: the model the body names, else the first; an unknown one is refused.
      const models = fake.models ?? [EMOTIONS]
      const asked = (JSON.parse(body) as { model?: string }).model
      const model = asked === undefined ? models[0]! : models.find((m) => m.id === asked)
      if (!model) {
        res.writeHead(422, { 'Content-Type': 'application/json' })
        res.end(JSON.stringify({ error: { code: 'unknown_model', message: `model: unknown model ${JSON.stringify(asked)}` } }))
        return
      }
      await explain(res, model, pending.shift() ?? { kind: 'answer' })
    } else {
      res.writeHead(404, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ error: { code: 'not_found', message: `no route ${path}` } }))
    }
  })

  async function explain(res: ServerResponse, model: FakeModel, b: Behaviour): Promise<void> {
    if (b.kind === 'status') {
      res.writeHead(b.status, { 'Content-Type': 'application/json', ...b.headers })
      res.end(JSON.stringify({ error: { code: b.code, message: b.message } }))
      return
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' })
    res.flushHeaders()
    if (b.kind === 'windows') return windows(res, model, b)
    const deltas = b.kind === 'answer' ? (b.deltas ?? DEFAULT_DELTAS) : b.deltas
    const gapMs = b.kind === 'error-event' ? 40 : (b.gapMs ?? 40)
    for (const delta of deltas) {
      if (res.destroyed) return
      sse(res, 'reasoning', { delta })
      await sleep(gapMs)
    }
    if (b.kind === 'drop') {
      // A FIN in the middle of the chunked body rather than a reset: the page must show a lost
      // connection either way, and a reset may let the browser drop deltas it received but had not
      // yet handed to the page (likely what a CI run under load saw: "the" kept of "the words "feel").
      res.socket?.end()
      return
    }
    if (b.kind === 'error-event') {
      sse(res, 'error', { error: { code: b.code, message: b.message } })
      res.end()
      return
    }
    const label = b.label ?? labelOf(model, 'joy')
    sse(res, 'label', { label, scores: scoresFor(model, label) })
    sse(res, 'done', {
      model: model.id,
      reasoning: deltas.join('').trim(),
      usage: { input_tokens: 5, reasoning_tokens: deltas.length, input_tokens_dropped: b.kind === 'answer' ? (b.dropped ?? 0) : 0, windows: 1 },
      timings: { queue_ms: 0, ttft_ms: gapMs, total_ms: gapMs * deltas.length },
    })
    res.end()
  }

  async function windows(res: ServerResponse, model: FakeModel, b: Extract<Behaviour, { kind: 'windows' }>): Promise<void> {
    for (const [index, w] of b.windows.entries()) {
      sse(res, 'window', { index, count: b.windows.length, start: w.start, end: w.end, input_tokens: 5 })
      for (const delta of w.deltas) {
        sse(res, 'reasoning', { delta })
        await sleep(20)
      }
    }
    const deciding = b.windows[b.deciding]!
    const label = labelOf(model, 'anger')
    sse(res, 'label', { label, scores: scoresFor(model, label) })
    sse(res, 'done', {
      model: model.id,
      reasoning: deciding.deltas.join(''),
      reasoning_window: { index: b.deciding, start: deciding.start, end: deciding.end },
      usage: { input_tokens: 5 * b.windows.length, reasoning_tokens: 9, input_tokens_dropped: 0, windows: b.windows.length },
      timings: { queue_ms: 0, ttft_ms: 20, total_ms: 200 },
    })
    res.end()
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  fake.url = `http://127.0.0.1:${port}/`
  return fake
}
