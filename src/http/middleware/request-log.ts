/**
 * @module
 * Access log: one line per request with its id, method, path, status and duration. Request texts
 * are never logged (lengths and ids only).
 */
import type { MiddlewareHandler } from 'hono'
import type { Logger } from 'pino'

/**
 * @param logger - pino logger the lines go to.
 * @example
 * ```ts
 * app.use(requestId(), requestLog({ logger }))
 * ```
 */
export const requestLog = ({ logger }: { logger: Logger }): MiddlewareHandler =>
  async function requestLog(c, next) {
    const start = performance.now()
    await next()
    const ms = Math.round((performance.now() - start) * 10) / 10
    const status = c.res.status
    // Sizes and ids only: never a text, a header value or a key.
    const bytes = Number(c.req.header('content-length') ?? '') || undefined
    const line = { req_id: c.get('requestId'), method: c.req.method, path: c.req.path, status, ms, bytes, ...c.get('inference'), code: c.get('errorCode') }
    if (status >= 500 && status !== 503 && status !== 504) logger.error(line, 'request')
    else logger.info(line, 'request')
  }
