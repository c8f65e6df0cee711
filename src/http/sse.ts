/**
 * @module
 * Server-Sent Events for a response whose first frames may exist before it does: admission has to
 * be decided (a full queue answers a JSON 429) before the stream opens, yet reasoning deltas can
 * arrive in between.
 */
import type { Context } from 'hono'
import { streamSSE } from 'hono/streaming'
import type { SSEStreamingApi } from 'hono/streaming'

/**
 * Frames written in the order they were sent, each `data` as one JSON value; frames sent before
 * `respond()` opened the stream wait for it.
 *
 * @example
 * ```ts
 * const sse = new SseWriter()
 * const pending = work((delta) => sse.send('reasoning', { delta }))
 * return sse.respond(c, async () => sse.send('done', await pending))
 * ```
 */
export class SseWriter {
  #stream: SSEStreamingApi | null = null
  readonly #buffered: [event: string, data: unknown][] = []
  #writes = Promise.resolve()

  send(event: string, data: unknown): void {
    const stream = this.#stream
    if (!stream) return void this.#buffered.push([event, data])
    // A failed write means the client went away; the request's abort signal handles that.
    this.#writes = this.#writes.then(() => stream.writeSSE({ event, data: JSON.stringify(data) })).catch(() => {})
  }

  /** The streaming response: the frames sent so far, then those `body` sends; it ends after them. */
  respond(c: Context, body: () => Promise<void>): Response {
    // Proxies such as nginx would otherwise hold the deltas back.
    c.header('X-Accel-Buffering', 'no')
    return streamSSE(c, async (stream) => {
      this.#stream = stream
      for (const [event, data] of this.#buffered.splice(0)) this.send(event, data)
      await body()
      await this.#writes
    })
  }
}
