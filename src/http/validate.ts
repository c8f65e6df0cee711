/**
 * @module
 * Request validation after the schema: model, text count, text length in characters, empty-after-
 * normalisation, deadline, and what to do with a text over the model's token limit (`truncate`).
 * It returns a `Valid*` value holding the prompts to run, which the engine never re-checks. Each
 * failure names the field, the limit and the value given.
 */
import type { TruncateMode } from '../config.js'
import { prepareText } from './long-text/prepare.js'
import type { PreparedText } from './long-text/prepare.js'
import type { ServedModel, ServiceLimits } from './service.js'
import { ApiError } from './errors.js'

export interface ValidRequest {
  model: ServedModel
  /** Per text, in request order: the prompts of its window(s). */
  texts: PreparedText[]
  /** `text` (one result) rather than `texts`. */
  single: boolean
  /** `performance.now()` deadline. */
  deadline: number
  /** Each window's own result in the answer (`windows_detail`). */
  windowsDetail: boolean
}

/** What a request says about long texts: `truncate` and `windows_detail`. */
export interface LongTextOptions {
  truncate?: TruncateMode | null | undefined
  windows_detail?: boolean | null | undefined
}

export interface LongTextChoice {
  mode: TruncateMode
  detail: boolean
}

/** The request's mode, or the server's (`--truncate`); per-window detail only where there are windows. */
export function resolveLongText(limits: ServiceLimits, body: LongTextOptions): LongTextChoice {
  const mode = body.truncate ?? limits.truncate
  const detail = body.windows_detail === true
  if (detail && mode !== 'windows') {
    throw new ApiError('invalid_request', `windows_detail: only with truncate "windows" (this request reads the text with "${mode}")`)
  }
  return { mode, detail }
}

export function resolveModel(models: readonly ServedModel[], id: string | undefined): ServedModel {
  if (id === undefined) return models[0]!
  const model = models.find((m) => m.id === id)
  if (!model) {
    throw new ApiError('unknown_model', `model: unknown model ${JSON.stringify(id)}; available: ${models.map((m) => m.id).join(', ')}`)
  }
  return model
}

export function resolveDeadline(limits: ServiceLimits, timeoutMs: number | undefined): number {
  if (timeoutMs !== undefined && timeoutMs > limits.timeoutMs) {
    throw new ApiError('invalid_request', `timeout_ms: must be at most ${limits.timeoutMs} (the server maximum), got ${timeoutMs}`)
  }
  return performance.now() + (timeoutMs ?? limits.timeoutMs)
}

/**
 * What a text may not hold: C0 control characters other than tab, newline and carriage return,
 * DEL, C1 control characters, and unpaired surrogates (a JSON `\ud800` escape is valid JSON but
 * not text).
 */
const FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Rejects a text holding a character of `FORBIDDEN`, naming the field, the character and its index. */
export function checkCharacters(text: string, field: string): void {
  const m = FORBIDDEN.exec(text)
  if (!m) return
  const codePoint = `U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`
  // Index in characters (code points), as --max-text-chars counts them.
  const index = [...text.slice(0, m.index)].length
  const what = /[\uD800-\uDFFF]/.test(m[0]) ? `an unpaired surrogate ${codePoint}` : `control character ${codePoint}`
  throw new ApiError(
    'invalid_request',
    `${field}: ${what} at index ${index} (characters from 0); control characters other than tab, newline and carriage return are not allowed`,
  )
}

/** What each normalisation rule keeps, for the message of a text it leaves empty. */
const KEPT: Record<string, string> = {
  'lower-alnum-v1': 'letters and digits only',
  'natural-v1': 'letters, digits, ! and ?, emoji and emoticons',
  none: 'anything but whitespace',
}

/**
 * Checks and encodes one text, cut or split by `mode` where it is over the model's token limit;
 * `field` names it in messages (`text`, `texts[3]`).
 */
export function encodeText(model: ServedModel, limits: ServiceLimits, text: string, field: string, mode: TruncateMode): PreparedText {
  // Cheap bound first (UTF-16 units >= code points), exact count only when it may matter.
  if (text.length > limits.maxTextChars) {
    const numChars = [...text].length
    if (numChars > limits.maxTextChars) {
      throw new ApiError('text_too_long', `${field}: at most ${limits.maxTextChars} characters, got ${numChars}`)
    }
  }
  checkCharacters(text, field)
  const prompt = model.encoder.encode(text)
  if (prompt.normalized.trim() === '' || prompt.numTextTokens === 0) {
    throw new ApiError(
      'text_empty',
      `${field}: nothing left to classify after normalisation (${model.normalize}: ${KEPT[model.normalize] ?? 'see the model card'}); send some words`,
    )
  }
  return prepareText(model, text, prompt, mode, field)
}

export function validateClassify(
  models: readonly ServedModel[],
  limits: ServiceLimits,
  body: { text?: string | undefined; texts?: string[] | undefined; model?: string | undefined; timeout_ms?: number | undefined } & LongTextOptions,
): ValidRequest {
  const model = resolveModel(models, body.model)
  if ((body.text === undefined) === (body.texts === undefined)) {
    throw new ApiError('invalid_request', 'body: exactly one of text (a string) and texts (an array of strings) is required')
  }
  const deadline = resolveDeadline(limits, body.timeout_ms)
  const { mode, detail } = resolveLongText(limits, body)
  if (body.text !== undefined) {
    return { model, texts: [encodeText(model, limits, body.text, 'text', mode)], single: true, deadline, windowsDetail: detail }
  }
  const texts = body.texts!
  if (texts.length === 0) throw new ApiError('invalid_request', 'texts: at least one text is required')
  if (texts.length > limits.maxTexts) {
    throw new ApiError('too_many_texts', `texts: at most ${limits.maxTexts} texts per request, got ${texts.length}`)
  }
  return { model, texts: texts.map((t, i) => encodeText(model, limits, t, `texts[${i}]`, mode)), single: false, deadline, windowsDetail: detail }
}

export function validateExplain(
  models: readonly ServedModel[],
  limits: ServiceLimits,
  body: { text: string; model?: string | undefined; timeout_ms?: number | undefined } & LongTextOptions,
): ValidRequest {
  const model = resolveModel(models, body.model)
  const deadline = resolveDeadline(limits, body.timeout_ms)
  const { mode, detail } = resolveLongText(limits, body)
  return { model, texts: [encodeText(model, limits, body.text, 'text', mode)], single: true, deadline, windowsDetail: detail }
}
