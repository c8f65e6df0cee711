/**
 * @module
 * Long-text evaluation (docs/long-texts.md): builds long texts from validation rows (several rows
 * of one source with the same label, seeded) and measures over HTTP the accuracy of truncate
 * "windows", "start" and "end" on them against the same rows classified one by one, per
 * source. Writes the results section of docs/long-texts.md and the raw answers under
 * test-output/long-texts/. With `--write-data DIR` it only writes the long texts it would send, one
 * JSONL file per source, for training/'s `evaluate --truncate` to read the very same texts.
 *
 *   npx tsx bench/long-texts.ts --limit 20               # starts the service in this process
 *   npx tsx bench/long-texts.ts --url http://127.0.0.1:8080 --limit 200
 *   npx tsx bench/long-texts.ts --limit 200 --write-data test-output/long-texts/data
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { parseConfig } from '../src/config.js'
import { startService } from '../src/server.js'
import { buildLongTexts, longTextsJsonl, mean, meanLabel, readRows, replaceSection, table } from './long-text-data.js'
import type { LongText } from './long-text-data.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const BEGIN = '<!-- long-texts:results (written by bench/long-texts.ts) -->'
const END = '<!-- /long-texts:results -->'
const MODES = ['windows', 'start', 'end'] as const
type Mode = (typeof MODES)[number]

const USAGE = `usage: npx tsx bench/long-texts.ts [--limit N] [--url URL] [options]
  --limit N          long texts per source (default 50)
  --min-chars N      rows are joined until a text has N characters (default 1200) ...
  --max-rows N       ... or N rows (default 30)
  --seed N           which rows make which texts (default 1)
  --concurrency N    long-text requests in flight (default 4)
  --url URL          a running service; without it one is started here (--model, --threads)
  --model DIR        default models/emotion-qra-natural
  --threads N        default 2
  --xed PATH         XED validation split (default training/runs/emotion-natural-v2/data/validation-xed.jsonl; skipped when absent)
  --out PATH         default docs/long-texts.md
  --write-data DIR   only write the long texts, DIR/<source>.jsonl ({text, label}), for
                     python -m because_train evaluate --truncate ...; no service, no report`

interface Options {
  limit: number
  minChars: number
  maxRows: number
  seed: number
  concurrency: number
  url: string | null
  model: string
  threads: number
  xed: string
  out: string
  writeData: string | null
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    limit: 50,
    minChars: 1200,
    maxRows: 30,
    seed: 1,
    concurrency: 4,
    url: null,
    model: 'models/emotion-qra-natural',
    threads: 2,
    xed: 'training/runs/emotion-natural-v2/data/validation-xed.jsonl',
    out: 'docs/long-texts.md',
    writeData: null,
  }
  const ints = { '--limit': 'limit', '--min-chars': 'minChars', '--max-rows': 'maxRows', '--seed': 'seed', '--concurrency': 'concurrency', '--threads': 'threads' } as const
  const strings = { '--url': 'url', '--model': 'model', '--xed': 'xed', '--out': 'out', '--write-data': 'writeData' } as const
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split(/=(.*)/s) as [string, string | undefined]
    if (flag === '--help') throw new Error(USAGE)
    const value = inline ?? argv[++i]
    if (value === undefined) throw new Error(`${flag}: missing value\n${USAGE}`)
    if (flag in ints) {
      const n = Number(value)
      if (!Number.isInteger(n) || n < 0) throw new Error(`${flag}: expected a whole number, got ${JSON.stringify(value)}`)
      o[ints[flag as keyof typeof ints]] = n
    } else if (flag in strings) {
      o[strings[flag as keyof typeof strings]] = value
    } else {
      throw new Error(`unknown option ${flag}\n${USAGE}`)
    }
  }
  return o
}

interface Answer {
  label: string
  scores: Record<string, number>
  usage: { input_tokens: number; input_tokens_dropped: number; windows: number }
}

async function classify(url: string, body: object): Promise<Answer & { results?: Answer[] }> {
  const res = await fetch(`${url}/classify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (!res.ok) throw new Error(`/classify answered ${res.status}: ${(await res.text()).slice(0, 300)}`)
  return (await res.json()) as Answer & { results?: Answer[] }
}

/** Runs `work` over `items` with at most `n` in flight, results in input order. */
async function pool<T, R>(items: readonly T[], n: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await work(items[i]!)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, n) }, worker))
  return out
}

interface SourceResult {
  source: string
  texts: LongText[]
  /** Per text: each row's answer alone. */
  rows: Answer[][]
  /** Per mode, per text. */
  modes: Record<Mode, { answer: Answer; ms: number }[]>
}

async function evaluateSource(url: string, maxTexts: number, source: string, texts: LongText[], concurrency: number): Promise<SourceResult> {
  // Rows one by one, as evaluate reads them (a row over the limit: its first tokens).
  const flat = texts.flatMap((t) => t.rows.map((r) => r.text))
  const answers: Answer[] = []
  for (let i = 0; i < flat.length; i += maxTexts) {
    answers.push(...(await classify(url, { texts: flat.slice(i, i + maxTexts), truncate: 'start' })).results!)
  }
  let at = 0
  const rows = texts.map((t) => answers.slice(at, (at += t.rows.length)))
  const modes = {} as SourceResult['modes']
  for (const mode of MODES) {
    modes[mode] = await pool(texts, concurrency, async (t) => {
      const t0 = performance.now()
      const answer = await classify(url, { text: t.text, truncate: mode })
      return { answer, ms: performance.now() - t0 }
    })
  }
  return { source, texts, rows, modes }
}

const pct = (x: number) => (Number.isNaN(x) ? 'n/a' : (100 * x).toFixed(1))
const num = (x: number, digits = 0) => (Number.isNaN(x) ? 'n/a' : x.toFixed(digits))

function report(results: SourceResult[], opts: Options, model: string, startedAt: Date, elapsedS: number): string {
  const accuracyRows = results.map((r) => {
    const rowAcc = mean(r.rows.flatMap((rows, i) => rows.map((a) => (a.label === r.texts[i]!.label ? 1 : 0))))
    const rowsMean = mean(r.rows.map((rows, i) => (meanLabel(rows.map((a) => a.scores)) === r.texts[i]!.label ? 1 : 0)))
    const acc = (m: Mode) => mean(r.modes[m].map((x, i) => (x.answer.label === r.texts[i]!.label ? 1 : 0)))
    const delta = 100 * (acc('windows') - rowAcc)
    return [r.source, r.texts.length, pct(rowAcc), pct(rowsMean), pct(acc('windows')), pct(acc('start')), pct(acc('end')), `${delta >= 0 ? '+' : ''}${delta.toFixed(1)}`]
  })
  const sizeRows = results.map((r) => [
    r.source,
    num(mean(r.texts.map((t) => t.rows.length)), 1),
    num(mean(r.texts.map((t) => [...t.text].length))),
    num(mean(r.modes.windows.map((x) => x.answer.usage.input_tokens))),
    num(mean(r.modes.windows.map((x) => x.answer.usage.windows)), 1),
    num(mean(r.modes.start.map((x) => x.answer.usage.input_tokens_dropped))),
    ...MODES.map((m) => num(mean(r.modes[m].map((x) => x.ms)))),
  ])
  return [
    `Run ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC, ${elapsedS.toFixed(0)} s: model \`${model}\`, \`--limit ${opts.limit} --min-chars ${opts.minChars} --max-rows ${opts.maxRows} --seed ${opts.seed} --concurrency ${opts.concurrency}\`.`,
    '',
    'Accuracy (%). *rows* is the rows of those texts classified one by one (per row); *rows, mean* is',
    'the label of their mean scores (per text: what windows would give if each row were its own window);',
    'the modes are per long text. *windows - rows* is in points (the target: within 3).',
    '',
    table(['source', 'texts', 'rows', 'rows, mean', 'windows', 'start', 'end', 'windows - rows'], accuracyRows),
    '',
    'Sizes (means per text) and time per request (ms, over HTTP, with the concurrency above):',
    '',
    table(['source', 'rows', 'characters', 'tokens', 'windows', 'tokens dropped (start, end)', 'ms windows', 'ms start', 'ms end'], sizeRows),
  ].join('\n')
}

/** Writes each source's long texts to `dir`/<source>.jsonl (the source's first word). */
function writeData(dir: string, sources: [string, string][], opts: Options, labels: readonly string[]): void {
  const out = resolve(ROOT, dir)
  mkdirSync(out, { recursive: true })
  for (const [source, path] of sources) {
    if (!existsSync(path)) {
      console.warn(`${source}: ${relative(ROOT, path)} not found; skipped (the data stage writes the XED split)`)
      continue
    }
    const texts = buildLongTexts(readRows(path, labels), { count: opts.limit, minChars: opts.minChars, maxRows: opts.maxRows, seed: opts.seed })
    const file = join(out, `${source.split(' ')[0]!}.jsonl`)
    writeFileSync(file, longTextsJsonl(texts))
    console.log(`${source}: ${texts.length} long texts of ${texts.reduce((n, t) => n + t.rows.length, 0)} rows -> ${relative(ROOT, file)}`)
  }
}

/** The labels of the model package in `dir`, in its order. */
function packageLabels(dir: string): string[] {
  return (JSON.parse(readFileSync(resolve(ROOT, dir, 'manifest.json'), 'utf8')) as { labels: string[] }).labels
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2))
  const sources: [string, string][] = [
    ['emotion (tweets)', join(ROOT, '../shared/data/emotion/validation.jsonl')],
    ['goemotions (Reddit)', join(ROOT, '../shared/data/goemotions/validation.jsonl')],
    ['xed (subtitles)', resolve(ROOT, opts.xed)],
  ]
  // A label index in the data names the package's label of that index; the package says which.
  if (opts.writeData !== null) return writeData(opts.writeData, sources, opts, packageLabels(opts.model))
  const startedAt = new Date()
  const t0 = performance.now()
  const running = opts.url
    ? null
    : await startService({ ...parseConfig([], {}), models: [opts.model], port: 0, threads: opts.threads }, pino({ level: 'error' }))
  const url = opts.url ?? running!.url
  try {
    const info = (await (await fetch(`${url}/info`)).json()) as { models: { id: string; labels: string[]; limits: { max_texts: number } }[] }
    // The labels of the model that answers, as /info lists them (with --url, not necessarily --model's).
    const model = info.models[0]!
    const results: SourceResult[] = []
    for (const [source, path] of sources) {
      if (!existsSync(path)) {
        console.warn(`${source}: ${relative(ROOT, path)} not found; skipped (the data stage writes the XED split)`)
        continue
      }
      const texts = buildLongTexts(readRows(path, model.labels), { count: opts.limit, minChars: opts.minChars, maxRows: opts.maxRows, seed: opts.seed })
      console.log(`${source}: ${texts.length} long texts of ${texts.reduce((n, t) => n + t.rows.length, 0)} rows`)
      results.push(await evaluateSource(url, model.limits.max_texts, source, texts, opts.concurrency))
    }
    const elapsedS = (performance.now() - t0) / 1000
    const section = report(results, opts, model.id, startedAt, elapsedS)
    console.log(`\n${section}`)
    const out = resolve(ROOT, opts.out)
    writeFileSync(out, replaceSection(existsSync(out) ? readFileSync(out, 'utf8') : '# Long texts\n', section, BEGIN, END))
    const raw = join(ROOT, 'test-output', 'long-texts', `long-texts-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`)
    mkdirSync(dirname(raw), { recursive: true })
    writeFileSync(raw, JSON.stringify({ opts, model: model.id, results }, null, 1))
    console.log(`\nwrote ${relative(ROOT, out)} and ${relative(ROOT, raw)}`)
  } finally {
    await running?.close()
  }
}

main().catch((e: Error) => {
  console.error(e.message)
  process.exit(1)
})
