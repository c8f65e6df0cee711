/**
 * @module
 * ONNX Runtime session creation with the execution-provider choice, and `forward`, one pass of
 * an `optimum`-layout graph (docs/model-package.md, "ONNX graph"); gqa-forward.ts has the fused
 * `gqa` layout's pass.
 *
 * onnxruntime-node bundles the CPU provider. Its CUDA provider needs libraries fetched at install
 * time (`ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci`) plus CUDA 12 and cuDNN 9 on the host; where they
 * are missing, creating a session with it throws. `auto` then falls back to the CPU with one
 * warning; an explicit `cuda` stops start-up.
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import ort from 'onnxruntime-node'
import type { Device } from '../config.js'
import type { GraphLayout } from './manifest.js'

/** What a provider attempt does when it fails. */
export interface ProviderPlan {
  /** Providers to try, in order. */
  attempts: ('cuda' | 'cpu')[]
  /** Whether a failed CUDA attempt may fall back to the next one. */
  fallback: boolean
}

/**
 * The plan for a `--device` value (a pure decision). Without the CUDA provider library on disk,
 * `auto` does not even try CUDA (ONNX Runtime would print a native error for the failed load) and
 * an explicit `cuda` fails with `reason`.
 */
export function planProviders(device: Device, cudaLibrary: string | null): ProviderPlan & { skipReason?: string } {
  const missing = `the CUDA provider library is not installed (reinstall onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=cuda12; it needs CUDA 12 and cuDNN 9)`
  switch (device) {
    case 'cpu':
      return { attempts: ['cpu'], fallback: false }
    case 'cuda':
      return cudaLibrary ? { attempts: ['cuda'], fallback: false } : { attempts: [], fallback: false, skipReason: missing }
    case 'auto':
      return cudaLibrary
        ? { attempts: ['cuda', 'cpu'], fallback: true }
        : { attempts: ['cpu'], fallback: true, skipReason: missing }
  }
}

/** Path of onnxruntime-node's CUDA provider library, or null when it was not installed. */
export function findCudaLibrary(): string | null {
  const require = createRequire(import.meta.url)
  const root = dirname(dirname(require.resolve('onnxruntime-node')))
  const path = join(root, 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so')
  return existsSync(path) ? path : null
}

export interface CreatedSession {
  session: ort.InferenceSession
  provider: 'cuda' | 'cpu'
  /** Set when `auto` fell back: why CUDA could not be used (one line). */
  fallbackReason?: string
}

function firstLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split('\n')[0]!.trim()
}

/**
 * Creates the session following `planProviders(device)`; throws a one-line error on failure.
 * `spinning`: whether ONNX Runtime's intra-op pool threads spin between ops (off by default, see
 * below; it only matters with more than one thread, one thread has no pool).
 */
export async function createSession(
  path: string,
  device: Device,
  threads: number,
  opts: { spinning?: boolean } = {},
): Promise<CreatedSession> {
  const plan = planProviders(device, findCudaLibrary())
  if (plan.attempts.length === 0) throw new Error(`--device cuda: ${plan.skipReason}`)
  let fallbackReason: string | undefined = plan.skipReason
  for (const provider of plan.attempts) {
    try {
      const session = await ort.InferenceSession.create(path, {
        executionProviders: [provider],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        // No spin-waiting between ops unless asked (--spin-wait on): the pool threads share the
        // cores with the HTTP thread (and on a shared host, with everything else). Measured on the
        // busy 2-core dev machine, a B=32 decode step took 16.9 ms with spinning and 11.1 ms
        // without, and one request at a time through the engine took twice as long with it, on
        // every graph (docs/engine.md).
        extra: { session: { intra_op: { allow_spinning: opts.spinning ? '1' : '0' } } },
      })
      return fallbackReason ? { session, provider, fallbackReason } : { session, provider }
    } catch (e) {
      if (provider === 'cuda' && plan.fallback) {
        fallbackReason = `the CUDA execution provider did not load (${firstLine(e)}); it needs CUDA 12 and cuDNN 9`
        continue
      }
      throw new Error(`${path}: cannot create an ONNX Runtime session with the ${provider} provider: ${firstLine(e)}`)
    }
  }
  throw new Error('no execution provider to try')
}

/**
 * Why a session's inputs and outputs do not fit a layout (one line), or null: a manifest that
 * declares the wrong layout for a graph stops at start-up instead of failing every pass.
 */
export function graphIoProblem(
  layout: GraphLayout,
  io: { inputNames: readonly string[]; outputNames: readonly string[] },
  numLayers: number,
): string | null {
  const kv = Array.from({ length: numLayers }, (_, i) => ['key', 'value'].map((t) => `${i}.${t}`)).flat()
  const inputs = [
    'input_ids',
    ...(layout === 'optimum' ? ['attention_mask', 'position_ids'] : ['seqlens_k', 'total_sequence_length']),
    ...kv.map((n) => `past_key_values.${n}`),
  ]
  const outputs = ['logits', ...kv.map((n) => `present.${n}`)]
  const missingIn = inputs.filter((n) => !io.inputNames.includes(n))
  const missingOut = outputs.filter((n) => !io.outputNames.includes(n))
  const extraIn = io.inputNames.filter((n) => !inputs.includes(n))
  if (missingIn.length + missingOut.length + extraIn.length === 0) return null
  const parts = [
    missingIn.length ? `no input ${missingIn.slice(0, 3).join(', ')}` : '',
    missingOut.length ? `no output ${missingOut.slice(0, 3).join(', ')}` : '',
    extraIn.length ? `an unexpected input ${extraIn.slice(0, 3).join(', ')}` : '',
  ].filter(Boolean)
  return `not a ${layout}-layout graph of ${numLayers} layers: ${parts.join('; ')}`
}

/** One forward pass's inputs, `[batch, seq]` new tokens over a past of `pastLen` positions. */
export interface ForwardInputs {
  batch: number
  seq: number
  pastLen: number
  inputIds: BigInt64Array
  /** `[batch, pastLen + seq]`. */
  attentionMask: BigInt64Array
  positionIds: BigInt64Array
  /** Per layer, `[batch, kvHeads, pastLen, headDim]` (empty arrays when `pastLen` is 0). */
  pastKeys: readonly Float32Array[]
  pastValues: readonly Float32Array[]
}

export interface ForwardOutputs {
  /** `[batch, seq, vocab]`. */
  logits: Float32Array
  /** Per layer, `[batch, kvHeads, pastLen + seq, headDim]`. */
  presentKeys: Float32Array[]
  presentValues: Float32Array[]
}

export type Forward = (inputs: ForwardInputs) => Promise<ForwardOutputs>

/** Binds a session to the package's shapes. */
export function makeForward(
  session: ort.InferenceSession,
  shape: { numLayers: number; numKvHeads: number; headDim: number },
): Forward {
  const { numLayers, numKvHeads, headDim } = shape
  return async function forward(x) {
    const pastDims = [x.batch, numKvHeads, x.pastLen, headDim]
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', x.inputIds, [x.batch, x.seq]),
      attention_mask: new ort.Tensor('int64', x.attentionMask, [x.batch, x.pastLen + x.seq]),
      position_ids: new ort.Tensor('int64', x.positionIds, [x.batch, x.seq]),
    }
    for (let i = 0; i < numLayers; i++) {
      feeds[`past_key_values.${i}.key`] = new ort.Tensor('float32', x.pastKeys[i]!, pastDims)
      feeds[`past_key_values.${i}.value`] = new ort.Tensor('float32', x.pastValues[i]!, pastDims)
    }
    const out = await session.run(feeds)
    const presentKeys: Float32Array[] = []
    const presentValues: Float32Array[] = []
    for (let i = 0; i < numLayers; i++) {
      presentKeys.push(out[`present.${i}.key`]!.data as Float32Array)
      presentValues.push(out[`present.${i}.value`]!.data as Float32Array)
    }
    return { logits: out.logits!.data as Float32Array, presentKeys, presentValues }
  }
}
