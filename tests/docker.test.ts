/**
 * What can be checked about the Dockerfile without a Docker engine: every path it copies exists
 * in the build context (or comes from an earlier stage), nothing it copies is excluded by
 * .dockerignore, the command is package.json's start script, each image has a HEALTHCHECK and a
 * non-root user, production dependencies cover what src/ imports, the images' Node line is one
 * package.json's engines admits, and .dockerignore keeps dependencies, the training environment,
 * the benchmark and test output out of the context.
 */

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { commandFromStartScript } from '../loadtest/lib/server.js'
import { ROOT, argsOf, byName, envOf, healthcheckOf, stages } from './support/dockerfile.js'

const read = (rel: string) => readFileSync(join(ROOT, rel), 'utf8')
const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; dependencies: Record<string, string>; engines: { node: string } }

const runnable = stages.filter((s) => s.ins.some((i) => i.keyword === 'CMD'))
/** COPY's `--from` and its sources (the last word is the destination). */
function copyOf(args: string): { from?: string; sources: string[] } {
  const words = args.split(/\s+/)
  const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length)
  return { from, sources: words.filter((w) => !w.startsWith('--')).slice(0, -1) }
}

/**
 * Whether a version satisfies an `engines` range of `||` alternatives, each of space-separated
 * `>=`, `>`, `<=`, `<` comparators (the forms package.json uses), without a semver dependency.
 */
function satisfies(version: string, range: string): boolean {
  const num = (v: string) => v.replace(/^v/, '').split('.').map(Number)
  const cmp = (a: number[], b: number[]) => {
    for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0)
    return 0
  }
  const v = num(version)
  return range.split('||').some((alt) =>
    alt
      .trim()
      .split(/\s+/)
      .every((c) => {
        const [, op, ver] = /^(>=|<=|>|<)(\d+(?:\.\d+){0,2})$/.exec(c) ?? []
        if (op === undefined || ver === undefined) throw new Error(`engines: cannot read ${JSON.stringify(c)}`)
        const d = cmp(v, num(ver))
        return { '>=': d >= 0, '<=': d <= 0, '>': d > 0, '<': d < 0 }[op]!
      }),
  )
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
    expect(stages.at(-1)!.base).toBe('node:22-bookworm-slim')
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
          if (sources.includes('/usr/local/bin/node')) expect(earlier.base, from).toMatch(/^node:22/)
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
      expect(argsOf(s, 'HEALTHCHECK'), s.name).toHaveLength(1)
      const { flags, cmd } = healthcheckOf(s)!
      expect(flags.interval, s.name).toMatch(/^\d+s$/)
      expect(cmd?.[0], s.name).toBe('node')
      expect(cmd?.join(' '), s.name).toMatch(/\/healthz/)
    }
  })

  it('runs a Node line that package.json engines admits, as does the Node running this test', () => {
    // Floating tags (node:22-bookworm-slim) move to each new release of their line.
    const majors = new Set(stages.filter((s) => s.base.startsWith('node:')).map((s) => /^node:(\d+)-/.exec(s.base)?.[1]))
    expect([...majors]).toEqual(['22'])
    for (const major of majors) expect(satisfies(`${major}.99.0`, pkg.engines.node), `node ${major}`).toBe(true)
    expect(satisfies(process.version, pkg.engines.node), process.version).toBe(true)
    // The range says what is tested: not 21 (odd, never LTS), not the 22 releases before require(esm).
    expect(satisfies('21.7.0', pkg.engines.node)).toBe(false)
    expect(satisfies('22.11.0', pkg.engines.node)).toBe(false)
    expect(satisfies('20.18.0', pkg.engines.node)).toBe(false)
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
      'deploy/keys.txt',
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
