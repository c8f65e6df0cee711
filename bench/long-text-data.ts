/**
 * @module
 * The data side of `bench/long-texts.ts`, pure: validation rows as labelled texts, long texts built
 * from several rows of one source with the same label (seeded), and the report's tables.
 */
import { readFileSync } from 'node:fs'

export interface Row {
  text: string
  /** One of the model's labels. */
  label: string
}

/**
 * The labelled rows of a JSONL split: `label` an index into `labels` (the model package's, in its
 * order: dair-ai/emotion and GoEmotions number the six emotions as the embedded packages list them)
 * or a name (the XED split of training/'s data stage). Rows whose label is null (a GoEmotions row
 * without one of the model's labels) are left out, as evaluate skips them.
 */
export function parseRows(jsonl: string, where: string, labels: readonly string[]): Row[] {
  const rows: Row[] = []
  jsonl.split('\n').forEach((line, i) => {
    if (line.trim() === '') return
    const { text, label } = JSON.parse(line) as { text: unknown; label: unknown }
    if (label === null) return
    const name = typeof label === 'number' ? labels[label] : label
    if (typeof text !== 'string' || typeof name !== 'string' || !labels.includes(name)) {
      throw new Error(`${where}:${i + 1}: expected {text, label} with label 0-${labels.length - 1}, one of ${labels.join(', ')}, or null`)
    }
    rows.push({ text, label: name })
  })
  return rows
}

export const readRows = (path: string, labels: readonly string[]): Row[] => parseRows(readFileSync(path, 'utf8'), path, labels)

/** mulberry32: a small seeded generator, so that the same seed builds the same texts. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function shuffled<T>(xs: readonly T[], random: () => number): T[] {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

/** Rows as one text: each ends a sentence (a full stop added where it has no . ! ? …). */
export function joinRows(rows: readonly string[]): string {
  return rows.map((r) => r.trim()).map((r) => (/[.!?…]["')\]]*$/.test(r) ? r : `${r}.`)).join(' ')
}

export interface LongText {
  label: string
  rows: Row[]
  text: string
}

export interface BuildOptions {
  /** Long texts to build (fewer when the rows run out). */
  count: number
  /** Rows are added until the text has at least this many characters... */
  minChars: number
  /** ...or this many rows. */
  maxRows: number
  seed: number
}

/**
 * Long texts of rows with one label each, every row used at most once: in a seeded order, the next
 * unused row starts a text and the next unused rows of its label follow, until the text is long
 * enough. Labels are thus drawn as often as the source has them. A text that could not reach two
 * rows is left out (its label ran out).
 */
export function buildLongTexts(rows: readonly Row[], opts: BuildOptions): LongText[] {
  const random = seeded(opts.seed)
  const order = shuffled(rows, random)
  const byLabel = new Map<string, Row[]>()
  for (const r of order) byLabel.set(r.label, [...(byLabel.get(r.label) ?? []), r])
  const used = new Set<Row>()
  const texts: LongText[] = []
  for (const first of order) {
    if (texts.length >= opts.count) break
    if (used.has(first)) continue
    const picked = [first]
    used.add(first)
    let chars = first.text.length
    for (const r of byLabel.get(first.label)!) {
      if (chars >= opts.minChars || picked.length >= opts.maxRows) break
      if (used.has(r)) continue
      picked.push(r)
      used.add(r)
      chars += r.text.length + 1
    }
    if (picked.length >= 2) texts.push({ label: first.label, rows: picked, text: joinRows(picked.map((r) => r.text)) })
  }
  return texts
}

/**
 * Long texts as a JSONL split, one `{"text", "label"}` a line (label by name), as training/'s
 * `evaluate` reads it: the very texts this script sends over HTTP (`--write-data`).
 */
export function longTextsJsonl(texts: readonly LongText[]): string {
  return texts.map((t) => `${JSON.stringify({ text: t.text, label: t.label })}\n`).join('')
}

/** The label whose summed scores are highest (the first on a tie, in the scores' own order). */
export function meanLabel(scores: readonly Record<string, number>[]): string {
  const labels = [...new Set(scores.flatMap((x) => Object.keys(x)))]
  const sums = labels.map((l) => scores.reduce((s, x) => s + (x[l] ?? 0), 0))
  return labels[sums.indexOf(Math.max(...sums))]!
}

export const mean = (xs: readonly number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length)

/** A markdown table; numbers as given. */
export function table(head: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const line = (cells: readonly (string | number)[]) => `| ${cells.join(' | ')} |`
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n')
}

/** Writes `section` between the report's result markers, keeping what is around them. */
export function replaceSection(doc: string, section: string, begin: string, end: string): string {
  const a = doc.indexOf(begin)
  const b = doc.indexOf(end)
  if (a < 0 || b < a) return `${doc.trimEnd()}\n\n${begin}\n${section}\n${end}\n`
  return `${doc.slice(0, a + begin.length)}\n${section}\n${doc.slice(b)}`
}
