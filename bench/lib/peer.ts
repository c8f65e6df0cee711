/**
 * @module
 * The peer: what a Node user would write instead of this engine, with transformers.js
 * (`@huggingface/transformers`) generating per request on the same model package.
 *
 * One `generate()` call per request, batch 1, on the package's `model.onnx` (fp32, CPU, the same
 * ONNX Runtime thread settings as the engine). It follows docs/model-package.md "Decoding" so that
 * both produce the same reasoning and label for the same text:
 * - the prompt is `prefix + normalised text + suffix` of the manifest's template (the package's
 *   rule; `natural-v1` with the package's emoji.json), tokenised by transformers.js's own tokenizer
 *   from the package's tokenizer.json (the template's special tokens are its added tokens;
 *   normalised text cannot contain them);
 * - greedy with grounded quoting, in a logits processor: at each reasoning step it picks the token
 *   with the engine's own `pickGrounded` (src/engine/grounding.ts: bos/eos/pad/sep banned, and
 *   inside a quotation only tokens that keep the quote a span of this request's text bytes) and
 *   leaves that token the only finite logit, carrying the quotation state from step to step; after
 *   `max_reasoning_tokens` reasoning tokens the marker is forced. That choice is one scan of the
 *   vocabulary per step (more only when the best token would misquote), the same work the engine
 *   does per row and step, so grounding costs both sides the same and the comparison stays fair
 *   (the sampler's argmax that follows was the peer's own before grounding too).
 * - a package's lexical prior (src/model/prior.ts, either form) is added to the label logits of
 *   every step until the reasoning names a label, as the engine adds it;
 * - once the marker has been fed, the logits at its position score the labels (the same
 *   processor reads them; the scores are the softmax of those logits divided by the request's
 *   temperature: the manifest's calibration temperature, 1 when absent, or a register temperature
 *   mixed by the registers prior's gate, src/model/manifest.ts `sequenceTemperature`) and a
 *   stopping criterion ends generation:
 *   `max_new_tokens` is the reasoning budget + 2 (reasoning, marker, label), so the work per
 *   request is the engine's: one prefill, one pass per reasoning token, one pass for the marker.
 * - the reasoning streams through a `streamer`: each new token re-decodes the reasoning so far with
 *   the tokenizer, trims it as the engine does (leading whitespace dropped, trailing held back,
 *   an unfinished UTF-8 sequence held back) and hands out the new suffix.
 */
import { basename, dirname, resolve } from 'node:path'
import { readFile } from 'node:fs/promises'
import {
  AutoModelForCausalLM,
  AutoTokenizer,
  LogitsProcessor,
  StoppingCriteria,
  Tensor,
  env,
} from '@huggingface/transformers'
import type { PreTrainedModel, PreTrainedTokenizer } from '@huggingface/transformers'
import { OUTSIDE, pickGrounded } from '../../src/engine/grounding.js'
import type { GroundingContext, QuoteState } from '../../src/engine/grounding.js'
import { loadEmojiTable, vocabularyBytes } from '../../src/model/tokenizer.js'
import { EmojiTable, normalize } from '../../src/model/normalize.js'
import type { NormalizeRule } from '../../src/model/normalize.js'
import { labelCalibration, sequenceTemperature } from '../../src/model/manifest.js'
import type { LabelCalibration } from '../../src/model/manifest.js'
import { addPrior, loadPrior, sequencePrior } from '../../src/model/prior.js'
import type { PackagePrior } from '../../src/model/prior.js'

/** The parts of manifest.json the peer reads. */
interface PeerManifest {
  id: string
  kind: 'qra' | 'qa'
  label_scores_at?: 'marker' | 'first_label_token'
  labels: string[]
  label_token_ids: number[][]
  prompt: { normalize: NormalizeRule; template: string; marker: string; eos: string }
  special_tokens: { bos: number; eos: number; pad: number; sep: number; marker: number }
  limits: { max_input_tokens: number; max_reasoning_tokens: number }
  onnx: { vocab_size: number }
  calibration?: { method?: string; temperature?: number; temperatures?: Record<string, number> }
  prior?: { method: 'tfidf-logreg'; file: string; weight: number } | { method: 'tfidf-logreg-registers'; file: string; weights: Record<string, number> }
}

export interface PeerResult {
  label: string
  labelIndex: number
  scores: number[]
  reasoning: string
  usage: { input_tokens: number; reasoning_tokens: number }
  timings: { ttft_ms: number; total_ms: number }
}

export class PeerInputError extends Error {
  override name = 'PeerInputError'
}

const LEADING_SPACE = /^[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/
const TRAILING_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/

/**
 * Picks each reasoning token as the engine does (grounded greedy), forces the marker past the
 * budget, reads the label logits once the marker has been fed. One instance per request: it holds
 * that request's quotation state.
 */
export class ReasoningProcessor extends LogitsProcessor {
  labelLogits: number[] | null = null
  #quote: QuoteState = OUTSIDE
  /** The label logits where the reasoning first wrote a label token (`scoresAtFirstLabel`). */
  #named: number[] | null = null
  readonly #labelFirstIds: number[]
  constructor(
    private readonly promptLength: number,
    private readonly m: Pick<PeerManifest, 'label_token_ids' | 'special_tokens' | 'limits'>,
    private readonly grounding: GroundingContext,
    private readonly scoresAtFirstLabel = false,
    /** What the package's lexical prior adds to each label's logit until a label is named; null: none. */
    private readonly prior: Float64Array | null = null,
  ) {
    super()
    this.#labelFirstIds = m.label_token_ids.map((t) => t[0]!)
  }

  override _call(inputIds: bigint[][], logits: Tensor): Tensor {
    const ids = inputIds[0]!
    const data = logits.data as Float32Array
    if (this.prior && this.#named === null) addPrior(data, 0, this.#labelFirstIds, this.prior)
    const generated = ids.length - this.promptLength
    const marker = this.m.special_tokens.marker
    if (generated > 0 && ids[ids.length - 1] === BigInt(marker)) {
      this.labelLogits = this.#named ?? this.#labelFirstIds.map((id) => data[id]!)
      return logits
    }
    if (generated >= this.m.limits.max_reasoning_tokens) {
      data.fill(-Infinity)
      data[marker] = 0
      return logits
    }
    const { token, state } = pickGrounded(data, 0, logits.dims.at(-1)!, this.grounding, this.#quote)
    // The sampler must take exactly this token, or the carried state would describe another text.
    this.#quote = state
    if (this.scoresAtFirstLabel && this.#named === null && this.#labelFirstIds.includes(token)) {
      this.#named = this.#labelFirstIds.map((id) => data[id]!)
    }
    data.fill(-Infinity)
    data[token] = 0
    return logits
  }
}

/** Label scores: softmax of the label logits divided by `temperature`; argmax, lowest index on ties. */
export function labelScores(logits: readonly number[], temperature: number): { index: number; scores: number[] } {
  const z = logits.map((x) => x / temperature)
  const top = Math.max(...z)
  const exp = z.map((x) => Math.exp(x - top))
  const sum = exp.reduce((a, b) => a + b, 0)
  let index = 0
  for (let k = 1; k < logits.length; k++) if (logits[k]! > logits[index]!) index = k
  return { index, scores: exp.map((e) => e / sum) }
}

/** Stops once the marker has been fed (the token after it is the label step's). */
class AfterMarker extends StoppingCriteria {
  constructor(
    private readonly promptLength: number,
    private readonly marker: number,
  ) {
    super()
  }

  // The typings say number[][]; generate() passes bigint[][]. Number() reads both.
  override _call(inputIds: number[][]): boolean[] {
    return inputIds.map((ids) => ids.length - this.promptLength >= 2 && Number(ids[ids.length - 2]) === this.marker)
  }
}

/** Streams the reasoning as trimmed deltas that concatenate to the final reasoning. */
class ReasoningStreamer {
  readonly ids: bigint[] = []
  firstTokenAt: number | null = null
  #prompt = true
  #inReasoning = true
  #emitted = 0
  constructor(
    private readonly tokenizer: PreTrainedTokenizer,
    private readonly marker: bigint,
    private readonly onDelta: ((delta: string) => void) | undefined,
  ) {}

  put(value: bigint[][]): void {
    if (this.#prompt) {
      this.#prompt = false
      return
    }
    const id = value[0]![0]!
    if (!this.#inReasoning) return
    if (id === this.marker) {
      this.#inReasoning = false
      this.#take(this.text)
      return
    }
    this.ids.push(id)
    const raw = this.#decode()
    if (raw.endsWith('\uFFFD')) return
    this.#take(raw.replace(LEADING_SPACE, '').replace(TRAILING_SPACE, ''))
  }

  end(): void {
    if (this.#inReasoning) this.#take(this.text)
  }

  get text(): string {
    return this.#decode().replace(LEADING_SPACE, '').replace(TRAILING_SPACE, '')
  }

  #decode(): string {
    return this.tokenizer.decode(this.ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false })
  }

  #take(stable: string): void {
    const delta = stable.slice(this.#emitted)
    if (delta === '') return
    this.#emitted = stable.length
    this.firstTokenAt ??= performance.now()
    this.onDelta?.(delta)
  }
}

export class Peer {
  private constructor(
    readonly manifest: PeerManifest,
    private readonly tokenizer: PreTrainedTokenizer,
    private readonly model: PreTrainedModel,
    private readonly prefix: string,
    private readonly suffix: string,
    private readonly prefixIds: readonly number[],
    private readonly suffixIds: readonly number[],
    private readonly emoji: EmojiTable | undefined,
    private readonly tokenBytes: readonly Uint8Array[],
    private readonly calibration: LabelCalibration,
    private readonly prior: PackagePrior | null,
  ) {}

  /** Loads the package folder `dir` with transformers.js, local files only. */
  static async load(dir: string, threads: number): Promise<Peer> {
    const abs = resolve(dir)
    const manifest = JSON.parse(await readFile(`${abs}/manifest.json`, 'utf8')) as PeerManifest
    if (manifest.kind !== 'qra') throw new Error(`${abs}: the peer serves qra packages (reasoning then label), not ${manifest.kind}`)
    const emoji = manifest.prompt.normalize === 'natural-v1' ? await loadEmojiTable(abs) : undefined
    const prior = await loadPrior(abs, manifest)
    // The peer reads manifest.json unvalidated: labelCalibration checks every temperature it returns.
    const calibration = labelCalibration(manifest, prior?.method === 'tfidf-logreg-registers' ? prior.registers : null, `${abs}/manifest.json`)
    // Read here as well as by transformers.js: the engine's byte table comes from the same vocabulary.
    const vocabFile = `${abs}/tokenizer.json`
    const { quoteBytes: tokenBytes } = vocabularyBytes(JSON.parse(await readFile(vocabFile, 'utf8')), manifest.onnx.vocab_size, vocabFile)
    env.allowRemoteModels = false
    env.allowLocalModels = true
    env.localModelPath = `${dirname(abs)}/`
    const id = basename(abs)
    const tokenizer = await AutoTokenizer.from_pretrained(id)
    const model = await AutoModelForCausalLM.from_pretrained(id, {
      subfolder: '',
      model_file_name: 'model',
      dtype: 'fp32',
      device: 'cpu',
      session_options: { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' },
    })
    const [prefix, suffix] = manifest.prompt.template.split('{text}') as [string, string]
    const alone = (s: string) => (s ? tokenizer.encode(s, { add_special_tokens: false }) : [])
    return new Peer(manifest, tokenizer, model, prefix, suffix, alone(prefix), alone(suffix), emoji, tokenBytes, calibration, prior)
  }

  /** The prompt ids of `text`, the number of them that came from the text, and those ids' bytes. */
  encode(text: string): { ids: number[]; textTokens: number; source: Uint8Array } {
    const normalized = normalize(text, this.manifest.prompt.normalize, this.emoji)
    if (normalized === '') throw new PeerInputError('text: nothing left to classify after normalisation')
    const ids = this.tokenizer.encode(this.prefix + normalized + this.suffix, { add_special_tokens: false })
    const p = this.prefixIds.length
    const textIds = ids.slice(p, ids.length - this.suffixIds.length)
    // The template's ends are added tokens, which no normalised text can merge with; if a template
    // ever broke that, the grounding source below would be wrong, so say so rather than drift.
    if (this.prefixIds.some((t, k) => ids[k] !== t) || this.suffixIds.some((t, k) => ids[p + textIds.length + k] !== t)) {
      throw new Error('the prompt does not start with the template prefix and end with its suffix as tokenised alone')
    }
    const textTokens = textIds.length
    if (textTokens > this.manifest.limits.max_input_tokens) {
      throw new PeerInputError(`text: ${textTokens} tokens, at most ${this.manifest.limits.max_input_tokens}`)
    }
    let size = 0
    for (const t of textIds) size += this.tokenBytes[t]!.length
    const source = new Uint8Array(size)
    size = 0
    for (const t of textIds) {
      source.set(this.tokenBytes[t]!, size)
      size += this.tokenBytes[t]!.length
    }
    return { ids, textTokens, source }
  }

  async classify(text: string, onDelta?: (delta: string) => void): Promise<PeerResult> {
    const t0 = performance.now()
    const { ids, textTokens, source } = this.encode(text)
    const m = this.manifest
    const { bos, eos, pad, sep, marker } = m.special_tokens
    // As the engine does when it enqueues a sequence: the prior's addition and the temperature, from the text.
    const fused = this.prior ? sequencePrior(this.prior, source) : null
    const temperature = sequenceTemperature(this.calibration, fused?.gate ?? null)
    const grounding: GroundingContext = { source, tokenBytes: this.tokenBytes, banned: new Set([bos, eos, pad, sep]), marker }
    const processor = new ReasoningProcessor(
      ids.length,
      m,
      grounding,
      m.kind === 'qra' && m.label_scores_at === 'first_label_token',
      fused?.logits ?? null,
    )
    const streamer = new ReasoningStreamer(this.tokenizer, BigInt(marker), onDelta)
    const n = ids.length
    await this.model.generate({
      input_ids: new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
      attention_mask: new Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
      max_new_tokens: m.limits.max_reasoning_tokens + 2,
      do_sample: false,
      eos_token_id: null,
      logits_processor: [processor],
      stopping_criteria: [new AfterMarker(ids.length, marker)],
      streamer,
    } as unknown as Parameters<PreTrainedModel['generate']>[0])
    streamer.end()
    const logits = processor.labelLogits
    if (!logits) throw new Error('generation ended before the marker')
    const { index: labelIndex, scores } = labelScores(logits, temperature)
    const end = performance.now()
    return {
      label: m.labels[labelIndex]!,
      labelIndex,
      scores,
      reasoning: streamer.text,
      usage: { input_tokens: textTokens, reasoning_tokens: streamer.ids.length },
      timings: { ttft_ms: streamer.firstTokenAt === null ? end - t0 : streamer.firstTokenAt - t0, total_ms: end - t0 },
    }
  }
}
