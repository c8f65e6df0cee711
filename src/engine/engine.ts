/**
 * @module
 * The continuous-batching engine: a waiting queue, a running batch with its KV cache, and `step()`,
 * one iteration (TGI and vLLM call it iteration-level scheduling).
 *
 * Each step:
 * 1. Cancelled sequences leave (a waiting one is dropped, a running one frees its row).
 * 2. `schedule()` picks the running rows to decode and the waiting requests to admit.
 * 3. Prefill pass over the admitted prompts (no past). Their first token is picked and sent out at
 *    once (time to first token does not wait for the decode pass).
 * 4. Decode pass: one token for every row that was running before this step, the past fed straight
 *    from the batch KV buffer (see kv-cache.ts).
 * 5. The admitted sequences that did not finish during prefill join the batch, to decode from the
 *    next step on; then the rows that finished leave.
 *
 * How a pass is fed and where its KV goes depends on the graph's layout (batch-runner.ts): the
 * `optimum` graph (left padding, masks, `present` copied back) or the fused `gqa` graph (right
 * padding, the cache written in place). A pass is all prefill or all decode either way.
 *
 * Per sequence the rules of docs/model-package.md "Decoding" hold: greedy with bos/eos/pad/sep
 * masked, quotations grounded in the input (grounding.ts), the marker ends the reasoning or is
 * forced once the budget is spent, and the logits at the marker's position, divided by the
 * sequence's temperature, score the labels. A package's lexical prior (prior.ts) is added to the
 * label logits of every row until its sequence has named a label. Both are fixed per sequence when
 * it is enqueued: the prior's addition from its text, and its temperature (the package's, or a
 * register temperature mixed by the registers prior's gate on its text).
 */
import { StreamingDetokenizer } from '../model/detokenizer.js'
import { sequenceTemperature } from '../model/manifest.js'
import type { LabelCalibration } from '../model/manifest.js'
import { addPrior, sequencePrior } from '../model/prior.js'
import type { PackagePrior } from '../model/prior.js'
import { createRunner } from './batch-runner.js'
import type { BatchRunner, ModelPasses, PrefillLogits } from './batch-runner.js'
import { scoreLabels } from './decoding.js'
import { OUTSIDE, pickGrounded } from './grounding.js'
import type { GroundingContext, QuoteState } from './grounding.js'
import type { KvShape } from './kv-cache.js'
import type { SequenceEvent } from './protocol.js'
import { schedule } from './scheduler.js'
import type { SchedulerLimits } from './scheduler.js'

/** What the engine needs to know about the model (built by model-runtime.ts from a package). */
export type LoadedModel = ModelFacts & ModelPasses
/** A model of each layout (tests and measurements that feed a layout's passes themselves). */
export type OptimumModel = ModelFacts & Extract<ModelPasses, { layout: 'optimum' }>
export type GqaModel = ModelFacts & Extract<ModelPasses, { layout: 'gqa' }>

/** The model's facts, whatever its graph's layout. */
export interface ModelFacts {
  shape: KvShape
  vocabSize: number
  kind: 'qra' | 'qa'
  specials: { bos: number; eos: number; pad: number; sep: number; marker: number }
  /** First token id of each label, in label order. */
  labelFirstIds: readonly number[]
  maxReasoningTokens: number
  /** Bytes of every token id, for the detokenizer. */
  tokenBytes: readonly Uint8Array[]
  /** Bytes of every token id for grounded quoting (an added token: its content). */
  quoteBytes: readonly Uint8Array[]
  /**
   * Ids the template puts before and after the text in every prompt (not counting the marker a
   * `qa` prompt ends with): the ids between them are the input a quotation must come from.
   */
  template: { numPrefixTokens: number; numSuffixTokens: number }
  /**
   * The package's calibration: what each sequence's label logits are divided by before the softmax
   * (`{method: 'temperature', temperature: 1}`: none).
   */
  calibration: LabelCalibration
  /**
   * `qra`: score the labels where the reasoning first writes a label token (the decision it
   * states, whose distribution still holds the model's doubt), at the marker when it writes none.
   */
  scoresAtFirstLabel: boolean
  /** The package's lexical prior; absent or null: none. */
  prior?: PackagePrior | null
}

/** `Sequence.row` while a sequence waits or runs its prefill: it has no KV row yet. */
const NO_ROW = -1
/** `Sequence.row` once a sequence finished or failed: it never takes a row again. */
const LEFT = -2

interface Sequence {
  id: number
  promptIds: number[]
  /** Row in the KV cache while running; `NO_ROW` before, `LEFT` after. */
  row: number
  /** `reasoning`: the next logits pick a reasoning token or the marker; `label`: they score labels. */
  phase: 'reasoning' | 'label'
  /** The token fed at the next decode pass. */
  nextInput: number
  reasoningIds: number[]
  detokenizer: StreamingDetokenizer
  /** `qra` only: the input's bytes and the rules quotations follow. */
  grounding: GroundingContext | null
  quote: QuoteState
  /** The label logits where the reasoning first wrote a label token (`scoresAtFirstLabel`). */
  namedLogits: Float32Array | null
  /** What the lexical prior adds to each label's logit while `namedLogits` is null; null: no prior. */
  prior: Float64Array | null
  /** What its label logits are divided by before the softmax (`sequenceTemperature`). */
  temperature: number
}

/** Counters for logs and docs/engine.md. */
export interface EngineStats {
  numSteps: number
  numPrefillPasses: number
  numDecodePasses: number
  numGeneratedTokens: number
  /** Sum of decode rows over decode passes (mean batch = this / numDecodePasses). */
  numDecodeRows: number
  /** Padded prompt tokens computed by prefill passes. */
  numPrefillTokens: number
  /** Milliseconds in prefill passes and in decode passes (model time), and in the step outside them. */
  prefillMs: number
  decodeMs: number
  forwardMs: number
  stepMs: number
}

export type EmitEvents = (events: SequenceEvent[]) => void

export class BatchEngine {
  readonly #model: LoadedModel
  readonly #limits: SchedulerLimits
  readonly #banned: ReadonlySet<number>
  readonly #labelIds: ReadonlySet<number>
  /** 0..labels-1: indexes into a row of label logits already taken out of the vocabulary. */
  readonly #labelOrder: readonly number[]
  readonly #runner: BatchRunner
  readonly #waiting: Sequence[] = []
  /** `#rows[r]` is the sequence in KV row `r`. */
  readonly #rows: Sequence[] = []
  readonly #cancelled = new Set<number>()
  readonly stats: EngineStats = {
    numSteps: 0,
    numPrefillPasses: 0,
    numDecodePasses: 0,
    numGeneratedTokens: 0,
    numDecodeRows: 0,
    numPrefillTokens: 0,
    prefillMs: 0,
    decodeMs: 0,
    forwardMs: 0,
    stepMs: 0,
  }

  /** Rows of the last step's passes (0: no such pass), for the batch-size metric. */
  lastStep = { numPrefillRows: 0, numDecodeRows: 0 }

  constructor(model: LoadedModel, limits: SchedulerLimits, opts: { kvGranularity?: number } = {}) {
    this.#model = model
    this.#limits = limits
    const { bos, eos, pad, sep } = model.specials
    this.#banned = new Set([bos, eos, pad, sep])
    this.#labelIds = new Set(model.labelFirstIds)
    this.#labelOrder = model.labelFirstIds.map((_, k) => k)
    // 8 slots: the measured trade-off between slack (every step attends over up to 7 unused slots
    // per row) and reallocation (a full copy each time the longest row crosses a multiple);
    // 8 was a little faster than 16 and 32 in both runs of docs/engine.md.
    this.#runner = createRunner(model, { shape: model.shape, vocabSize: model.vocabSize, pad: model.specials.pad }, { kvGranularity: opts.kvGranularity ?? 8 })
  }

  get numWaiting(): number {
    return this.#waiting.length
  }

  get numRunning(): number {
    return this.#rows.length
  }

  hasWork(): boolean {
    return this.#waiting.length > 0 || this.#rows.length > 0
  }

  enqueue(id: number, promptIds: number[]): void {
    const qra = this.#model.kind === 'qra'
    const prior = this.#model.prior ?? null
    const source = qra || prior ? this.#sourceOf(promptIds) : null
    const fused = prior && source ? sequencePrior(prior, source) : null
    this.#waiting.push({
      id,
      promptIds,
      row: NO_ROW,
      phase: qra ? 'reasoning' : 'label',
      nextInput: -1,
      reasoningIds: [],
      detokenizer: new StreamingDetokenizer(this.#model.tokenBytes),
      grounding: qra && source ? { source, tokenBytes: this.#model.quoteBytes, banned: this.#banned, marker: this.#model.specials.marker } : null,
      quote: OUTSIDE,
      namedLogits: null,
      prior: fused?.logits ?? null,
      temperature: sequenceTemperature(this.#model.calibration, fused?.gate ?? null),
    })
  }

  /** The bytes of the prompt's text ids: the input as the model reads it (grounding and prior). */
  #sourceOf(promptIds: number[]): Uint8Array {
    const { numPrefixTokens, numSuffixTokens } = this.#model.template
    // A `qa` prompt ends with the marker, after the template's suffix.
    const end = promptIds.length - numSuffixTokens - (this.#model.kind === 'qa' ? 1 : 0)
    const textIds = promptIds.slice(numPrefixTokens, end)
    const bytes = this.#model.quoteBytes
    let n = 0
    for (const id of textIds) n += bytes[id]!.length
    const source = new Uint8Array(n)
    n = 0
    for (const id of textIds) {
      source.set(bytes[id]!, n)
      n += bytes[id]!.length
    }
    return source
  }

  /** Marks a sequence for removal at the start of the next step. */
  cancel(id: number): void {
    this.#cancelled.add(id)
  }

  /**
   * Runs one step; `emit` receives events as soon as each pass has produced them, and `beforePass`
   * (optional) is called right before each forward pass, so that a caller that batches events
   * can send what it holds before the pass keeps the thread busy.
   */
  async step(emit: EmitEvents, beforePass?: () => void): Promise<void> {
    const t0 = performance.now()
    let forwardMs = 0
    this.lastStep = { numPrefillRows: 0, numDecodeRows: 0 }
    this.#applyCancellations()
    const out = schedule(
      {
        waiting: this.#waiting.map((s) => ({ id: s.id, numPromptTokens: s.promptIds.length })),
        running: this.#rows.map((s) => s.id),
      },
      this.#limits,
    )
    if (out.numScheduledTokens === 0) return
    this.stats.numSteps++
    const admitted = this.#waiting.splice(0, out.prefillIds.length)

    // 3. Prefill.
    let prefill: PrefillLogits | null = null
    const numRunning = this.#rows.length
    this.lastStep = { numPrefillRows: admitted.length, numDecodeRows: numRunning }
    if (admitted.length > 0) {
      // `start` goes out before the pass, so the caller's queue time ends where prefill begins.
      emit(admitted.map((s) => ({ type: 'start', id: s.id })))
      const events: SequenceEvent[] = []
      const t = performance.now()
      try {
        beforePass?.()
        prefill = await this.#runner.prefill(admitted.map((s) => s.promptIds))
        this.stats.numPrefillPasses++
        this.stats.numPrefillTokens += Math.max(...admitted.map((s) => s.promptIds.length)) * admitted.length
      } catch (e) {
        for (const s of admitted) events.push({ type: 'error', id: s.id, message: `prefill failed: ${errorLine(e)}` })
      }
      forwardMs += performance.now() - t
      this.stats.prefillMs += performance.now() - t
      if (prefill) {
        admitted.forEach((s, i) => {
          const finished = this.#advance(s, prefill!.logits, prefill!.offset(i), events)
          if (finished) s.row = LEFT
        })
      }
      emit(events)
    }

    // 4. Decode the rows that were running before this step.
    const finishedRows: number[] = []
    if (numRunning > 0) {
      const events: SequenceEvent[] = []
      const t = performance.now()
      try {
        beforePass?.()
        const logits = await this.#runner.decode(this.#rows.map((s) => s.nextInput))
        forwardMs += performance.now() - t
        this.stats.decodeMs += performance.now() - t
        const V = this.#model.vocabSize
        for (let r = 0; r < numRunning; r++) {
          if (this.#advance(this.#rows[r]!, logits, r * V, events)) finishedRows.push(r)
        }
        this.stats.numDecodePasses++
        this.stats.numDecodeRows += numRunning
      } catch (e) {
        forwardMs += performance.now() - t
        for (let r = 0; r < numRunning; r++) {
          events.push({ type: 'error', id: this.#rows[r]!.id, message: `decode failed: ${errorLine(e)}` })
          finishedRows.push(r)
        }
      }
      emit(events)
    }

    // 5. Admitted sequences still generating join the batch (after the running rows), then the
    // rows that finished leave (the last row moves into each, so in descending order).
    if (prefill) {
      const rows = this.#runner.commit(admitted.map((s) => s.row === NO_ROW))
      admitted.forEach((s, i) => {
        if (rows[i]! < 0) return
        s.row = rows[i]!
        this.#rows[s.row] = s
      })
    }
    for (const r of finishedRows.reverse()) this.#removeRow(r)
    this.stats.forwardMs += forwardMs
    this.stats.stepMs += performance.now() - t0 - forwardMs
  }

  /** Applies the logits of one row to its sequence; returns true when the sequence finished. */
  #advance(s: Sequence, logits: Float32Array, offset: number, events: SequenceEvent[]): boolean {
    if (this.#cancelled.has(s.id)) return false
    const { marker } = this.#model.specials
    // Into the row itself, once per row and step, before anything reads it: the greedy pick,
    // `namedLogits`, the label scores.
    if (s.prior && s.namedLogits === null) addPrior(logits, offset, this.#model.labelFirstIds, s.prior)
    if (s.phase === 'label') {
      const ids = this.#model.labelFirstIds
      const { index, scores } = s.namedLogits
        ? scoreLabels(s.namedLogits, 0, this.#labelOrder, s.temperature)
        : scoreLabels(logits, offset, ids, s.temperature)
      events.push({ type: 'done', id: s.id, labelIndex: index, scores, numReasoningTokens: s.reasoningIds.length })
      return true
    }
    // Reasoning: the marker is forced once the budget is spent, otherwise greedy and grounded. The
    // grounding costs one byte scan of the best token unless it holds '"' or a quotation is open.
    let token = marker
    if (s.reasoningIds.length < this.#model.maxReasoningTokens) {
      const picked = pickGrounded(logits, offset, this.#model.vocabSize, s.grounding!, s.quote)
      token = picked.token
      s.quote = picked.state
    }
    let delta: string
    if (token === marker) {
      delta = s.detokenizer.finish()
      s.phase = 'label'
    } else {
      s.reasoningIds.push(token)
      this.stats.numGeneratedTokens++
      if (this.#model.scoresAtFirstLabel && s.namedLogits === null && this.#labelIds.has(token)) {
        s.namedLogits = Float32Array.from(this.#model.labelFirstIds, (id) => logits[offset + id]!)
      }
      delta = s.detokenizer.push(token)
    }
    if (delta) events.push({ type: 'token', id: s.id, delta })
    s.nextInput = token
    return false
  }

  #applyCancellations(): void {
    if (this.#cancelled.size === 0) return
    for (let i = this.#waiting.length - 1; i >= 0; i--) {
      if (this.#cancelled.has(this.#waiting[i]!.id)) this.#waiting.splice(i, 1)
    }
    const rows = this.#rows
      .filter((s) => this.#cancelled.has(s.id))
      .map((s) => s.row)
      .sort((a, b) => b - a)
    for (const r of rows) this.#removeRow(r)
    this.#cancelled.clear()
  }

  /** Frees row `r`; the last row moves into it (rows must be removed in descending order). */
  #removeRow(r: number): void {
    const moved = this.#runner.removeRow(r)
    const s = this.#rows[r]!
    s.row = LEFT
    if (moved !== r) {
      this.#rows[r] = this.#rows[moved]!
      this.#rows[r]!.row = r
    }
    this.#rows.pop()
  }
}

function errorLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split('\n')[0]!
}
