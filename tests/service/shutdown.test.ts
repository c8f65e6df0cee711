/**
 * Graceful shutdown, as an orchestrator sees it: the real service (src/main.ts) in a child
 * process, loaded with streams, then SIGTERM. /readyz turns 503 at once, new requests get 503
 * shutting_down, accepted requests finish, the streams still open at the drain timeout get a
 * final `error` event, and the process exits 0.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { afterAll, describe, expect, it } from 'vitest'
import { parseSse, post } from '../support/service.js'

let child: ChildProcess | null = null
afterAll(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL')
})

/** Starts src/main.ts on a free port; resolves with its URL once it listens and /readyz is 200. */
async function startChild(args: string[]): Promise<{ url: string; exited: Promise<{ code: number | null; at: number }>; output: () => string }> {
  const out: string[] = []
  // `node --import tsx`, not the tsx CLI: the signal must reach the server itself, not a wrapper.
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--port', '0', '--log-format', 'json', '--threads', '1', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child = proc
  proc.stdout!.on('data', (b: Buffer) => out.push(b.toString()))
  proc.stderr!.on('data', (b: Buffer) => out.push(b.toString()))
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => proc.once('exit', (code) => resolve({ code, at: performance.now() })))
  const output = () => out.join('')
  const t = performance.now()
  let url: string | undefined
  while (!url) {
    if (proc.exitCode !== null) throw new Error(`exited early:\n${output()}`)
    if (performance.now() - t > 60_000) throw new Error(`not listening after 60 s:\n${output()}`)
    url = /"url":"(http:[^"]+)"/.exec(output())?.[1]
    await new Promise((r) => setTimeout(r, 50))
  }
  expect((await fetch(`${url}/readyz`)).status).toBe(200)
  return { url, exited, output }
}

describe('SIGTERM', () => {
  it('drains: readiness off at once, new requests 503, accepted ones finish, late streams get an error event, exit 0', async () => {
    const DRAIN_MS = 500
    // One batch row: 300 streams queue behind each other, far more than the drain can finish (one
    // stream alone takes a few ms on the int8 graph: 160 of them once all finished within 800 ms).
    const { url, exited, output } = await startChild(['--max-batch', '1', '--max-queue', '400', '--drain-timeout-ms', String(DRAIN_MS)])
    const classify = post(`${url}/classify`, { text: 'i feel so calm and happy today' })
    let signalledAt = Infinity
    const doneAt: number[] = []
    // Every stream is accepted (its headers came back) before the signal.
    const opened = await Promise.all(
      Array.from({ length: 300 }, (_, i) => post(`${url}/explain`, { text: `i feel worried about the exam number ${i}` }, { accept: 'text/event-stream' })),
    )
    const streams = opened.map(async (res) => {
      expect(res.status).toBe(200)
      const events = parseSse(await res.text())
      if (events.at(-1)?.event === 'done') doneAt.push(performance.now())
      return events
    })
    const t = performance.now()
    while (doneAt.length < 2 && performance.now() - t < 30_000) await new Promise((r) => setTimeout(r, 5))
    expect(doneAt.length).toBeGreaterThanOrEqual(2)

    child!.kill('SIGTERM')
    signalledAt = performance.now()
    let ready = await fetch(`${url}/readyz`)
    while (ready.status === 200 && performance.now() - signalledAt < 1000) ready = await fetch(`${url}/readyz`)
    expect(ready.status).toBe(503)
    expect(performance.now() - signalledAt).toBeLessThan(Math.min(500, DRAIN_MS))
    expect(((await ready.json()) as { error: { code: string } }).error.code).toBe('shutting_down')
    const late = await post(`${url}/classify`, { text: 'i am happy' })
    expect(late.status).toBe(503)
    expect(late.headers.get('retry-after')).toBe('1')
    expect(((await late.json()) as { error: { code: string } }).error.code).toBe('shutting_down')

    expect((await classify).status).toBe(200)
    const all = await Promise.all(streams)
    const ends = all.map((events) => events.at(-1)!)
    // Every stream ended with done or with a final shutting_down error, never cut off.
    for (const e of ends) {
      if (e.event === 'error') expect(e.data).toMatchObject({ error: { code: 'shutting_down' } })
      else expect(e.event).toBe('done')
    }
    expect(doneAt.filter((at) => at > signalledAt).length, 'accepted streams finished during the drain').toBeGreaterThan(0)
    expect(ends.filter((e) => e.event === 'error').length, 'streams ended at the drain timeout').toBeGreaterThan(0)

    const { code, at } = await exited
    expect(code, output()).toBe(0)
    expect(at - signalledAt).toBeGreaterThanOrEqual(DRAIN_MS - 50)
    expect(at - signalledAt).toBeLessThan(DRAIN_MS + 5000)
    expect(output()).toContain('drain timeout: ending the requests still in flight')
  })

  it('with nothing in flight, SIGINT exits 0 at once', async () => {
    const { exited } = await startChild(['--drain-timeout-ms', '10000'])
    const t = performance.now()
    child!.kill('SIGINT')
    const { code, at } = await exited
    expect(code).toBe(0)
    expect(at - t).toBeLessThan(3000)
  })
})
