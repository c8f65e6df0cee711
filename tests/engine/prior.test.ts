/**
 * The lexical prior in the engine: added to the label logits of a row until its sequence names a
 * label, once per row and step. On the real embedded packages (copies with a prior.json whose
 * intercept favours anger), and on a fake model whose logits make every addition visible.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { scoreLabels } from '../../src/engine/decoding.js'
import { BatchEngine } from '../../src/engine/engine.js'
import type { OptimumModel } from '../../src/engine/engine.js'
import { loadModel } from '../../src/engine/model-runtime.js'
import type { SequenceEvent } from '../../src/engine/protocol.js'
import { loadPackage } from '../../src/model/package.js'
import { parsePrior, priorLogits } from '../../src/model/prior.js'
import type { ForwardInputs, ForwardOutputs } from '../../src/model/session.js'
import { LABELS, QA, QRA } from '../support/service.js'

interface Answer {
  reasoning: string
  label: string
  scores: number[]
}

/** Runs `prompts` through one engine; answers in prompt order. */
async function run(engine: BatchEngine, prompts: number[][], labels: readonly string[]): Promise<Answer[]> {
  const out: Answer[] = prompts.map(() => ({ reasoning: '', label: '', scores: [] }))
  prompts.forEach((ids, i) => engine.enqueue(i, ids))
  const emit = (events: SequenceEvent[]) => {
    for (const e of events) {
      if (e.type === 'error') throw new Error(e.message)
      if (e.type === 'token') out[e.id]!.reasoning += e.delta
      if (e.type === 'done') Object.assign(out[e.id]!, { label: labels[e.labelIndex]!, scores: e.scores })
    }
  }
  while (engine.hasWork()) await engine.step(emit)
  return out
}

const ANGER = LABELS.indexOf('anger')

/**
 * A copy of package `from` in `to` (its files linked, not copied) without its own prior, if it has
 * one, and with `weight` a prior.json of an empty vocabulary whose intercept puts anger 30 above
 * the other labels; hashes redone. A register temperature (it needs the registers prior) is left out.
 */
function variant(from: string, to: string, weight: number | null): string {
  mkdirSync(to)
  const m = JSON.parse(readFileSync(join(from, 'manifest.json'), 'utf8')) as { prior?: { file: string }; calibration?: { method: string }; files: Record<string, string> }
  const { prior: own, ...rest } = m
  if (rest.calibration?.method === 'register-temperature') delete rest.calibration
  const files = Object.fromEntries(Object.entries(m.files).filter(([name]) => name !== own?.file))
  for (const name of Object.keys(files)) symlinkSync(resolve(from, name), join(to, name))
  if (weight === null) {
    writeFileSync(join(to, 'manifest.json'), JSON.stringify({ ...rest, files }, null, 1), { flag: 'wx' })
    return to
  }
  const prior = {
    format: 'tfidf-logreg-v1',
    labels: LABELS,
    lowercase: true,
    token_pattern: '[a-z0-9]+|[!?]+',
    ngram_range: [1, 2],
    sublinear_tf: true,
    vocabulary: [],
    idf: [],
    coef: [],
    intercept: LABELS.map((_, k) => (k === ANGER ? 30 : 0)),
  }
  // 'wx': never through a link into the package itself.
  writeFileSync(join(to, 'prior.json'), JSON.stringify(prior), { flag: 'wx' })
  const sha = createHash('sha256').update(readFileSync(join(to, 'prior.json'))).digest('hex')
  const manifest = { ...rest, prior: { method: 'tfidf-logreg', file: 'prior.json', weight, note: 'made up by tests/engine/prior.test.ts' }, files: { ...files, 'prior.json': sha } }
  writeFileSync(join(to, 'manifest.json'), JSON.stringify(manifest, null, 1), { flag: 'wx' })
  return to
}

describe('a prior on the real packages', () => {
  const dir = mkdtempSync(join(tmpdir(), 'because-prior-engine-'))
  const TEXTS = ['I got the job! I feel so happy', 'best day ever, we won and everyone is smiling :)']
  /** Answers per variant: the package without a prior, with the anger prior at weight 1, at weight 0. */
  const answers: Record<string, Record<'none' | 'anger' | 'zero', Answer[]>> = {}

  beforeAll(async () => {
    for (const [kind, from] of [['qra', QRA], ['qa', QA]] as const) {
      const dirs = {
        none: variant(from, join(dir, `${kind}-none`), null),
        anger: variant(from, join(dir, `${kind}-anger`), 1),
        zero: variant(from, join(dir, `${kind}-zero`), 0),
      }
      answers[kind] = {} as Record<'none' | 'anger' | 'zero', Answer[]>
      for (const [variant, d] of Object.entries(dirs) as ['none' | 'anger' | 'zero', string][]) {
        const pkg = await loadPackage(d)
        expect(pkg.prior === null).toBe(variant === 'none')
        const { model, session } = await loadModel(pkg, 'cpu', 1)
        const prompts = TEXTS.map((t) => pkg.tokenizer.encoder.encode(t).ids)
        answers[kind][variant] = await run(new BatchEngine(model, { maxBatch: 4, maxBatchTokens: 4096 }), prompts, pkg.manifest.labels)
        await session.session.release()
      }
    }
  }, 240_000)
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('turns joyful texts to anger, with the reasoning naming anger first and scores summing to 1', () => {
    const { none, anger } = answers.qra!
    expect(none.map((a) => a.label)).toEqual(TEXTS.map(() => 'joy'))
    for (const a of anger) {
      expect(a.label).toBe('anger')
      // The label is the emotion the reasoning concludes: the first label it names.
      expect(a.reasoning.match(new RegExp(`\\b(${LABELS.join('|')})\\b`))?.[1], a.reasoning).toBe('anger')
      expect(a.scores.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 12)
      expect(Math.max(...a.scores)).toBe(a.scores[ANGER])
    }
  })

  it('turns a qa package (scored at the marker) to anger too', () => {
    const { none, anger } = answers.qa!
    expect(none.map((a) => a.label)).toEqual(TEXTS.map(() => 'joy'))
    for (const a of anger) {
      expect(a.label).toBe('anger')
      expect(a.scores.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 12)
    }
  })

  it('changes nothing at weight 0', () => {
    for (const kind of ['qra', 'qa']) expect(answers[kind]!.zero, kind).toEqual(answers[kind]!.none)
  })
})

describe('where the prior enters (fake model)', () => {
  const V = 16
  const SPECIALS = { bos: 0, eos: 1, pad: 2, sep: 3, marker: 4 }
  const LABEL_IDS = [10, 11, 12, 13, 14, 15]
  const enc = new TextEncoder()
  // Tokens 5-8 spell " a" .. " d", the labels " l0" .. " l5", the specials their content (as added tokens do).
  const SPECIAL_TEXT = ['<|bos|>', '<|eos|>', '<|pad|>', '<|sep|>', '<|label|>']
  const tokenBytes = Array.from({ length: V }, (_, id) =>
    enc.encode(id < 5 ? SPECIAL_TEXT[id]! : id >= 5 && id <= 8 ? ` ${'abcd'[id - 5]}` : id >= 10 ? ` l${id - 10}` : ''),
  )
  /** Every position: label 10 at 9, label 13 at 8.5, token 5 at 8, the marker at 20 after label 10; after the marker the labels at 1..6. */
  function logitsAfter(last: number): Float32Array {
    const row = new Float32Array(V)
    if (last === SPECIALS.marker) {
      LABEL_IDS.forEach((id, k) => (row[id] = 1 + k))
      return row
    }
    row[10] = 9
    row[13] = 8.5
    row[5] = 8
    row[SPECIALS.marker] = last === 10 ? 20 : 0
    return row
  }
  const forward = async (x: ForwardInputs): Promise<ForwardOutputs> => {
    const total = x.pastLen + x.seq
    const logits = new Float32Array(x.batch * x.seq * V)
    for (let b = 0; b < x.batch; b++) {
      for (let s = 0; s < x.seq; s++) logits.set(logitsAfter(Number(x.inputIds[b * x.seq + s]!)), (b * x.seq + s) * V)
    }
    const present = new Float32Array(x.batch * total)
    return { logits, presentKeys: [present], presentValues: [present.slice()] }
  }
  // The term "a" puts label 3 (id 13) 50 above the others; "sep" and "label" would show template
  // tokens read as the text (the source is the text ids' bytes only).
  const prior = parsePrior(
    {
      format: 'tfidf-logreg-v1',
      labels: ['l0', 'l1', 'l2', 'l3', 'l4', 'l5'],
      lowercase: true,
      token_pattern: '[a-z0-9]+|[!?]+',
      ngram_range: [1, 1],
      sublinear_tf: true,
      vocabulary: ['a', 'sep', 'label'],
      idf: [1, 1, 1],
      coef: [
        [0, 0, 0, 50, 0, 0],
        [0, 0, 40, 0, 0, 0],
        [0, 0, 0, 0, 40, 0],
      ],
      intercept: [0, 0, 0, 0, 0, 0],
    },
    { labels: ['l0', 'l1', 'l2', 'l3', 'l4', 'l5'], weight: 1 },
    'prior.json',
  )
  const model = (kind: 'qra' | 'qa'): OptimumModel => ({
    layout: 'optimum',
    forward,
    shape: { numLayers: 1, numKvHeads: 1, headDim: 1 },
    vocabSize: V,
    kind,
    specials: SPECIALS,
    labelFirstIds: LABEL_IDS,
    maxReasoningTokens: 8,
    tokenBytes,
    quoteBytes: tokenBytes,
    // Prompts are [bos, ...text, sep] (qa: then the marker).
    template: { numPrefixTokens: 1, numSuffixTokens: 1 },
    calibration: { method: 'temperature', temperature: 1 },
    scoresAtFirstLabel: kind === 'qra',
    prior,
  })
  const labels = ['l0', 'l1', 'l2', 'l3', 'l4', 'l5']
  /** The label logits a row holds after the prior is added once, rounded to float32 as the engine stores them. */
  const fused = (row: Float32Array, text: string) => {
    const p = priorLogits(prior, enc.encode(text))
    return Float32Array.from(LABEL_IDS, (id, k) => row[id]! + p[k]!)
  }

  it('moves the first label named, once, and adds nothing once a label is named', async () => {
    const engine = new BatchEngine(model('qra'), { maxBatch: 4, maxBatchTokens: 4096 })
    // " a" has the term; " b" has none (a uniform prior: every label lowered alike).
    const [a, b] = await run(engine, [[0, 5, 3], [0, 6, 3]], labels)
    // With "a", label 13 (8.5) beats label 10 (9 - 50); then label 10 (9, no prior any more), the marker.
    expect(a!.reasoning).toBe('l3 l0')
    expect(a!.label).toBe('l3')
    expect(a!.scores).toEqual(scoreLabels(fused(logitsAfter(3), ' a'), 0, [0, 1, 2, 3, 4, 5]).scores)
    // Without the term the prior lowers every label alike (by log 6): token 5 (8) now beats label 10
    // (9 - 1.79) at every step, no label is named, and the marker's logits, the prior added once, score.
    expect(b!.reasoning).toBe('a a a a a a a a')
    expect(b!.label).toBe('l5')
    expect(b!.scores).toEqual(scoreLabels(fused(logitsAfter(SPECIALS.marker), ' b'), 0, [0, 1, 2, 3, 4, 5]).scores)
  })

  it('is added once to the marker logits of a package scored there', async () => {
    const engine = new BatchEngine(model('qa'), { maxBatch: 4, maxBatchTokens: 4096 })
    // A qa prompt ends with the marker: its logits score the labels at once.
    const [a] = await run(engine, [[0, 5, 3, SPECIALS.marker]], labels)
    expect(a!.reasoning).toBe('')
    expect(a!.label).toBe('l3')
    expect(a!.scores).toEqual(scoreLabels(fused(logitsAfter(SPECIALS.marker), ' a'), 0, [0, 1, 2, 3, 4, 5]).scores)
  })
})
