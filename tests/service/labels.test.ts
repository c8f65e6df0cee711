/**
 * Labels come from the model package: packages relabelled from the embedded one (three labels of a
 * support inbox; the six emotions and a seventh) are served over real HTTP next to the embedded
 * model, and every route answers each model with its own labels. A package whose labels are not a
 * usable set is refused at load with a one-line error naming the field.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadPackage } from '../../src/model/package.js'
import type { RunningService } from '../../src/server.js'
import { SEVEN, SUPPORT, relabelledPackage } from '../support/relabel.js'
import { LABELS, expectValidResult, parseSse, post, readSse, startTestService } from '../support/service.js'
import type { Result } from '../support/service.js'

const dir = mkdtempSync(join(tmpdir(), 'because-labels-'))
let svc: RunningService
let url: string

beforeAll(async () => {
  // The embedded package without its lexical prior, which the relabelled ones cannot have (it is
  // fitted on the emotions): all three then score the same logits.
  const emotion = relabelledPackage(dir, 'emotion', { prior: undefined })
  const support = relabelledPackage(dir, 'support', SUPPORT)
  const seven = relabelledPackage(dir, 'seven', SEVEN)
  svc = await startTestService({ models: [emotion, support, seven], threads: 1 })
  url = svc.url
})
afterAll(async () => {
  await svc?.close()
  rmSync(dir, { recursive: true, force: true })
})

// The reasoning starts by naming joy, so every model takes its label logits at the same step.
const HAPPY = 'I got the job! I feel so happy'

const classify = async (body: object) => {
  const res = await post(`${url}/classify`, body)
  expect(res.status).toBe(200)
  return (await res.json()) as Result & { model: string; results?: Result[]; windows?: Result[] }
}

describe('a package with its own labels', () => {
  it('is listed by /info with its labels, in its order', async () => {
    const info = (await (await fetch(`${url}/info`)).json()) as { models: { id: string; labels: string[] }[] }
    expect(info.models.map((m) => [m.id, m.labels])).toEqual([
      ['emotion-qra-natural', [...LABELS]],
      [SUPPORT.id, SUPPORT.labels],
      [SEVEN.id, SEVEN.labels],
    ])
  })

  it('answers /classify with its labels, one text and a batch; the default model keeps its own', async () => {
    const one = await classify({ text: HAPPY, model: SUPPORT.id })
    expect(one.model).toBe(SUPPORT.id)
    expectValidResult(one, SUPPORT.labels)
    const batch = await classify({ texts: [HAPPY, 'why is my order late again', 'thank you so much'], model: SUPPORT.id })
    for (const r of batch.results!) expectValidResult(r, SUPPORT.labels)
    expectValidResult(await classify({ text: HAPPY, model: SEVEN.id }), SEVEN.labels)
    expectValidResult(await classify({ text: HAPPY }), LABELS)
  })

  it('scores the tokens its manifest names: the same logits, softmaxed over its own labels', async () => {
    const emotion = await classify({ text: HAPPY })
    const support = await classify({ text: HAPPY, model: SUPPORT.id })
    const seven = await classify({ text: HAPPY, model: SEVEN.id })
    expect(emotion.reasoning.startsWith('joy')).toBe(true)
    // The labels do not change what the model writes.
    expect(support.reasoning).toBe(emotion.reasoning)
    expect(seven.reasoning).toBe(emotion.reasoning)
    // complaint, praise and question are scored with the anger, joy and surprise tokens.
    const ratio = (s: Record<string, number>, a: string, b: string) => s[a]! / s[b]!
    expect(ratio(support.scores, 'complaint', 'praise')).toBeCloseTo(ratio(emotion.scores, 'anger', 'joy'), 5)
    expect(ratio(support.scores, 'question', 'praise')).toBeCloseTo(ratio(emotion.scores, 'surprise', 'joy'), 5)
    for (const l of LABELS) expect(ratio(seven.scores, l, 'joy')).toBeCloseTo(ratio(emotion.scores, l, 'joy'), 5)
    expect(seven.scores.calm).toBeGreaterThan(0)
    expect(support.label).toBe('praise')
  })

  it('streams /explain with its labels', async () => {
    const res = await post(`${url}/explain`, { text: HAPPY, model: SUPPORT.id }, { accept: 'text/event-stream' })
    expect(res.status).toBe(200)
    const events = await readSse(res)
    const label = events.find((e) => e.event === 'label')!.data as Pick<Result, 'label' | 'scores'>
    const done = events.find((e) => e.event === 'done')!.data as Result & { model: string }
    expect(done.model).toBe(SUPPORT.id)
    expectValidResult({ ...label, reasoning: done.reasoning, usage: done.usage }, SUPPORT.labels)
  })

  it('aggregates a long text read in windows over its labels', async () => {
    const text = Array.from({ length: 24 }, () => 'I got the job and I feel so happy about it today.').join(' ')
    const r = await classify({ text, model: SEVEN.id, truncate: 'windows', windows_detail: true })
    expect((r.usage as Result['usage'] & { windows: number }).windows).toBeGreaterThan(1)
    expectValidResult(r, SEVEN.labels)
    for (const w of r.windows!) expectValidResult(w, SEVEN.labels)
  })

  it('answers the OpenAI-compatible route with its labels, streamed and not', async () => {
    const body = { model: SUPPORT.id, messages: [{ role: 'user', content: HAPPY }] }
    const res = await post(`${url}/v1/chat/completions`, body)
    expect(res.status).toBe(200)
    const completion = (await res.json()) as { choices: { message: { content: string; scores: Record<string, number> } }[] }
    const message = completion.choices[0]!.message
    expect(SUPPORT.labels).toContain(message.content)
    expect(Object.keys(message.scores)).toEqual(SUPPORT.labels)

    const streamed = parseSse(await (await post(`${url}/v1/chat/completions`, { ...body, stream: true })).text().then((t) => t.replace(/data: \[DONE\]\n\n$/, '')))
    const labelled = streamed
      .map((e) => (e.data as { choices: { delta: { content?: string; scores?: Record<string, number> } }[] }).choices[0]?.delta)
      .find((d) => d?.scores !== undefined)!
    expect(labelled.content).toBe(message.content)
    expect(Object.keys(labelled.scores!)).toEqual(SUPPORT.labels)
  })
})

describe('a package whose labels cannot be served', () => {
  const refused = async (name: string, changes: Record<string, unknown>) => {
    const pkg = relabelledPackage(dir, name, changes)
    const err = await loadPackage(pkg).then(
      () => null,
      (e: Error) => e,
    )
    expect(err, name).not.toBeNull()
    expect(err!.message.split('\n')).toHaveLength(1)
    expect(err!.message.startsWith(`${pkg}/manifest.json: `)).toBe(true)
    return err!.message.slice(`${pkg}/manifest.json: `.length)
  }

  it('one label', async () => {
    expect(await refused('one', { labels: ['joy'], label_texts: [' joy'], label_token_ids: [[335]] })).toBe('labels: needs at least 2 labels')
  })

  it('a label listed twice, or an empty one', async () => {
    const twice = { labels: ['joy', 'anger', 'joy'], label_texts: [' joy', ' anger', ' fear'], label_token_ids: [[335], [346], [385]] }
    expect(await refused('twice', twice)).toBe('labels: "joy" is listed twice; labels must be unique')
    expect(await refused('empty', { ...twice, labels: ['joy', '', 'fear'] })).toBe('labels.1: a label may not be empty')
  })

  it('label_texts or label_token_ids not one per label', async () => {
    expect(await refused('texts', { ...SUPPORT, label_texts: [' anger', ' joy'] })).toBe(
      'label_texts: 2 entries for 3 labels; it needs one per label, in the order of labels',
    )
    expect(await refused('ids', { ...SUPPORT, label_token_ids: [[346], [335], [410], [385]] })).toBe(
      'label_token_ids: 4 entries for 3 labels; it needs one per label, in the order of labels',
    )
  })

  it('two labels starting with the same token', async () => {
    expect(await refused('same-token', { ...SUPPORT, label_token_ids: [[346], [335], [346, 7]] })).toBe(
      'label_token_ids: labels "complaint" and "question" start with the same token id 346; every label needs a different first token',
    )
  })
})
