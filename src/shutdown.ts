/**
 * @module
 * The way down of a running service: `close()` stops at once, `shutdown()` drains first.
 */
import type { ServerType } from '@hono/node-server'
import type { Logger } from 'pino'
import type { EngineClient } from './engine/client.js'

export interface Stoppable {
  /** Stops listening and stops the workers at once; requests in flight fail with `shutting_down`. */
  close(): Promise<void>
  /**
   * Graceful shutdown: /readyz turns 503 and new inference requests get 503 `shutting_down` at
   * once; requests in flight may finish for `drainTimeoutMs`, then the rest fail with
   * `shutting_down` (a stream gets a final `error` event); then `close()`. A second call ends
   * the drain at once. Resolves with how many requests were still in flight at the deadline.
   */
  shutdown(drainTimeoutMs: number): Promise<{ numAbandoned: number }>
}

export function stopper({
  server,
  engines,
  lifecycle,
  logger,
}: {
  server: ServerType
  engines: readonly EngineClient[]
  /** The flag the app reads: set, it refuses new inference and /readyz answers 503. */
  lifecycle: { draining: boolean }
  logger: Logger
}): Stoppable {
  const http = server as unknown as { closeIdleConnections(): void; closeAllConnections(): void }
  let closed: Promise<void> | null = null
  const close = () =>
    (closed ??= (async () => {
      lifecycle.draining = true
      // Requests still in flight end now (a stream gets its error event before its socket closes).
      await Promise.all(engines.map((en) => en.close()))
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        http.closeIdleConnections()
        // A connection still open a moment later belongs to a client that stopped reading.
        setTimeout(() => http.closeAllConnections(), 1000).unref()
      })
    })())

  let endDrain: (() => void) | null = null
  const shutdown = async (drainTimeoutMs: number) => {
    if (endDrain) {
      endDrain()
      return { numAbandoned: 0 }
    }
    lifecycle.draining = true
    const inFlight = () => engines.reduce((n, en) => n + en.numInFlight, 0)
    logger.info({ drain_timeout_ms: drainTimeoutMs, in_flight: inFlight() }, 'draining')
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all(engines.map((en) => en.idle())),
      new Promise<void>((resolve) => {
        endDrain = resolve
        timer = setTimeout(resolve, drainTimeoutMs)
      }),
    ])
    clearTimeout(timer)
    const numAbandoned = inFlight()
    if (numAbandoned > 0) logger.warn({ in_flight: numAbandoned }, 'drain timeout: ending the requests still in flight')
    await close()
    return { numAbandoned }
  }
  return { close, shutdown }
}
