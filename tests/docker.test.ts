/**
 * What can be checked about the Dockerfile without a Docker engine: every path it copies exists
 * in the build context (or comes from an earlier stage), nothing it copies is excluded by
 * .dockerignore, the command is package.json's start script, each image has a HEALTHCHECK and a
 * non-root user, production dependencies cover what src/ imports, and .dockerignore keeps
 * dependencies, the training environment, the benchmark and test output out of the context.
 */

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { commandFromStartScript } from '../loadtest/lib/server.js'

const ROOT = resolve(import.meta.dirname, '..')
const read = (rel: string) => readFileSync(join(ROOT, rel), 'utf8')
const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; dependencies: Record<string, string> }

/** A build stage: its name, its base image (global ARG defaults expanded), its instructions. */
interface Stage {
  name: string
  base: string
  ins: { keyword: string; args: string }[]
}

// Comment lines go first (those inside a continuation too), then continuation lines are joined.
const lines = read('Dockerfile')
  .split('\n')
  .filter((l) => !l.trimStart().startsWith('#'))
  .join('\n')
  .replace(/\\\n/g, ' ')
  .split('\n')
  .filter((l) => l.trim() !== '')
const globalArgs: Record<string, string> = {}
const stages: Stage[] = []
for (const line of lines) {
  const [, word, args] = /^\s*(\w+)\s+(.*?)\s*$/.exec(line)!
  const keyword = word!.toUpperCase()
  if (keyword === 'FROM') {
    const [image, , name] = args!.split(/\s+/)
    stages.push({ name: name!, base: image!.replace(/\$\{(\w+)\}/g, (_, k: string) => globalArgs[k] ?? ''), ins: [] })
  } else if (stages.length === 0 && keyword === 'ARG') {
    const [k, v] = args!.split('=')
    globalArgs[k!] = v!
  } else {
    stages.at(-1)!.ins.push({ keyword, args: args! })
  }
}
const byName = new Map(stages.map((s) => [s.name, s]))
const runnable = stages.filter((s) => s.ins.some((i) => i.keyword === 'CMD'))
const argsOf = (s: Stage, keyword: string) => s.ins.filter((i) => i.keyword === keyword).map((i) => i.args)
/** `ENV a=b c=d`, every such line of the stage. */
const envOf = (s: Stage) => Object.fromEntries(argsOf(s, 'ENV').flatMap((a) => [...a.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]])))
/** COPY's `--from` and its sources (the last word is the destination). */
function copyOf(args: string): { from?: string; sources: string[] } {
  const words = args.split(/\s+/)
  const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length)
  return { from, sources: words.filter((w) => !w.startsWith('--')).slice(0, -1) }
}

/**
 * .dockerignore as Docker reads it: `*` and `?` stay within a folder, `**` spans any, a leading
 * `/` is dropped, the last matching rule wins (`!` lets through), and a folder excluded excludes
 * everything below it.
 */
const rules = read('.dockerignore')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'))
  .map((l) => {
    const glob = l.replace(/^!/, '').replace(/^\/+|\/+$/g, '')
    const re = glob
      .split(/(\*\*\/|\*\*|\*|\?)/)
      .map((p) => ({ '**/': '(?:.*/)?', '**': '.*', '*': '[^/]*', '?': '[^/]' })[p] ?? p.replace(/[.+^${}()|[\]\\]/g, '\\$&'))
      .join('')
    return { negate: l.startsWith('!'), re: new RegExp(`^${re}$`) }
  })
function ignored(path: string): boolean {
  const folders = path.split('/').map((_, n, segs) => segs.slice(0, n + 1).join('/'))
  return rules.reduce((out, r) => (folders.some((f) => r.re.test(f)) ? !r.negate : out), false)
}

describe('Dockerfile', () => {
  it('has dependency stages, a gpu target and the CPU image last (the default target)', () => {
    expect(stages.map((s) => s.name)).toEqual(expect.arrayContaining(['deps', 'deps-gpu', 'gpu', 'cpu']))
    expect(stages.at(-1)!.name).toBe('cpu')
    expect(stages.at(-1)!.base).toBe('node:20-bookworm-slim')
    expect(byName.get('gpu')!.base).toMatch(/^nvidia\/cuda:12\.[\d.]+-cudnn9?-runtime-ubuntu\d\d\.\d\d$/)
    expect(runnable.map((s) => s.name).sort()).toEqual(['cpu', 'gpu'])
  })

  it('copies only paths that exist in the context and that .dockerignore lets through, or what earlier stages made', () => {
    stages.forEach((stage, idx) => {
      expect(argsOf(stage, 'ADD'), `${stage.name}: use COPY, not ADD`).toEqual([])
      for (const args of argsOf(stage, 'COPY')) {
        const { from, sources } = copyOf(args)
        if (from) {
          expect(stages.slice(0, idx).map((s) => s.name), `COPY ${args}: no earlier stage ${from}`).toContain(from)
          const earlier = byName.get(from)!
          // What a dependency stage makes: node_modules by `npm ci` in /app, node from the official image.
          for (const src of sources) expect(['/app/node_modules', '/usr/local/bin/node'], `COPY ${args}`).toContain(src)
          if (sources.includes('/app/node_modules')) {
            expect(argsOf(earlier, 'WORKDIR'), from).toContain('/app')
            expect(argsOf(earlier, 'RUN').join('\n'), from).toMatch(/\bnpm ci\b/)
          }
          if (sources.includes('/usr/local/bin/node')) expect(earlier.base, from).toMatch(/^node:20/)
          continue
        }
        for (const src of sources) {
          expect(src, `COPY ${args}`).not.toMatch(/^\/|\.\./)
          expect(existsSync(join(ROOT, src)), `COPY ${args}: ${src} does not exist`).toBe(true)
          const files = statSync(join(ROOT, src)).isDirectory()
            ? readdirSync(join(ROOT, src), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(ROOT.length + 1))
            : [src]
          for (const f of files) expect(ignored(f), `COPY ${args}: ${f} is in .dockerignore`).toBe(false)
        }
      }
    })
  })

  it('installs production dependencies only, skipping the CUDA download except for gpu', () => {
    for (const [name, flag] of [
      ['deps', 'skip'],
      ['deps-gpu', 'cuda12'],
    ] as const) {
      expect(envOf(byName.get(name)!).ONNXRUNTIME_NODE_INSTALL, name).toBe(flag)
      expect(argsOf(byName.get(name)!, 'RUN').join('\n'), name).toMatch(/npm ci --omit=dev/)
    }
  })

  it('starts each image with package.json start script, as the same process', () => {
    const want = commandFromStartScript(pkg.scripts.start!, 'node')
    expect(want.slice(0, 3)).toEqual(['node', '--import', 'tsx'])
    for (const s of runnable) {
      expect(argsOf(s, 'CMD').map((a) => JSON.parse(a) as string[]), s.name).toEqual([want])
      expect(argsOf(s, 'ENTRYPOINT'), s.name).toEqual([])
    }
  })

  it('has tsx and every package src/ imports among the production dependencies', () => {
    expect(pkg.dependencies.tsx).toBeDefined()
    const missing = new Set<string>()
    for (const f of readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'))) {
      const text = read(join('src', f))
      for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
        const spec = m[1] ?? m[2]!
        if (/^(\.|node:|\/)/.test(spec) || /^import\s+type\b/.test(m[0].trim())) continue // local, built in, or erased at run time
        const name = spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/')
        if (!pkg.dependencies[name]) missing.add(`${name} (src/${f})`)
      }
    }
    expect([...missing]).toEqual([])
  })

  it('runs each image as a non-root user, listening on all interfaces, with the right device', () => {
    for (const s of runnable) {
      // The last USER is not root and comes before CMD, so the service never runs as root.
      const lastUser = s.ins.findLastIndex((i) => i.keyword === 'USER')
      expect(lastUser, s.name).toBeGreaterThanOrEqual(0)
      expect(['root', '0'], s.name).not.toContain(s.ins[lastUser]!.args.split(':')[0])
      expect(lastUser, s.name).toBeLessThan(s.ins.findIndex((i) => i.keyword === 'CMD'))
      const env = envOf(s)
      expect({ HOST: env.HOST, NODE_ENV: env.NODE_ENV, DEVICE: env.DEVICE }, s.name).toEqual({
        HOST: '0.0.0.0',
        NODE_ENV: 'production',
        DEVICE: s.name === 'gpu' ? 'cuda' : 'cpu',
      })
      expect(argsOf(s, 'EXPOSE'), s.name).toEqual([env.PORT])
    }
    // The gpu base image has no node user: it must be created.
    expect(argsOf(byName.get('gpu')!, 'RUN').join('\n')).toMatch(/useradd[^\n]*\bnode\b/)
  })

  it('has a HEALTHCHECK on /healthz in each image, exec form with node (no curl or wget in the slim images)', () => {
    for (const s of runnable) {
      const hc = argsOf(s, 'HEALTHCHECK')
      expect(hc, s.name).toHaveLength(1)
      const [, flags, cmd] = /^((?:--\S+\s+)*)CMD\s+(.*)$/.exec(hc[0]!) ?? []
      expect(flags, s.name).toMatch(/--interval=\d+s/)
      expect(cmd, s.name).toMatch(/\/healthz/)
      expect((JSON.parse(cmd ?? 'null') as string[] | null)?.[0], s.name).toBe('node')
    }
  })
})

describe('.dockerignore', () => {
  it('keeps dependencies, the training environment, the benchmark, output and secrets out of the context', () => {
    for (const p of [
      'node_modules/hono/package.json',
      'src/sub/node_modules/x',
      'training/.venv/bin/python',
      'bench/measure-kv.ts',
      'test-output/loadtest/smoke.json',
      '.git',
      '.env',
    ]) {
      expect(ignored(p), p).toBe(true)
    }
  })

  it('lets the sources, the lock file and the models through', () => {
    for (const p of ['package.json', 'package-lock.json', '.npmrc', 'tsconfig.json', 'src/main.ts', 'models/x/model.onnx']) {
      expect(ignored(p), p).toBe(false)
    }
  })
})
