/**
 * @module
 * Start-up and wiring: load and verify every model package, start one engine worker per model,
 * build the app, listen. `startService` is what main.ts runs and what the tests start in-process.
 */
import { existsSync } from 'node:fs'
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

export interface RunningService {
  url: string
  app: App
  service: Service
  engines: EngineClient[]
  /** Stops listening and stops the workers. */
  close(): Promise<void>
}

/** A start-up failure: one line for the operator, exit code 1. */
export class StartupError extends Error {
  override name = 'StartupError'
}

const PAGE_PATH = fileURLToPath(new URL('./page/index.html', import.meta.url))

export async function startService(config: Config, logger: Logger): Promise<RunningService> {
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
  }
  let yaml: string | undefined
  const app = createApp({ service, logger, openapiYaml: () => (yaml ??= openapiYaml(app)) })

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
  logger.info({ url, models: ids }, 'listening')

  return {
    url,
    app,
    service,
    engines,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        // Streams in progress would hold close() open; they end with their requests.
        ;(server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.()
      })
      await Promise.all(engines.map((en) => en.close()))
    },
  }
}
