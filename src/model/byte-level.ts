/**
 * @module
 * GPT-2's reversible map between bytes and printable characters, which byte-level BPE vocabularies
 * (Hugging Face `ByteLevel` pre-tokenizer and decoder) use to spell every token.
 */

function buildByteToChar(): string[] {
  // The printable bytes map to themselves; the other 68 take code points 256, 257, ... in order.
  const printable: number[] = []
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b)
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b)
  for (let b = 0xae; b <= 0xff; b++) printable.push(b)
  const table = new Array<string>(256)
  for (const b of printable) table[b] = String.fromCodePoint(b)
  let next = 256
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCodePoint(next++)
  }
  return table
}

/** `BYTE_TO_CHAR[b]` is the character that spells byte `b` in a token string. */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar()

/** The inverse of `BYTE_TO_CHAR`. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]))

/**
 * The bytes a byte-level token string stands for, or `null` when it holds a character outside the
 * table (an added token such as `<|eos|>` is spelled in plain characters, not through the table).
 */
export function tokenToBytes(token: string): Uint8Array | null {
  const bytes = new Uint8Array(token.length)
  let n = 0
  for (const ch of token) {
    const b = CHAR_TO_BYTE.get(ch)
    if (b === undefined) return null
    bytes[n++] = b
  }
  return bytes.subarray(0, n)
}
