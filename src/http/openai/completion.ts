/**
 * @module
 * A result as OpenAI objects: one `chat.completion`, or the `chat.completion.chunk`s of a stream.
 * The label is the message content, the reasoning `reasoning_content` (as reasoning models'
 * servers send it), and the label scores the extension field `scores`.
 */
import type { z } from '@hono/zod-openapi'
import type { TextAnswer } from '../long-text/answer.js'
import type { PreparedText } from '../long-text/prepare.js'
import { windowBody, windowEvent } from '../results.js'
import type { ServedModel } from '../service.js'
import { scoresByLabel } from '../submit.js'
import type { ChatCompletion, ChatCompletionChunk, ChatUsage } from './schemas.js'

/** What every object of one completion repeats. */
export interface CompletionMeta {
  id: string
  /** Unix seconds. */
  created: number
  model: string
}

type Chunk = z.infer<typeof ChatCompletionChunk>
type Delta = Chunk['choices'][number]['delta']

export function chatUsage(model: ServedModel, a: TextAnswer): z.infer<typeof ChatUsage> {
  // Every window wrote its reasoning and a label.
  const completion = a.windows.reduce((n, w) => n + w.numReasoningTokens + model.labelTokenCounts[w.labelIndex]!, 0)
  return { prompt_tokens: a.numTextTokens, completion_tokens: completion, total_tokens: a.numTextTokens + completion, input_tokens_dropped: a.numDropped }
}

/** What comes between two windows' reasoning in `reasoning_content`; qa models write none. */
const windowSeparator = (model: ServedModel, index: number) => (index > 0 && model.kind === 'qra' ? '\n\n' : '')

/** Every window's reasoning in text order, as the stream sends it (one window: its reasoning). */
export function reasoningContent(model: ServedModel, a: TextAnswer): string {
  return a.windows.map((w, i) => windowSeparator(model, i) + w.reasoning).join('')
}

export function chatCompletion(meta: CompletionMeta, model: ServedModel, a: TextAnswer, detail: boolean): z.infer<typeof ChatCompletion> {
  const message = {
    role: 'assistant' as const,
    content: model.labels[a.labelIndex]!,
    reasoning_content: reasoningContent(model, a),
    refusal: null,
    scores: scoresByLabel(model, a.scores),
    ...(detail ? { windows: a.windows.map((w, i) => windowBody(model, w, i)) } : {}),
  }
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: 'stop' }],
    usage: chatUsage(model, a),
  }
}

/**
 * The chunks of one streamed completion, all with its id, created and model. With
 * `includeUsage`, each carries `usage: null` until the last, as OpenAI sends them.
 */
export function chunker(meta: CompletionMeta, includeUsage: boolean) {
  const chunk = (choices: Chunk['choices'], usage: Chunk['usage'] = null): Chunk => ({
    id: meta.id,
    object: 'chat.completion.chunk',
    created: meta.created,
    model: meta.model,
    choices,
    ...(includeUsage ? { usage } : {}),
  })
  const delta = (d: Delta, finish: 'stop' | null = null) => chunk([{ index: 0, delta: d, logprobs: null, finish_reason: finish }])
  return {
    start: () => delta({ role: 'assistant', content: '' }),
    reasoning: (text: string) => delta({ reasoning_content: text }),
    /** Before window `index`'s reasoning, for a text read in several windows. */
    window: (model: ServedModel, text: PreparedText, index: number) =>
      delta({ reasoning_content: windowSeparator(model, index), window: windowEvent(text, index) }),
    /** The label, the stop, and the usage where asked for. */
    end: (model: ServedModel, a: TextAnswer): Chunk[] => [
      delta({ content: model.labels[a.labelIndex]!, scores: scoresByLabel(model, a.scores) }),
      delta({}, 'stop'),
      ...(includeUsage ? [chunk([], chatUsage(model, a))] : []),
    ],
  }
}
