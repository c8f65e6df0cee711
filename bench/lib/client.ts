/**
 * @module
 * The benchmark's client: one streamed `POST /explain` over a keep-alive `node:http` agent (lighter
 * than fetch, and the same for the engine and the peer), and a closed loop of C such clients.
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

export interface LoopResult {
  samples: Sample[]
  /** From the first send to the last end, ms. */
  elapsedMs: number
}

/**
 * Closed loop: `concurrency` clients, each sending its next request as soon as its previous one
 * ended, until `requests` have been sent. Request `i` sends `texts[(offset + i) % texts.length]`.
 */
export async function closedLoop(
  base: string,
  texts: readonly string[],
  opts: { concurrency: number; requests: number; offset?: number },
): Promise<LoopResult> {
  const agent = makeAgent(opts.concurrency)
  const samples: Sample[] = []
  let next = 0
  const t0 = performance.now()
  const client = async () => {
    while (next < opts.requests) {
      const i = next++
      const index = ((opts.offset ?? 0) + i) % texts.length
      samples.push(await explain(base, agent, texts[index]!, index, t0))
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, opts.requests) }, client))
  const elapsedMs = performance.now() - t0
  agent.destroy()
  return { samples, elapsedMs }
}
