/**
 * @module
 * Open-loop arrival schedules. The k-th request is due when the integral of the rate reaches k,
 * whatever happened to the requests before it, so a slow server cannot slow the load down
 * (no coordinated omission). Same semantics as k6's constant- and ramping-arrival-rate executors:
 * the first arrival is at t = 0, and the rate moves linearly from one stage's target to the next.
 */

import type { Stage } from './scenarios.js'

/**
 * Offsets in milliseconds from the start of the part at which requests are due, ascending.
 * Throws past `maxCount` so that a bad rate cannot allocate without bound.
 */
export function arrivalOffsetsMs(startRate: number, stages: Stage[], maxCount = 1_000_000): number[] {
  const out: number[] = []
  let from = startRate
  let segStart = 0 // seconds
  let base = 0 // arrivals due before this segment (fractional)
  let k = 0 // index of the next arrival
  for (const st of stages) {
    const a = from
    const b = st.target
    const d = st.duration_s
    const area = ((a + b) / 2) * d
    // NOTE: the k-th arrival falls in this segment while k < base + area (strictly: the end of the
    // segment belongs to the next one, so a 1/s rate for 3 s gives arrivals at 0, 1 and 2 s).
    while (k < base + area - 1e-9) {
      const n = k - base
      // Solve a*t + (b-a)*t^2/(2d) = n for t in [0, d]; this form is stable for a = 0 and b < a.
      const disc = Math.max(0, a * a + (2 * (b - a) * n) / d)
      const t = n === 0 ? 0 : (2 * n) / (a + Math.sqrt(disc))
      out.push((segStart + Math.min(t, d)) * 1000)
      k++
      if (out.length > maxCount) throw new Error(`more than ${maxCount} arrivals scheduled`)
    }
    base += area
    segStart += d
    from = b
  }
  return out
}
