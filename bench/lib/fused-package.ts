/**
 * @module
 * A copy of a model package with its fused graphs added (docs/model-package.md, "Graphs"): the
 * fused fp32 graph written by `python -m because_train.fused_graph` from the package's own
 * model.onnx, its int8 variant by onnxruntime's `quantize_dynamic` (MatMul weights, as
 * bench/fused_graph_probe.py makes it), and a manifest that lists the three graphs and their
 * sha256. For the tests and for benchmarking the graphs on a package exported before they
 * existed; the source package is only read.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export const FUSED_FP32 = 'model.fused.onnx'
export const FUSED_INT8 = 'model.fused-int8.onnx'

// ONNX shape inference does not know the contrib ops, so their outputs' type is given (float).
const QUANTIZE = `
import sys
from onnx import TensorProto
from onnxruntime.quantization import QuantType, quantize_dynamic
quantize_dynamic(sys.argv[1], sys.argv[2], op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                 extra_options={"MatMulConstBOnly": True, "DefaultTensorType": TensorProto.FLOAT})
`

export interface FusedPackageOptions {
  /** The repository root (training/ is on PYTHONPATH from there). */
  root: string
  /** A Python with training/'s requirements (training/.venv/bin/python). */
  python: string
  /** `default_graph` of the copy; absent: none (the service then serves fp32). */
  defaultGraph?: string
}

/** Copies package `src` to `dest` (a new folder) and adds `fused-fp32` and `fused-int8`. */
export async function makeFusedPackage(src: string, dest: string, opts: FusedPackageOptions): Promise<void> {
  cpSync(src, dest, { recursive: true })
  const env = { ...process.env, PYTHONPATH: join(opts.root, 'training') }
  const py = { cwd: opts.root, env, maxBuffer: 16 << 20 }
  await run(opts.python, ['-m', 'because_train.fused_graph', src, join(dest, FUSED_FP32)], py)
  await run(opts.python, ['-c', QUANTIZE, join(dest, FUSED_FP32), join(dest, FUSED_INT8)], py)
  const manifestPath = join(dest, 'manifest.json')
  const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
    onnx: { file: string }
    files: Record<string, string>
    graphs?: unknown
    default_graph?: string
  }
  for (const f of [FUSED_FP32, FUSED_INT8]) m.files[f] = createHash('sha256').update(readFileSync(join(dest, f))).digest('hex')
  m.graphs = {
    fp32: { file: m.onnx.file, layout: 'optimum', dtype: 'float32' },
    'fused-fp32': { file: FUSED_FP32, layout: 'gqa', dtype: 'float32' },
    'fused-int8': { file: FUSED_INT8, layout: 'gqa', dtype: 'int8' },
  }
  if (opts.defaultGraph) m.default_graph = opts.defaultGraph
  else delete m.default_graph
  writeFileSync(manifestPath, `${JSON.stringify(m, null, 2)}\n`)
}
