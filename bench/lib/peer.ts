/**
 * @module
 * The peer: what a Node user would write instead of this engine, with transformers.js
 * (`@huggingface/transformers`) generating per request on the same model package.
 *
 * One `generate()` call per request, batch 1, on the package's `model.onnx` (fp32, CPU, the same
 * ONNX Runtime thread settings as the engine). It follows docs/model-package.md "Decoding" so that
 * both produce the same reasoning and label for the same text:
 * - the prompt is `prefix + normalised text + suffix` of the manifest's template, tokenised by
 *   transformers.js's own tokenizer from the package's tokenizer.json (the template's special
 *   tokens are its added tokens; normalised text cannot contain them);
 * - greedy; during the reasoning bos/eos/pad/sep are masked; after `max_reasoning_tokens` reasoning
 *   tokens the marker is forced (a logits processor);
 * - once the marker has been fed, the logits at its position score the six labels (the same
 *   processor reads them) and a stopping criterion ends generation: `max_new_tokens` is the
 *   reasoning budget + 2 (reasoning, marker, label), so the work per request is the engine's:
 *   one prefill, one pass per reasoning token, one pass for the marker.
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
import { normalize } from '../../src/model/normalize.js'
import type { NormalizeRule } from '../../src/model/normalize.js'

/** The parts of manifest.json the peer reads. */
interface PeerManifest {
  id: string
  kind: 'qra' | 'qa'
  labels: string[]
  label_token_ids: number[][]
  prompt: { normalize: NormalizeRule; template: string; marker: string; eos: string }
  special_tokens: { bos: number; eos: number; pad: number; sep: number; marker: number }
  limits: { max_input_tokens: number; max_reasoning_tokens: number }
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

/** Masks specials during the reasoning, forces the marker past the budget, reads label logits. */
class ReasoningProcessor extends LogitsProcessor {
  labelLogits: number[] | null = null
  constructor(
    private readonly promptLength: number,
    private readonly m: PeerManifest,
    private readonly banned: readonly number[],
  ) {
    super()
  }

  override _call(inputIds: bigint[][], logits: Tensor): Tensor {
    const ids = inputIds[0]!
    const data = logits.data as Float32Array
    const generated = ids.length - this.promptLength
    const marker = this.m.special_tokens.marker
    if (generated > 0 && ids[ids.length - 1] === BigInt(marker)) {
      this.labelLogits = this.m.label_token_ids.map((t) => data[t[0]!]!)
      return logits
    }
    if (generated >= this.m.limits.max_reasoning_tokens) {
      data.fill(-Infinity)
      data[marker] = 0
      return logits
    }
    for (const id of this.banned) data[id] = -Infinity
    return logits
  }
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
  ) {}

  /** Loads the package folder `dir` with transformers.js, local files only. */
  static async load(dir: string, threads: number): Promise<Peer> {
    const abs = resolve(dir)
    const manifest = JSON.parse(await readFile(`${abs}/manifest.json`, 'utf8')) as PeerManifest
    if (manifest.kind !== 'qra') throw new Error(`${abs}: the peer serves qra packages (reasoning then label), not ${manifest.kind}`)
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
    return new Peer(manifest, tokenizer, model, prefix, suffix)
  }

  /** The prompt ids of `text` and the number of them that came from the text. */
  encode(text: string): { ids: number[]; textTokens: number } {
    const normalized = normalize(text, this.manifest.prompt.normalize)
    if (normalized === '') throw new PeerInputError('text: nothing left to classify after normalisation')
    const ids = this.tokenizer.encode(this.prefix + normalized + this.suffix, { add_special_tokens: false })
    const around = this.tokenizer.encode(this.prefix + this.suffix, { add_special_tokens: false }).length
    const textTokens = ids.length - around
    if (textTokens > this.manifest.limits.max_input_tokens) {
      throw new PeerInputError(`text: ${textTokens} tokens, at most ${this.manifest.limits.max_input_tokens}`)
    }
    return { ids, textTokens }
  }

  async classify(text: string, onDelta?: (delta: string) => void): Promise<PeerResult> {
    const t0 = performance.now()
    const { ids, textTokens } = this.encode(text)
    const m = this.manifest
    const { bos, eos, pad, sep, marker } = m.special_tokens
    const processor = new ReasoningProcessor(ids.length, m, [bos, eos, pad, sep])
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
    const top = Math.max(...logits)
    const exp = logits.map((x) => Math.exp(x - top))
    const sum = exp.reduce((a, b) => a + b, 0)
    const scores = exp.map((e) => e / sum)
    let labelIndex = 0
    for (let k = 1; k < scores.length; k++) if (logits[k]! > logits[labelIndex]!) labelIndex = k
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
