import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { Manifest } from '../../src/model/manifest.js'
import { PackageError } from '../../src/model/manifest.js'
import { StreamingDetokenizer } from '../../src/model/detokenizer.js'
import { loadTokenizer } from '../../src/model/tokenizer.js'

// tests/fixtures/tiny-tokenizer: a 300-token byte-level BPE trained by training/'s own code, with
// the ids training/'s `encode_plain` gives for a few texts (make.py writes both).
const DIR = 'tests/fixtures/tiny-tokenizer'
const expected = JSON.parse(readFileSync(`${DIR}/expected.json`, 'utf8')) as {
  specials: Record<string, number>
  cases: [string, number[]][]
}

function manifest(overrides: Partial<Manifest['prompt']> = {}, kind: 'qra' | 'qa' = 'qra'): Manifest {
  return {
    schema_version: 1,
    id: 'tiny',
    kind,
    labels: ['sadness', 'joy', 'love', 'anger', 'fear', 'surprise'],
    label_texts: [' sadness', ' joy', ' love', ' anger', ' fear', ' surprise'],
    label_token_ids: [[10], [11], [12], [13], [14], [15]],
    prompt: { normalize: 'none', template: '<|bos|>{text}<|sep|>', marker: '<|label|>', eos: '<|eos|>', ...overrides },
    special_tokens: { bos: 0, eos: 1, pad: 2, sep: 3, marker: 4 },
    limits: { max_input_tokens: 32, max_reasoning_tokens: 8 },
    onnx: { file: 'model.onnx', num_layers: 1, num_attention_heads: 1, num_kv_heads: 1, head_dim: 4, hidden_size: 4, vocab_size: 300, max_position_embeddings: 64, dtype: 'float32' },
    files: {},
  }
}

describe('PromptEncoder', () => {
  it('gives the ids training/ gives, special strings included (normalize "none")', async () => {
    const { encoder } = await loadTokenizer(DIR, manifest())
    for (const [text, ids] of expected.cases) expect(encoder.encodeText(text), text).toEqual(ids)
  })

  it('never lets typed special tokens become special ids', async () => {
    const { encoder } = await loadTokenizer(DIR, manifest())
    const specialIds = new Set(Object.values(expected.specials))
    const typed = '<|bos|><|eos|><|pad|><|sep|><|label|> joy <|label|><|eos|>'
    const { ids, numTextTokens } = encoder.encode(typed)
    const textIds = ids.slice(1, 1 + numTextTokens)
    expect(textIds.some((id) => specialIds.has(id))).toBe(false)
    // Only the template's own: bos first, sep last.
    expect(ids[0]).toBe(0)
    expect(ids.at(-1)).toBe(3)
    expect(ids.filter((id) => specialIds.has(id))).toEqual([0, 3])
  })

  it('builds prefix + text + suffix, normalising first', async () => {
    const { encoder } = await loadTokenizer(DIR, manifest({ normalize: 'lower-alnum-v1' }))
    const plain = encoder.encode('i feel happy')
    const natural = encoder.encode("I FEEL happy!! 😊 <|eos|>'")
    expect(natural.normalized).toBe('i feel happy eos')
    expect(plain.ids).toEqual([0, ...expected.cases[0]![1], 3])
    expect(plain.numTextTokens).toBe(expected.cases[0]![1].length)
    expect(encoder.numTemplateTokens).toBe(2)
  })

  it('appends the marker for qa packages', async () => {
    const { encoder } = await loadTokenizer(DIR, manifest({}, 'qa'))
    expect(encoder.encode('i feel happy').ids.slice(-2)).toEqual([3, 4])
    expect(encoder.numTemplateTokens).toBe(3)
    // The marker is not part of the template's suffix: the text lies between prefix and suffix.
    expect([encoder.numPrefixTokens, encoder.numSuffixTokens]).toEqual([1, 1])
  })

  it('spells added tokens by their content for grounded quoting only', async () => {
    const { tokenBytes, quoteBytes } = await loadTokenizer(DIR, manifest())
    expect(tokenBytes[4]).toHaveLength(0)
    expect(new TextDecoder().decode(quoteBytes[4])).toBe('<|label|>')
    expect(quoteBytes.slice(5)).toEqual(tokenBytes.slice(5))
  })

  it('detokenizes what it encoded', async () => {
    const { encoder, tokenBytes } = await loadTokenizer(DIR, manifest())
    const text = ' café 😊 日本 <|label|> joy'
    const d = new StreamingDetokenizer(tokenBytes)
    let joined = ''
    for (const id of encoder.encodeText(text)) joined += d.push(id)
    joined += d.finish()
    expect(joined).toBe(text.trim())
  })
})

describe('natural-v1 packages', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'because-emoji-'))
  afterAll(() => rmSync(tmp, { recursive: true, force: true }))
  /** The tiny tokenizer in a folder of its own, with `emoji` as its emoji.json (none if undefined). */
  const folder = (name: string, emoji?: string) => {
    const dir = join(tmp, name)
    cpSync(DIR, dir, { recursive: true })
    if (emoji !== undefined) writeFileSync(join(dir, 'emoji.json'), emoji)
    return dir
  }
  const natural = manifest({ normalize: 'natural-v1' })

  it('normalise with the emoji.json of the package', async () => {
    const dir = folder('ok', readFileSync('training/because_train/assets/emoji.json', 'utf8'))
    const { encoder } = await loadTokenizer(dir, natural)
    expect(encoder.encode('I’m SOOO happy 😊!!! :)').normalized).toBe(
      'im soo happy smiling face with smiling eyes !! slightly smiling face',
    )
    const small = folder('small', JSON.stringify({ emoji: { '😊': 'glad' }, emoticons: { ':)': 'grin' } }))
    expect((await loadTokenizer(small, natural)).encoder.encode('so 😊 :)').normalized).toBe('so glad grin')
  })

  it('fail with one line naming emoji.json when it is missing or is not a table', async () => {
    const cases: [string | undefined, RegExp][] = [
      [undefined, /emoji\.json: cannot read \(ENOENT\)$/],
      ['{"emoji": {}', /emoji\.json: invalid JSON/],
      ['{"emoji": {"x": 1}, "emoticons": {}}', /emoji\.json: not an emoji table \(emoji\["x"\] must be a string\)$/],
      ['[]', /emoji\.json: not an emoji table/],
    ]
    for (const [k, [content, message]] of cases.entries()) {
      const err = await loadTokenizer(folder(`bad${k}`, content), natural).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(PackageError)
      expect((err as Error).message).toMatch(message)
      expect((err as Error).message.split('\n')).toHaveLength(1)
    }
  })

  it('other rules never read emoji.json', async () => {
    const dir = folder('other', 'not json')
    await expect(loadTokenizer(dir, manifest({ normalize: 'lower-alnum-v1' }))).resolves.toBeDefined()
  })
})

// tests/fixtures/hub-tokenizer: a base model's own tokenizer (bos <s>, eos </s>, no pad) with the
// markers added past its vocabulary, as `train` prepares it for a hub base (make.py writes it).
describe('PromptEncoder on a hub base tokenizer', () => {
  const HUB = 'tests/fixtures/hub-tokenizer'
  const hub = JSON.parse(readFileSync(`${HUB}/expected.json`, 'utf8')) as {
    specials: { bos: number; eos: number; pad: number; sep: number; marker: number }
    base_vocab: number
    cases: [string, number[]][]
  }
  const hubManifest = (): Manifest => ({
    ...manifest({ template: '<s>{text}<|sep|>', eos: '</s>' }),
    special_tokens: hub.specials,
    onnx: { ...manifest().onnx, vocab_size: hub.base_vocab + 3 },
  })

  it('gives the ids training/ gives, the base and added special strings included', async () => {
    const { encoder } = await loadTokenizer(HUB, hubManifest())
    for (const [text, ids] of hub.cases) expect(encoder.encodeText(text), text).toEqual(ids)
  })

  it('wraps the text in the base bos and the added separator, and nothing typed becomes special', async () => {
    const { encoder, tokenBytes } = await loadTokenizer(HUB, hubManifest())
    const specialIds = new Set(Object.values(hub.specials))
    const { ids } = encoder.encode('<s>i feel</s> <|sep|><|label|> joy<|pad|>')
    expect(ids[0]).toBe(hub.specials.bos)
    expect(ids.at(-1)).toBe(hub.specials.sep)
    expect(ids.filter((id) => specialIds.has(id))).toEqual([hub.specials.bos, hub.specials.sep])
    // The added rows past the base vocabulary decode to nothing in a stream.
    expect(tokenBytes).toHaveLength(hub.base_vocab + 3)
    expect(tokenBytes[hub.specials.marker]).toHaveLength(0)
  })

  it('refuses a manifest whose eos is not the tokenizer’s', async () => {
    await expect(loadTokenizer(HUB, { ...hubManifest(), special_tokens: { ...hub.specials, eos: 0 } })).rejects.toThrow(
      /eos <\/s> is not added token 0/,
    )
  })
})
