/**
 * @module
 * The OpenAI-compatible subset: request and response schemas of `POST /v1/chat/completions` and
 * `GET /v1/models`, and OpenAI's error body. Requests are loose objects, as OpenAI clients send
 * fields this service has no use for; which of those are refused is decided in validate.ts.
 */
import { z } from '@hono/zod-openapi'
import { ERROR_CODES } from '../errors.js'
import { TRUNCATE_MODES } from '../../config.js'
import { Scores, WindowResult, timeoutField, truncateDescription } from '../schemas.js'
import { OPENAI_ERROR_TYPES } from './errors.js'

const ContentPart = z
  .looseObject({
    type: z.string().openapi({ description: 'Only `text` parts can be classified; another type in the last user message is 400.', example: 'text' }),
    text: z.string().optional(),
  })
  .openapi('ChatContentPart')

const Message = z
  .looseObject({
    role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
    content: z
      .union([z.string(), z.array(ContentPart), z.null()])
      .optional()
      .openapi({ description: 'A string, or text parts (joined with a newline).' }),
  })
  .openapi('ChatMessage')

/** Accepted for compatibility and ignored; the description says why. */
const ignored = <T extends z.ZodType>(schema: T, why: string) => schema.nullish().openapi({ description: `Ignored: ${why}` })
const GREEDY = 'decoding is greedy and deterministic.'
const BOUNDED = "the completion is bounded by the model's max_reasoning_tokens (GET /info) plus the label."

export const ChatCompletionRequest = z
  .looseObject({
    model: z.string().openapi({ description: 'A served model id (GET /v1/models); an unknown one is 404.', example: 'emotion-qra-natural' }),
    messages: z
      .array(Message)
      .min(1)
      .openapi({ description: 'The text classified is the content of the last `user` message; the other messages are ignored.' }),
    stream: z.boolean().nullish().openapi({ description: 'true: Server-Sent Events of chat.completion.chunk objects, then `data: [DONE]`.' }),
    stream_options: z
      .looseObject({ include_usage: z.boolean().nullish().openapi({ description: 'true: a last chunk with empty choices and the usage.' }) })
      .nullish(),
    timeout_ms: timeoutField,
    truncate: z.enum(TRUNCATE_MODES).nullish().openapi({ description: `Extension (Python SDK: extra_body). ${truncateDescription('400')}`, example: 'windows' }),
    windows_detail: z.boolean().nullish().openapi({ description: 'Extension: with truncate "windows", each window\'s own result in `choices[0].message.windows`; with another mode, 400.' }),
    n: z.number().int().min(1).nullish().openapi({ description: 'Only 1: every choice would be the same (greedy decoding); more is 400.' }),
    tools: z.array(z.unknown()).nullish().openapi({ description: 'Not supported: a non-empty list is 400.' }),
    tool_choice: z.unknown().optional().openapi({ description: 'Only "none" or "auto" (with no tools); anything else is 400.' }),
    functions: z.array(z.unknown()).nullish().openapi({ description: 'Not supported: a non-empty list is 400.' }),
    function_call: z.unknown().optional().openapi({ description: 'Only "none" or "auto"; anything else is 400.' }),
    response_format: z
      .looseObject({ type: z.string() })
      .nullish()
      .openapi({ description: 'Only {"type": "text"}: the answer is a label, not JSON; another type is 400.' }),
    logprobs: z.boolean().nullish().openapi({ description: 'Only false: token log-probabilities are not returned (the label scores are); true is 400.' }),
    top_logprobs: z.number().int().nullish().openapi({ description: 'Only 0; more is 400.' }),
    logit_bias: z.record(z.string(), z.number()).nullish().openapi({ description: 'Not supported: a non-empty map is 400.' }),
    modalities: z.array(z.string()).nullish().openapi({ description: 'Only ["text"]; another modality is 400.' }),
    audio: z.unknown().optional().openapi({ description: 'Not supported: anything but null is 400.' }),
    temperature: ignored(z.number(), GREEDY),
    top_p: ignored(z.number(), GREEDY),
    seed: ignored(z.number().int(), GREEDY),
    presence_penalty: ignored(z.number(), GREEDY),
    frequency_penalty: ignored(z.number(), GREEDY),
    max_tokens: ignored(z.number().int(), BOUNDED),
    max_completion_tokens: ignored(z.number().int(), BOUNDED),
    stop: ignored(z.union([z.string(), z.array(z.string())]), 'the completion ends with the label.'),
    user: ignored(z.string(), 'requests are not attributed to users.'),
  })
  .openapi('ChatCompletionRequest', {
    description: 'An OpenAI chat-completions request. Fields not listed here are accepted and ignored.',
  })

export const ChatUsage = z
  .object({
    prompt_tokens: z.number().int().openapi({ description: 'Tokens of the text classified, after normalisation (usage.input_tokens of /classify).' }),
    completion_tokens: z.number().int().openapi({ description: "Reasoning tokens plus the label's tokens (the marker between them not counted); with windows, over all windows." }),
    total_tokens: z.number().int(),
    input_tokens_dropped: z.number().int().openapi({ description: 'Extension: tokens of the text not read (truncate "start" or "end"); 0 otherwise.' }),
  })
  .openapi('ChatUsage')

const Choice = z.object({
  index: z.literal(0),
  message: z.object({
    role: z.literal('assistant'),
    content: z.string().openapi({ description: 'The label.', example: 'joy' }),
    reasoning_content: z.string().openapi({
      description: 'The reasoning the model wrote before the label (empty for qa models); a text read in several windows: each window\'s, in text order, separated by a blank line (what the stream sends).',
    }),
    refusal: z.null(),
    scores: Scores.openapi({ description: 'Extension: the probability of each label, as /classify gives them.' }),
    windows: z.array(WindowResult).optional().openapi({ description: 'Extension, with windows_detail: every window\'s own result, as /classify gives them.' }),
  }),
  logprobs: z.null(),
  finish_reason: z.literal('stop'),
})

export const ChatCompletion = z
  .object({
    id: z.string().openapi({ description: '`chatcmpl-` and the request id (X-Request-Id).' }),
    object: z.literal('chat.completion'),
    created: z.number().int().openapi({ description: 'Unix seconds.' }),
    model: z.string(),
    choices: z.array(Choice).length(1),
    usage: ChatUsage,
  })
  .openapi('ChatCompletion')

const Delta = z.object({
  role: z.literal('assistant').optional(),
  content: z.string().optional().openapi({ description: 'The label: "" in the first chunk, then the label in one chunk.' }),
  reasoning_content: z.string().optional().openapi({ description: 'Reasoning text as it is written.' }),
  scores: Scores.optional().openapi({ description: 'Extension: the label scores, on the chunk that carries the label.' }),
  window: z
    .object({ index: z.number().int(), count: z.number().int(), start: z.number().int(), end: z.number().int(), input_tokens: z.number().int() })
    .optional()
    .openapi({ description: 'Extension: a text read in several windows: the window whose reasoning the next chunks carry (its character span, code points).' }),
})

const CHAT_SSE_DESCRIPTION = [
  'With `stream: true`: Server-Sent Events without event names, each `data:` one ChatCompletionChunk, in this order:',
  '',
  '- `delta: {"role": "assistant", "content": ""}`: once, first;',
  '- `delta: {"reasoning_content": "..."}`: reasoning text as it is written (none for qa models); the deltas joined are the reasoning;',
  '  a text read in several windows: before each window\'s reasoning, `delta: {"reasoning_content": "\\n\\n", "window": {...}}` (`""` before the first), windows in text order;',
  '- `delta: {"content": "<label>", "scores": {...}}`: once;',
  '- `delta: {}`, `finish_reason: "stop"`: once;',
  '- with `stream_options.include_usage`: `choices: []` and `usage`;',
  '- then `data: [DONE]`.',
  '',
  'An error after the stream started arrives as `data: {"error": {...}}` (the OpenAI error body), and the stream ends without `[DONE]`.',
].join('\n')

export const ChatCompletionChunk = z
  .object({
    id: z.string().openapi({ description: 'The same in every chunk of a completion.' }),
    object: z.literal('chat.completion.chunk'),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(
      z.object({ index: z.literal(0), delta: Delta, logprobs: z.null(), finish_reason: z.literal('stop').nullable() }),
    ),
    usage: ChatUsage.nullable().optional().openapi({ description: 'Present only with stream_options.include_usage: null, except in the last chunk.' }),
  })
  .openapi('ChatCompletionChunk', { description: CHAT_SSE_DESCRIPTION })

export const ModelList = z
  .object({
    object: z.literal('list'),
    data: z.array(
      z
        .object({
          id: z.string(),
          object: z.literal('model'),
          created: z.number().int().openapi({ description: 'Unix seconds when this service started.' }),
          owned_by: z.literal('because'),
        })
        .openapi('Model'),
    ),
  })
  .openapi('ModelList')

export const OpenAiErrorResponse = z
  .object({
    error: z.object({
      message: z.string().openapi({ description: 'What is wrong, naming the field and what is allowed.' }),
      type: z.enum(OPENAI_ERROR_TYPES),
      param: z.string().nullable().openapi({ description: 'The request field at fault (`messages[1].content`), or null.' }),
      code: z.enum(ERROR_CODES as [string, ...string[]]).openapi({ description: "The service's stable code (the same as on its own routes)." }),
    }),
  })
  .openapi('OpenAIError')
