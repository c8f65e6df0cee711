/**
 * @module
 * A stand-in for the service that speaks its HTTP contract with no model: it "generates" a few
 * reasoning tokens per request at a fixed pace, with a bounded number of slots and a bounded
 * queue (429 with Retry-After beyond it). Used to test the runner end to end; not a benchmark.
 *
 * Environment: HOST, PORT; FAKE_TOKEN_MS (pace, default 5), FAKE_TOKENS (default 6),
 * FAKE_SLOTS (concurrent generations, default 8), FAKE_MAX_QUEUE (default 16),
 * FAKE_FAIL_EVERY (answer 500 to every n-th request, default 0 = never), FAKE_LABELS (the model's
 * labels, comma-separated; by default not the embedded emotions, since the runner must check
 * answers against whatever labels /info lists).
 */

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'

const env = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d)
const TOKEN_MS = env('FAKE_TOKEN_MS', 5)
const TOKENS = env('FAKE_TOKENS', 6)
const SLOTS = env('FAKE_SLOTS', 8)
const MAX_QUEUE = env('FAKE_MAX_QUEUE', 16)
const FAIL_EVERY = env('FAKE_FAIL_EVERY', 0)
const LABELS = (process.env.FAKE_LABELS ?? 'question,complaint,praise').split(',')
const MODEL = 'fake-model'

let running = 0
let numRequests = 0
let shuttingDown = false
const waiting: (() => void)[] = []

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(JSON.stringify(body))
}

function error(res: ServerResponse, status: number, code: string, message: string, headers = {}): void {
  json(res, status, { error: { code, message } }, headers)
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

/** A slot, or false when the queue is full. */
async function acquire(): Promise<boolean> {
  if (running < SLOTS) {
    running++
    return true
  }
  if (waiting.length >= MAX_QUEUE) return false
  await new Promise<void>((r) => waiting.push(r))
  running++
  return true
}

function release(): void {
  running--
  waiting.shift()?.()
}

function result(text: string) {
  const i = text.length % LABELS.length
  const scores = Object.fromEntries(LABELS.map((l, k) => [l, k === i ? 0.5 : 0.5 / (LABELS.length - 1)]))
  return { label: LABELS[i], scores, reasoning: 'the writer sounds this way because of the words used' }
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/'
  if (req.method === 'GET' && url === '/healthz') return json(res, 200, { status: 'ok' })
  if (req.method === 'GET' && url === '/info') return json(res, 200, { version: 'fake', models: [{ id: MODEL, kind: 'qra', labels: LABELS }] })
  if (req.method === 'GET' && url === '/readyz') {
    return shuttingDown ? error(res, 503, 'shutting_down', 'shutting down') : json(res, 200, { status: 'ready' })
  }
  if (req.method !== 'POST' || (url !== '/classify' && url !== '/explain')) {
    return error(res, 404, 'not_found', `no route ${req.method} ${url}`)
  }
  const raw = await readBody(req)
  if (shuttingDown) return error(res, 503, 'shutting_down', 'shutting down')
  let body: { text?: string; texts?: string[] }
  try {
    body = JSON.parse(raw) as typeof body
  } catch {
    return error(res, 400, 'malformed_json', 'body is not JSON')
  }
  numRequests++
  if (FAIL_EVERY > 0 && numRequests % FAIL_EVERY === 0) return error(res, 500, 'internal', 'injected failure')
  const arrived = performance.now()
  if (!(await acquire())) return error(res, 429, 'queue_full', 'queue full', { 'retry-after': '1' })
  const queueMs = performance.now() - arrived
  try {
    if (url === '/classify') {
      await sleep(TOKEN_MS * TOKENS)
      const usage = { input_tokens: 10, reasoning_tokens: TOKENS }
      if (Array.isArray(body.texts)) {
        return json(res, 200, { model: MODEL, results: body.texts.map((t) => ({ ...result(t), usage })) })
      }
      return json(res, 200, { model: MODEL, ...result(body.text ?? ''), usage })
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    const r = result(body.text ?? '')
    let ttft = 0
    for (let i = 0; i < TOKENS; i++) {
      await sleep(TOKEN_MS)
      if (i === 0) ttft = performance.now() - arrived
      if (res.destroyed) return
      res.write(`event: reasoning\ndata: ${JSON.stringify({ delta: `tok${i} ` })}\n\n`)
    }
    res.write(`event: label\ndata: ${JSON.stringify({ label: r.label, scores: r.scores })}\n\n`)
    const timings = { queue_ms: queueMs, ttft_ms: ttft, total_ms: performance.now() - arrived }
    const usage = { input_tokens: 10, reasoning_tokens: TOKENS }
    res.end(`event: done\ndata: ${JSON.stringify({ model: MODEL, reasoning: r.reasoning, usage, timings })}\n\n`)
  } finally {
    release()
  }
}

const server = createServer((req, res) => {
  handle(req, res).catch(() => {
    if (!res.headersSent) error(res, 500, 'internal', 'fake server bug')
    else res.destroy()
  })
})
server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1')

process.once('SIGTERM', () => {
  shuttingDown = true
  server.close(() => process.exit(0))
  server.closeIdleConnections()
})
