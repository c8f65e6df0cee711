/**
 * @module
 * A result as OpenAI objects: one `chat.completion`, or the `chat.completion.chunk`s of a stream.
 * The label is the message content, the reasoning `reasoning_content` (as reasoning models'
 * servers send it), and the label scores the extension field `scores`.
 */
import type { z } from '@hono/zod-openapi'
import type { SequenceResult } from '../../engine/types.js'
import type { EncodedPrompt } from '../../model/tokenizer.js'
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
type Scores = NonNullable<Delta['scores']>

export function chatUsage(model: ServedModel, prompt: EncodedPrompt, r: SequenceResult): z.infer<typeof ChatUsage> {
  const completion = r.numReasoningTokens + model.labelTokenCounts[r.labelIndex]!
  return { prompt_tokens: prompt.numTextTokens, completion_tokens: completion, total_tokens: prompt.numTextTokens + completion }
}

export function chatCompletion(meta: CompletionMeta, model: ServedModel, prompt: EncodedPrompt, r: SequenceResult): z.infer<typeof ChatCompletion> {
  const message = {
    role: 'assistant' as const,
    content: model.labels[r.labelIndex]!,
    reasoning_content: r.reasoning,
    refusal: null,
    scores: scoresByLabel(model, r.scores) as Scores,
  }
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: 'stop' }],
    usage: chatUsage(model, prompt, r),
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
    /** The label, the stop, and the usage where asked for. */
    end: (model: ServedModel, prompt: EncodedPrompt, r: SequenceResult): Chunk[] => [
      delta({ content: model.labels[r.labelIndex]!, scores: scoresByLabel(model, r.scores) as Scores }),
      delta({}, 'stop'),
      ...(includeUsage ? [chunk([], chatUsage(model, prompt, r))] : []),
    ],
  }
}
