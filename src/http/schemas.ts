/**
 * @module
 * Request and response schemas. The same zod objects validate requests and generate openapi.yaml.
 * Limits that depend on the configuration (text count, length, deadline) are checked in
 * validate.ts, so the spec does not change with the flags.
 */
import { z } from '@hono/zod-openapi'
import { TRUNCATE_MODES } from '../config.js'
import { GRAPH_DTYPES, GRAPH_LAYOUTS } from '../model/manifest.js'
import { ERROR_CODES } from './errors.js'

// Labels belong to the model package, not to the service: each served model has its own set
// (GET /info), so the contract holds them as strings, not as an enum.
export const Label = z.string().openapi('Label', {
  description: "One of the serving model's labels, as GET /info lists them (`models[].labels`).",
  example: 'joy',
})

export const Scores = z
  .record(z.string(), z.number().min(0).max(1))
  .openapi('Scores', {
    description:
      "Probability of each of the serving model's labels (GET /info), keyed by label, in the order /info lists them: a softmax over the labels' first tokens (see the model package); they sum to 1 and cover every label.",
    example: { sadness: 0.02, joy: 0.9, love: 0.05, anger: 0.01, fear: 0.01, surprise: 0.01 },
  })

export const Usage = z
  .object({
    input_tokens: z.number().int().openapi({
      description:
        "Tokens of the text the model read, after normalisation (what max_input_tokens limits; the prompt template's own tokens are not counted); with windows, over all windows.",
    }),
    reasoning_tokens: z.number().int().openapi({ description: 'Reasoning tokens generated (the marker excluded); with windows, over all windows.' }),
    input_tokens_dropped: z.number().int().openapi({ description: 'Tokens of the text not read: cut by truncate "start" or "end"; 0 otherwise.' }),
    windows: z.number().int().openapi({ description: 'Windows the text was read in: 1, or more with truncate "windows" for a text over max_input_tokens.' }),
  })
  .openapi('Usage')

const span = {
  start: z.number().int().openapi({ description: 'First character of the window in the text as sent (code points, from 0).' }),
  end: z.number().int().openapi({ description: 'One past its last character: text[start:end] in Python.' }),
}

export const ReasoningWindow = z
  .object({ index: z.number().int().openapi({ description: 'Index of the window, in text order.' }), ...span })
  .openapi('ReasoningWindow', {
    description:
      'With truncate "windows" (a text read whole too): the window whose reasoning the answer gives, of all windows the one whose own scores give the answer\'s label the highest probability.',
  })

export const WindowResult = z
  .object({
    index: z.number().int(),
    ...span,
    label: Label,
    scores: Scores,
    reasoning: z.string(),
    usage: z.object({ input_tokens: z.number().int(), reasoning_tokens: z.number().int() }),
  })
  .openapi('WindowResult', { description: 'One window read on its own, exactly as /classify reads text[start:end] alone.' })

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

/** What `truncate` does; `refusal` is how a too-long text is refused with "none" on the route. */
export const truncateDescription = (refusal: string) =>
  `A text over the model's max_input_tokens (GET /info): "windows" reads all of it in windows cut at sentence boundaries and aggregates their answers; "start" reads its first max_input_tokens tokens (drops the end); "end" reads its last ones (drops the start); "none" answers ${refusal} text_too_long. A text within the limit is read whole in every mode. Default: the server's --truncate (GET /info).`
export const truncateField = z.enum(TRUNCATE_MODES).optional().openapi({ description: truncateDescription('422'), example: 'windows' })
export const windowsDetailField = z
  .boolean()
  .optional()
  .openapi({ description: 'With truncate "windows": each window\'s own result in `windows`. With another mode: 422.' })

export const ClassifyRequest = z
  .strictObject({
    text: z.string().optional().openapi({ description: 'One text. Exactly one of text and texts.', example: "I'm SO happy today!" }),
    texts: z
      .array(z.string())
      .optional()
      .openapi({ description: 'Several texts (1 to --max-texts), answered in the same order. Exactly one of text and texts.' }),
    model: modelField,
    timeout_ms: timeoutField,
    truncate: truncateField,
    windows_detail: windowsDetailField,
  })
  .openapi('ClassifyRequest')

export const ExplainRequest = z
  .strictObject({
    text: z.string().openapi({ description: 'The text to classify.', example: "I didn't expect that at all!" }),
    model: modelField,
    timeout_ms: timeoutField,
    truncate: truncateField,
    windows_detail: windowsDetailField,
  })
  .openapi('ExplainRequest')

export const ClassifyResult = z
  .object({
    label: Label,
    scores: Scores,
    reasoning: z.string().openapi({ description: 'What the model wrote before the label (empty for qa models); with windows, that of `reasoning_window`.' }),
    usage: Usage,
    reasoning_window: ReasoningWindow.optional(),
    windows: z.array(WindowResult).optional().openapi({ description: 'With windows_detail: every window, in text order.' }),
  })
  .openapi('ClassifyResult', {
    description:
      'With several windows, `scores` is the mean of the windows\' scores weighted by their input tokens, `label` its argmax, and `reasoning` that of `reasoning_window`.',
  })

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
    threads: z.number().int().openapi({ description: "ONNX Runtime intra-op threads of each engine worker's session (--threads)." }),
    workers: z.number().int().openapi({ description: 'Engine workers per model (--workers), each with its own session and batch.' }),
  })
  .openapi('Ready')

export const ModelInfo = z
  .object({
    id: z.string().openapi({ example: 'emotion-qra-natural' }),
    kind: z.enum(['qra', 'qa']).openapi({ description: 'qra: writes a reasoning, then the label; qa: the label alone.' }),
    labels: z.array(z.string()).openapi({ description: "The labels it chooses from, in the order of its scores: its package's own (at least 2).", example: ['sadness', 'joy', 'love', 'anger', 'fear', 'surprise'] }),
    limits: z.object({
      max_texts: z.number().int().openapi({ description: 'Texts per /classify request (--max-texts).' }),
      max_text_chars: z.number().int().openapi({ description: 'Characters per text (--max-text-chars).' }),
      max_input_tokens: z.number().int().openapi({ description: "Tokens per text after normalisation (the model's limit)." }),
      max_reasoning_tokens: z.number().int().openapi({ description: 'Most reasoning tokens the model writes before its label.' }),
    }),
    graph: z.string().openapi({ description: "The package's graph being run (--graph, else the package's default_graph, else fp32).", example: 'fp32' }),
    layout: z.enum(GRAPH_LAYOUTS).openapi({ description: "That graph's I/O layout: optimum (the reference export, what transformers.js loads) or gqa (fused GroupQueryAttention).", example: 'optimum' }),
    dtype: z.enum(GRAPH_DTYPES).openapi({ description: "Weights type of that graph.", example: 'float32' }),
    onnx_sha256: z.string().openapi({ description: "sha256 of that graph's ONNX file, as checked against the package manifest at start-up." }),
    calibration: z
      .discriminatedUnion('method', [
        z.object({ method: z.literal('temperature'), temperature: z.number() }),
        z.object({
          method: z.literal('register-temperature'),
          temperatures: z.record(z.string(), z.number()).openapi({ description: "One temperature per register of the model's registers prior, in its order.", example: { dair: 1.4, goemotions: 2.0, xed: 2.5 } }),
        }),
      ])
      .nullable()
      .openapi({
        description:
          "How scores are calibrated: softmax of the label logits divided by the temperature; with register-temperature, each text's temperature is the registers prior's gate probabilities times the registers' temperatures, summed; null: not calibrated (temperature 1).",
      }),
    prior: z
      .discriminatedUnion('method', [
        z.object({
          method: z.literal('tfidf-logreg'),
          weight: z.number().openapi({ description: 'What the log-probabilities are multiplied by before they are added.' }),
          terms: z.number().int().openapi({ description: 'Terms (word n-grams) in its vocabulary.' }),
        }),
        z.object({
          method: z.literal('tfidf-logreg-registers'),
          weights: z.record(z.string(), z.number()).openapi({ description: "One weight per register; a text's weight is the gate's probabilities times these, summed.", example: { dair: 0.9, goemotions: 1.6, xed: 1.0 } }),
          registers: z.array(z.string()).openapi({ description: 'The registers (sources) the gate tells apart, in order; one expert classifier each.', example: ['dair', 'goemotions', 'xed'] }),
          terms: z.number().int().openapi({ description: "Terms (word n-grams) in the gate's and the experts' vocabularies together." }),
        }),
      ])
      .nullable()
      .openapi({
        description:
          "A TF-IDF + logistic-regression classifier over the text whose log-probabilities, times weight, are added to the label logits before the label is chosen (tfidf-logreg-registers: a gate's probabilities of each register mix one classifier per register, and the registers' weights); null: none.",
      }),
    device: z.enum(['cpu', 'cuda']).openapi({ description: 'Where the model runs.' }),
    execution_provider: z.enum(['CPUExecutionProvider', 'CUDAExecutionProvider']).openapi({ description: "ONNX Runtime's execution provider in use." }),
  })
  .openapi('ModelInfo')

export const InfoResponse = z
  .object({
    version: z.string().openapi({ description: 'Version of the service (package.json).', example: '0.1.0' }),
    truncate: z.enum(TRUNCATE_MODES).openapi({ description: 'What a request that names no `truncate` does with a text over max_input_tokens (--truncate).' }),
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
  '- `event: done`, `data: {"model", "reasoning", "usage", "timings"}` (and `reasoning_window`, `windows` as /classify has them): once, last.',
  '',
  'A text read in several windows (truncate "windows") streams each window\'s reasoning in text order, each after',
  '`event: window`, `data: {"index", "count", "start", "end", "input_tokens"}` (its character span, as in `windows`);',
  'the deltas between two `window` events join to that window\'s reasoning. All windows run at once: the first streams',
  'live, a later one first sends what it wrote while the ones before it finished. Then `label` (the aggregate) and `done`',
  '(whose `reasoning` is the deciding window\'s). A text read in one window sends no `window` event.',
  '',
  'An error after the stream started arrives as `event: error`, `data: {"error": {"code", "message"}}`, and ends the stream.',
].join('\n')
