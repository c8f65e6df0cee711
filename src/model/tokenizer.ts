/**
 * @module
 * Tokenizer and prompt building (docs/model-package.md, "Building the input").
 *
 * `@huggingface/tokenizers` has no file loader, so the JSON files are read here. Its `encode`
 * always matches added tokens (`<|eos|>` and the like) inside the text, which would let a user
 * type the model's control tokens. So the user text is cut at every added-token string, and each
 * occurrence is encoded as two ordinary pieces (its first character, then the rest), every piece
 * on its own: exactly what `training/because_train/tokenizer.py` `encode_plain` does, so both
 * sides produce the same ids for the same text, and no piece can match an added token. The ids
 * are checked anyway: a special id in user text is an error, never a prompt.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Tokenizer } from '@huggingface/tokenizers'
import { tokenToBytes } from './byte-level.js'
import type { Manifest } from './manifest.js'
import { EMOJI_FILE, PackageError } from './manifest.js'
import { EmojiTable, normalize } from './normalize.js'
import type { NormalizeRule } from './normalize.js'

/** The parts of tokenizer.json this module reads. */
export interface TokenizerJson {
  added_tokens?: { id: number; content: string; special?: boolean }[]
  model?: { type?: string; vocab?: Record<string, number> }
  decoder?: { type?: string } | null
  [key: string]: unknown
}

/** A prompt ready for the engine. */
export interface EncodedPrompt {
  /** `prefix + text + suffix` (+ marker for `qa`), as one id list. */
  ids: number[]
  /** Number of ids that came from the user text. */
  numTextTokens: number
  /** The text after normalisation (never logged; used for the empty check). */
  normalized: string
}

export class PromptEncoder {
  readonly #tokenizer: Tokenizer
  readonly #prefixIds: number[]
  readonly #suffixIds: number[]
  readonly #rule: NormalizeRule
  readonly #emoji: EmojiTable | undefined
  /** Contents of every added token (such strings cannot overlap, so their order does not matter). */
  readonly #addedStrings: readonly string[]
  readonly #specialIds: ReadonlySet<number>
  readonly #appendMarker: number | null

  constructor(opts: {
    tokenizer: Tokenizer
    template: string
    rule: NormalizeRule
    /** `natural-v1`'s table (the package's emoji.json). */
    emoji?: EmojiTable
    addedStrings: readonly string[]
    specialIds: ReadonlySet<number>
    /** `qa` packages append the marker id after the suffix. */
    appendMarker: number | null
  }) {
    const [prefix, suffix] = opts.template.split('{text}') as [string, string]
    this.#tokenizer = opts.tokenizer
    // The template's own special tokens are recognised here, and only here.
    this.#prefixIds = prefix ? opts.tokenizer.encode(prefix, { add_special_tokens: false }).ids : []
    this.#suffixIds = suffix ? opts.tokenizer.encode(suffix, { add_special_tokens: false }).ids : []
    this.#rule = opts.rule
    this.#emoji = opts.emoji
    if (opts.rule === 'natural-v1' && !opts.emoji) throw new Error('normalize natural-v1 needs the emoji table')
    this.#addedStrings = opts.addedStrings
    this.#specialIds = opts.specialIds
    this.#appendMarker = opts.appendMarker
  }

  /** Ids of the (already normalised) user text; never contains a special id. */
  encodeText(text: string): number[] {
    let pieces = [text]
    for (const special of this.#addedStrings) {
      const split: string[] = []
      for (const piece of pieces) {
        const parts = piece.split(special)
        parts.forEach((part, k) => {
          if (k > 0) split.push(special.slice(0, 1), special.slice(1))
          split.push(part)
        })
      }
      pieces = split
    }
    const ids: number[] = []
    for (const piece of pieces) {
      if (!piece) continue
      for (const id of this.#tokenizer.encode(piece, { add_special_tokens: false }).ids) {
        if (this.#specialIds.has(id)) throw new Error(`user text produced special id ${id}`)
        ids.push(id)
      }
    }
    return ids
  }

  /** Normalises and encodes a user text into the full prompt. */
  encode(text: string): EncodedPrompt {
    const normalized = normalize(text, this.#rule, this.#emoji)
    const textIds = this.encodeText(normalized)
    const ids = [...this.#prefixIds, ...textIds, ...this.#suffixIds]
    if (this.#appendMarker !== null) ids.push(this.#appendMarker)
    return { ids, numTextTokens: textIds.length, normalized }
  }

  /**
   * `prompt` with only the first (`start`) or the last (`end`) `maxTextTokens` of its text's ids,
   * the template's ids around them kept. Cutting the encoded text, not the characters, is what
   * training/ `evaluate` does (`prompt_ids(text_ids[:limit])`), so `start` gives the same ids.
   */
  cut(prompt: EncodedPrompt, keep: 'start' | 'end', maxTextTokens: number): EncodedPrompt {
    const n = prompt.numTextTokens
    if (n <= maxTextTokens) return prompt
    const from = this.#prefixIds.length
    const kept = keep === 'start' ? prompt.ids.slice(from, from + maxTextTokens) : prompt.ids.slice(from + n - maxTextTokens, from + n)
    return {
      ids: [...this.#prefixIds, ...kept, ...prompt.ids.slice(from + n)],
      numTextTokens: maxTextTokens,
      normalized: prompt.normalized,
    }
  }

  /** Number of ids before the text (the template's prefix). */
  get numPrefixTokens(): number {
    return this.#prefixIds.length
  }

  /** Number of ids of the template's suffix, after the text (not counting the marker of `qa`). */
  get numSuffixTokens(): number {
    return this.#suffixIds.length
  }

  /** Number of ids the template adds around the text (the marker included for `qa`). */
  get numTemplateTokens(): number {
    return this.#prefixIds.length + this.#suffixIds.length + (this.#appendMarker === null ? 0 : 1)
  }
}

/** Everything the service needs from a package's tokenizer files. */
export interface LoadedTokenizer {
  encoder: PromptEncoder
  /** Bytes of every id (empty for added tokens), for the streaming detokenizer. */
  tokenBytes: Uint8Array[]
  /**
   * Bytes of every id as grounded quoting reads them (training/ `token_bytes`): as `tokenBytes`,
   * except that an added token stands for its content in UTF-8.
   */
  quoteBytes: Uint8Array[]
}

/** Reads tokenizer.json and tokenizer_config.json of `dir` and builds the prompt encoder. */
export async function loadTokenizer(dir: string, manifest: Manifest): Promise<LoadedTokenizer> {
  const json = await readJson<TokenizerJson>(join(dir, 'tokenizer.json'))
  const config = await readJson<Record<string, unknown>>(join(dir, 'tokenizer_config.json'))
  const where = join(dir, 'tokenizer.json')
  if (json.model?.type !== 'BPE' || !json.model.vocab) {
    throw new PackageError(`${where}: expected a BPE model with a vocab`)
  }
  if (json.decoder?.type !== 'ByteLevel') {
    throw new PackageError(`${where}: expected a ByteLevel decoder (byte-level BPE)`)
  }
  const added = json.added_tokens ?? []
  const specials = manifest.special_tokens
  const byContent = new Map(added.map((t) => [t.content, t.id]))
  if (byContent.get(manifest.prompt.marker) !== specials.marker) {
    throw new PackageError(`${where}: marker ${manifest.prompt.marker} is not added token ${specials.marker}`)
  }
  if (byContent.get(manifest.prompt.eos) !== specials.eos) {
    throw new PackageError(`${where}: eos ${manifest.prompt.eos} is not added token ${specials.eos}`)
  }

  const tokenizer = new Tokenizer(json, config)
  const specialIds = new Set<number>([...Object.values(specials), ...added.map((t) => t.id)])

  const { tokenBytes, quoteBytes } = vocabularyBytes(json, manifest.onnx.vocab_size, where)
  const emoji = manifest.prompt.normalize === 'natural-v1' ? await loadEmojiTable(dir) : undefined

  const encoder = new PromptEncoder({
    tokenizer,
    template: manifest.prompt.template,
    rule: manifest.prompt.normalize,
    emoji,
    addedStrings: added.map((t) => t.content),
    specialIds,
    appendMarker: manifest.kind === 'qa' ? specials.marker : null,
  })
  return { encoder, tokenBytes, quoteBytes }
}

/**
 * The bytes of every id of a byte-level vocabulary: `tokenBytes` for the detokenizer (empty for added
 * tokens) and `quoteBytes` for grounded quoting (an added token as its content in UTF-8, as
 * training/ `token_bytes`). Throws a `PackageError` naming `where` for an id past `vocabSize` or a
 * token that is not byte-level.
 */
export function vocabularyBytes(
  json: Pick<TokenizerJson, 'added_tokens' | 'model'>,
  vocabSize: number,
  where: string,
): { tokenBytes: Uint8Array[]; quoteBytes: Uint8Array[] } {
  const added = json.added_tokens ?? []
  const tokenBytes: Uint8Array[] = Array.from({ length: vocabSize }, () => new Uint8Array(0))
  const addedIds = new Set(added.map((t) => t.id))
  for (const [token, id] of Object.entries(json.model?.vocab ?? {})) {
    if (id >= vocabSize) throw new PackageError(`${where}: token id ${id} >= vocab_size ${vocabSize}`)
    if (addedIds.has(id)) continue
    const bytes = tokenToBytes(token)
    if (bytes === null) throw new PackageError(`${where}: token ${JSON.stringify(token)} is not byte-level`)
    tokenBytes[id] = bytes
  }
  const quoteBytes = tokenBytes.slice()
  const utf8 = new TextEncoder()
  for (const t of added) if (t.id < vocabSize) quoteBytes[t.id] = utf8.encode(t.content)
  return { tokenBytes, quoteBytes }
}

/** Reads the package's `emoji.json` (the table `natural-v1` names emoji and emoticons with). */
export async function loadEmojiTable(dir: string): Promise<EmojiTable> {
  const path = join(dir, EMOJI_FILE)
  const doc = await readJson<unknown>(path)
  try {
    return EmojiTable.parse(doc)
  } catch (e) {
    throw new PackageError(`${path}: not an emoji table (${(e as Error).message})`)
  }
}

async function readJson<T>(path: string): Promise<T> {
  let raw: string
  try {
    raw = await readFile(path, 'utf8')
  } catch (e) {
    throw new PackageError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`)
  }
  try {
    return JSON.parse(raw) as T
  } catch (e) {
    throw new PackageError(`${path}: invalid JSON (${(e as Error).message})`)
  }
}
