/**
 * @module
 * Pure statistics for load-test and benchmark results: percentiles, summaries, histograms,
 * per-second series. The one percentile of the project's tools: loadtest/ uses this module, and
 * bench/lib/stats.ts re-exports `percentile` from it.
 */

/**
 * The `p`-th percentile (0..100) of `values`, in any order (the array is not modified),
 * interpolating linearly between the two closest ranks (the "type 7" rule of R and numpy's
 * default). NaN for an empty array; a RangeError for `p` outside 0..100.
 */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile: p must be in [0, 100], got ${p}`)
  return percentileOfSorted([...values].sort((x, y) => x - y), p)
}

/** `percentile` for an array already in ascending order (sorting it once serves many `p`). */
function percentileOfSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = (p / 100) * (sorted.length - 1)
  const lo = Math.floor(rank)
  const hi = Math.ceil(rank)
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo)
}

export interface Summary {
  count: number
  min: number
  mean: number
  p50: number
  p90: number
  p95: number
  p99: number
  max: number
}

/** Count, mean and the usual percentiles, rounded to 0.1; all NaN-free zeros when empty. */
export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) return { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p95: 0, p99: 0, max: 0 }
  const sorted = [...values].sort((x, y) => x - y)
  const sum = sorted.reduce((acc, v) => acc + v, 0)
  return {
    count: sorted.length,
    min: round1(sorted[0]!),
    mean: round1(sum / sorted.length),
    p50: round1(percentileOfSorted(sorted, 50)),
    p90: round1(percentileOfSorted(sorted, 90)),
    p95: round1(percentileOfSorted(sorted, 95)),
    p99: round1(percentileOfSorted(sorted, 99)),
    max: round1(sorted[sorted.length - 1]!),
  }
}

export interface Bucket {
  /** Upper bound, inclusive (Prometheus `le`); Infinity for the last bucket. */
  le: number
  count: number
}

/** Non-cumulative counts per bucket: value v lands in the first bucket with v <= le. */
export function histogram(values: readonly number[], bounds: readonly number[]): Bucket[] {
  const les = [...bounds].sort((x, y) => x - y)
  const buckets: Bucket[] = [...les.map((le) => ({ le, count: 0 })), { le: Infinity, count: 0 }]
  for (const v of values) {
    let i = 0
    while (i < les.length && v > les[i]!) i++
    buckets[i]!.count++
  }
  return buckets
}

/** Default latency buckets in milliseconds, roughly doubling. */
export const LATENCY_BOUNDS_MS: readonly number[] = [
  10, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000,
]

/** Events per one-second bin from 0 to `durationS` (exclusive), by event time in ms. */
export function perSecond(timesMs: readonly number[], durationS: number): number[] {
  const bins = new Array<number>(Math.max(0, Math.ceil(durationS))).fill(0)
  for (const t of timesMs) {
    const i = Math.floor(t / 1000)
    if (i >= 0 && i < bins.length) bins[i]!++
  }
  return bins
}

export function round1(x: number): number {
  return Math.round(x * 10) / 10
}
