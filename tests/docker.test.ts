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
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>
  dependencies: Record<string, string>
  devDependencies: Record<string, string>
}

interface Instruction {
  keyword: string
  args: string
  line: number
}

/** Instructions with continuation lines joined and comments dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = []
  let buf = ''
  let start = 0
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd()
    if (buf === '' && (line.trim() === '' || line.trimStart().startsWith('#'))) return
    if (buf !== '' && line.trimStart().startsWith('#')) return // comments inside a continuation
    if (buf === '') start = i + 1
    if (line.endsWith('\\')) {
      buf += line.slice(0, -1) + ' '
      return
    }
    buf += line
    const m = /^\s*(\w+)\s+([\s\S]*)$/.exec(buf)
    if (m) out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start })
    buf = ''
  })
  return out
}

interface Stage {
  name: string
  base: string
  instructions: Instruction[]
}

/** Stages in order, FROM's ${ARG}s expanded from the global ARG defaults. */
export function stages(ins: Instruction[]): Stage[] {
  const args: Record<string, string> = {}
  const out: Stage[] = []
  for (const i of ins) {
    if (i.keyword === 'ARG' && out.length === 0) {
      const [k, v] = i.args.split('=')
      if (k && v !== undefined) args[k] = v
    } else if (i.keyword === 'FROM') {
      const [image, as, name] = i.args.split(/\s+/)
      const base = image!.replace(/\$\{(\w+)\}/g, (_, k: string) => args[k] ?? '')
      out.push({ name: as?.toUpperCase() === 'AS' ? name! : String(out.length), base, instructions: [] })
    } else if (out.length > 0) {
      out[out.length - 1]!.instructions.push(i)
    }
  }
  return out
}

interface Copy {
  from?: string
  sources: string[]
  dest: string
  line: number
}

function parseCopy(i: Instruction): Copy {
  let rest = i.args
  const flags: Record<string, string> = {}
  for (;;) {
    const m = /^--(\w+)=(\S+)\s+/.exec(rest)
    if (!m) break
    flags[m[1]!] = m[2]!
    rest = rest.slice(m[0].length)
  }
  const parts = rest.startsWith('[') ? (JSON.parse(rest) as string[]) : rest.split(/\s+/)
  return { from: flags.from, sources: parts.slice(0, -1), dest: parts[parts.length - 1]!, line: i.line }
}

/** The exec-form argv of CMD/ENTRYPOINT/HEALTHCHECK CMD, or undefined for the shell form. */
function execForm(args: string): string[] | undefined {
  return args.startsWith('[') ? (JSON.parse(args) as string[]) : undefined
}

/** ENV key=value pairs (the `ENV a=b c=d` form). */
function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {}
  for (const i of stage.instructions.filter((x) => x.keyword === 'ENV')) {
    for (const m of i.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, '')
  }
  return env
}

/** A .dockerignore matcher: `*`, `?`, `**`, leading `/`, `!` exceptions; parents count. */
export function ignoreMatcher(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!')
      const pat = (negate ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '')
      let re = ''
      for (let k = 0; k < pat.length; k++) {
        const c = pat[k]!
        if (c === '*' && pat[k + 1] === '*') {
          re += pat[k + 2] === '/' ? '(?:.*/)?' : '.*'
          k += pat[k + 2] === '/' ? 2 : 1
        } else if (c === '*') re += '[^/]*'
        else if (c === '?') re += '[^/]'
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
      }
      return { negate, re: new RegExp(`^${re}$`) }
    })
  return (path: string) => {
    const segs = path.replace(/^\.?\/+/, '').replace(/\/+$/, '').split('/')
    let ignored = false
    for (const r of rules) {
      // A pattern matching a parent folder excludes everything below it.
      for (let n = 1; n <= segs.length; n++) {
        if (r.re.test(segs.slice(0, n).join('/'))) {
          ignored = !r.negate
          break
        }
      }
    }
    return ignored
  }
}

/** Paths in the build context under `rel`, files only (for the .dockerignore check). */
function filesUnder(rel: string): string[] {
  const abs = join(ROOT, rel)
  if (!statSync(abs).isDirectory()) return [rel]
  return readdirSync(abs).flatMap((e) => filesUnder(`${rel}/${e}`))
}

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
const all = stages(parseDockerfile(dockerfile))
const byName = new Map(all.map((s) => [s.name, s]))
const runnable = all.filter((s) => s.instructions.some((i) => i.keyword === 'CMD'))
const ignored = ignoreMatcher(dockerignore)

describe('Dockerfile', () => {
  it('has dependency stages, a gpu target and the CPU image last (the default target)', () => {
    expect(all.map((s) => s.name)).toEqual(expect.arrayContaining(['deps', 'deps-gpu', 'gpu', 'cpu']))
    const last = all[all.length - 1]!
    expect(last.name).toBe('cpu')
    expect(last.base).toMatch(/^node:20-bookworm-slim$/)
    expect(byName.get('gpu')!.base).toMatch(/^nvidia\/cuda:12\.[\d.]+-cudnn9?-runtime-ubuntu\d\d\.\d\d$/)
    expect(runnable.map((s) => s.name).sort()).toEqual(['cpu', 'gpu'])
  })

  it('copies only paths that exist in the context and that .dockerignore lets through', () => {
    const copies = all.flatMap((s) =>
      s.instructions.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD').map((i) => ({ s, c: parseCopy(i), i })),
    )
    expect(copies.length).toBeGreaterThan(0)
    for (const { c, i } of copies) {
      expect(i.keyword, `line ${c.line}: use COPY, not ADD`).toBe('COPY')
      if (c.from) continue
      for (const src of c.sources) {
        expect(src, `line ${c.line}`).not.toMatch(/^\/|\.\./)
        expect(existsSync(join(ROOT, src)), `line ${c.line}: ${src} does not exist`).toBe(true)
        for (const f of filesUnder(src)) expect(ignored(f), `line ${c.line}: ${f} is in .dockerignore`).toBe(false)
      }
    }
  })

  it('copies from earlier stages only what those stages produce', () => {
    all.forEach((stage, idx) => {
      for (const c of stage.instructions.filter((i) => i.keyword === 'COPY').map(parseCopy)) {
        if (!c.from) continue
        const from = byName.get(c.from)
        expect(from, `line ${c.line}: no stage ${c.from}`).toBeDefined()
        expect(all.indexOf(from!), `line ${c.line}: ${c.from} comes later`).toBeLessThan(idx)
        for (const src of c.sources) {
          if (src === '/app/node_modules') {
            const runs = from!.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args)
            expect(runs.some((r) => /\bnpm ci\b/.test(r)), `line ${c.line}`).toBe(true)
            expect(from!.instructions.some((i) => i.keyword === 'WORKDIR' && i.args === '/app')).toBe(true)
          } else if (src === '/usr/local/bin/node') {
            expect(from!.base, `line ${c.line}: node comes from the official image`).toMatch(/^node:20/)
          } else {
            throw new Error(`line ${c.line}: no rule for ${src} from ${c.from}; teach this test`)
          }
        }
      }
    })
  })

  it('installs production dependencies only, skipping the CUDA download except for gpu', () => {
    for (const [name, flag] of [
      ['deps', 'skip'],
      ['deps-gpu', 'cuda12'],
    ] as const) {
      const s = byName.get(name)!
      expect(envOf(s).ONNXRUNTIME_NODE_INSTALL, name).toBe(flag)
      const run = s.instructions.find((i) => i.keyword === 'RUN' && /npm ci/.test(i.args))
      expect(run?.args, name).toMatch(/npm ci --omit=dev/)
    }
  })

  it('starts each image with package.json start script, as the same process', () => {
    const want = commandFromStartScript(pkg.scripts.start!, 'node')
    expect(want.slice(0, 3)).toEqual(['node', '--import', 'tsx'])
    for (const s of runnable) {
      const cmds = s.instructions.filter((i) => i.keyword === 'CMD')
      expect(cmds, s.name).toHaveLength(1)
      expect(execForm(cmds[0]!.args), s.name).toEqual(want)
      expect(s.instructions.some((i) => i.keyword === 'ENTRYPOINT'), s.name).toBe(false)
    }
  })

  it('has tsx and every package src/ imports among the production dependencies', () => {
    expect(pkg.dependencies.tsx).toBeDefined()
    const files = (function walk(dir: string): string[] {
      return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
      )
    })(join(ROOT, 'src'))
    const missing = new Set<string>()
    for (const f of files) {
      const text = readFileSync(f, 'utf8')
      for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
        const spec = m[1] ?? m[2]!
        if (spec.startsWith('.') || spec.startsWith('node:') || spec.startsWith('/')) continue
        if (/^import\s+type\b/.test(m[0].trim())) continue // erased at run time
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!
        if (!pkg.dependencies[name]) missing.add(`${name} (${f.slice(ROOT.length + 1)})`)
      }
    }
    expect([...missing]).toEqual([])
  })

  it('runs each image as a non-root user, listening on all interfaces, with the right device', () => {
    for (const s of runnable) {
      const users = s.instructions.filter((i) => i.keyword === 'USER')
      expect(users.length, s.name).toBeGreaterThan(0)
      const user = users[users.length - 1]!.args.split(':')[0]!
      expect(['root', '0'], s.name).not.toContain(user)
      // USER comes before CMD, so the service never runs as root.
      const userAt = s.instructions.lastIndexOf(users[users.length - 1]!)
      expect(userAt, s.name).toBeLessThan(s.instructions.findIndex((i) => i.keyword === 'CMD'))
      const env = envOf(s)
      expect(env.HOST, s.name).toBe('0.0.0.0')
      expect(env.NODE_ENV, s.name).toBe('production')
      expect(env.DEVICE, s.name).toBe(s.name === 'gpu' ? 'cuda' : 'cpu')
      const expose = s.instructions.find((i) => i.keyword === 'EXPOSE')
      expect(expose?.args, s.name).toBe(env.PORT)
    }
    // The gpu base image has no node user: it must be created.
    const gpuRuns = byName.get('gpu')!.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n')
    expect(gpuRuns).toMatch(/useradd[^\n]*\bnode\b/)
  })

  it('has a HEALTHCHECK on /healthz in each image', () => {
    for (const s of runnable) {
      const hc = s.instructions.filter((i) => i.keyword === 'HEALTHCHECK')
      expect(hc, s.name).toHaveLength(1)
      expect(hc[0]!.args, s.name).toMatch(/\/healthz/)
      expect(hc[0]!.args, s.name).toMatch(/--interval=\d+s/)
      // Exec form with node (no curl or wget in the slim images).
      const argv = execForm(hc[0]!.args.replace(/^(--\S+\s+)*CMD\s+/, ''))
      expect(argv?.[0], s.name).toBe('node')
    }
  })
})

describe('.dockerignore', () => {
  it('keeps dependencies, the training environment, the benchmark, output and secrets out of the context', () => {
    for (const p of [
      'node_modules',
      'node_modules/hono/package.json',
      'training/.venv',
      'training/.venv/bin/python',
      'bench/measure-kv.ts',
      'test-output',
      'test-output/loadtest/smoke.json',
      '.git',
      '.env',
      'src/sub/node_modules/x',
    ]) {
      expect(ignored(p), p).toBe(true)
    }
  })

  it('lets the sources, the lock file and the models through', () => {
    for (const p of ['package.json', 'package-lock.json', '.npmrc', 'tsconfig.json', 'src/main.ts', 'models/x/model.onnx']) {
      expect(ignored(p), p).toBe(false)
    }
  })

  it('matcher: globs, anchored paths, exceptions', () => {
    const m = ignoreMatcher('# c\n*.log\n/build\n**/tmp\ndocs\n!docs/keep.md\n')
    expect(m('a.log')).toBe(true)
    expect(m('sub/a.log')).toBe(false) // like Docker: * does not cross folders
    expect(m('build/x')).toBe(true)
    expect(m('a/b/tmp/c')).toBe(true)
    expect(m('docs/a.md')).toBe(true)
    expect(m('docs/keep.md')).toBe(false)
  })
})
