/**
 * @module
 * Starts the real service (src/main.ts, the committed model) as a child process on a free port,
 * waits until /readyz says ready, and stops it again.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'

const ROOT = new URL('../../', import.meta.url).pathname
export const MAIN = `${ROOT}src/main.ts`
const TSX = `${ROOT}node_modules/.bin/tsx`

export interface RealService {
  url: string
  /** The last lines the process wrote, for failure messages. */
  output(): string
  stop(): Promise<void>
}

/** Why the real service cannot be started from this checkout, or null when it can. */
export function realServiceMissing(): string | null {
  return existsSync(MAIN) ? null : 'src/main.ts is missing from this checkout'
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

/**
 * @param args extra flags (e.g. `['--max-batch', '1']`)
 * @param env extra environment (e.g. `{ API_KEYS: 'k1' }`)
 */
export async function startRealService(
  args: string[] = [],
  env: Record<string, string> = {},
  readyTimeoutMs = 90_000,
): Promise<RealService> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}/`
  const lines: string[] = []
  const child: ChildProcess = spawn(
    TSX,
    [MAIN, '--host', '127.0.0.1', '--port', String(port), '--log-format', 'json', '--log-level', 'warn', ...args],
    { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean))
    if (lines.length > 200) lines.splice(0, lines.length - 200)
  }
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  let exited: number | null = null
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = code ?? (signal ? 128 : 0)
      resolve()
    }),
  )
  const output = () => lines.slice(-40).join('\n')
  const stop = async () => {
    if (exited === null) {
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exit
      clearTimeout(t)
    }
  }

  const deadline = Date.now() + readyTimeoutMs
  for (;;) {
    if (exited !== null) throw new Error(`the service exited with ${exited} before it was ready:\n${output()}`)
    try {
      const res = await fetch(new URL('readyz', url), { signal: AbortSignal.timeout(2000) })
      if (res.ok) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`the service was not ready after ${readyTimeoutMs} ms:\n${output()}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  return { url, output, stop }
}
