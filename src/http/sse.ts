/**
 * @module
 * Server-Sent Events for a response whose first frames may exist before it does: admission has to
 * be decided (a full queue answers a JSON 429) before the stream opens, yet reasoning deltas can
 * arrive in between.
 */
import type { Context } from 'hono'
import { streamSSE } from 'hono/streaming'
import type { SSEMessage, SSEStreamingApi } from 'hono/streaming'

/**
 * Frames written in the order they were sent; frames sent before `respond()` opened the stream
 * wait for it.
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
  readonly #buffered: SSEMessage[] = []
  #writes = Promise.resolve()

  /** A named event whose `data` is one JSON value. */
  send(event: string, data: unknown): void {
    this.#write({ event, data: JSON.stringify(data) })
  }

  /** An unnamed event (a `message` to the client) with `data` as given: OpenAI's framing. */
  sendData(data: string): void {
    this.#write({ data })
  }

  #write(message: SSEMessage): void {
    const stream = this.#stream
    if (!stream) return void this.#buffered.push(message)
    // A failed write means the client went away; the request's abort signal handles that.
    this.#writes = this.#writes.then(() => stream.writeSSE(message)).catch(() => {})
  }

  /** The streaming response: the frames sent so far, then those `body` sends; it ends after them. */
  respond(c: Context, body: () => Promise<void>): Response {
    // Proxies such as nginx would otherwise hold the deltas back.
    c.header('X-Accel-Buffering', 'no')
    return streamSSE(c, async (stream) => {
      this.#stream = stream
      for (const message of this.#buffered.splice(0)) this.#write(message)
      await body()
      await this.#writes
    })
  }
}
