/**
 * @module
 * This CPU's fp32 matrix-multiply rate as ONNX Runtime sees it: bench/matmul.onnx (one MatMul,
 * every dimension symbolic; written by bench/make-matmul.py) run with onnxruntime-node at the
 * engine's thread settings. The median of repeated runs after a warm-up.
 */
import { fileURLToPath } from 'node:url'
import ort from 'onnxruntime-node'
import { percentile } from './stats.js'

export const MATMUL_MODEL = fileURLToPath(new URL('../matmul.onnx', import.meta.url))

export interface MatmulRate {
  m: number
  k: number
  n: number
  threads: number
  runs: number
  /** Median milliseconds per multiply. */
  medianMs: number
  /** 2 m k n / median time. */
  gflops: number
}

/** Times `[m, k] @ [k, n]` for about `seconds` (at least 20 runs) after 5 warm-up runs. */
export async function measureMatmul(opts: { m?: number; k?: number; n?: number; threads: number; seconds?: number }): Promise<MatmulRate> {
  const { m = 512, k = 512, n = 512, threads, seconds = 2 } = opts
  const session = await ort.InferenceSession.create(MATMUL_MODEL, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  })
  const a = new Float32Array(m * k).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5)
  const b = new Float32Array(k * n).map((_, i) => ((i * 104729) % 1000) / 1000 - 0.5)
  const feeds = { A: new ort.Tensor('float32', a, [m, k]), B: new ort.Tensor('float32', b, [k, n]) }
  for (let i = 0; i < 5; i++) await session.run(feeds)
  const times: number[] = []
  const end = performance.now() + seconds * 1000
  while (times.length < 20 || performance.now() < end) {
    const t = performance.now()
    await session.run(feeds)
    times.push(performance.now() - t)
  }
  await session.release()
  const medianMs = percentile(times, 50)
  return { m, k, n, threads, runs: times.length, medianMs, gflops: (2 * m * k * n) / (medianMs * 1e6) }
}
