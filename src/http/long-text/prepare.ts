/**
 * @module
 * A checked text as the prompts the engine runs, by the request's `truncate` mode: one prompt for
 * a text within the model's limit (every mode alike), otherwise a 422 (`none`), the first or last
 * `max_input_tokens` of its tokens (`start`, `end`), or one prompt per window (`windows`).
 */
import type { TruncateMode } from '../../config.js'
import type { EncodedPrompt } from '../../model/tokenizer.js'
import { ApiError } from '../errors.js'
import type { ServedModel } from '../service.js'
import { UnplannableError, planWindows, toCodePoints } from './plan.js'
import type { Span } from './plan.js'

export interface TextWindow {
  prompt: EncodedPrompt
  /** The characters (code points) of the text as sent that it holds; null when cut by tokens. */
  span: Span | null
}

export interface PreparedText {
  /** One, or (`windows`) one per window, in text order. */
  windows: TextWindow[]
  /** Text tokens left unread (`start`, `end`); 0 otherwise. */
  numDropped: number
  mode: TruncateMode
}

/**
 * `whole` is `text` encoded in full (already checked for characters and emptiness); `field` names
 * the text in messages.
 */
export function prepareText(model: ServedModel, text: string, whole: EncodedPrompt, mode: TruncateMode, field: string): PreparedText {
  const max = model.maxInputTokens
  if (whole.numTextTokens <= max) return { windows: [{ prompt: whole, span: { start: 0, end: [...text].length } }], numDropped: 0, mode }
  switch (mode) {
    case 'none':
      throw new ApiError(
        'text_too_long',
        `${field}: at most ${max} tokens for model ${model.id}, got ${whole.numTextTokens} (truncate "none"; "windows", "start" or "end" read it)`,
      )
    case 'start':
    case 'end': {
      const prompt = model.encoder.cut(whole, mode === 'start' ? 'start' : 'end', max)
      return { windows: [{ prompt, span: null }], numDropped: whole.numTextTokens - max, mode }
    }
    case 'windows':
      return { windows: windowPrompts(model, text, whole, field), numDropped: 0, mode }
  }
}

function windowPrompts(model: ServedModel, text: string, whole: EncodedPrompt, field: string): TextWindow[] {
  // The planner asks for a span's count more than once (a piece, then the window it joins), and a
  // text of one sentence is its first piece.
  const encoded = new Map<string, EncodedPrompt>([[`0:${text.length}`, whole]])
  const encode = (start: number, end: number) => {
    const key = `${start}:${end}`
    let p = encoded.get(key)
    if (!p) encoded.set(key, (p = model.encoder.encode(text.slice(start, end))))
    return p
  }
  let spans: Span[]
  try {
    spans = planWindows(text, model.maxInputTokens, (s, e) => encode(s, e).numTextTokens)
  } catch (e) {
    if (!(e instanceof UnplannableError)) throw e
    throw new ApiError('text_too_long', `${field}: cannot be cut into windows of ${model.maxInputTokens} tokens for model ${model.id}: ${e.message}`)
  }
  const chars = toCodePoints(text, spans)
  return spans.map((s, i) => ({ prompt: encode(s.start, s.end), span: chars[i]! }))
}
