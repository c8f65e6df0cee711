/**
 * @module
 * The service's one configuration, parsed once at start-up from flags and the environment
 * (a flag wins over its variable, a variable over the default). `parseConfig` is pure: it takes
 * argv and env and throws a `ConfigError` with a one-line message for a bad value. `loadApiKeys`
 * reads the keys file the configuration names.
 */
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { GRAPH_NAME } from './model/manifest.js'

export type Device = 'auto' | 'cpu' | 'cuda'
export type LogFormat = 'pretty' | 'json'
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

/**
 * What to do with a text longer than the model's `max_input_tokens` (docs/long-texts.md):
 * `none` refuses it (422), `start` reads its first tokens, `end` its last tokens,
 * `windows` reads all of it in several windows and aggregates their answers.
 */
export const TRUNCATE_MODES = ['none', 'start', 'end', 'windows'] as const
export type TruncateMode = (typeof TRUNCATE_MODES)[number]

export interface Config {
  /** Model package folders; the first is the default model. */
  models: string[]
  host: string
  /** 0 picks a free port. */
  port: number
  device: Device
  /** Intra-op threads of each engine worker's ONNX Runtime session. */
  threads: number
  /**
   * Engine workers per model, each with its own ONNX Runtime session, batch and KV cache (1: one
   * batch per model; more: see docs/engine.md, "Engine workers").
   */
  workers: number
  /** The graph of each package to run (`graphs` of its manifest); null: each package's default. */
  graph: string | null
  /** ONNX Runtime's spin-waiting in the intra-op pool (off: measured slower on a busy host, docs/engine.md). */
  spinWait: boolean
  /** Most sequences decoded together in one step. */
  maxBatch: number
  /** Most tokens one step computes (decode rows plus padded prefill tokens). */
  maxBatchTokens: number
  /** Most sequences waiting for a batch row, per model; past it requests get 429. */
  maxQueue: number
  /** Most texts in one `/classify` request. */
  maxTexts: number
  /** Most characters (code points) in one text. */
  maxTextChars: number
  /** What a request that names no `truncate` does with a text longer than the model's limit. */
  truncate: TruncateMode
  /** Most bytes in a request body. */
  maxBodyBytes: number
  /** Deadline of a request that names none, and the most `timeout_ms` may ask for. */
  timeoutMs: number
  logLevel: LogLevel
  logFormat: LogFormat
  /** API keys given inline (`--api-keys`); none and no keys file: no authentication. */
  apiKeys: string[]
  /** A file with one API key per line (blank lines and `#` comments ignored), read at start-up. */
  apiKeysFile: string | null
  /** Origins allowed by CORS (`*` for any); empty: no CORS headers. */
  corsOrigins: string[]
  /** After SIGTERM/SIGINT, how long accepted requests may still run before they are ended. */
  drainTimeoutMs: number
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

type Parser<T> = (raw: string, name: string) => T

const int =
  (min: number, max = Number.MAX_SAFE_INTEGER): Parser<number> =>
  (raw, name) => {
    if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name}: expected an integer, got ${JSON.stringify(raw)}`)
    const n = Number(raw)
    if (n < min || n > max) throw new ConfigError(`${name}: must be between ${min} and ${max}, got ${n}`)
    return n
  }

const oneOf =
  <T extends string>(values: readonly T[]): Parser<T> =>
  (raw, name) => {
    if (!(values as readonly string[]).includes(raw)) {
      throw new ConfigError(`${name}: expected one of ${values.join(', ')}, got ${JSON.stringify(raw)}`)
    }
    return raw as T
  }

const text: Parser<string> = (raw, name) => {
  if (raw.trim() === '') throw new ConfigError(`${name}: must not be empty`)
  return raw.trim()
}

const graphName: Parser<string | null> = (raw, name) => {
  const v = raw.trim()
  if (!GRAPH_NAME.test(v)) throw new ConfigError(`${name}: expected a graph name (letters, digits, ".", "_", "-"), got ${JSON.stringify(raw)}`)
  return v
}

const onOff: Parser<boolean> = (raw, name) => oneOf(['on', 'off'] as const)(raw.trim(), name) === 'on'

const list: Parser<string[]> = (raw, name) => {
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean)
  if (items.length === 0) throw new ConfigError(`${name}: expected a comma-separated list of model folders`)
  return items
}

const keys: Parser<string[]> = (raw, name) => {
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean)
  // NOTE: never echo the value: it holds secrets.
  if (items.length === 0) throw new ConfigError(`${name}: expected a comma-separated list of API keys`)
  if (items.some((k) => /\s/.test(k))) throw new ConfigError(`${name}: an API key must not contain white space`)
  return items
}

const origins: Parser<string[]> = (raw, name) => {
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean)
  for (const o of items) {
    if (o !== '*' && !/^https?:\/\/[^/\s]+$/.test(o)) {
      throw new ConfigError(`${name}: expected * or origins like https://chat.example.com (scheme and host, no path), got ${JSON.stringify(o)}`)
    }
  }
  return items
}

interface Option<K extends keyof Config> {
  key: K
  flag: string
  env: string
  parse: Parser<Config[K]>
  help: string
  default: (env: NodeJS.ProcessEnv, isTty: boolean) => Config[K]
}

/**
 * Intra-op threads when none are asked for: one core fewer than the host has, since the HTTP thread
 * (streams, tokenizer, validation) keeps one busy under load; on 2 cores one intra-op thread served
 * 1.2x to 1.5x the requests of two (docs/engine.md, "Threads").
 */
export function defaultThreads(cores: number): number {
  return Math.max(1, cores - 1)
}

function option<K extends keyof Config>(o: Option<K>): Option<K> {
  return o
}

/** Every option: its flag, its variable, its default. The README's reference is this table. */
export const OPTIONS = [
  option({ key: 'models', flag: '--models', env: 'MODELS', parse: list, help: 'model package folders, comma-separated; the first is the default', default: () => ['models/emotion-qra-natural', 'models/emotion-qra-neutral'] }),
  option({ key: 'host', flag: '--host', env: 'HOST', parse: text, help: 'address to listen on', default: () => '127.0.0.1' }),
  option({ key: 'port', flag: '--port', env: 'PORT', parse: int(0, 65535), help: 'port (0: any free port)', default: () => 8080 }),
  option({ key: 'device', flag: '--device', env: 'DEVICE', parse: oneOf<Device>(['auto', 'cpu', 'cuda']), help: 'execution provider: auto (CUDA if it loads, else CPU), cpu, cuda', default: () => 'auto' }),
  option({ key: 'threads', flag: '--threads', env: 'THREADS', parse: int(1, 1024), help: 'ONNX Runtime intra-op threads per engine worker (default: CPU count - 1, at least 1)', default: () => defaultThreads(availableParallelism()) }),
  option({ key: 'workers', flag: '--workers', env: 'WORKERS', parse: int(1, 64), help: 'engine workers per model, each with its own session and batch (requests go to the least busy)', default: () => 1 }),
  option({ key: 'graph', flag: '--graph', env: 'GRAPH', parse: graphName, help: "graph of each package to run, e.g. fp32, fused-int8 (default: the package's default_graph, else fp32)", default: () => null }),
  option({ key: 'spinWait', flag: '--spin-wait', env: 'SPIN_WAIT', parse: onOff, help: "on: ONNX Runtime's pool threads spin between ops (with --threads 2 or more); off (default)", default: () => false }),
  option({ key: 'maxBatch', flag: '--max-batch', env: 'MAX_BATCH', parse: int(1, 1024), help: 'most sequences decoded together', default: () => 64 }),
  option({ key: 'maxBatchTokens', flag: '--max-batch-tokens', env: 'MAX_BATCH_TOKENS', parse: int(1, 1_000_000), help: 'most tokens computed per step (decode rows + padded prefill)', default: () => 2048 }),
  option({ key: 'maxQueue', flag: '--max-queue', env: 'MAX_QUEUE', parse: int(0, 1_000_000), help: 'most waiting sequences per model before 429', default: () => 256 }),
  option({ key: 'maxTexts', flag: '--max-texts', env: 'MAX_TEXTS', parse: int(1, 10_000), help: 'most texts per /classify request', default: () => 64 }),
  option({ key: 'maxTextChars', flag: '--max-text-chars', env: 'MAX_TEXT_CHARS', parse: int(1, 1_000_000), help: 'most characters per text', default: () => 20_000 }),
  option({ key: 'truncate', flag: '--truncate', env: 'TRUNCATE', parse: oneOf<TruncateMode>(TRUNCATE_MODES), help: 'default for texts over the model limit: windows, start, end, none (422)', default: () => 'windows' }),
  option({ key: 'maxBodyBytes', flag: '--max-body-bytes', env: 'MAX_BODY_BYTES', parse: int(64, 1 << 30), help: 'most bytes per request body', default: () => 1 << 20 }),
  option({ key: 'timeoutMs', flag: '--timeout-ms', env: 'TIMEOUT_MS', parse: int(1, 3_600_000), help: 'default and largest per-request deadline, ms', default: () => 30_000 }),
  option({ key: 'logLevel', flag: '--log-level', env: 'LOG_LEVEL', parse: oneOf<LogLevel>(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), help: 'pino log level', default: () => 'info' }),
  option({ key: 'logFormat', flag: '--log-format', env: 'LOG_FORMAT', parse: oneOf<LogFormat>(['pretty', 'json']), help: 'pretty or json (default: pretty on a terminal, json otherwise)', default: (_env, isTty) => (isTty ? 'pretty' : 'json') }),
  option({ key: 'apiKeys', flag: '--api-keys', env: 'API_KEYS', parse: keys, help: 'API keys, comma-separated; requests then need Authorization: Bearer <key>', default: () => [] }),
  option({ key: 'apiKeysFile', flag: '--api-keys-file', env: 'API_KEYS_FILE', parse: text, help: 'file with one API key per line (adds to --api-keys)', default: () => null }),
  option({ key: 'corsOrigins', flag: '--cors-origins', env: 'CORS_ORIGINS', parse: origins, help: 'origins allowed by CORS, comma-separated, or * (default: none, CORS off)', default: () => [] }),
  option({ key: 'drainTimeoutMs', flag: '--drain-timeout-ms', env: 'DRAIN_TIMEOUT_MS', parse: int(0, 3_600_000), help: 'on SIGTERM/SIGINT, how long accepted requests may finish before they are ended, ms', default: () => 10_000 }),
] as const

/** One line per option, for `--help`. */
export function usage(): string {
  const lines = OPTIONS.map((o) => `  ${`${o.flag} <value>`.padEnd(26)} ${o.env.padEnd(17)} ${o.help}`)
  return ['usage: tsx src/main.ts [options]', '', '  flag                       variable          meaning', ...lines, '  --help                     print this'].join('\n')
}

/**
 * Parses flags (`--name value` or `--name=value`) and environment variables into a `Config`.
 * Throws `ConfigError` for an unknown flag, a missing value or a bad value.
 */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv, isTty = false): Config {
  const byFlag = new Map<string, Option<keyof Config>>(OPTIONS.map((o) => [o.flag, o as Option<keyof Config>]))
  const flags = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const eq = arg.indexOf('=')
    const name = eq >= 0 ? arg.slice(0, eq) : arg
    if (!byFlag.has(name)) {
      throw new ConfigError(`unknown option ${JSON.stringify(name)}; see --help`)
    }
    let value: string | undefined
    if (eq >= 0) value = arg.slice(eq + 1)
    else value = argv[++i]
    if (value === undefined) throw new ConfigError(`${name}: missing value`)
    flags.set(name, value)
  }
  const config: Partial<Record<keyof Config, unknown>> = {}
  for (const o of OPTIONS) {
    const fromFlag = flags.get(o.flag)
    const fromEnv = env[o.env]
    if (fromFlag !== undefined) config[o.key] = o.parse(fromFlag, o.flag)
    else if (fromEnv !== undefined && fromEnv !== '') config[o.key] = o.parse(fromEnv, o.env)
    else config[o.key] = o.default(env, isTty)
  }
  const c = config as Config
  if (c.maxBatchTokens < c.maxBatch) {
    throw new ConfigError(`max-batch-tokens (${c.maxBatchTokens}) must be at least max-batch (${c.maxBatch}): every running sequence decodes one token per step`)
  }
  return c
}

/** The keys of --api-keys and --api-keys-file together; never logged, never in a message. */
export function loadApiKeys(config: Pick<Config, 'apiKeys' | 'apiKeysFile'>): string[] {
  const keys = [...config.apiKeys]
  if (config.apiKeysFile !== null) {
    let text: string
    try {
      text = readFileSync(config.apiKeysFile, 'utf8')
    } catch (e) {
      throw new ConfigError(`--api-keys-file ${config.apiKeysFile}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`)
    }
    const lines = text.split(/\r?\n/).map((l) => l.trim())
    const fromFile = lines.filter((l) => l !== '' && !l.startsWith('#'))
    const bad = lines.findIndex((l) => l !== '' && !l.startsWith('#') && /\s/.test(l))
    if (bad >= 0) throw new ConfigError(`--api-keys-file ${config.apiKeysFile}: line ${bad + 1}: an API key must not contain white space`)
    if (fromFile.length === 0) throw new ConfigError(`--api-keys-file ${config.apiKeysFile}: no keys in it (one per line; # starts a comment)`)
    keys.push(...fromFile)
  }
  return keys
}
