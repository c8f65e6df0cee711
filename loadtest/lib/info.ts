/**
 * @module
 * What the runner reads from the service once, before the load: the labels of its default model
 * (GET /info), against which every answer is checked, so that no label list is written here.
 */

/** The default model's labels; throws a one-line reason when /info cannot give them. */
export async function fetchLabels(baseUrl: string, apiKey?: string): Promise<string[]> {
  const headers: Record<string, string> = apiKey ? { authorization: `Bearer ${apiKey}` } : {}
  let res: Response
  try {
    res = await fetch(`${baseUrl}/info`, { headers, signal: AbortSignal.timeout(10_000) })
  } catch (e) {
    throw new Error(`GET ${baseUrl}/info failed: ${(e as Error).message}`)
  }
  if (res.status !== 200) throw new Error(`GET ${baseUrl}/info answered ${res.status}; the labels to check answers against come from it`)
  const info = (await res.json().catch(() => null)) as { models?: { labels?: unknown }[] } | null
  const labels = info?.models?.[0]?.labels
  if (!Array.isArray(labels) || labels.length === 0 || !labels.every((l) => typeof l === 'string')) {
    throw new Error(`GET ${baseUrl}/info: models[0].labels is not a list of labels`)
  }
  return labels
}
