/**
 * @module
 * What the HTTP layer needs from the rest of the service. Tests build these from fakes; main.ts
 * builds them from model packages and engine workers.
 */
import type { Config } from '../config.js'
import type { SequenceResult, SubmitOptions } from '../engine/types.js'
import type { GraphSpec } from '../model/manifest.js'
import type { PromptEncoder } from '../model/tokenizer.js'

/** The HTTP thread's handle on a model's engine: `EngineClient`, or a fake in tests. */
export interface EngineHandle {
  readonly ready: boolean
  /** Sequences accepted and not finished (for /readyz while draining). */
  readonly numInFlight?: number
  /** Most sequences it holds at once (`--max-batch` + `--max-queue`); absent: no limit known. */
  readonly capacity?: number
  /** Throws an `EngineError` at once when the request cannot be admitted. */
  submit(prompts: number[][], opts: SubmitOptions): Promise<SequenceResult[]>
}

export interface ServedModel {
  id: string
  kind: 'qra' | 'qa'
  labels: readonly string[]
  /** Tokens of each label's text (OpenAI's completion_tokens count the label's). */
  labelTokenCounts: readonly number[]
  normalize: string
  maxInputTokens: number
  maxReasoningTokens: number
  encoder: PromptEncoder
  engine: EngineHandle
  /** What /info tells about the package and where it runs. */
  card: ModelCard
}

export interface ModelCard {
  /** The package's graph being run (`--graph`, else its default), its I/O layout and weights type. */
  graph: string
  layout: GraphSpec['layout']
  dtype: GraphSpec['dtype']
  /** Of that graph's ONNX file, as verified against the manifest at start-up. */
  onnxSha256: string
  /**
   * How the label scores are calibrated: one temperature, or one per register of the registers
   * prior (each sequence's the gate's mixture of them); null: plain softmax (temperature 1).
   */
  calibration: { method: 'temperature'; temperature: number } | { method: 'register-temperature'; temperatures: Record<string, number> } | null
  /**
   * The lexical prior added to the label logits: its weight (a registers prior: one per register,
   * and its registers in order) and vocabulary size (a registers prior: gate and experts together); null: none.
   */
  prior:
    | { method: 'tfidf-logreg'; weight: number; terms: number }
    | { method: 'tfidf-logreg-registers'; weights: Record<string, number>; registers: string[]; terms: number }
    | null
  provider: 'cpu' | 'cuda'
}

/** The limits requests are checked against, and the defaults of what a request may choose. */
export type ServiceLimits = Pick<Config, 'maxTexts' | 'maxTextChars' | 'maxBodyBytes' | 'timeoutMs' | 'truncate'>

export interface Service {
  /** Served models; the first is the default. */
  models: readonly ServedModel[]
  limits: ServiceLimits
  /** What /readyz reports about the runtime. */
  runtime: { device: Config['device']; provider: 'cpu' | 'cuda'; threads: number; workers: number }
  /** The chat page served at `/` (src/page/index.html); absent: 404. */
  pagePath?: string
  /** API keys (none: no authentication) and CORS origins (none: no CORS headers). */
  access?: { apiKeys: readonly string[]; corsOrigins: readonly string[] }
  /** Set once SIGTERM/SIGINT arrived: /readyz is 503 and new inference requests get 503. */
  lifecycle?: { draining: boolean }
}
