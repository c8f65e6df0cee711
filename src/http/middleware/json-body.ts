/**
 * @module
 * Strict JSON bodies: UTF-8 decoded with `fatal: true`, so invalid bytes are a 400 instead of
 * being silently replaced by U+FFFD, and parse errors answered as `malformed_json`.
 */
import type { MiddlewareHandler } from 'hono'
import { ApiError } from '../errors.js'

/** The media types the validator reads as JSON (as hono's json validator decides). */
const JSON_MEDIA = /^application\/([\w.-]+\+)?json$/i

/**
 * Reads and parses a JSON body once, before the route's schema validation, and hands the parsed
 * value to it (hono's body cache). Bodies of other media types pass untouched (the route answers
 * 415). A `charset` other than UTF-8 is a 415.
 *
 * @example
 * ```ts
 * app.use('/classify', strictJsonBody())
 * ```
 */
export const strictJsonBody = (): MiddlewareHandler => {
  const decoder = new TextDecoder('utf-8', { fatal: true })
  return async function strictJsonBody(c, next) {
    const contentType = c.req.header('content-type')
    if (c.req.method !== 'POST' || !contentType) return next()
    const [media, ...params] = contentType.split(';').map((p) => p.trim())
    if (!JSON_MEDIA.test(media!)) return next()
    const charset = params.find((p) => /^charset=/i.test(p))?.slice(8).replace(/^"|"$/g, '')
    if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
      throw new ApiError('unsupported_media_type', `Content-Type: charset must be utf-8, got ${JSON.stringify(charset.slice(0, 40))}`)
    }
    const bytes = new Uint8Array(await c.req.arrayBuffer())
    let text: string
    try {
      text = decoder.decode(bytes)
    } catch {
      throw new ApiError('malformed_json', `request body is not valid UTF-8 (invalid byte sequence at byte ${firstInvalidUtf8(bytes)})`)
    }
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch (e) {
      throw new ApiError('malformed_json', `request body is not valid JSON (${(e as Error).message.slice(0, 200)})`)
    }
    c.req.bodyCache.json = Promise.resolve(value)
    await next()
  }
}

/** Offset of the first byte that does not start a well-formed UTF-8 sequence, or -1. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0
  while (i < b.length) {
    const c = b[i]!
    if (c < 0x80) {
      i++
      continue
    }
    // Lead byte: how many continuation bytes, and the allowed range of the first one
    // (excluding overlong forms, surrogates and code points past U+10FFFF).
    let n: number
    let lo = 0x80
    let hi = 0xbf
    if (c >= 0xc2 && c <= 0xdf) n = 1
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2
      if (c === 0xe0) lo = 0xa0
      if (c === 0xed) hi = 0x9f
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3
      if (c === 0xf0) lo = 0x90
      if (c === 0xf4) hi = 0x8f
    } else return i
    for (let k = 1; k <= n; k++) {
      const ck = b[i + k]
      if (ck === undefined) return i
      if (k === 1 ? ck < lo || ck > hi : (ck & 0xc0) !== 0x80) return i
    }
    i += n + 1
  }
  return -1
}
