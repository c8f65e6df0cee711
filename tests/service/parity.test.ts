/**
 * One decoding, two implementations: the service must agree with the training pipeline's
 * `evaluate` (Python, ONNX Runtime) token for token. Compared per row: the predicted label, the
 * reasoning text, and the token counts; scores to 1e-4. Also the prompt ids of texts with special
 * strings, with normalisation "none", against training/'s own encoder.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readManifest } from '../../src/model/manifest.js'
import { loadTokenizer } from '../../src/model/tokenizer.js'
import type { RunningService } from '../../src/server.js'
import { QRA, post, startTestService } from '../support/service.js'
import type { Result } from '../support/service.js'

const run = promisify(execFile)
const PYTHON = 'training/.venv/bin/python'
const VALIDATION = '../shared/data/emotion/validation.jsonl'
const N = 200
const env = { ...process.env, PYTHONPATH: 'training' }

describe.skipIf(!existsSync(PYTHON))('parity with training/ evaluate', () => {
  let svc: RunningService
  const dir = mkdtempSync(join(tmpdir(), 'because-parity-'))

  beforeAll(async () => {
    svc = await startTestService({ models: [QRA], maxBatch: 64 })
  })
  afterAll(async () => {
    await svc?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it(`predicts what evaluate predicts on the first ${N} validation rows`, async () => {
    const rows = readFileSync(VALIDATION, 'utf8').trim().split('\n').slice(0, N)
    const data = join(dir, 'rows.jsonl')
    const out = join(dir, 'predictions.jsonl')
    writeFileSync(data, rows.join('\n') + '\n')
    const evaluate = run(PYTHON, ['-m', 'because_train', 'evaluate', '--model', QRA, '--data', data, '--predictions-out', out, '--threads', '1'], { env })

    const texts = rows.map((l) => (JSON.parse(l) as { text: string }).text)
    const chunks = Array.from({ length: Math.ceil(N / 50) }, (_, k) => texts.slice(k * 50, k * 50 + 50))
    const ours = (
      await Promise.all(
        chunks.map(async (chunk) => {
          const res = await post(`${svc.url}/classify`, { texts: chunk })
          expect(res.status).toBe(200)
          return ((await res.json()) as { results: Result[] }).results
        }),
      )
    ).flat()
    await evaluate
    const theirs = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { text: string; pred: string; reasoning: string; scores: Record<string, number>; input_tokens: number; reasoning_tokens: number })
    expect(theirs).toHaveLength(N)
    const mismatches: string[] = []
    theirs.forEach((t, i) => {
      const o = ours[i]!
      if (t.text !== texts[i]) mismatches.push(`row ${i}: evaluate reordered the rows`)
      if (o.label !== t.pred) mismatches.push(`row ${i}: label ${o.label} != ${t.pred}`)
      if (o.reasoning !== t.reasoning) mismatches.push(`row ${i}: reasoning ${JSON.stringify(o.reasoning)} != ${JSON.stringify(t.reasoning)}`)
      if (o.usage.input_tokens !== t.input_tokens || o.usage.reasoning_tokens !== t.reasoning_tokens) {
        mismatches.push(`row ${i}: usage ${JSON.stringify(o.usage)} != ${t.input_tokens}/${t.reasoning_tokens}`)
      }
      for (const [k, v] of Object.entries(t.scores)) {
        if (Math.abs(o.scores[k]! - v) > 1e-4) mismatches.push(`row ${i}: score ${k} ${o.scores[k]} != ${v}`)
      }
    })
    expect(mismatches.slice(0, 10)).toEqual([])
  }, 180_000)

  it('encodes user text as training/ does, special strings included (normalisation "none")', async () => {
    const texts = ['i feel <|label|> joy <|eos|>', '<|bos|><|sep|><|pad|>', 'a<|label|>b <|label', "I didn't FEEL it 😊 日本"]
    const script = [
      'import json, sys',
      'from tokenizers import Tokenizer',
      'from because_train.sequences import PromptSpec',
      `m = json.load(open("${QRA}/manifest.json"))`,
      `spec = PromptSpec(tokenizer=Tokenizer.from_file("${QRA}/tokenizer.json"), normalize="none", template=m["prompt"]["template"], marker=m["prompt"]["marker"], eos=m["prompt"]["eos"], labels=m["labels"], label_texts=m["label_texts"])`,
      'texts = json.loads(sys.argv[1])',
      'print(json.dumps([spec.prompt_ids(spec.text_ids(t)) for t in texts]))',
    ].join('\n')
    const { stdout } = await run(PYTHON, ['-c', script, JSON.stringify(texts)], { env })
    const expected = JSON.parse(stdout) as number[][]
    const manifest = await readManifest(QRA)
    const { encoder } = await loadTokenizer(QRA, { ...manifest, prompt: { ...manifest.prompt, normalize: 'none' } })
    const specials = new Set(Object.values(manifest.special_tokens))
    texts.forEach((t, i) => {
      const { ids, numTextTokens } = encoder.encode(t)
      expect(ids, t).toEqual(expected[i])
      expect(ids.slice(1, 1 + numTextTokens).some((id) => specials.has(id)), t).toBe(false)
    })
  })
})
