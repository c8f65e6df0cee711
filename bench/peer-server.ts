/**
 * @module
 * The peer behind an HTTP server as thin as the service's: Hono on @hono/node-server, `POST
 * /explain` with the service's Server-Sent Events shape (`reasoning` {delta} events, then `label`
 * {label, scores}, then `done` {model, reasoning, usage, timings}; `error` if it fails), JSON
 * without `Accept: text/event-stream`, and `GET /readyz`. Each request runs its own transformers.js
 * `generate()` (see lib/peer.ts); nothing is batched or queued.
 *
 *   node --import tsx bench/peer-server.ts --model models/emotion-qra-natural --port 8081 --threads 2
 */
import { parseArgs } from 'node:util'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { streamSSE } from 'hono/streaming'
import { Peer, PeerInputError } from './lib/peer.js'
import type { PeerResult } from './lib/peer.js'

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/emotion-qra-natural' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: process.env.PORT ?? '8081' },
    threads: { type: 'string', default: '2' },
  },
})

const peer = await Peer.load(values.model!, Number(values.threads))
const labels = peer.manifest.labels
const scoresObject = (r: PeerResult) => Object.fromEntries(labels.map((l, k) => [l, r.scores[k]!]))

const app = new Hono()
app.get('/healthz', (c) => c.json({ status: 'ok' }))
app.get('/readyz', (c) => c.json({ status: 'ready', models: [{ id: peer.manifest.id, kind: peer.manifest.kind }], peer: 'transformers.js' }))

app.post('/explain', async (c) => {
  let text: unknown
  try {
    text = ((await c.req.json()) as { text?: unknown }).text
  } catch {
    return c.json({ error: { code: 'malformed_json', message: 'body: not valid JSON' } }, 400)
  }
  if (typeof text !== 'string') return c.json({ error: { code: 'invalid_request', message: 'text: required (expected string)' } }, 422)
  const fail = (e: unknown) =>
    e instanceof PeerInputError
      ? { status: 422 as const, body: { error: { code: 'invalid_request', message: e.message } } }
      : { status: 500 as const, body: { error: { code: 'internal_error', message: String((e as Error).message ?? e) } } }

  if (!(c.req.header('accept') ?? '').includes('text/event-stream')) {
    try {
      const r = await peer.classify(text)
      return c.json({ model: peer.manifest.id, label: r.label, scores: scoresObject(r), reasoning: r.reasoning, usage: r.usage, timings: r.timings })
    } catch (e) {
      const f = fail(e)
      return c.json(f.body, f.status)
    }
  }
  try {
    peer.encode(text)
  } catch (e) {
    const f = fail(e)
    return c.json(f.body, f.status)
  }
  c.header('X-Accel-Buffering', 'no')
  return streamSSE(c, async (s) => {
    // Frames are written one after the other, in the order they were produced.
    let writes = Promise.resolve()
    const send = (event: string, data: unknown) => {
      writes = writes.then(() => s.writeSSE({ event, data: JSON.stringify(data) })).catch(() => {})
    }
    try {
      const r = await peer.classify(text, (delta) => send('reasoning', { delta }))
      send('label', { label: r.label, scores: scoresObject(r) })
      send('done', { model: peer.manifest.id, reasoning: r.reasoning, usage: r.usage, timings: r.timings })
    } catch (e) {
      send('error', fail(e).body)
    }
    await writes
  })
})

const server = serve({ fetch: app.fetch, hostname: values.host!, port: Number(values.port) }, (info) => {
  console.log(JSON.stringify({ msg: 'listening', url: `http://${values.host}:${info.port}`, model: peer.manifest.id }))
})
const stop = () => server.close(() => process.exit(0))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
