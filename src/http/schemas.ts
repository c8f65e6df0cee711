/**
 * @module
 * Request and response schemas. The same zod objects validate requests and generate openapi.yaml.
 * Limits that depend on the configuration (text count, length, deadline) are checked in
 * validate.ts, so the spec does not change with the flags.
 */
import { z } from '@hono/zod-openapi'
import { LABELS } from '../model/manifest.js'
import { ERROR_CODES } from './errors.js'

export const Label = z.enum(LABELS).openapi('Label', { description: 'One of the six emotions.' })

export const Scores = z
  .object(Object.fromEntries(LABELS.map((l) => [l, z.number().min(0).max(1)])) as Record<(typeof LABELS)[number], z.ZodNumber>)
  .openapi('Scores', {
    description: "Probability of each label (softmax over the labels' first tokens at the marker position); they sum to 1.",
    example: { sadness: 0.02, joy: 0.9, love: 0.05, anger: 0.01, fear: 0.01, surprise: 0.01 },
  })

export const Usage = z
  .object({
    input_tokens: z.number().int().openapi({ description: "Tokens of the text after normalisation: what the model limit max_input_tokens counts (the prompt template's own tokens are not counted)." }),
    reasoning_tokens: z.number().int().openapi({ description: 'Reasoning tokens generated (the marker excluded).' }),
  })
  .openapi('Usage')

export const Timings = z
  .object({
    queue_ms: z.number().openapi({ description: 'From acceptance to the start of prefill.' }),
    ttft_ms: z.number().openapi({ description: 'From acceptance to the first reasoning text (or the label when there is none).' }),
    total_ms: z.number().openapi({ description: 'From acceptance to the label.' }),
  })
  .openapi('Timings')

const modelField = z.string().optional().openapi({ description: 'Model id (see /readyz); the first configured model when absent.', example: 'emotion-qra-natural' })
export const timeoutField = z
  .number()
  .int()
  .positive()
  .optional()
  .openapi({ description: 'Deadline in milliseconds (at most the server maximum, --timeout-ms); past it the request fails with 504.', example: 10000 })

export const ClassifyRequest = z
  .strictObject({
    text: z.string().optional().openapi({ description: 'One text. Exactly one of text and texts.', example: "I'm SO happy today!" }),
    texts: z
      .array(z.string())
      .optional()
      .openapi({ description: 'Several texts (1 to --max-texts), answered in the same order. Exactly one of text and texts.' }),
    model: modelField,
    timeout_ms: timeoutField,
  })
  .openapi('ClassifyRequest')

export const ExplainRequest = z
  .strictObject({
    text: z.string().openapi({ description: 'The text to classify.', example: "I didn't expect that at all!" }),
    model: modelField,
    timeout_ms: timeoutField,
  })
  .openapi('ExplainRequest')

export const ClassifyResult = z
  .object({
    label: Label,
    scores: Scores,
    reasoning: z.string().openapi({ description: 'What the model wrote before the label (empty for qa models).' }),
    usage: Usage,
  })
  .openapi('ClassifyResult')

export const ClassifySingleResponse = ClassifyResult.extend({ model: z.string() }).openapi('ClassifySingleResponse')

export const ClassifyBatchResponse = z
  .object({ model: z.string(), results: z.array(ClassifyResult).openapi({ description: 'One result per text, in input order.' }) })
  .openapi('ClassifyBatchResponse')

export const ExplainResponse = ClassifySingleResponse.extend({ timings: Timings }).openapi('ExplainResponse')

export const ErrorResponse = z
  .object({
    error: z.object({
      code: z.enum(ERROR_CODES as [string, ...string[]]).openapi({ description: 'Stable machine-readable code.' }),
      message: z.string().openapi({ description: 'What is wrong, naming the field and what is allowed.' }),
    }),
  })
  .openapi('Error')

export const ReadyResponse = z
  .object({
    status: z.literal('ready'),
    models: z.array(z.object({ id: z.string(), kind: z.enum(['qra', 'qa']) })),
    device: z.enum(['auto', 'cpu', 'cuda']).openapi({ description: 'The --device asked for.' }),
    provider: z.enum(['cpu', 'cuda']).openapi({ description: 'The execution provider in use.' }),
    threads: z.number().int(),
  })
  .openapi('Ready')

export const ModelInfo = z
  .object({
    id: z.string().openapi({ example: 'emotion-qra-natural' }),
    kind: z.enum(['qra', 'qa']).openapi({ description: 'qra: writes a reasoning, then the label; qa: the label alone.' }),
    labels: z.array(z.string()).openapi({ description: 'The labels it chooses from, in the order of its scores.', example: ['sadness', 'joy', 'love', 'anger', 'fear', 'surprise'] }),
    limits: z.object({
      max_texts: z.number().int().openapi({ description: 'Texts per /classify request (--max-texts).' }),
      max_text_chars: z.number().int().openapi({ description: 'Characters per text (--max-text-chars).' }),
      max_input_tokens: z.number().int().openapi({ description: "Tokens per text after normalisation (the model's limit)." }),
      max_reasoning_tokens: z.number().int().openapi({ description: 'Most reasoning tokens the model writes before its label.' }),
    }),
    dtype: z.string().openapi({ description: 'Weights type of the ONNX graph.', example: 'float32' }),
    onnx_sha256: z.string().openapi({ description: 'sha256 of the ONNX file, as checked against the package manifest at start-up.' }),
    calibration: z
      .object({ method: z.literal('temperature'), temperature: z.number() })
      .nullable()
      .openapi({ description: 'How scores are calibrated: softmax of the label logits divided by the temperature; null: not calibrated (temperature 1).' }),
    device: z.enum(['cpu', 'cuda']).openapi({ description: 'Where the model runs.' }),
    execution_provider: z.enum(['CPUExecutionProvider', 'CUDAExecutionProvider']).openapi({ description: "ONNX Runtime's execution provider in use." }),
  })
  .openapi('ModelInfo')

export const InfoResponse = z
  .object({
    version: z.string().openapi({ description: 'Version of the service (package.json).', example: '0.1.0' }),
    models: z.array(ModelInfo).openapi({ description: 'Served models, in --models order; the first is the default.' }),
  })
  .openapi('Info')

export const HealthResponse = z.object({ status: z.literal('ok') }).openapi('Health')

export const SSE_DESCRIPTION = [
  'Server-Sent Events, in this order:',
  '',
  '- `event: reasoning`, `data: {"delta": "..."}`: reasoning text as it is generated (zero or more);',
  '  the deltas concatenated equal the final reasoning exactly, and never split a character.',
  '- `event: label`, `data: {"label": "joy", "scores": {...}}`: once.',
  '- `event: done`, `data: {"model", "reasoning", "usage", "timings"}`: once, last.',
  '',
  'An error after the stream started arrives as `event: error`, `data: {"error": {"code", "message"}}`, and ends the stream.',
].join('\n')
