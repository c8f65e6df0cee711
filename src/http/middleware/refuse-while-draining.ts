/**
 * @module
 * After SIGTERM: no new inference (a load balancer retries it elsewhere), and connections close.
 */
import type { MiddlewareHandler } from 'hono'
import { ApiError } from '../errors.js'

/**
 * @param lifecycle - the service's; while `draining`, requests get 503 `shutting_down`.
 * @example
 * ```ts
 * app.use('/classify', refuseWhileDraining(service.lifecycle))
 * ```
 */
export const refuseWhileDraining = (lifecycle: { draining: boolean } | undefined): MiddlewareHandler =>
  async function refuseWhileDraining(c, next) {
    if (lifecycle?.draining) {
      c.header('Connection', 'close')
      throw new ApiError('shutting_down', 'the server is shutting down; retry on another instance', 1)
    }
    await next()
  }
