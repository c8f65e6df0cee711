/**
 * @module
 * The benchmark's client: one streamed `POST /explain` over a keep-alive `node:http` agent (lighter
 * than fetch, and the same for the engine and the peer), one JSON `POST /classify` (the windows
 * section, engine only), and a closed loop of C such clients.
 */
import http from 'node:http'
import { SseParser } from '../../loadtest/lib/sse.js'

export interface Sample {
  /** Index of the text in the text list. */
  textIndex: number
  ok: boolean
  error?: string
  /** Milliseconds from the send to the first non-empty reasoning delta (the label when the
   *  reasoning is empty), and to the `done` event. */
  ttftMs: number
  totalMs: number
  /** Milliseconds from the loop's start at which the request was sent and ended. */
  startMs: number
  endMs: number
  label?: string
  scores?: Record<string, number>
  reasoning?: string
  inputTokens?: number
  reasoningTokens?: number
  /** `usage.windows` (/classify only). */
  windows?: number
}

export function makeAgent(maxSockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets })
}

/** Sends `text` to `${base}/explain` with `Accept: text/event-stream` and reads the stream. */
export function explain(base: string, agent: http.Agent, text: string, textIndex: number, t0: number): Promise<Sample> {
  const url = new URL('/explain', base)
  const body = JSON.stringify({ text })
  const start = performance.now()
  const sample: Sample = { textIndex, ok: false, ttftMs: Number.NaN, totalMs: Number.NaN, startMs: start - t0, endMs: Number.NaN }
  return new Promise((resolve) => {
    let settled = false
    const finish = (error?: string) => {
      if (settled) return
      settled = true
      const now = performance.now()
      sample.totalMs = now - start
      sample.endMs = now - t0
      if (error) sample.error = error
      else sample.ok = true
      resolve(sample)
    }
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        if (res.statusCode !== 200) {
          let text = ''
          res.setEncoding('utf8')
          res.on('data', (d: string) => (text += d))
          res.on('end', () => finish(`http_${res.statusCode}: ${text.slice(0, 200)}`))
          return
        }
        const parser = new SseParser()
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          for (const ev of parser.push(chunk)) {
            let data: Record<string, unknown>
            try {
              data = JSON.parse(ev.data) as Record<string, unknown>
            } catch {
              finish(`bad ${ev.event} event: ${ev.data.slice(0, 100)}`)
              res.destroy()
              return
            }
            if (ev.event === 'reasoning') {
              if (Number.isNaN(sample.ttftMs) && data.delta !== '') sample.ttftMs = performance.now() - start
            } else if (ev.event === 'label') {
              if (Number.isNaN(sample.ttftMs)) sample.ttftMs = performance.now() - start
              sample.label = data.label as string
              sample.scores = data.scores as Record<string, number>
            } else if (ev.event === 'done') {
              const usage = data.usage as { input_tokens: number; reasoning_tokens: number }
              sample.reasoning = data.reasoning as string
              sample.inputTokens = usage.input_tokens
              sample.reasoningTokens = usage.reasoning_tokens
              finish()
            } else if (ev.event === 'error') {
              finish(`sse_error: ${JSON.stringify(data).slice(0, 200)}`)
            }
          }
        })
        res.on('end', () => finish('stream ended without done'))
        res.on('error', (e) => finish(`response: ${e.message}`))
      },
    )
    req.on('error', (e) => finish(`request: ${e.message}`))
    req.end(body)
  })
}

/** Sends `{text, ...extra}` to `${base}/classify` (JSON, not streamed); `ttftMs` stays NaN. */
export function classify(base: string, agent: http.Agent, text: string, textIndex: number, t0: number, extra: object = {}): Promise<Sample> {
  const url = new URL('/classify', base)
  const body = JSON.stringify({ text, ...extra })
  const start = performance.now()
  const sample: Sample = { textIndex, ok: false, ttftMs: Number.NaN, totalMs: Number.NaN, startMs: start - t0, endMs: Number.NaN }
  const finish = (error?: string): Sample => {
    const now = performance.now()
    Object.assign(sample, { totalMs: now - start, endMs: now - t0 }, error ? { error } : { ok: true })
    return sample
  }
  return new Promise((resolve) => {
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
    const req = http.request({ agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (text += d))
      res.on('error', (e) => resolve(finish(`response: ${e.message}`)))
      res.on('end', () => {
        if (res.statusCode !== 200) return resolve(finish(`http_${res.statusCode}: ${text.slice(0, 200)}`))
        try {
          const r = JSON.parse(text) as { label: string; scores: Record<string, number>; reasoning: string; usage: { input_tokens: number; reasoning_tokens: number; windows: number } }
          const { input_tokens: inputTokens, reasoning_tokens: reasoningTokens, windows } = r.usage
          Object.assign(sample, { label: r.label, scores: r.scores, reasoning: r.reasoning, inputTokens, reasoningTokens, windows })
          resolve(finish())
        } catch {
          resolve(finish(`bad /classify body: ${text.slice(0, 200)}`))
        }
      })
    })
    req.on('error', (e) => resolve(finish(`request: ${e.message}`)))
    req.end(body)
  })
}

/** One request of a closed loop: `explain`, or another with its signature. */
export type Send = (base: string, agent: http.Agent, text: string, textIndex: number, t0: number) => Promise<Sample>

export interface LoopResult {
  samples: Sample[]
  /** From the first send to the last end, ms. */
  elapsedMs: number
}

/**
 * Closed loop: `concurrency` clients, each sending its next request as soon as its previous one
 * ended, until `requests` have been sent. Request `i` sends `texts[(offset + i) % texts.length]`
 * with `send` (default: a streamed `/explain`).
 */
export async function closedLoop(
  base: string,
  texts: readonly string[],
  opts: { concurrency: number; requests: number; offset?: number; send?: Send },
): Promise<LoopResult> {
  const send = opts.send ?? explain
  const agent = makeAgent(opts.concurrency)
  const samples: Sample[] = []
  let next = 0
  const t0 = performance.now()
  const client = async () => {
    while (next < opts.requests) {
      const i = next++
      const index = ((opts.offset ?? 0) + i) % texts.length
      samples.push(await send(base, agent, texts[index]!, index, t0))
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, opts.requests) }, client))
  const elapsedMs = performance.now() - t0
  agent.destroy()
  return { samples, elapsedMs }
}
