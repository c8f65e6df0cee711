// Also imported by the k6 scripts (loadtest/k6/lib.ts), which run outside Node: no Node imports here.

/** Texts from JSON lines (`{"text": ...}`) or plain lines; blank lines skipped. */
export function parseTexts(content: string): string[] {
  const out: string[] = []
  for (const line of content.split(/\r?\n/)) {
    const t = line.trim()
    if (t === '') continue
    if (t.startsWith('{')) {
      const j = JSON.parse(t) as { text?: unknown }
      if (typeof j.text === 'string' && j.text.trim() !== '') out.push(j.text)
    } else out.push(t)
  }
  return out
}
