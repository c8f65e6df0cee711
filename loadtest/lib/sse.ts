/**
 * @module
 * An incremental Server-Sent Events parser (the WHATWG event-stream rules that matter here):
 * lines end in LF, CRLF or CR; `:` starts a comment; `data` lines join with LF; a blank line
 * dispatches; a field without a colon has an empty value; one leading space after the colon is
 * dropped; an event with no data is not dispatched.
 */

export interface SseEvent {
  /** `message` when the stream named none. */
  event: string
  data: string
  id?: string
}

export class SseParser {
  #buf = ''
  #event = ''
  #data: string[] = []
  #id: string | undefined
  /** A CR ended the last chunk: an LF starting the next one belongs to it. */
  #pendingCr = false

  /** Feeds decoded text; returns the events completed by it, in order. */
  push(chunk: string): SseEvent[] {
    if (this.#pendingCr && chunk.startsWith('\n')) chunk = chunk.slice(1)
    this.#pendingCr = false
    this.#buf += chunk
    const out: SseEvent[] = []
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.#buf)
      if (!m) break
      // A CR at the very end may be the first half of CRLF: consume it, remember it.
      if (m[0] === '\r' && m.index === this.#buf.length - 1) this.#pendingCr = true
      const line = this.#buf.slice(0, m.index)
      this.#buf = this.#buf.slice(m.index + m[0].length)
      const ev = this.#line(line)
      if (ev) out.push(ev)
    }
    return out
  }

  #line(line: string): SseEvent | undefined {
    if (line === '') {
      const ev =
        this.#data.length > 0
          ? { event: this.#event || 'message', data: this.#data.join('\n'), id: this.#id }
          : undefined
      this.#event = ''
      this.#data = []
      return ev
    }
    if (line.startsWith(':')) return undefined
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') this.#event = value
    else if (field === 'data') this.#data.push(value)
    else if (field === 'id' && !value.includes('\0')) this.#id = value
    return undefined
  }
}
