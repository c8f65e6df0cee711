/**
 * One decoding, two implementations: the service must agree with the training pipeline's
 * `evaluate` (Python, ONNX Runtime) token for token, grounded quoting and the calibration
 * temperature included. Compared per row on the first 200 labelled validation rows of each
 * register (dair-ai tweets, GoEmotions comments, XED subtitles), and on a variant of the package
 * with another calibration temperature: the predicted label, the reasoning text, and the token counts; scores to
 * 1e-4. Also the normalisation of those texts under every rule, and the prompt ids of texts with
 * special strings, with normalisation "none", against training/'s own code.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EMOJI_FILE, readManifest } from '../../src/model/manifest.js'
import { EmojiTable, normalize } from '../../src/model/normalize.js'
import { loadTokenizer } from '../../src/model/tokenizer.js'
import type { RunningService } from '../../src/server.js'
import { required } from '../support/required.js'
import { QRA, post, startTestService } from '../support/service.js'
import type { Result } from '../support/service.js'

const run = promisify(execFile)
const PYTHON = required('Python environment', 'training/.venv/bin/python')
const N = 200
const EMOJI_TABLE = 'training/because_train/assets/emoji.json'
const CHUNK = 50
const env = { ...process.env, PYTHONPATH: 'training' }

interface Row {
  text: string
  label: unknown
}

const readRows = (path: string): Row[] =>
  readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Row)

/**
 * A copy of `from` that reads natural text with a made-up calibration temperature (1.7), hashes
 * redone: the temperature path is checked on a value export did not fit (and natural-v1 even where
 * a package was trained on another rule). Both sides must agree whatever the model makes of it.
 */
function naturalVariant(from: string, to: string): { dir: string; id: string } {
  cpSync(from, to, { recursive: true })
  copyFileSync(EMOJI_TABLE, join(to, EMOJI_FILE))
  const m = JSON.parse(readFileSync(join(to, 'manifest.json'), 'utf8')) as Record<string, unknown> & {
    prompt: Record<string, unknown>
    files: Record<string, string>
  }
  const id = `${m.id as string}-natural-variant`
  const sha = (name: string) => createHash('sha256').update(readFileSync(join(to, name))).digest('hex')
  const manifest = {
    ...m,
    id,
    prompt: { ...m.prompt, normalize: 'natural-v1' },
    calibration: { method: 'temperature', temperature: 1.7, note: 'made up by tests/service/parity.test.ts' },
    files: { ...m.files, [EMOJI_FILE]: sha(EMOJI_FILE) },
  }
  writeFileSync(join(to, 'manifest.json'), JSON.stringify(manifest, null, 1))
  return { dir: to, id }
}

describe('parity with training/ evaluate', () => {
  let svc: RunningService
  let variant: { dir: string; id: string }
  const dir = mkdtempSync(join(tmpdir(), 'because-parity-'))
  /** The first N rows with a label of each source (evaluate skips rows whose label is null). */
  const sources = new Map<string, Row[]>()

  beforeAll(async () => {
    variant = naturalVariant(QRA, join(dir, 'variant'))
    svc = await startTestService({ models: [QRA, variant.dir], maxBatch: 64, maxQueue: 1024 })
    // XED has no official split: training/'s data stage makes the seeded one the models are chosen on.
    const runDir = join(dir, 'run')
    await run(PYTHON, ['-m', 'because_train', 'data', '--config', 'training/configs/emotion-natural.toml', '--set', `run_dir=${runDir}`], { env })
    for (const [name, path] of [
      ['emotion', required('shared data', '../shared/data/emotion/validation.jsonl')],
      ['goemotions', required('shared data', '../shared/data/goemotions/validation.jsonl')],
      ['xed', join(runDir, 'data', 'validation-xed.jsonl')],
    ] as const) {
      sources.set(name, readRows(path).filter((r) => r.label !== null).slice(0, N))
    }
  }, 60_000)
  afterAll(async () => {
    await svc?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  /** Runs `rows` through evaluate and through the service (model `modelId`, default if absent); returns what differs. */
  async function compare(name: string, modelDir: string, modelId: string | undefined, rows: Row[]): Promise<string[]> {
    const data = join(dir, `${name}.jsonl`)
    const out = join(dir, `${name}-predictions.jsonl`)
    writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n')
    const evaluate = run(PYTHON, ['-m', 'because_train', 'evaluate', '--model', modelDir, '--data', data, '--predictions-out', out, '--threads', '1'], { env })

    const texts = rows.map((r) => r.text)
    const chunks = Array.from({ length: Math.ceil(texts.length / CHUNK) }, (_, k) => texts.slice(k * CHUNK, (k + 1) * CHUNK))
    const ours = (
      await Promise.all(
        chunks.map(async (chunk) => {
          const res = await post(`${svc.url}/classify`, { texts: chunk, ...(modelId ? { model: modelId } : {}) })
          expect(res.status, await res.clone().text()).toBe(200)
          return ((await res.json()) as { results: Result[] }).results
        }),
      )
    ).flat()
    await evaluate
    const theirs = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { text: string; pred: string; reasoning: string; scores: Record<string, number>; input_tokens: number; reasoning_tokens: number })
    expect(theirs).toHaveLength(texts.length)
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
    return mismatches
  }

  it.each(['emotion', 'goemotions', 'xed'])(`predicts what evaluate predicts on the first ${N} labelled %s validation rows`, async (name) => {
    const rows = sources.get(name)!
    expect(rows).toHaveLength(N)
    expect((await compare(name, QRA, undefined, rows)).slice(0, 10)).toEqual([])
  }, 300_000)

  it('agrees under natural-v1 and a calibration temperature too (a variant of the package)', async () => {
    // GoEmotions and XED: the registers with capitals, punctuation and emoji for natural-v1 to keep.
    const rows = [...sources.get('goemotions')!.slice(0, N / 2), ...sources.get('xed')!.slice(0, N / 2)]
    expect((await compare('variant', variant.dir, variant.id, rows)).slice(0, 10)).toEqual([])
  }, 300_000)

  it('normalises those texts as training/ does, under every rule', async () => {
    const texts = [...sources.values()].flat().map((r) => r.text)
    const listed = join(dir, 'texts.json')
    writeFileSync(listed, JSON.stringify(texts))
    const script = [
      'import json, sys',
      'from because_train.normalize import normalize',
      'texts = json.load(open(sys.argv[1], encoding="utf-8"))',
      'print(json.dumps({rule: [normalize(t, rule) for t in texts] for rule in ("lower-alnum-v1", "natural-v1")}))',
    ].join('\n')
    const { stdout } = await run(PYTHON, ['-c', script, listed], { env, maxBuffer: 64 << 20 })
    const expected = JSON.parse(stdout) as Record<'lower-alnum-v1' | 'natural-v1', string[]>
    const table = EmojiTable.parse(JSON.parse(readFileSync(EMOJI_TABLE, 'utf8')))
    for (const rule of ['lower-alnum-v1', 'natural-v1'] as const) {
      const differ = texts.flatMap((t, i) => {
        const ours = normalize(t, rule, table)
        return ours === expected[rule][i] ? [] : [`${JSON.stringify(t)}: ${JSON.stringify(ours)} != ${JSON.stringify(expected[rule][i])}`]
      })
      expect(differ, rule).toEqual([])
    }
  }, 60_000)

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
