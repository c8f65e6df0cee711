/**
 * The graphs of a package (docs/model-package.md, "Graphs"): the manifest's `graphs` and
 * `default_graph` rules, the choice `--graph` makes, the I/O check of each layout, and the feeds
 * of the fused `gqa` layout (pure functions, no ONNX Runtime).
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config.js'
import { planGqaDecode, planGqaPrefill } from '../../src/engine/gqa-feeds.js'
import { ManifestSchema, PackageError, checkManifest, packageGraphs, selectGraph } from '../../src/model/manifest.js'
import type { Manifest } from '../../src/model/manifest.js'
import { newPositions, writeNewPositions } from '../../src/model/gqa-forward.js'
import { graphIoProblem } from '../../src/model/session.js'
import { QRA } from '../support/service.js'

/** The embedded manifest as a package without graphs has it (the tests add theirs). */
const base = (() => {
  const m = JSON.parse(readFileSync(`${QRA}/manifest.json`, 'utf8')) as Record<string, unknown> & { files: Record<string, string> }
  const { graphs: _graphs, default_graph: _default, ...rest } = m
  const files = Object.fromEntries(Object.entries(m.files).filter(([name]) => !name.startsWith('model.fused')))
  return { ...rest, files }
})()
const SHA = 'a'.repeat(64)
const GRAPHS = {
  fp32: { file: 'model.onnx', layout: 'optimum', dtype: 'float32' },
  'fused-fp32': { file: 'model.fused.onnx', layout: 'gqa', dtype: 'float32' },
  'fused-int8': { file: 'model.fused-int8.onnx', layout: 'gqa', dtype: 'int8' },
}
const FILES = { ...base.files, 'model.fused.onnx': SHA, 'model.fused-int8.onnx': SHA }

/** The first problem of a manifest with `changes`: the schema's (path: message) or checkManifest's. */
function problem(changes: Record<string, unknown>): string | null {
  const r = ManifestSchema.safeParse({ ...base, ...changes })
  if (!r.success) return `${r.error.issues[0]!.path.join('.')}: ${r.error.issues[0]!.message}`
  return checkManifest(r.data)
}

function manifest(changes: Record<string, unknown>): Manifest {
  return ManifestSchema.parse({ ...base, ...changes })
}

describe('graphs in the manifest', () => {
  it('are optional: a package without them has one graph, fp32 = onnx.file, optimum, float32', () => {
    expect(problem({})).toBeNull()
    const m = manifest({})
    expect(packageGraphs(m)).toEqual({ fp32: { file: 'model.onnx', layout: 'optimum', dtype: 'float32' } })
    expect(selectGraph(m, null)).toEqual({ name: 'fp32', file: 'model.onnx', layout: 'optimum', dtype: 'float32' })
  })

  it('list named graphs, each file among the files, and a default among them', () => {
    expect(problem({ graphs: GRAPHS, default_graph: 'fused-int8', files: FILES })).toBeNull()
    const m = manifest({ graphs: GRAPHS, default_graph: 'fused-int8', files: FILES })
    expect(selectGraph(m, null)).toEqual({ name: 'fused-int8', ...GRAPHS['fused-int8'] })
    expect(selectGraph(m, 'fp32').layout).toBe('optimum')
    // Without default_graph, fp32 is the default.
    expect(selectGraph(manifest({ graphs: GRAPHS, files: FILES }), null).name).toBe('fp32')
  })

  it('refuses, in one line naming the field, a graph whose file is not listed, a bad layout or dtype, a bad name, a default that is no graph', () => {
    expect(problem({ graphs: GRAPHS })).toBe('graphs.fused-fp32.file: files does not list model.fused.onnx (every graph file is sha256-checked)')
    expect(problem({ graphs: { ...GRAPHS, x: { file: 'model.onnx', layout: 'mha', dtype: 'float32' } }, files: FILES })).toMatch(/^graphs\.x\.layout: /)
    expect(problem({ graphs: { ...GRAPHS, x: { file: 'model.onnx', layout: 'gqa', dtype: 'fp16' } }, files: FILES })).toMatch(/^graphs\.x\.dtype: /)
    expect(problem({ graphs: { ...GRAPHS, x: { layout: 'gqa', dtype: 'int8' } }, files: FILES })).toMatch(/^graphs\.x\.file: /)
    expect(problem({ graphs: { ...GRAPHS, 'bad name': GRAPHS.fp32 }, files: FILES })).toMatch(/^graphs\.bad name: a graph name is letters/)
    expect(problem({ graphs: {}, files: FILES })).toBe('graphs: lists no graph; leave it out to serve onnx.file')
    expect(problem({ graphs: GRAPHS, files: FILES, default_graph: 'fused-fp16' })).toBe(
      'default_graph: "fused-fp16" is not in graphs (fp32, fused-fp32, fused-int8)',
    )
    expect(problem({ default_graph: 'fused-int8' })).toBe('default_graph: "fused-int8" is not a graph of this package (without graphs it has only fp32)')
    expect(problem({ graphs: { ...GRAPHS, x: { file: '../model.onnx', layout: 'gqa', dtype: 'int8' } }, files: { ...FILES, '../model.onnx': SHA } })).toBe(
      'files may not list ../model.onnx',
    )
  })

  it('--graph picks one; a name the package lacks is refused naming the package and its graphs', () => {
    const m = manifest({ graphs: GRAPHS, default_graph: 'fused-int8', files: FILES })
    expect(selectGraph(m, 'fused-fp32')).toEqual({ name: 'fused-fp32', ...GRAPHS['fused-fp32'] })
    expect(() => selectGraph(m, 'fused-fp16')).toThrow(PackageError)
    expect(() => selectGraph(m, 'fused-fp16')).toThrow('--graph "fused-fp16": package emotion-qra-natural has no such graph; its graphs: fp32, fused-fp32, fused-int8')
    expect(() => selectGraph(manifest({}), 'fused-int8')).toThrow('its graphs: fp32')
    // Not a prototype key either.
    expect(() => selectGraph(m, 'constructor')).toThrow(PackageError)
  })
})

describe('--graph', () => {
  it('is a name, from the flag or GRAPH; absent: each package picks', () => {
    expect(parseConfig([], {}).graph).toBeNull()
    expect(parseConfig(['--graph', 'fused-int8'], {}).graph).toBe('fused-int8')
    expect(parseConfig([], { GRAPH: 'fp32' }).graph).toBe('fp32')
    expect(parseConfig(['--graph=fused-fp32'], { GRAPH: 'fp32' }).graph).toBe('fused-fp32')
    expect(() => parseConfig(['--graph', 'a b'], {})).toThrow(/^--graph: expected a graph name/)
  })
})

describe('--spin-wait', () => {
  it('is off unless asked', () => {
    expect(parseConfig([], {}).spinWait).toBe(false)
    expect(parseConfig(['--spin-wait', 'on'], {}).spinWait).toBe(true)
    expect(parseConfig([], { SPIN_WAIT: 'off' }).spinWait).toBe(false)
    expect(() => parseConfig(['--spin-wait', 'yes'], {})).toThrow(/^--spin-wait: expected one of on, off/)
  })
})

describe('graph I/O by layout', () => {
  const kv = (prefix: string) => [0, 1].flatMap((i) => [`${prefix}.${i}.key`, `${prefix}.${i}.value`])
  const outputs = ['logits', ...kv('present')]
  const optimum = { inputNames: ['input_ids', 'attention_mask', 'position_ids', ...kv('past_key_values')], outputNames: outputs }
  const gqa = { inputNames: ['input_ids', 'seqlens_k', 'total_sequence_length', ...kv('past_key_values')], outputNames: outputs }

  it('accepts each layout and refuses the other, in one line', () => {
    expect(graphIoProblem('optimum', optimum, 2)).toBeNull()
    expect(graphIoProblem('gqa', gqa, 2)).toBeNull()
    expect(graphIoProblem('gqa', optimum, 2)).toBe(
      'not a gqa-layout graph of 2 layers: no input seqlens_k, total_sequence_length; an unexpected input attention_mask, position_ids',
    )
    expect(graphIoProblem('optimum', gqa, 3)).toMatch(/^not a optimum-layout graph of 3 layers: no input attention_mask, position_ids, past_key_values\.2\.key; no output present\.2\.key/)
  })
})

describe('gqa feeds', () => {
  it('right-pads a prefill; seqlens_k = length - 1; total = the padded width', () => {
    const f = planGqaPrefill([[5, 6, 7], [8], [9, 10]], 2, 512)
    expect(f.batch).toBe(3)
    expect(f.seq).toBe(3)
    expect([...f.inputIds].map(Number)).toEqual([5, 6, 7, 8, 2, 2, 9, 10, 2])
    expect([...f.seqlensK]).toEqual([2, 0, 1])
    expect(f.totalSequenceLength).toBe(3)
  })

  it('feeds a decode step one token per row at its own past length; total = longest past + 1', () => {
    const f = planGqaDecode([11, 12, 13], [30, 7, 12], 512)
    expect(f.seq).toBe(1)
    expect([...f.inputIds].map(Number)).toEqual([11, 12, 13])
    expect([...f.seqlensK]).toEqual([30, 7, 12])
    expect(f.totalSequenceLength).toBe(31)
  })

  it('refuses what the op cannot take: empty passes or prompts, a row without a past, rows past the rotary table', () => {
    expect(() => planGqaPrefill([], 0, 512)).toThrow()
    expect(() => planGqaPrefill([[1], []], 0, 512)).toThrow(/no tokens/)
    expect(() => planGqaPrefill([Array(513).fill(1)], 0, 512)).toThrow(/513 tokens exceeds the graph's 512 positions/)
    expect(planGqaPrefill([Array(512).fill(1)], 0, 512).totalSequenceLength).toBe(512)
    expect(() => planGqaDecode([1], [0], 512)).toThrow(/needs a past/)
    expect(() => planGqaDecode([1, 2], [511, 3], 512)).not.toThrow()
    expect(() => planGqaDecode([1, 2], [512, 3], 512)).toThrow(/513 tokens exceeds/)
    expect(() => planGqaDecode([1], [3, 4], 512)).toThrow(/1 tokens for 2 rows/)
  })
})

describe('new keys and values into the cache', () => {
  it('a prefill\'s rows start at slot 0 with their own lengths; a decode row writes one token at its past', () => {
    const prefill = planGqaPrefill([[5, 6, 7], [8], [9, 10]], 2, 512)
    expect([0, 1, 2].map((b) => newPositions(prefill, b))).toEqual([{ start: 0, count: 3 }, { start: 0, count: 1 }, { start: 0, count: 2 }])
    const decode = planGqaDecode([11, 12], [30, 7], 512)
    expect([0, 1].map((b) => newPositions(decode, b))).toEqual([{ start: 30, count: 1 }, { start: 7, count: 1 }])
    // One row continuing with several tokens after a past of 4: seqlens_k = 4 + 3 - 1, total 7 != seq.
    expect(newPositions({ seq: 3, seqlensK: Int32Array.of(6), totalSequenceLength: 7 }, 0)).toEqual({ start: 4, count: 3 })
  })

  it('copies each real token, head by head, into [row, head, slot, dim] and leaves the padding and the rest alone', () => {
    const heads = 2, dim = 3, capacity = 4
    const x = { ...planGqaPrefill([[5, 6], [7]], 0, 512), capacity }
    // fresh[b, s, h * dim + d] = 1000 b + 100 s + 10 h + d
    const fresh = new Float32Array(x.batch * x.seq * heads * dim)
    for (let b = 0; b < x.batch; b++) for (let s = 0; s < x.seq; s++) for (let h = 0; h < heads; h++) for (let d = 0; d < dim; d++) fresh[((b * x.seq + s) * heads + h) * dim + d] = 1000 * b + 100 * s + 10 * h + d
    const cache = new Float32Array(x.batch * heads * capacity * dim).fill(-1)
    writeNewPositions(cache, fresh, x, heads, dim)
    const at = (b: number, h: number, slot: number) => [...cache.subarray(((b * heads + h) * capacity + slot) * dim, ((b * heads + h) * capacity + slot + 1) * dim)]
    expect(at(0, 1, 1)).toEqual([110, 111, 112])
    expect(at(1, 0, 0)).toEqual([1000, 1001, 1002])
    expect(at(1, 1, 1)).toEqual([-1, -1, -1]) // row 1's padded token
    expect(at(0, 0, 2)).toEqual([-1, -1, -1])
    const step = { ...planGqaDecode([1, 2], [2, 1], 512), capacity }
    writeNewPositions(cache, Float32Array.from({ length: 2 * heads * dim }, (_, i) => 7000 + i), step, heads, dim)
    expect(at(0, 1, 2)).toEqual([7003, 7004, 7005])
    expect(at(1, 0, 1)).toEqual([7006, 7007, 7008])
    expect(at(0, 1, 1)).toEqual([110, 111, 112])
  })
})
