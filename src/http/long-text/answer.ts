/**
 * @module
 * A text's answer from the results of its windows: the aggregate label and scores, the deciding
 * window's reasoning, the token counts and timings of them all.
 */
import type { TruncateMode } from '../../config.js'
import type { SequenceResult } from '../../engine/types.js'
import { aggregateWindows } from './aggregate.js'
import type { PreparedText } from './prepare.js'
import type { Span } from './plan.js'

export interface WindowAnswer {
  span: Span | null
  labelIndex: number
  scores: number[]
  reasoning: string
  numTextTokens: number
  numReasoningTokens: number
}

export interface TextAnswer {
  labelIndex: number
  scores: number[]
  /** The deciding window's reasoning. */
  reasoning: string
  /** Index into `windows` of the window whose reasoning is the answer's. */
  decidingWindow: number
  windows: WindowAnswer[]
  /** Text tokens read, over all windows. */
  numTextTokens: number
  /** Reasoning tokens written, over all windows. */
  numReasoningTokens: number
  /** Text tokens not read (`start`, `end`). */
  numDropped: number
  mode: TruncateMode
  /** Over the windows: the first to leave the queue and to write, the last to finish. */
  timings: SequenceResult['timings']
}

/** `results` are the windows' results, in the order of `prepared.windows`. */
export function answerText(prepared: PreparedText, results: readonly SequenceResult[]): TextAnswer {
  const windows: WindowAnswer[] = prepared.windows.map((w, i) => {
    const r = results[i]!
    return {
      span: w.span,
      labelIndex: r.labelIndex,
      scores: r.scores,
      reasoning: r.reasoning,
      numTextTokens: w.prompt.numTextTokens,
      numReasoningTokens: r.numReasoningTokens,
    }
  })
  // One window is its own answer, exactly (the engine's label, not an argmax redone here).
  const { labelIndex, scores, decidingWindow } =
    windows.length === 1
      ? { labelIndex: windows[0]!.labelIndex, scores: windows[0]!.scores, decidingWindow: 0 }
      : aggregateWindows(windows.map((w) => ({ scores: w.scores, numTokens: w.numTextTokens })))
  return {
    labelIndex,
    scores,
    reasoning: windows[decidingWindow]!.reasoning,
    decidingWindow,
    windows,
    numTextTokens: windows.reduce((n, w) => n + w.numTextTokens, 0),
    numReasoningTokens: windows.reduce((n, w) => n + w.numReasoningTokens, 0),
    numDropped: prepared.numDropped,
    mode: prepared.mode,
    timings: {
      queue_ms: Math.min(...results.map((r) => r.timings.queue_ms)),
      ttft_ms: Math.min(...results.map((r) => r.timings.ttft_ms)),
      total_ms: Math.max(...results.map((r) => r.timings.total_ms)),
    },
  }
}
