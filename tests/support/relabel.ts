/**
 * Model packages with a label set of their own, made from the embedded one, for the tests that
 * check the service serves whatever labels a package lists. The copy keeps every file as it is,
 * so the sha256 the manifest records for them still holds; only manifest.json (which `files`
 * never lists) is rewritten. A relabelled package has no lexical prior: the embedded one's is
 * fitted on its own labels (and so no temperature per register, which needs the prior's gate).
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { QRA } from './service.js'

/** The embedded package's label tokens, by emotion, so that a relabelled set scores real logits. */
const TOKEN = { sadness: 345, joy: 335, love: 375, anger: 346, fear: 385, surprise: 410, calm: 2002 } as const

export interface LabelSet {
  id: string
  labels: string[]
  label_texts: string[]
  label_token_ids: number[][]
}

/** Three labels of a support inbox, scored with the anger, joy and surprise tokens. */
export const SUPPORT: LabelSet = {
  id: 'support-qra-test',
  labels: ['complaint', 'praise', 'question'],
  label_texts: [' anger', ' joy', ' surprise'],
  label_token_ids: [[TOKEN.anger], [TOKEN.joy], [TOKEN.surprise]],
}

/** The six emotions and a seventh label, `calm` (a token of the vocabulary the model never wrote as a label). */
export const SEVEN: LabelSet = {
  id: 'emotion7-qra-test',
  labels: ['sadness', 'joy', 'love', 'anger', 'fear', 'surprise', 'calm'],
  label_texts: [' sadness', ' joy', ' love', ' anger', ' fear', ' surprise', ' calm'],
  label_token_ids: Object.values(TOKEN).map((id) => [id]),
}

/**
 * Copies `from` (the embedded qra package by default) to `dir`/`name` and writes `changes` over its
 * manifest's top-level fields (one set to undefined is left out; `prior` is, when `labels`
 * change). Returns the new package folder.
 */
export function relabelledPackage(dir: string, name: string, changes: Partial<LabelSet> | Record<string, unknown>, from = QRA): string {
  const to = join(dir, name)
  cpSync(from, to, { recursive: true })
  const path = join(to, 'manifest.json')
  const manifest = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
  const prior = 'labels' in changes ? { prior: undefined } : {}
  const next: Record<string, unknown> = { ...manifest, ...prior, ...changes }
  // A temperature per register needs the registers prior's gate: without the prior, the one
  // temperature calibrate fitted beside them.
  const cal = next.calibration as { method?: string; one_temperature?: number } | undefined
  if (next.prior === undefined && cal?.method === 'register-temperature') {
    next.calibration = { method: 'temperature', temperature: cal.one_temperature ?? 1 }
  }
  writeFileSync(path, `${JSON.stringify(next, null, 2)}\n`)
  return to
}
