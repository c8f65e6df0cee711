/**
 * @module
 * Writes a copy of a model package with its fused graphs added (bench/lib/fused-package.ts), for
 * `npm run bench -- --model OUT --graph fused-int8` and bench/measure-graphs.ts on a package
 * exported before the graphs existed. Usage:
 *
 *   npx tsx bench/fused-package.ts --out DIR [--model DIR] [--default-graph NAME]
 */
import { existsSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeFusedPackage } from './lib/fused-package.js'
import { UsageError, parseFlags } from './lib/stats.js'

const USAGE = `usage: npx tsx bench/fused-package.ts --out DIR [options]

  --out DIR             the new package folder (must not exist)
  --model DIR           the package to copy (default models/emotion-qra-natural; only read)
  --default-graph NAME  default_graph of the copy: fp32, fused-fp32 or fused-int8 (default: none, so fp32)
  --help                print this

Needs training/.venv (bash scripts/ensure-venv.sh).`

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const argv = process.argv.slice(2)
if (argv.includes('--help')) {
  console.log(USAGE)
  process.exit(0)
}
try {
  const { values } = parseFlags(argv, ['--out', '--model', '--default-graph'])
  const out = values.get('--out')
  if (!out) throw new UsageError('--out: missing')
  if (existsSync(out)) throw new UsageError(`--out: ${out} exists`)
  const python = resolve(ROOT, 'training/.venv/bin/python')
  if (!existsSync(python)) throw new UsageError(`${python} missing: bash scripts/ensure-venv.sh creates it`)
  const defaultGraph = values.get('--default-graph')
  await makeFusedPackage(resolve(ROOT, values.get('--model') ?? 'models/emotion-qra-natural'), resolve(out), {
    root: ROOT,
    python,
    ...(defaultGraph ? { defaultGraph } : {}),
  })
  console.log(`wrote ${out}: graphs fp32, fused-fp32, fused-int8${defaultGraph ? `, default ${defaultGraph}` : ''}`)
} catch (e) {
  if (!(e instanceof UsageError)) throw e
  process.stderr.write(`fused-package: ${e.message}\n\n${USAGE}\n`)
  process.exit(2)
}
