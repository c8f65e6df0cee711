/**
 * @module
 * Start-up and wiring: load and verify every model package, start one engine worker per model,
 * build the app, listen. `startService` is what main.ts runs and what the tests start in-process.
 */
import { existsSync, readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { serve } from '@hono/node-server'
import type { ServerType } from '@hono/node-server'
import type { Logger } from 'pino'
import type { Config } from './config.js'
import { EngineClient } from './engine/client.js'
import { createApp } from './http/app.js'
import type { App } from './http/app.js'
import { openapiYaml } from './http/openapi.js'
import type { ServedModel, Service } from './http/service.js'
import { loadPackage } from './model/package.js'
import { Metrics } from './obs/metrics.js'

export interface RunningService {
  url: string
  app: App
  service: Service
  engines: EngineClient[]
  metrics: Metrics
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

/** A start-up failure: one line for the operator, exit code 1. */
export class StartupError extends Error {
  override name = 'StartupError'
}

const PAGE_PATH = fileURLToPath(new URL('./page/index.html', import.meta.url))

/** The keys of --api-keys and --api-keys-file together; never logged, never in a message. */
export function loadApiKeys(config: Pick<Config, 'apiKeys' | 'apiKeysFile'>): string[] {
  const keys = [...config.apiKeys]
  if (config.apiKeysFile !== null) {
    let text: string
    try {
      text = readFileSync(config.apiKeysFile, 'utf8')
    } catch (e) {
      throw new StartupError(`--api-keys-file ${config.apiKeysFile}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`)
    }
    const lines = text.split(/\r?\n/).map((l) => l.trim())
    const fromFile = lines.filter((l) => l !== '' && !l.startsWith('#'))
    const bad = lines.findIndex((l) => l !== '' && !l.startsWith('#') && /\s/.test(l))
    if (bad >= 0) throw new StartupError(`--api-keys-file ${config.apiKeysFile}: line ${bad + 1}: an API key must not contain white space`)
    if (fromFile.length === 0) throw new StartupError(`--api-keys-file ${config.apiKeysFile}: no keys in it (one per line; # starts a comment)`)
    keys.push(...fromFile)
  }
  return keys
}

export async function startService(config: Config, logger: Logger, opts: { metrics?: Metrics } = {}): Promise<RunningService> {
  const apiKeys = loadApiKeys(config)
  const metrics = opts.metrics ?? new Metrics()
  const packages = []
  for (const dir of config.models) {
    try {
      packages.push(await loadPackage(dir))
    } catch (e) {
      throw new StartupError(`model ${dir}: ${(e as Error).message}`)
    }
  }
  const ids = packages.map((p) => p.manifest.id)
  const duplicate = ids.find((id, i) => ids.indexOf(id) !== i)
  if (duplicate) throw new StartupError(`two model packages have the id ${duplicate}; ids must be unique`)

  const engines: EngineClient[] = []
  try {
    for (const pkg of packages) {
      const engine = await EngineClient.start({
        pkg,
        device: config.device,
        threads: config.threads,
        maxBatch: config.maxBatch,
        maxBatchTokens: config.maxBatchTokens,
        maxQueue: config.maxQueue,
        logger,
      })
      engines.push(engine)
      engine.observer = metrics.engine(engine)
      const info = engine.info!
      if (info.fallbackReason) logger.warn(`--device auto: using the CPU: ${info.fallbackReason}`)
      logger.info(
        { model: pkg.manifest.id, kind: pkg.manifest.kind, provider: info.provider, threads: info.threads },
        'model loaded',
      )
    }
  } catch (e) {
    await Promise.all(engines.map((en) => en.close()))
    throw new StartupError(`model ${packages[engines.length]?.dir}: ${(e as Error).message}`)
  }

  const models: ServedModel[] = engines.map((engine) => {
    const m = engine.pkg.manifest
    return {
      id: m.id,
      kind: m.kind,
      labels: m.labels,
      normalize: m.prompt.normalize,
      maxInputTokens: m.limits.max_input_tokens,
      encoder: engine.pkg.tokenizer.encoder,
      engine,
    }
  })
  const service: Service = {
    models,
    limits: config,
    runtime: { device: config.device, provider: engines[0]?.info?.provider ?? 'cpu', threads: config.threads },
    ...(existsSync(PAGE_PATH) ? { pagePath: PAGE_PATH } : {}),
    access: { apiKeys, corsOrigins: config.corsOrigins },
    lifecycle: { draining: false },
  }
  let yaml: string | undefined
  const app = createApp({ service, logger, metrics, openapiYaml: () => (yaml ??= openapiYaml(app)) })

  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, () => resolve(s))
    s.once('error', (e: NodeJS.ErrnoException) => reject(new StartupError(`cannot listen on ${config.host}:${config.port}: ${e.code ?? e.message}`)))
  }).catch(async (e) => {
    await Promise.all(engines.map((en) => en.close()))
    throw e
  })
  const { port } = server.address() as AddressInfo
  const host = config.host.includes(':') ? `[${config.host}]` : config.host
  const url = `http://${host}:${port}`
  logger.info(
    { url, models: ids, auth: apiKeys.length > 0 ? `${apiKeys.length} API keys` : 'off', cors: config.corsOrigins.length > 0 ? config.corsOrigins : 'off' },
    'listening',
  )

  const http = server as unknown as { closeIdleConnections(): void; closeAllConnections(): void }
  let closed: Promise<void> | null = null
  const close = () =>
    (closed ??= (async () => {
      service.lifecycle!.draining = true
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
  return {
    url,
    app,
    service,
    engines,
    metrics,
    close,
    async shutdown(drainTimeoutMs: number) {
      if (endDrain) {
        endDrain()
        return { numAbandoned: 0 }
      }
      service.lifecycle!.draining = true
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
    },
  }
}
