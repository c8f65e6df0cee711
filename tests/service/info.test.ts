/**
 * GET /info over real HTTP against the real model packages: what it reports is what package.json,
 * the manifests, the files and the configuration say. Plus an uncalibrated model through
 * `app.request()` with a fake engine.
 */
import { readFileSync } from 'node:fs'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../src/http/app.js'
import type { ServedModel } from '../../src/http/service.js'
import { readManifest, selectGraph, sha256File } from '../../src/model/manifest.js'
import type { Manifest } from '../../src/model/manifest.js'
import type { RunningService } from '../../src/server.js'
import { LABELS, QA, QRA, post, startTestService } from '../support/service.js'

const KEY = 'info-test-key'
let svc: RunningService
let url: string

beforeAll(async () => {
  svc = await startTestService({ models: [QRA, QA], apiKeys: [KEY], maxTexts: 7, maxTextChars: 300, truncate: 'end' })
  url = svc.url
})
afterAll(() => svc?.close())

interface Info {
  version: string
  truncate: string
  models: Record<string, any>[]
}

describe('GET /info', () => {
  it('is served without the API key the inference routes need', async () => {
    expect((await post(`${url}/classify`, { text: 'hi' })).status).toBe(401)
    const res = await fetch(`${url}/info`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^application\/json/)
  })

  it("reports package.json's version, the default truncate mode and each model's manifest facts, file hash, limits and runtime", async () => {
    const info = (await (await fetch(`${url}/info`)).json()) as Info
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }
    expect(info.version).toBe(pkg.version)
    expect(info.truncate).toBe('end')
    expect(info.models.map((m) => m.id)).toEqual(['emotion-qra-natural', 'emotion-qa-natural'])
    for (const [i, dir] of [QRA, QA].entries()) {
      const manifest = await readManifest(dir)
      const graph = selectGraph(manifest, null)
      const sha = await sha256File(`${dir}/${graph.file}`)
      const calibration =
        manifest.calibration!.method === 'temperature'
          ? { method: 'temperature', temperature: manifest.calibration!.temperature }
          : { method: 'register-temperature', temperatures: manifest.calibration!.temperatures }
      expect(info.models[i]).toEqual({
        id: manifest.id,
        kind: manifest.kind,
        labels: [...LABELS],
        limits: {
          max_texts: 7,
          max_text_chars: 300,
          max_input_tokens: manifest.limits.max_input_tokens,
          max_reasoning_tokens: manifest.limits.max_reasoning_tokens,
        },
        graph: graph.name,
        layout: graph.layout,
        dtype: graph.dtype,
        onnx_sha256: sha,
        calibration,
        prior: expectedPrior(dir, manifest.prior),
        device: 'cpu',
        execution_provider: 'CPUExecutionProvider',
      })
    }
    expect(info.models.map((m) => m.kind)).toEqual(['qra', 'qa'])
  })
})

/** /info's `prior` for a manifest's `prior`, from prior.json: terms of its vocabulary (a registers prior: the gate's and the experts'). */
function expectedPrior(dir: string, prior: Manifest['prior']): Record<string, unknown> | null {
  if (!prior) return null
  type Linear = { vocabulary: string[] }
  const file = JSON.parse(readFileSync(`${dir}/${prior.file}`, 'utf8')) as Linear & { registers: string[]; gate: Linear; experts: Linear[] }
  if (prior.method === 'tfidf-logreg') return { method: 'tfidf-logreg', weight: prior.weight, terms: file.vocabulary.length }
  const terms = file.gate.vocabulary.length + file.experts.reduce((n, e) => n + e.vocabulary.length, 0)
  return { method: 'tfidf-logreg-registers', weights: prior.weights, registers: file.registers, terms }
}

/** The /info entry of one model served by a fake engine: a qa model over labels a, b, `changes` applied. */
async function fakeModelInfo(changes: Partial<ServedModel>, card: Partial<ServedModel['card']>): Promise<Info['models'][number]> {
  const provider = card.provider ?? 'cpu'
  const model: ServedModel = {
    id: 'm',
    kind: 'qa',
    labels: ['a', 'b'],
    labelTokenCounts: [1, 2],
    normalize: 'none',
    maxInputTokens: 16,
    maxReasoningTokens: 0,
    encoder: {} as never,
    engine: { ready: true, submit: () => Promise.resolve([]) },
    ...changes,
    card: { graph: 'fused-int8', layout: 'gqa', dtype: 'int8', onnxSha256: 'ab'.repeat(32), calibration: null, prior: null, provider, ...card },
  }
  const app = createApp({
    service: { models: [model], limits: { maxTexts: 2, maxTextChars: 10, maxBodyBytes: 100, timeoutMs: 1000, truncate: 'windows' }, runtime: { device: provider === 'cuda' ? 'auto' : 'cpu', provider, threads: 1, workers: 1 } },
    logger: pino({ level: 'silent' }),
  })
  return ((await (await app.request('/info')).json()) as Info).models[0]!
}

describe('GET /info for an uncalibrated model (fake engine)', () => {
  it('reports calibration null, its own labels, and the CUDA provider', async () => {
    const info = await fakeModelInfo({}, { provider: 'cuda' })
    expect(info).toMatchObject({ labels: ['a', 'b'], calibration: null, device: 'cuda', execution_provider: 'CUDAExecutionProvider' })
  })
})

describe('GET /info for a model with a lexical prior (fake engine)', () => {
  it('reports its method, weight and number of terms', async () => {
    const prior = { method: 'tfidf-logreg', weight: 0.8, terms: 61234 } as const
    const info = await fakeModelInfo(
      { id: 'p', kind: 'qra', labelTokenCounts: [1, 1], maxReasoningTokens: 8 },
      { graph: 'fp32', layout: 'optimum', dtype: 'float32', onnxSha256: 'cd'.repeat(32), prior },
    )
    expect(info.prior).toEqual(prior)
  })
})

describe('GET /info for a model with a registers prior and a register temperature (fake engine)', () => {
  it('reports the weights and temperatures per register, the registers in order and the terms of gate and experts', async () => {
    const prior = { method: 'tfidf-logreg-registers' as const, weights: { dair: 0.9, goemotions: 1.6, xed: 1 }, registers: ['dair', 'goemotions', 'xed'], terms: 16000 }
    const calibration = { method: 'register-temperature' as const, temperatures: { dair: 1.4, goemotions: 2, xed: 2.5 } }
    const info = await fakeModelInfo(
      { id: 'r', kind: 'qra', labelTokenCounts: [1, 1], maxReasoningTokens: 8 },
      { graph: 'fp32', layout: 'optimum', dtype: 'float32', onnxSha256: 'cd'.repeat(32), prior, calibration },
    )
    expect(info.prior).toEqual(prior)
    expect(info.calibration).toEqual(calibration)
  })
})
