/**
 * The manifest rules this service adds for natural-v1 packages: the calibration temperature the
 * label scores use, and the emoji table the rule reads.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { EMOJI_FILE, ManifestSchema, checkManifest, labelTemperature } from '../../src/model/manifest.js'
import type { Manifest } from '../../src/model/manifest.js'
import { QRA } from '../support/service.js'

const base = JSON.parse(readFileSync(`${QRA}/manifest.json`, 'utf8')) as Record<string, unknown>
const parse = (changes: Record<string, unknown>) => ManifestSchema.safeParse({ ...base, ...changes })
const firstIssue = (changes: Record<string, unknown>) => {
  const r = parse(changes)
  return r.success ? null : `${r.error.issues[0]!.path.join('.')}: ${r.error.issues[0]!.message}`
}

describe('calibration', () => {
  it('is optional: without it the temperature is 1', () => {
    const m = parse({ calibration: undefined })
    expect(m.success).toBe(true)
    expect(labelTemperature(m.data!)).toBe(1)
  })

  it('holds a positive finite temperature and keeps the keys it does not know', () => {
    const calibration = { method: 'temperature', temperature: 1.7, fitted_on: 'validation', ece_before: 0.08 }
    const m = parse({ calibration })
    expect(m.success).toBe(true)
    expect(labelTemperature(m.data!)).toBe(1.7)
    expect(m.data!.calibration).toEqual(calibration)
  })

  it('refuses any other method and any temperature that is not a positive number', () => {
    expect(firstIssue({ calibration: { method: 'platt', temperature: 1 } })).toMatch(/^calibration\.method: /)
    for (const temperature of [0, -1, '2', null, Infinity, NaN]) {
      expect(firstIssue({ calibration: { method: 'temperature', temperature } }), String(temperature)).toMatch(
        /^calibration\.temperature: /,
      )
    }
    expect(firstIssue({ calibration: { method: 'temperature' } })).toMatch(/^calibration\.temperature: /)
  })
})

describe('natural-v1', () => {
  const natural = (files: Record<string, string>): Manifest => {
    const m = parse({ prompt: { ...(base.prompt as object), normalize: 'natural-v1' } })
    expect(m.success).toBe(true)
    const { [EMOJI_FILE]: _, ...others } = m.data!.files
    return { ...m.data!, files: { ...others, ...files } }
  }

  it('is a rule a manifest may name, and needs emoji.json among the files', () => {
    expect(checkManifest(natural({}))).toBe('files does not list emoji.json, which normalize natural-v1 reads')
    expect(checkManifest(natural({ [EMOJI_FILE]: '0'.repeat(64) }))).toBeNull()
  })

  it('leaves the other rules without emoji.json', () => {
    const m = parse({})
    expect(m.success && checkManifest(m.data)).toBeNull()
  })

  it('is spelled exactly', () => {
    expect(firstIssue({ prompt: { ...(base.prompt as object), normalize: 'natural-v2' } })).toMatch(/^prompt\.normalize: /)
  })
})

describe('labels', () => {
  const labelled = (n: number) => ({
    labels: Array.from({ length: n }, (_, k) => `label ${k}`),
    label_texts: Array.from({ length: n }, (_, k) => ` l${k}`),
    label_token_ids: Array.from({ length: n }, (_, k) => [100 + k, 7]),
  })

  it('are the package\'s own: any 2 or more unique names, each with a text and tokens', () => {
    for (const n of [2, 3, 7, 20]) {
      const m = parse(labelled(n))
      expect(m.success, String(n)).toBe(true)
      expect(checkManifest(m.data!), String(n)).toBeNull()
    }
  })

  it('are refused as fewer than 2, empty, duplicated, or with texts and tokens not one per label', () => {
    expect(firstIssue(labelled(1))).toBe('labels: needs at least 2 labels')
    expect(firstIssue({ ...labelled(3), labels: ['a', '', 'c'] })).toBe('labels.1: a label may not be empty')
    const check = (changes: Record<string, unknown>) => checkManifest(parse({ ...labelled(3), ...changes }).data!)
    expect(check({ labels: ['a', 'b', 'a'] })).toBe('labels: "a" is listed twice; labels must be unique')
    expect(check({ label_texts: [' a'] })).toMatch(/^label_texts: 1 entry for 3 labels/)
    expect(check({ label_token_ids: [[1], [2]] })).toMatch(/^label_token_ids: 2 entries for 3 labels/)
    expect(check({ label_token_ids: [[1], [2, 9], [2]] })).toBe(
      'label_token_ids: labels "label 1" and "label 2" start with the same token id 2; every label needs a different first token',
    )
  })
})
