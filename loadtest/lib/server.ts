/**
 * @module
 * Starts the service as a child process on a free loopback port, waits for /readyz, samples the
 * resident memory of its process tree from /proc, and stops it with SIGTERM (SIGKILL after a
 * grace period), recording how it exited.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/** A free TCP port on 127.0.0.1 (there is a small race until the server binds it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))))
    })
  })
}

/**
 * The argv that runs package.json's start script without npm or the tsx CLI in between, so that
 * the process we signal and measure is the server itself: `tsx FILE ARGS` becomes
 * `node --import tsx FILE ARGS` (what the tsx CLI runs in its child); anything else runs in sh.
 */
export function commandFromStartScript(start: string, node = process.execPath): string[] {
  const m = /^tsx\s+(\S+)((?:\s+\S+)*)\s*$/.exec(start.trim())
  if (m && !/[|&;<>$`'"\\]/.test(start)) {
    return [node, '--import', 'tsx', m[1]!, ...(m[2] ?? '').trim().split(/\s+/).filter(Boolean)]
  }
  return ['sh', '-c', start]
}

/** VmRSS and VmHWM (peak) in kB from the text of /proc/<pid>/status. */
export function parseProcStatus(text: string): { rss_kb: number; hwm_kb: number } | undefined {
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(text)
  const hwm = /^VmHWM:\s+(\d+)\s+kB/m.exec(text)
  if (!rss) return undefined
  return { rss_kb: Number(rss[1]), hwm_kb: hwm ? Number(hwm[1]) : Number(rss[1]) }
}

/** The parent pid from the text of /proc/<pid>/stat (the comm field may hold spaces and parens). */
export function parseStatPpid(text: string): number | undefined {
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const ppid = Number(rest[1])
  return Number.isInteger(ppid) ? ppid : undefined
}

/** `pid` and all its descendants that are alive now. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>()
  let entries: string[] = []
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e))
  } catch {
    return [pid]
  }
  for (const e of entries) {
    try {
      const ppid = parseStatPpid(readFileSync(`/proc/${e}/stat`, 'utf8'))
      if (ppid !== undefined) {
        const list = children.get(ppid) ?? []
        list.push(Number(e))
        children.set(ppid, list)
      }
    } catch {
      // The process exited while we looked.
    }
  }
  const out: number[] = []
  const stack = [pid]
  while (stack.length > 0) {
    const p = stack.pop()!
    out.push(p)
    stack.push(...(children.get(p) ?? []))
  }
  return out
}

/** Summed RSS of a process tree in MiB, or undefined when the root is gone. */
export function treeRssMb(pid: number): { rss_mb: number; processes: number } | undefined {
  let kb = 0
  let n = 0
  for (const p of processTree(pid)) {
    try {
      const st = parseProcStatus(readFileSync(`/proc/${p}/status`, 'utf8'))
      if (st) {
        kb += st.rss_kb
        n++
      }
    } catch {
      if (p === pid) return undefined
    }
  }
  return n === 0 ? undefined : { rss_mb: Math.round((kb / 1024) * 10) / 10, processes: n }
}

export interface RssSample {
  /** Milliseconds since the sampler started. */
  t_ms: number
  rss_mb: number
  processes: number
}

export class RssSampler {
  readonly samples: RssSample[] = []
  #timer: NodeJS.Timeout | undefined
  #t0 = 0

  constructor(readonly pid: number, readonly intervalMs = 1000) {}

  start(t0 = performance.now()): void {
    this.#t0 = t0
    this.sample()
    this.#timer = setInterval(() => this.sample(), this.intervalMs)
    this.#timer.unref()
  }

  sample(): RssSample | undefined {
    const r = treeRssMb(this.pid)
    if (!r) return undefined
    const s = { t_ms: Math.round(performance.now() - this.#t0), ...r }
    this.samples.push(s)
    return s
  }

  stop(): void {
    clearInterval(this.#timer)
  }
}

export interface StartOptions {
  argv: string[]
  cwd: string
  host: string
  port: number
  env?: Record<string, string>
  logPath: string
  readyTimeoutMs: number
}

export interface ExitInfo {
  code: number | null
  signal: string | null
  /** From SIGTERM to exit; null when it had to be killed or had already exited. */
  shutdown_ms: number | null
  killed: boolean
}

export class ServerProcess {
  readonly baseUrl: string
  readonly child: ChildProcess
  readonly #exited: Promise<{ code: number | null; signal: string | null }>
  #exit: { code: number | null; signal: string | null } | undefined

  constructor(readonly opts: StartOptions) {
    this.baseUrl = `http://${opts.host}:${opts.port}`
    const fd = openSync(opts.logPath, 'a')
    try {
      this.child = spawn(opts.argv[0]!, opts.argv.slice(1), {
        cwd: opts.cwd,
        env: { ...process.env, ...opts.env, HOST: opts.host, PORT: String(opts.port) },
        stdio: ['ignore', fd, fd],
      })
    } finally {
      closeSync(fd)
    }
    this.#exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.#exit = { code, signal }
        resolve(this.#exit)
      })
      this.child.once('error', () => {
        this.#exit = { code: null, signal: null }
        resolve(this.#exit)
      })
    })
  }

  get pid(): number {
    return this.child.pid ?? -1
  }

  get running(): boolean {
    return this.#exit === undefined
  }

  /** Polls /readyz until 200; throws when the process exits or the time runs out. */
  async waitReady(): Promise<number> {
    const t0 = performance.now()
    const deadline = t0 + this.opts.readyTimeoutMs
    while (performance.now() < deadline) {
      if (!this.running) {
        throw new Error(`server exited (${JSON.stringify(this.#exit)}) before ready; log: ${this.opts.logPath}`)
      }
      try {
        const res = await fetch(`${this.baseUrl}/readyz`, { signal: AbortSignal.timeout(2000) })
        await res.arrayBuffer()
        if (res.status === 200) return performance.now() - t0
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 250))
    }
    throw new Error(`server not ready after ${this.opts.readyTimeoutMs} ms; log: ${this.opts.logPath}`)
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with how it exited. */
  async stop(graceMs = 30_000): Promise<ExitInfo> {
    if (!this.running) return { ...(this.#exit ?? { code: null, signal: null }), shutdown_ms: null, killed: false }
    const t0 = performance.now()
    this.child.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), graceMs)))
    const first = await Promise.race([this.#exited, late])
    clearTimeout(timer)
    if (first === 'late') {
      this.child.kill('SIGKILL')
      const e = await this.#exited
      return { ...e, shutdown_ms: null, killed: true }
    }
    return { ...first, shutdown_ms: Math.round(performance.now() - t0), killed: false }
  }

  /** Last resort on the runner's own exit: no waiting. */
  killNow(): void {
    if (this.running) this.child.kill('SIGKILL')
  }
}
