/**
 * @module
 * A text's answer as the JSON of /classify and /explain, and what a stream says about a window.
 */
import type { z } from '@hono/zod-openapi'
import type { TextAnswer, WindowAnswer } from './long-text/answer.js'
import type { PreparedText } from './long-text/prepare.js'
import type { ClassifyResult } from './schemas.js'
import type { ServedModel } from './service.js'
import { scoresByLabel } from './submit.js'

type Result = z.infer<typeof ClassifyResult>

/** `input_tokens` counts the text's tokens read (what max_input_tokens limits), as evaluate does. */
export function resultBody(model: ServedModel, a: TextAnswer, detail: boolean): Result {
  return {
    label: model.labels[a.labelIndex]!,
    scores: scoresByLabel(model, a.scores),
    reasoning: a.reasoning,
    usage: { input_tokens: a.numTextTokens, reasoning_tokens: a.numReasoningTokens, input_tokens_dropped: a.numDropped, windows: a.windows.length },
    // In windows mode every window has its span (a text read whole spans all of it).
    ...(a.mode === 'windows' ? { reasoning_window: { index: a.decidingWindow, ...a.windows[a.decidingWindow]!.span! } } : {}),
    ...(detail ? { windows: a.windows.map((w, i) => windowBody(model, w, i)) } : {}),
  }
}

export function windowBody(model: ServedModel, w: WindowAnswer, index: number): NonNullable<Result['windows']>[number] {
  return {
    index,
    start: w.span?.start ?? 0,
    end: w.span?.end ?? 0,
    label: model.labels[w.labelIndex]!,
    scores: scoresByLabel(model, w.scores),
    reasoning: w.reasoning,
    usage: { input_tokens: w.numTextTokens, reasoning_tokens: w.numReasoningTokens },
  }
}

/** What a stream says before window `index`'s reasoning. */
export function windowEvent(text: PreparedText, index: number) {
  const w = text.windows[index]!
  return { index, count: text.windows.length, start: w.span?.start ?? 0, end: w.span?.end ?? 0, input_tokens: w.prompt.numTextTokens }
}
