/**
 * Start-up failures, as an operator sees them: `tsx src/main.ts` prints one line to stderr and
 * exits 1 for a bad flag, a missing model file and a tampered one.
 */
import { execFile } from 'node:child_process'
import { cpSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, truncateSync, unlinkSync, writeFileSync, writeSync, closeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { QRA } from '../support/service.js'

const run = promisify(execFile)
const dir = mkdtempSync(join(tmpdir(), 'because-startup-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function start(args: string[], env: Record<string, string> = {}) {
  try {
    await run('node_modules/.bin/tsx', ['src/main.ts', '--port', '0', '--log-level', 'silent', ...args], {
      env: { ...process.env, ...env },
      timeout: 30_000,
    })
    return { code: 0, stderr: '' }
  } catch (e) {
    const err = e as { code: number; stderr: string }
    return { code: err.code, stderr: err.stderr }
  }
}

function copyModel(name: string): string {
  const to = join(dir, name)
  cpSync(QRA, to, { recursive: true })
  return to
}

describe('start-up failures', () => {
  it('a bad flag value: one line, exit 1', async () => {
    const { code, stderr } = await start(['--max-batch', 'lots'])
    expect(code).toBe(1)
    expect(stderr).toBe('because: --max-batch: expected an integer, got "lots"\n')
  })

  it('a bad variable: one line, exit 1', async () => {
    const { code, stderr } = await start([], { DEVICE: 'tpu' })
    expect(code).toBe(1)
    expect(stderr).toBe('because: DEVICE: expected one of auto, cpu, cuda, got "tpu"\n')
  })

  it('a missing model file: one line naming it, exit 1', async () => {
    const model = copyModel('missing')
    unlinkSync(join(model, 'tokenizer.json'))
    const { code, stderr } = await start(['--models', model])
    expect(code).toBe(1)
    expect(stderr.trim().split('\n')).toHaveLength(1)
    expect(stderr).toContain('tokenizer.json: missing')
  })

  it('a truncated model file: one line naming it, exit 1', async () => {
    const model = copyModel('truncated')
    truncateSync(join(model, 'model.onnx'), 1000)
    const { code, stderr } = await start(['--models', model])
    expect(code).toBe(1)
    expect(stderr.trim().split('\n')).toHaveLength(1)
    expect(stderr).toMatch(/model\.onnx: sha256 .* does not match manifest\.json/)
  })

  it('a missing model.onnx: one line naming it, exit 1', async () => {
    const model = copyModel('missing-onnx')
    unlinkSync(join(model, 'model.onnx'))
    const { code, stderr } = await start(['--models', model])
    expect(code).toBe(1)
    expect(stderr.trim().split('\n')).toHaveLength(1)
    expect(stderr).toContain('model.onnx: missing')
  })

  it('a tampered model file (same size, one byte changed): one line naming it, exit 1', async () => {
    const model = copyModel('tampered')
    const path = join(model, 'model.onnx')
    const fd = openSync(path, 'r+')
    const byte = Buffer.alloc(1)
    readSync(fd, byte, 0, 1, 5000)
    byte[0] = byte[0]! ^ 0xff
    writeSync(fd, byte, 0, 1, 5000)
    closeSync(fd)
    const { code, stderr } = await start(['--models', model])
    expect(code).toBe(1)
    expect(stderr.trim().split('\n')).toHaveLength(1)
    expect(stderr).toMatch(/^because: model .*tampered: .*model\.onnx: sha256 .* does not match manifest\.json/)
  })

  it('a manifest whose labels cannot be served: one line naming the field, exit 1', async () => {
    const model = copyModel('duplicate-labels')
    const path = join(model, 'manifest.json')
    const manifest = JSON.parse(readFileSync(path, 'utf8')) as { labels: string[] }
    writeFileSync(path, JSON.stringify({ ...manifest, labels: ['joy', ...manifest.labels.slice(1, -1), 'joy'] }))
    const { code, stderr } = await start(['--models', model])
    expect(code).toBe(1)
    expect(stderr).toBe(`because: model ${model}: ${path}: labels: "joy" is listed twice; labels must be unique\n`)
  })

  it('an API keys file that cannot be read, or holds no key: one line without any key, exit 1', async () => {
    const missing = await start(['--api-keys-file', join(dir, 'nope.txt')])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toBe(`because: --api-keys-file ${join(dir, 'nope.txt')}: cannot read it (ENOENT)\n`)
    const empty = join(dir, 'empty-keys.txt')
    writeFileSync(empty, '# keys\n\n')
    const none = await start([], { API_KEYS_FILE: empty })
    expect(none.code).toBe(1)
    expect(none.stderr).toBe(`because: --api-keys-file ${empty}: no keys in it (one per line; # starts a comment)\n`)
    const spaced = join(dir, 'spaced-keys.txt')
    writeFileSync(spaced, 'good-key\nsecret with-space\n')
    const bad = await start(['--api-keys-file', spaced])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toBe(`because: --api-keys-file ${spaced}: line 2: an API key must not contain white space\n`)
  })

  it('an explicit --device cuda that cannot load: one line, exit 1', async () => {
    const { code, stderr } = await start(['--device', 'cuda', '--models', QRA])
    // Where CUDA works this starts instead; here (no GPU, no CUDA libraries) it must stop.
    if (code === 0) return
    expect(code).toBe(1)
    expect(stderr.trim().split('\n')).toHaveLength(1)
    expect(stderr).toMatch(/^because: model .*: .*cuda/i)
  })
})
