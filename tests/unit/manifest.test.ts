/**
 * The manifest rules this service adds for natural-v1 packages: the calibration temperature the
 * label scores use (one, or one per register of a registers prior), and the emoji table the rule reads.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { EMOJI_FILE, ManifestSchema, PackageError, checkManifest, labelCalibration, sequenceTemperature } from '../../src/model/manifest.js'
import type { Manifest } from '../../src/model/manifest.js'
import { QRA } from '../support/service.js'

const base = JSON.parse(readFileSync(`${QRA}/manifest.json`, 'utf8')) as Record<string, unknown>
const parse = (changes: Record<string, unknown>) => ManifestSchema.safeParse({ ...base, ...changes })
const firstIssue = (changes: Record<string, unknown>) => {
  const r = parse(changes)
  return r.success ? null : `${r.error.issues[0]!.path.join('.')}: ${r.error.issues[0]!.message}`
}
const PATH = '/pkg/manifest.json'
/** The temperature of a sequence whose gate gives `gate` (null: no registers prior). */
const temperatureOf = (m: Manifest, registers: string[] | null, gate: number[] | null) =>
  sequenceTemperature(labelCalibration(m, registers, PATH), gate && Float64Array.from(gate))

describe('calibration', () => {
  it('is optional: without it the temperature is 1', () => {
    const m = parse({ calibration: undefined })
    expect(m.success).toBe(true)
    expect(labelCalibration(m.data!, null, PATH)).toEqual({ method: 'temperature', temperature: 1 })
    expect(temperatureOf(m.data!, null, null)).toBe(1)
  })

  it('holds a positive finite temperature and keeps the keys it does not know', () => {
    const calibration = { method: 'temperature', temperature: 1.7, fitted_on: 'validation', ece_before: 0.08 }
    const m = parse({ calibration })
    expect(m.success).toBe(true)
    expect(temperatureOf(m.data!, null, null)).toBe(1.7)
    // The same for every sequence, whatever a registers prior's gate says.
    expect(temperatureOf(m.data!, ['a', 'b'], [0.9, 0.1])).toBe(1.7)
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

describe('register-temperature calibration', () => {
  const temperatures = { xed: 2.5, dair: 1.4, goemotions: 2 }
  const registersPrior = { method: 'tfidf-logreg-registers', file: 'prior.json', weights: { dair: 0.9, goemotions: 1.6, xed: 1 } }
  const files = { ...(base.files as Record<string, string>), 'prior.json': '0'.repeat(64) }
  /** With `calibration`, and `prior` (null: none). */
  const manifest = (calibration: Record<string, unknown>, prior: Record<string, unknown> | null = registersPrior): Manifest => {
    const m = parse({ calibration, prior: prior ?? undefined, files })
    expect(m.success, JSON.stringify(m.error?.issues[0])).toBe(true)
    return m.data!
  }

  it('holds one positive finite temperature per register, keeping the keys it does not know', () => {
    const calibration = { method: 'register-temperature', temperatures, fitted_on: 'validation' }
    const m = manifest(calibration)
    expect(m.calibration).toEqual(calibration)
    expect(checkManifest(m)).toBeNull()
    for (const t of [0, -1, '2', null, Infinity, NaN]) {
      expect(firstIssue({ calibration: { method: 'register-temperature', temperatures: { ...temperatures, xed: t } } }), String(t)).toMatch(
        /^calibration\.temperatures\.xed: /,
      )
    }
    expect(firstIssue({ calibration: { method: 'register-temperature' } })).toMatch(/^calibration\.temperatures: /)
  })

  it("mixes the registers' temperatures by a sequence's gate, in prior.json's register order", () => {
    const m = manifest({ method: 'register-temperature', temperatures })
    // prior.json's order, not the manifest's key order.
    expect(labelCalibration(m, ['dair', 'goemotions', 'xed'], PATH)).toEqual({ method: 'register-temperature', temperatures: Float64Array.from([1.4, 2, 2.5]) })
    // 0.5 x 1.4 + 0.25 x 2 + 0.25 x 2.5
    expect(temperatureOf(m, ['dair', 'goemotions', 'xed'], [0.5, 0.25, 0.25])).toBeCloseTo(1.825, 14)
    expect(temperatureOf(m, ['dair', 'goemotions', 'xed'], [0, 0, 1])).toBe(2.5)
    // Summed in register order, float64, as evaluate sums it.
    const g = [0.1, 0.7, 0.2]
    expect(temperatureOf(m, ['dair', 'goemotions', 'xed'], g)).toBe(0 + 0.1 * 1.4 + 0.7 * 2 + 0.2 * 2.5)
  })

  it('is refused without a registers prior, or with temperatures for other registers', () => {
    const calibration = { method: 'register-temperature', temperatures }
    const single = { method: 'tfidf-logreg', file: 'prior.json', weight: 0.8 }
    expect(checkManifest(manifest(calibration, single))).toBe(
      "calibration: method register-temperature needs a registers prior (prior.method tfidf-logreg-registers), and this package's prior is method tfidf-logreg",
    )
    expect(checkManifest(manifest(calibration, null))).toMatch(/^calibration: method register-temperature needs a registers prior .* is absent$/)
    const { xed: _, ...two } = temperatures
    expect(checkManifest(manifest({ method: 'register-temperature', temperatures: two }))).toBe(
      'calibration.temperatures: names ["dair","goemotions"], not the registers ["dair","goemotions","xed"] of prior.weights; it needs one temperature per register',
    )
    expect(checkManifest(manifest({ method: 'register-temperature', temperatures: { ...two, tweets: 1 } }))).toMatch(/^calibration\.temperatures: names \["dair","goemotions","tweets"\], not /)
  })

  it('is refused when read without the checks (the bench peer) against registers it does not match', () => {
    const m = manifest({ method: 'register-temperature', temperatures })
    const refusal = (registers: string[] | null) => {
      try {
        labelCalibration(m, registers, PATH)
      } catch (e) {
        expect(e).toBeInstanceOf(PackageError)
        return (e as Error).message
      }
      throw new Error('accepted')
    }
    expect(refusal(null)).toBe(`${PATH}: calibration: method register-temperature needs a registers prior (prior.method tfidf-logreg-registers)`)
    expect(refusal(['dair', 'xed'])).toMatch(/^\/pkg\/manifest\.json: calibration\.temperatures: names \["dair","goemotions","xed"\], not the registers \["dair","xed"\]/)
    expect(() => sequenceTemperature(labelCalibration(m, ['dair', 'goemotions', 'xed'], PATH), null)).toThrow(/needs the gate's 3 register probabilities, not none/)
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
