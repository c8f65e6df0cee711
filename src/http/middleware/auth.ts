/**
 * @module
 * Optional API keys: `Authorization: Bearer <key>`, compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { MiddlewareHandler } from 'hono'
import { ApiError } from '../errors.js'

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest()
const BEARER = /^Bearer +(\S+) *$/i

/**
 * Lets a request through when its bearer token is one of `keys`; otherwise throws `unauthorized`
 * (401, with `WWW-Authenticate: Bearer`). Both sides are hashed to 32 bytes first, so
 * `timingSafeEqual` compares equal lengths and the time depends neither on where a wrong key
 * differs nor on its length; every key is compared, with no early exit.
 *
 * @param keys - the accepted keys; at least one.
 * @param open - paths served without a key (health checks, the page, the contract).
 * @example
 * ```ts
 * app.use(bearerAuth({ keys: ['k1', 'k2'], open: ['/healthz', '/readyz'] }))
 * ```
 */
export const bearerAuth = ({ keys, open = [] }: { keys: readonly string[]; open?: readonly string[] }): MiddlewareHandler => {
  if (keys.length === 0) throw new Error('bearerAuth: at least one key is required')
  const digests = keys.map(sha256)
  const openPaths = new Set(open)
  return async function bearerAuth(c, next) {
    if (openPaths.has(c.req.path)) return next()
    const header = c.req.header('authorization')
    if (header === undefined) throw new ApiError('unauthorized', 'this service needs an API key: send Authorization: Bearer <key>')
    const match = BEARER.exec(header)
    if (!match) throw new ApiError('unauthorized', 'Authorization: expected Bearer <key>')
    const given = sha256(match[1]!)
    let ok = false
    for (const d of digests) ok = timingSafeEqual(d, given) || ok
    if (!ok) throw new ApiError('unauthorized', 'Authorization: the API key is not valid')
    await next()
  }
}
