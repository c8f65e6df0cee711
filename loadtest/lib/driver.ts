/**
 * @module
 * Drives one resolved scenario against a base URL: every part at once, arrival-rate parts open
 * loop (requests go out when due, however many are in flight, up to max_in_flight; beyond that
 * the arrival is dropped and counted, like k6's dropped_iterations), constant-vus parts closed
 * loop. After the last arrival, in-flight requests get drain_s to finish and are then abandoned.
 */

import { setMaxListeners } from 'node:events'
import { arrivalOffsetsMs } from './arrivals.js'
import { sendRequest, type Outcome } from './client.js'
import type { ResolvedPart, ResolvedScenario } from './scenarios.js'

export interface DriveOptions {
  baseUrl: string
  scenario: ResolvedScenario
  texts: string[]
  /** The labels an answer may hold (from GET /info, fetched once before the run). */
  labels: readonly string[]
  apiKey?: string
  /** Called about once a second with live counters. */
  onTick?: (live: LiveCounters) => void
}

export interface LiveCounters {
  elapsed_s: number
  sent: number
  done: number
  ok: number
  rejected: number
  failed: number
  unfinished: number
  in_flight: number
  dropped: number
}

export interface DriveResult {
  outcomes: Outcome[]
  /** Arrivals not sent because max_in_flight requests were already in flight, by part. */
  dropped: Record<string, number>
  /** How late requests went out against their due time (event-loop health of the runner). */
  lag_ms: number[]
  in_flight_peak: number
  /** Milliseconds from the start: last arrival phase end, and the end of the drain. */
  arrivals_end_ms: number
  end_ms: number
  /** performance.now() and wall-clock time at the start. */
  t0: number
  started_at: string
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Picks texts round-robin, `batch` consecutive ones per request. */
export function textPicker(texts: string[]): (batch: number) => string[] {
  let i = 0
  return (batch) => {
    const out: string[] = []
    for (let k = 0; k < batch; k++) out.push(texts[i++ % texts.length]!)
    return out
  }
}

export async function drive(o: DriveOptions): Promise<DriveResult> {
  const s = o.scenario
  const abandon = new AbortController()
  // Every in-flight request listens on it; thousands of listeners are expected, not a leak.
  setMaxListeners(0, abandon.signal)
  const pick = textPicker(o.texts)
  const outcomes: Outcome[] = []
  const pending = new Set<Promise<void>>()
  const dropped: Record<string, number> = Object.fromEntries(s.parts.map((p) => [p.name, 0]))
  const lag: number[] = []
  const live: LiveCounters = {
    elapsed_s: 0, sent: 0, done: 0, ok: 0, rejected: 0, failed: 0, unfinished: 0, in_flight: 0, dropped: 0,
  }
  let inFlightPeak = 0
  const t0 = performance.now()
  const startedAt = new Date().toISOString()
  const now = () => performance.now() - t0

  const launch = (part: ResolvedPart, dueMs: number): Promise<Outcome> => {
    const p = sendRequest({
      baseUrl: o.baseUrl,
      part: part.name,
      endpoint: part.endpoint,
      texts: pick(part.batch_size),
      labels: o.labels,
      serverTimeoutMs: part.server_timeout_ms,
      clientTimeoutMs: s.client_timeout_ms,
      apiKey: o.apiKey,
      abandon: abandon.signal,
      t0,
      due_ms: dueMs,
    })
    live.sent++
    live.in_flight++
    inFlightPeak = Math.max(inFlightPeak, live.in_flight)
    lag.push(Math.max(0, now() - dueMs))
    const tracked = p.then((out) => {
      outcomes.push(out)
      live.in_flight--
      live.done++
      live[out.cls]++
    })
    pending.add(tracked)
    void tracked.finally(() => pending.delete(tracked))
    return p
  }

  // Open loop: one merged schedule for all arrival-rate parts.
  const schedule: { due: number; part: ResolvedPart }[] = []
  for (const part of s.parts) {
    if (part.executor === 'constant-vus') continue
    for (const due of arrivalOffsetsMs(part.start_rate, part.stages)) schedule.push({ due, part })
  }
  schedule.sort((a, b) => a.due - b.due)

  const openLoop = async () => {
    let i = 0
    while (i < schedule.length) {
      const t = now()
      while (i < schedule.length && schedule[i]!.due <= t) {
        const { due, part } = schedule[i++]!
        if (live.in_flight >= s.max_in_flight) {
          dropped[part.name]!++
          live.dropped++
        } else void launch(part, due)
      }
      if (i < schedule.length) await sleep(Math.max(0, schedule[i]!.due - now()))
    }
  }

  // Closed loop: each VU sends its next request when the last one ends. At the end of the part
  // the VU stops waiting; a request still in flight then gets the drain, like k6's gracefulStop.
  const vu = async (part: ResolvedPart) => {
    const endMs = part.duration_s * 1000
    while (now() < endMs) {
      let timer: NodeJS.Timeout | undefined
      const partEnd = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), Math.max(0, endMs - now()))))
      const out = await Promise.race([launch(part, now()), partEnd])
      clearTimeout(timer)
      if (out === undefined) return
      // A rejection or a refused connection comes back at once: pause rather than spin.
      if (out.cls === 'rejected' || out.reason === 'network') await sleep(100)
    }
  }

  const ticker = setInterval(() => {
    live.elapsed_s = Math.round(now() / 100) / 10
    o.onTick?.({ ...live })
  }, 1000)

  try {
    const vus = s.parts.flatMap((p) =>
      p.executor === 'constant-vus' ? Array.from({ length: p.vus }, () => vu(p)) : [],
    )
    await Promise.all([openLoop(), ...vus])
    const arrivalsEnd = now()

    if (pending.size > 0) {
      let timer: NodeJS.Timeout | undefined
      const drainEnd = new Promise<void>((r) => (timer = setTimeout(r, s.drain_s * 1000)))
      await Promise.race([Promise.all(pending), drainEnd])
      clearTimeout(timer)
    }
    abandon.abort()
    await Promise.all(pending)
    return {
      outcomes: outcomes.sort((a, b) => a.start_ms - b.start_ms),
      dropped,
      lag_ms: lag,
      in_flight_peak: inFlightPeak,
      arrivals_end_ms: arrivalsEnd,
      end_ms: now(),
      t0,
      started_at: startedAt,
    }
  } finally {
    clearInterval(ticker)
    abandon.abort()
  }
}
