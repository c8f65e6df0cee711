/**
 * The deployment files (deploy/compose.yaml, deploy/kubernetes/*.yaml) held to the code without
 * Docker or a cluster: the configuration each container ends up with is what src/config.ts parses
 * from the image's ENV plus the file's environment; the probe and scrape paths are asked of the
 * real app (liveness answers while the engine loads and while it drains, readiness does not,
 * /metrics wants the key the scraper sends); grace periods outlast the drain; the keys come from a
 * secret; both files name the image the Dockerfile's CPU target builds.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, posix, relative, resolve } from 'node:path'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { parse, parseAllDocuments } from 'yaml'
import { parseConfig } from '../src/config.js'
import type { Config } from '../src/config.js'
import { createApp } from '../src/http/app.js'
import type { ServedModel, Service } from '../src/http/service.js'
import { Metrics } from '../src/obs/metrics.js'
import { ROOT, argsOf, byName, envOf, healthcheckOf } from './support/dockerfile.js'

const DEPLOY = join(ROOT, 'deploy')
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
const IMAGE = `because:${pkg.version}`
const cpuStage = byName.get('cpu')!
const WORKDIR = argsOf(cpuStage, 'WORKDIR').at(-1)!

/** The service's configuration in a container of the CPU image given `env` on top of the image's ENV. */
const configIn = (env: Record<string, string>): Config => parseConfig([], { ...envOf(cpuStage), ...env })

/** Compose durations (`1m30s`, `15s`, `500ms`) in seconds. */
function seconds(duration: string): number {
  const units: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6 }
  const parts = [...duration.matchAll(/(\d+(?:\.\d+)?)(h|ms|us|m|s)/g)]
  expect(parts.map((p) => p[0]).join(''), `duration ${duration}`).toBe(duration)
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * units[unit!]!, 0)
}

/** Kubernetes and compose quantities: CPUs (`2`, `1500m`) in cores, memory (`640Mi`, `1Gi`, `1G`) in bytes. */
function quantity(q: string | number): number {
  const [, n, unit = ''] = /^(\d+(?:\.\d+)?)([a-zA-Z]*)$/.exec(String(q)) ?? []
  const scale: Record<string, number> = { '': 1, m: 1e-3, k: 1e3, K: 1e3, M: 1e6, G: 1e9, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 }
  expect(n !== undefined && unit in scale, `quantity ${q}`).toBe(true)
  return Number(n) * scale[unit]!
}

// ---- what the app answers on a path, asked of the real routes ---------------------------------

const KEY = 'scrape-key'
const engine = { ready: true, numInFlight: 0, submit: () => Promise.reject(new Error('no inference here')) }
const lifecycle = { draining: false }
const defaults = parseConfig([], {})
const service: Service = {
  // What the probes read; the rest of a model serves inference, which no test here sends.
  models: [{ id: 'm', kind: 'qra', labels: ['joy'], engine } as Partial<ServedModel> as ServedModel],
  limits: defaults,
  runtime: { device: 'cpu', provider: 'cpu', threads: 1, workers: 1 },
  access: { apiKeys: [KEY], corsOrigins: [] },
  lifecycle,
}
const app = createApp({ service, logger: pino({ level: 'silent' }), metrics: new Metrics({ processMetrics: false }) })

/** A path's status without a key while the models load, once ready, and while draining. */
async function probeStatuses(path: string): Promise<{ loading: number; ready: number; draining: number }> {
  const at = async (ready: boolean, draining: boolean) => {
    engine.ready = ready
    lifecycle.draining = draining
    try {
      return (await app.request(path)).status
    } finally {
      engine.ready = true
      lifecycle.draining = false
    }
  }
  return { loading: await at(false, false), ready: await at(true, false), draining: await at(true, true) }
}

/** A liveness check must pass whenever the process runs: also while a model loads and while it drains. */
async function expectLiveness(path: string, what: string) {
  expect(await probeStatuses(path), `${what}: ${path}`).toEqual({ loading: 200, ready: 200, draining: 200 })
}

/** A readiness check must pass only when requests can be served, and without a key (the kubelet sends none). */
async function expectReadiness(path: string, what: string) {
  expect(await probeStatuses(path), `${what}: ${path}`).toEqual({ loading: 503, ready: 200, draining: 503 })
}

// ---- compose ----------------------------------------------------------------------------------

interface ComposeService {
  build: { context: string; dockerfile?: string; target: string }
  image: string
  init?: boolean
  stop_grace_period: string
  ports: string[]
  environment: Record<string, string>
  secrets: string[]
  volumes: { type: string; source: string; target: string; read_only?: boolean }[]
  healthcheck: { test: string[]; interval: string; timeout: string; start_period: string; retries: number }
  deploy: { resources: { limits: { cpus: string; memory: string } } }
}
const compose = parse(readFileSync(join(DEPLOY, 'compose.yaml'), 'utf8')) as {
  services: Record<string, ComposeService>
  secrets: Record<string, { file: string }>
}

describe('deploy/compose.yaml', () => {
  const svc = compose.services.because!
  const config = configIn(svc.environment)

  it('builds the Dockerfile CPU target from the repository and tags it with the package version', () => {
    expect(resolve(DEPLOY, svc.build.context)).toBe(ROOT)
    expect(svc.build.dockerfile ?? 'Dockerfile').toBe('Dockerfile')
    expect(svc.build.target).toBe('cpu')
    expect(svc.image).toBe(IMAGE)
  })

  it('publishes the port the service listens on, and gives it longer to stop than the drain', () => {
    for (const p of svc.ports) expect(Number(String(p).split(':').at(-1)), p).toBe(config.port)
    expect(argsOf(cpuStage, 'EXPOSE')).toEqual([String(config.port)])
    expect(seconds(svc.stop_grace_period)).toBeGreaterThan(config.drainTimeoutMs / 1000)
    expect(svc.init).toBe(true)
  })

  it('checks health as the Dockerfile does (node, no curl in the image), on a liveness path', async () => {
    const hc = healthcheckOf(cpuStage)!
    expect(svc.healthcheck.test).toEqual(['CMD', ...hc.cmd!])
    for (const [flag, value] of Object.entries(hc.flags)) {
      expect(String(svc.healthcheck[flag.replace('-', '_') as keyof ComposeService['healthcheck']]), flag).toBe(value)
    }
    const [, path] = /'(\/[\w/-]*)'/.exec(svc.healthcheck.test.join(' ')) ?? []
    await expectLiveness(path!, 'healthcheck')
  })

  it('mounts the models the service loads, read-only, from the repository', () => {
    const models = svc.volumes.find((v) => config.models.every((m) => posix.resolve(WORKDIR, m).startsWith(`${v.target}/`)))
    expect(models, `a volume holding ${config.models.join(', ')}`).toBeDefined()
    expect(models!.type).toBe('bind')
    expect(models!.read_only).toBe(true)
    for (const m of config.models) {
      const onHost = join(DEPLOY, models!.source, posix.relative(models!.target, posix.resolve(WORKDIR, m)))
      expect(existsSync(join(onHost, 'manifest.json')), onHost).toBe(true)
    }
  })

  it('reads the API keys from a compose secret whose file git ignores', () => {
    const name = svc.secrets.find((s) => svc.environment.API_KEYS_FILE === `/run/secrets/${s}`)
    expect(name, 'API_KEYS_FILE is a secret of the service').toBeDefined()
    const file = relative(ROOT, resolve(DEPLOY, compose.secrets[name!]!.file))
    const ignored = readFileSync(join(ROOT, '.gitignore'), 'utf8').split('\n').map((l) => l.trim())
    expect(ignored).toContain(file)
    expect(svc.environment.API_KEYS, 'keys in the environment show in `docker inspect`').toBeUndefined()
  })

  it('runs as many ONNX Runtime threads as it has CPUs, with a memory limit', () => {
    const { cpus, memory } = svc.deploy.resources.limits
    expect(config.threads).toBe(Math.ceil(quantity(cpus)))
    expect(quantity(memory)).toBeGreaterThan(0)
  })
})

// ---- Kubernetes -------------------------------------------------------------------------------

interface Probe {
  httpGet: { path: string; port: string | number }
  periodSeconds?: number
  timeoutSeconds?: number
  failureThreshold?: number
}
interface EnvVar {
  name: string
  value?: string
  valueFrom?: {
    secretKeyRef?: { name: string; key: string }
    resourceFieldRef?: { containerName?: string; resource: string; divisor?: string }
  }
}
interface Container {
  name: string
  image: string
  ports: { name: string; containerPort: number }[]
  env: EnvVar[]
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[]
  resources: { requests: { cpu: string; memory: string }; limits: { cpu: string; memory: string } }
  startupProbe?: Probe
  livenessProbe: Probe
  readinessProbe: Probe
  lifecycle?: { preStop?: { exec?: { command: string[] }; sleep?: { seconds: number } } }
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean }
}
interface Deployment {
  spec: {
    selector: { matchLabels: Record<string, string> }
    template: {
      metadata: { labels: Record<string, string> }
      spec: {
        terminationGracePeriodSeconds: number
        securityContext?: { runAsNonRoot?: boolean; runAsUser?: number }
        containers: Container[]
        volumes: { name: string; secret?: { secretName: string; items?: { key: string; path: string }[] }; emptyDir?: object }[]
      }
    }
  }
}
interface K8sService {
  metadata: { labels: Record<string, string> }
  spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: string | number }[] }
}
interface ServiceMonitor {
  spec: {
    selector: { matchLabels: Record<string, string> }
    endpoints: { port: string; path: string; authorization?: { type?: string; credentials: { name: string; key: string } } }[]
  }
}

const K8S = join(DEPLOY, 'kubernetes')
const manifests = readdirSync(K8S)
  .filter((f) => /\.ya?ml$/.test(f))
  .flatMap((f) => parseAllDocuments(readFileSync(join(K8S, f), 'utf8')).map((d) => ({ file: f, doc: d.toJS() as { apiVersion: string; kind: string; metadata: { name: string } } })))
const only = <T>(kind: string): T => {
  const found = manifests.filter((m) => m.doc.kind === kind)
  expect(found, kind).toHaveLength(1)
  return found[0]!.doc as T
}
const subset = (labels: Record<string, string>, of: Record<string, string>) => Object.entries(labels).every(([k, v]) => of[k] === v)

describe('deploy/kubernetes', () => {
  const deployment = only<Deployment>('Deployment')
  const k8sService = only<K8sService>('Service')
  const monitor = only<ServiceMonitor>('ServiceMonitor')
  const pod = deployment.spec.template.spec
  const [container] = pod.containers
  const c = container!
  const secretKey = c.env.find((e) => e.name === 'API_KEYS')?.valueFrom?.secretKeyRef

  /** The container's environment as the kubelet resolves it: a secret as some key, a resource field from the limits. */
  const env = Object.fromEntries(
    c.env.map((e): [string, string] => {
      const from = e.valueFrom
      if (from?.secretKeyRef) return [e.name, KEY]
      if (from?.resourceFieldRef) {
        const { containerName, resource, divisor = '1' } = from.resourceFieldRef
        expect(containerName ?? c.name, e.name).toBe(c.name)
        const [kind, what] = resource.split('.') as ['limits' | 'requests', 'cpu' | 'memory']
        return [e.name, String(Math.ceil(quantity(c.resources[kind][what]) / quantity(divisor)))]
      }
      return [e.name, e.value!]
    }),
  )
  const config = configIn(env)
  const port = (p: string | number) => (typeof p === 'number' ? p : c.ports.find((q) => q.name === p)?.containerPort)

  it('is three objects, each with a kind, an apiVersion and a name', () => {
    expect(manifests.map((m) => m.doc.kind).sort()).toEqual(['Deployment', 'Service', 'ServiceMonitor'])
    for (const { file, doc } of manifests) {
      expect(doc.apiVersion, file).toMatch(/^(v1|apps\/v1|monitoring\.coreos\.com\/v1)$/)
      expect(doc.metadata.name, file).toBe('because')
    }
  })

  it('runs one container of the CPU image on the port the service listens on', () => {
    expect(pod.containers).toHaveLength(1)
    expect(c.image).toBe(IMAGE)
    expect(subset(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels)).toBe(true)
    expect(c.ports.map((p) => p.containerPort)).toEqual([config.port])
  })

  it('probes liveness on a path that answers while loading and draining, readiness on one that does not', async () => {
    for (const probe of [c.livenessProbe, c.startupProbe, c.readinessProbe]) expect(port(probe!.httpGet.port)).toBe(config.port)
    await expectLiveness(c.livenessProbe.httpGet.path, 'livenessProbe')
    await expectLiveness(c.startupProbe!.httpGet.path, 'startupProbe')
    await expectReadiness(c.readinessProbe.httpGet.path, 'readinessProbe')
  })

  it('gives the pod longer to stop than the preStop pause plus the drain', () => {
    const preStop = c.lifecycle?.preStop
    const pause = preStop?.sleep?.seconds ?? (preStop?.exec?.command[0] === 'sleep' ? Number(preStop.exec.command[1]) : 0)
    expect(pause).toBeGreaterThanOrEqual(0)
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(pause + config.drainTimeoutMs / 1000)
  })

  it('requests and limits CPU and memory, and runs as many ONNX Runtime threads as the CPU limit', () => {
    const { requests, limits } = c.resources
    for (const r of ['cpu', 'memory'] as const) {
      expect(quantity(requests[r]), r).toBeGreaterThan(0)
      expect(quantity(limits[r]), r).toBeGreaterThanOrEqual(quantity(requests[r]))
    }
    expect(c.env.find((e) => e.name === 'THREADS')?.valueFrom?.resourceFieldRef?.resource).toBe('limits.cpu')
    expect(config.threads).toBe(Math.ceil(quantity(limits.cpu)))
  })

  it('reads the API keys from a Secret, as a file and as the key Prometheus sends', () => {
    const file = config.apiKeysFile!
    const mount = c.volumeMounts.find((m) => file.startsWith(`${m.mountPath}/`))
    const volume = pod.volumes.find((v) => v.name === mount?.name)
    expect(volume?.secret, `${file} is in a Secret volume`).toBeDefined()
    const inVolume = file.slice(mount!.mountPath.length + 1)
    expect(volume!.secret!.items?.map((i) => i.path) ?? [inVolume]).toContain(inVolume)
    expect(secretKey?.name).toBe(volume!.secret!.secretName)
    for (const e of monitor.spec.endpoints) expect(e.authorization?.credentials, 'scrape key').toEqual(secretKey)
  })

  it('runs as a numeric non-root user (the image names its user), read-only but for the temp folder', () => {
    expect(argsOf(cpuStage, 'USER').at(-1)).not.toMatch(/^\d+$/)
    expect(pod.securityContext?.runAsNonRoot).toBe(true)
    expect(pod.securityContext?.runAsUser).toBeGreaterThan(0)
    expect(c.securityContext?.allowPrivilegeEscalation).toBe(false)
    if (c.securityContext?.readOnlyRootFilesystem) {
      const tmp = c.volumeMounts.find((m) => m.mountPath === '/tmp')
      expect(pod.volumes.find((v) => v.name === tmp?.name)?.emptyDir, 'tsx writes its cache under /tmp').toBeDefined()
    }
  })

  it('has a Service in front of the pods, on the container port', () => {
    expect(subset(k8sService.spec.selector, deployment.spec.template.metadata.labels)).toBe(true)
    for (const p of k8sService.spec.ports) expect(port(p.targetPort), p.name).toBe(config.port)
  })

  it('scrapes /metrics of that Service with a bearer key the app accepts', async () => {
    expect(subset(monitor.spec.selector.matchLabels, k8sService.metadata.labels)).toBe(true)
    for (const e of monitor.spec.endpoints) {
      expect(k8sService.spec.ports.map((p) => p.name)).toContain(e.port)
      expect(e.authorization?.type ?? 'Bearer').toBe('Bearer')
      expect((await app.request(e.path)).status, `${e.path} without a key`).toBe(401)
      const res = await app.request(e.path, { headers: { authorization: `Bearer ${KEY}` } })
      expect(res.status, e.path).toBe(200)
      expect(await res.text()).toMatch(/^because_http_requests_total/m)
    }
  })
})
