/**
 * docs/retraining.md, run as written: its config (read from the guide itself), `npm run train`,
 * `npm run evaluate`, then the package served over real HTTP. Only the model is made smaller
 * (`scratch:micro`, a few epochs) so that the run fits a test; the made-up three-label data is written
 * here. Also checks that the run wrote nothing outside its own folder.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RunningService } from '../src/server.js'
import { post, startTestService } from './support/service.js'

const run = promisify(execFile)
const GUIDE = 'docs/retraining.md'

/** The guide's fenced blocks whose info string is `lang` ('' for plain ones), in order. */
function fenced(markdown: string, lang: string): string[] {
  const out: string[] = []
  let open: { lang: string; lines: string[] } | null = null
  for (const line of markdown.split('\n')) {
    if (!line.startsWith('```')) {
      open?.lines.push(line)
    } else if (open === null) {
      open = { lang: line.slice(3).trim(), lines: [] }
    } else {
      if (open.lang === lang) out.push(open.lines.join('\n') + '\n')
      open = null
    }
  }
  return out
}

/** The guide's commands (`npm ...` lines of its plain blocks). */
function commands(markdown: string): string[] {
  return fenced(markdown, '').flatMap((b) => b.split('\n')).filter((l) => l.startsWith('npm '))
}

// Three labels a bag of words can tell apart, in sentences mixed from parts so that no two rows repeat.
const PARTS: Record<string, [string[], string[]]> = {
  complaint: [
    ['The app crashed again', 'I was charged twice', 'Your update broke my login', 'Still no refund', 'The export is broken'],
    ['and nobody answers.', 'this is unacceptable!', 'fix it now.', 'I am fed up.', 'worst service ever.'],
  ],
  question: [
    ['How do I export my invoices', 'Where can I change my password', 'Can I pay by bank transfer', 'Is there a dark mode', 'How do I add a second user'],
    ['on the web app?', 'from my phone?', 'this month?', 'for my team?', 'without an admin?'],
  ],
  praise: [
    ['Thanks, support sorted it out', 'Love the new dashboard', 'Great job on the update', 'Brilliant service', 'The team was so helpful'],
    ['in ten minutes!', 'really well done.', 'you made my day.', 'thank you so much!', 'keep it up :)'],
  ],
}

function rows(label: string, seed: number, n: number): Array<{ text: string; label: string }> {
  const [heads, tails] = PARTS[label] ?? [[], []]
  return Array.from({ length: n }, (_, i) => {
    const k = i * 7 + seed
    return { text: `${heads[k % heads.length]} ${tails[Math.floor(k / heads.length) % tails.length]} (#${seed}-${i})`, label }
  })
}

function csv(data: Array<{ text: string; label: string }>): string {
  return ['text,label', ...data.map((r) => `"${r.text.replaceAll('"', '""')}",${r.label}`)].join('\n') + '\n'
}

async function digest(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex')
}

async function projectFiles(): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const path of ['docs/report.md', 'docs/report.png']) out[path] = await digest(path)
  for (const dir of await readdir('models')) out[`models/${dir}`] = await digest(join('models', dir, 'manifest.json'))
  return out
}

describe('docs/retraining.md end to end', () => {
  let tmp = ''
  let service: RunningService | undefined
  let guide = ''
  let pkg = ''
  let validation = ''
  let before: Record<string, string> = {}

  beforeAll(async () => {
    guide = await readFile(GUIDE, 'utf8')
    before = await projectFiles()
    tmp = await mkdtemp(join(tmpdir(), 'because-retrain-'))
    const labels = Object.keys(PARTS)
    await writeFile(join(tmp, 'train.csv'), csv(labels.flatMap((l, k) => rows(l, k, 200))))
    validation = join(tmp, 'validation.csv')
    await writeFile(validation, csv(labels.flatMap((l, k) => rows(l, k + 10, 30))))
    const [config] = fenced(guide, 'toml')
    if (!config) throw new Error(`${GUIDE} has no toml block`)
    await writeFile(join(tmp, 'tickets.toml'), config.replaceAll('my-task/', `${tmp}/`))
  }, 30_000)

  afterAll(async () => {
    await service?.close()
    if (tmp) await rm(tmp, { recursive: true, force: true })
  })

  it('trains, evaluates and serves a three-label package without touching the project', async () => {
    const [train, evaluate] = commands(guide)
    expect(train).toBe('npm run train -- --config my-task/tickets.toml')
    expect(evaluate).toBe('npm run evaluate -- --model my-task/run/models/tickets-qra --data my-task/validation.csv')
    const small = ['model.base=scratch:micro', 'model.vocab_size=600', 'train.epochs=4', 'train.batch_size=32', 'train.warmup_steps=5', 'rgen.evidence.folds=2']
    const local = (cmd: string): string[] => cmd.replaceAll('my-task/', `${tmp}/`).split(' ').slice(1)
    await run('npm', [...local(train), ...small.flatMap((s) => ['--set', s])], { maxBuffer: 64 << 20, timeout: 900_000 })

    pkg = join(tmp, 'run', 'models', 'tickets-qra')
    const manifest = JSON.parse(await readFile(join(pkg, 'manifest.json'), 'utf8'))
    expect(manifest.labels).toEqual(['complaint', 'question', 'praise'])
    expect(await readdir(join(tmp, 'run', 'report'))).toContain('report.md')

    const { stdout } = await run('npm', local(evaluate), { maxBuffer: 64 << 20, timeout: 300_000 })
    const summary = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}')
    expect(summary.n).toBe(90)
    expect(summary.quotes_grounded).toBe(1)
    // Chance is 1/3; the parts of each label share no word with the others'.
    expect(summary.accuracy).toBeGreaterThan(0.6)
    for (const name of ['complaint', 'question', 'praise']) expect(stdout).toMatch(new RegExp(`^${name} +[0-9.]+ +[0-9.]+`, 'm'))

    service = await startTestService({ models: [pkg] })
    const base = service.url
    const info = (await (await fetch(`${base}/info`)).json()) as { models: Array<{ labels: string[] }> }
    expect(info.models[0]?.labels).toEqual(['complaint', 'question', 'praise'])
    const res = await post(`${base}/classify`, { text: 'Why was I charged twice this month?' })
    expect(res.status).toBe(200)
    const result = (await res.json()) as { label: string; scores: Record<string, number> }
    expect(['complaint', 'question', 'praise']).toContain(result.label)
    expect(Object.keys(result.scores).sort()).toEqual(['complaint', 'praise', 'question'])
    const total = Object.values(result.scores).reduce((a, b) => a + b, 0)
    expect(total).toBeCloseTo(1, 5)

    expect(await projectFiles()).toEqual(before)
  }, 1_200_000)
})
