import { availableParallelism } from 'node:os'
import { describe, expect, it } from 'vitest'
import { ConfigError, defaultThreads, parseConfig, usage } from '../../src/config.js'

describe('defaultThreads', () => {
  it('leaves one core to the HTTP thread, and never goes below one thread', () => {
    expect(defaultThreads(1)).toBe(1)
    expect(defaultThreads(2)).toBe(1)
    expect(defaultThreads(16)).toBe(15)
  })
})

describe('parseConfig', () => {
  it('has the documented defaults', () => {
    const c = parseConfig([], {}, false)
    expect(c).toMatchObject({
      models: ['models/emotion-qra-natural', 'models/emotion-qra-neutral'],
      host: '127.0.0.1',
      port: 8080,
      device: 'auto',
      maxBatch: 64,
      logFormat: 'json',
      logLevel: 'info',
      maxTextChars: 20_000,
      truncate: 'windows',
      workers: 1,
    })
    expect(c.threads).toBe(defaultThreads(availableParallelism()))
    expect(parseConfig([], {}, true).logFormat).toBe('pretty')
  })

  it('takes flags over variables over defaults', () => {
    const env = { PORT: '9000', MODELS: 'a, b', DEVICE: 'cpu', MAX_BATCH: '8' }
    const c = parseConfig(['--port', '9100', '--max-batch=4'], env)
    expect(c.port).toBe(9100)
    expect(c.maxBatch).toBe(4)
    expect(c.models).toEqual(['a', 'b'])
    expect(c.device).toBe('cpu')
    expect(parseConfig([], { TRUNCATE: 'end' }).truncate).toBe('end')
    expect(parseConfig(['--truncate=none'], { TRUNCATE: 'end' }).truncate).toBe('none')
    expect(parseConfig(['--workers', '3'], { WORKERS: '2' }).workers).toBe(3)
    expect(parseConfig([], { WORKERS: '2' }).workers).toBe(2)
  })

  it.each([
    [['--port', 'eighty'], {}, '--port: expected an integer, got "eighty"'],
    [['--port', '70000'], {}, '--port: must be between 0 and 65535, got 70000'],
    [['--device', 'tpu'], {}, '--device: expected one of auto, cpu, cuda, got "tpu"'],
    [[], { TRUNCATE: 'middle' }, 'TRUNCATE: expected one of none, start, end, windows, got "middle"'],
    [['--max-batch', '0'], {}, '--max-batch: must be between 1 and 1024, got 0'],
    [['--workers', '0'], {}, '--workers: must be between 1 and 64, got 0'],
    [[], { WORKERS: 'auto' }, 'WORKERS: expected an integer, got "auto"'],
    [['--bogus', '1'], {}, 'unknown option "--bogus"; see --help'],
    [['--port'], {}, '--port: missing value'],
    [[], { THREADS: '-2' }, 'THREADS: expected an integer, got "-2"'],
  ] as const)('rejects %j %j with one line', (argv, env, message) => {
    expect(() => parseConfig(argv, env)).toThrow(new ConfigError(message))
  })

  it('lists every option in --help', () => {
    for (const flag of ['--models', '--device', '--max-queue', '--timeout-ms', '--truncate']) expect(usage()).toContain(flag)
  })
})
