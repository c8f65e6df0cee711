/**
 * @module
 * Start-up and wiring: load and verify every model package, start its engine workers,
 * build the app, listen (and shutdown.ts for the way down). `startService` is what main.ts runs
 * and what the tests start in-process.
 */
import { existsSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { serve } from '@hono/node-server'
import type { ServerType } from '@hono/node-server'
import type { Logger } from 'pino'
import { loadApiKeys } from './config.js'
import type { Config } from './config.js'
import { EngineClient } from './engine/client.js'
import { createApp } from './http/app.js'
import type { App } from './http/app.js'
import { openapiYaml } from './http/openapi.js'
import type { ModelCard, ServedModel, Service } from './http/service.js'
import { selectGraph } from './model/manifest.js'
import type { SelectedGraph } from './model/manifest.js'
import { loadPackage } from './model/package.js'
import type { ModelPackage } from './model/package.js'
import type { PackagePrior } from './model/prior.js'
import { Metrics } from './obs/metrics.js'
import { stopper } from './shutdown.js'
import type { Stoppable } from './shutdown.js'

export interface RunningService extends Stoppable {
  url: string
  app: App
  service: Service
  engines: EngineClient[]
  metrics: Metrics
}

export interface StartOptions {
  /** Where to register the metrics (a fresh registry when absent). */
  metrics?: Metrics
  /** Test-only: the engines accept `EngineClient.crashWorker()`. */
  crashDrill?: boolean
}

/** A start-up failure: one line for the operator, exit code 1. */
export class StartupError extends Error {
  override name = 'StartupError'
}

const PAGE_PATH = fileURLToPath(new URL('./page/index.html', import.meta.url))

/** Throws `ConfigError` for an unreadable keys file and `StartupError` for anything else. */
export async function startService(config: Config, logger: Logger, opts: StartOptions = {}): Promise<RunningService> {
  const apiKeys = loadApiKeys(config)
  const metrics = opts.metrics ?? new Metrics()
  const packages = await loadPackages(config.models, config.graph)
  const engines = await startEngines(packages, config, { logger, metrics, crashDrill: opts.crashDrill ?? false })

  const service: Service = {
    models: engines.map(servedModel),
    limits: config,
    runtime: { device: config.device, provider: engines[0]?.info?.provider ?? 'cpu', threads: config.threads, workers: config.workers },
    ...(existsSync(PAGE_PATH) ? { pagePath: PAGE_PATH } : {}),
    access: { apiKeys, corsOrigins: config.corsOrigins },
    lifecycle: { draining: false },
  }
  let yaml: string | undefined
  const app = createApp({ service, logger, metrics, openapiYaml: () => (yaml ??= openapiYaml(app)) })

  const server = await listen(app, config).catch(async (e) => {
    await Promise.all(engines.map((en) => en.close()))
    throw e
  })
  const { port } = server.address() as AddressInfo
  const host = config.host.includes(':') ? `[${config.host}]` : config.host
  const url = `http://${host}:${port}`
  logger.info(
    {
      url,
      models: packages.map((p) => p.pkg.manifest.id),
      auth: apiKeys.length > 0 ? `${apiKeys.length} API keys` : 'off',
      cors: config.corsOrigins.length > 0 ? config.corsOrigins : 'off',
    },
    'listening',
  )
  return { url, app, service, engines, metrics, ...stopper({ server, engines, lifecycle: service.lifecycle!, logger }) }
}

/** A package with the graph it is served on. */
interface PackageToServe {
  pkg: ModelPackage
  graph: SelectedGraph
}

/**
 * Loads and verifies every package and picks its graph (`--graph`, else its default): a package
 * without that graph stops start-up here, before any worker starts. Their ids must differ.
 */
async function loadPackages(dirs: readonly string[], graph: string | null): Promise<PackageToServe[]> {
  const packages: PackageToServe[] = []
  for (const dir of dirs) {
    try {
      const pkg = await loadPackage(dir)
      packages.push({ pkg, graph: selectGraph(pkg.manifest, graph) })
    } catch (e) {
      throw new StartupError(`model ${dir}: ${(e as Error).message}`)
    }
  }
  const ids = packages.map((p) => p.pkg.manifest.id)
  const duplicate = ids.find((id, i) => ids.indexOf(id) !== i)
  if (duplicate) throw new StartupError(`two model packages have the id ${duplicate}; ids must be unique`)
  return packages
}

/** `--workers` engine workers per package, package after package; if one fails, those started are closed. */
async function startEngines(
  packages: readonly PackageToServe[],
  config: Config,
  { logger, metrics, crashDrill }: { logger: Logger; metrics: Metrics; crashDrill: boolean },
): Promise<EngineClient[]> {
  const engines: EngineClient[] = []
  try {
    for (const { pkg, graph } of packages) {
      const engine = await EngineClient.start({
        pkg,
        graph,
        device: config.device,
        threads: config.threads,
        workers: config.workers,
        spinWait: config.spinWait,
        maxBatch: config.maxBatch,
        maxBatchTokens: config.maxBatchTokens,
        maxQueue: config.maxQueue,
        logger,
        crashDrill,
      })
      engines.push(engine)
      engine.observer = metrics.engine(engine)
      const info = engine.info!
      if (info.fallbackReason) logger.warn(`--device auto: using the CPU: ${info.fallbackReason}`)
      logger.info({ model: pkg.manifest.id, kind: pkg.manifest.kind, graph: graph.name, layout: graph.layout, dtype: graph.dtype, provider: info.provider, threads: info.threads, workers: config.workers }, 'model loaded')
    }
  } catch (e) {
    await Promise.all(engines.map((en) => en.close()))
    throw new StartupError(`model ${packages[engines.length]?.pkg.dir}: ${(e as Error).message}`)
  }
  return engines
}

/** What the HTTP layer needs of a model: its manifest's facts, its encoder, its engine. */
function servedModel(engine: EngineClient): ServedModel {
  const m = engine.pkg.manifest
  const graph = engine.graph
  return {
    id: m.id,
    kind: m.kind,
    labels: m.labels,
    labelTokenCounts: m.label_token_ids.map((ids) => ids.length),
    normalize: m.prompt.normalize,
    maxInputTokens: m.limits.max_input_tokens,
    maxReasoningTokens: m.limits.max_reasoning_tokens,
    encoder: engine.pkg.tokenizer.encoder,
    engine,
    card: {
      graph: graph.name,
      layout: graph.layout,
      dtype: graph.dtype,
      onnxSha256: m.files[graph.file]!,
      calibration: calibrationCard(engine.pkg),
      prior: priorCard(engine.pkg.prior),
      provider: engine.info?.provider ?? 'cpu',
    },
  }
}

/** /info's `calibration`: the manifest's (null when it has none), a register temperature keyed in register order. */
function calibrationCard(pkg: ModelPackage): ModelCard['calibration'] {
  const c = pkg.calibration
  if (!pkg.manifest.calibration) return null
  if (c.method === 'temperature') return { method: 'temperature', temperature: c.temperature }
  const registers = pkg.prior?.method === 'tfidf-logreg-registers' ? pkg.prior.registers : []
  return { method: 'register-temperature', temperatures: Object.fromEntries(registers.map((r, i) => [r, c.temperatures[i]!])) }
}

/** /info's `prior`: method, weight (or weights and registers, in register order) and terms. */
function priorCard(p: PackagePrior | null): ModelCard['prior'] {
  if (!p) return null
  if (p.method === 'tfidf-logreg') return { method: p.method, weight: p.weight, terms: p.numTerms }
  const weights = Object.fromEntries(p.registers.map((r, i) => [r, p.weights[i]!]))
  return { method: p.method, weights, registers: [...p.registers], terms: p.numTerms }
}

function listen(app: App, config: Pick<Config, 'host' | 'port'>): Promise<ServerType> {
  return new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, () => resolve(s))
    s.once('error', (e: NodeJS.ErrnoException) => reject(new StartupError(`cannot listen on ${config.host}:${config.port}: ${e.code ?? e.message}`)))
  })
}
