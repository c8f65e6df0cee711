/**
 * `truncate: "start"` reads what training/'s `evaluate` reads of a long text (its first
 * max_input_tokens text tokens between the template's own): the same label, reasoning and token
 * counts, scores to 1e-4, on long texts made of validation rows. evaluate counts the tokens
 * before the cut; the service splits them into read and dropped.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RunningService } from '../../src/server.js'
import { required } from '../support/required.js'
import { QRA, post, startTestService } from '../support/service.js'

const run = promisify(execFile)
const PYTHON = required('Python environment', 'training/.venv/bin/python')
const env = { ...process.env, PYTHONPATH: 'training' }

interface Row {
  text: string
  label: number | null
}

/** 8 texts of 12 rows each (GoEmotions and tweets alternately), all over 128 tokens. */
function longRows(): Row[] {
  const read = (path: string) =>
    readFileSync(required('shared data', path), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Row)
      .filter((r) => r.label !== null)
  const sources = [read('../shared/data/goemotions/validation.jsonl'), read('../shared/data/emotion/validation.jsonl')]
  return Array.from({ length: 8 }, (_, i) => {
    const rows = sources[i % 2]!.slice(12 * i, 12 * i + 12)
    return { text: rows.map((r) => r.text).join(' '), label: rows[0]!.label }
  })
}

describe('start and training/ evaluate', () => {
  let svc: RunningService
  const dir = mkdtempSync(join(tmpdir(), 'because-truncate-'))
  beforeAll(async () => {
    svc = await startTestService({ models: [QRA] })
  })
  afterAll(async () => {
    await svc?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('read the same first tokens of a long text and answer the same', async () => {
    const rows = longRows()
    const data = join(dir, 'long.jsonl')
    const out = join(dir, 'predictions.jsonl')
    writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n')
    await run(PYTHON, ['-m', 'because_train', 'evaluate', '--model', QRA, '--data', data, '--predictions-out', out, '--threads', '1'], { env })
    const theirs = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { pred: string; reasoning: string; scores: Record<string, number>; input_tokens: number; reasoning_tokens: number })

    const res = await post(`${svc.url}/classify`, { texts: rows.map((r) => r.text), truncate: 'start' })
    expect(res.status).toBe(200)
    const ours = ((await res.json()) as {
      results: { label: string; reasoning: string; scores: Record<string, number>; usage: { input_tokens: number; reasoning_tokens: number; input_tokens_dropped: number } }[]
    }).results
    theirs.forEach((t, i) => {
      const o = ours[i]!
      expect(t.input_tokens, `row ${i} is long`).toBeGreaterThan(128)
      expect(o.usage.input_tokens + o.usage.input_tokens_dropped, `row ${i}`).toBe(t.input_tokens)
      expect(o.usage.input_tokens).toBe(128)
      expect(o.usage.reasoning_tokens, `row ${i}`).toBe(t.reasoning_tokens)
      expect(o.label, `row ${i}`).toBe(t.pred)
      expect(o.reasoning, `row ${i}`).toBe(t.reasoning)
      for (const [k, v] of Object.entries(t.scores)) expect(Math.abs(o.scores[k]! - v), `row ${i} ${k}`).toBeLessThan(1e-4)
    })
  }, 120_000)
})
