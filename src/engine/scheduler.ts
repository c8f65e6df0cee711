/**
 * @module
 * One scheduling decision per engine step, as a pure function (the vLLM/TGI shape: running
 * sequences first, then waiting requests while the budgets allow).
 *
 * A step is at most two forward passes: one prefill pass over the requests admitted this step
 * (left-padded to the longest prompt among them, past length 0), then one decode pass of one
 * token for every sequence that was already running. A sequence admitted in step `t` therefore
 * decodes from step `t + 1`; a finished sequence leaves at the end of the step that finished it.
 */

export interface SchedulerLimits {
  /** Most sequences in the running batch (decode rows). */
  maxBatch: number
  /** Most tokens computed in one step: decode rows plus padded prefill tokens. */
  maxBatchTokens: number
}

export interface WaitingRequest {
  id: number
  /** Prompt length in tokens. */
  numPromptTokens: number
}

export interface SchedulerState {
  /** Waiting requests, oldest first. Cancelled ones have already been removed. */
  waiting: readonly WaitingRequest[]
  /** Ids of the running sequences (each decodes one token per step). */
  running: readonly number[]
}

export interface SchedulerOutput {
  /** Waiting requests admitted this step, in queue order (a prefix of `waiting`). */
  prefillIds: number[]
  /** Tokens the prefill pass computes: `prefillIds.length` times the longest of their prompts. */
  numPrefillTokens: number
  /** Running sequences decoded this step. */
  decodeIds: number[]
  /** `decodeIds.length + numPrefillTokens`. */
  numScheduledTokens: number
}

/**
 * Decides the next step.
 *
 * - Every running sequence decodes (the running batch never exceeds `maxBatch`).
 * - Waiting requests are admitted in order while a batch row is free and the padded prefill fits
 *   in what the decode rows left of `maxBatchTokens`. The first request that does not fit stops
 *   admission (no overtaking, so a long prompt cannot starve).
 * - Progress: when nothing is running, the oldest request is admitted even if its prompt alone
 *   exceeds the token budget.
 */
export function schedule(state: SchedulerState, limits: SchedulerLimits): SchedulerOutput {
  const { maxBatch, maxBatchTokens } = limits
  const decodeIds = [...state.running]
  if (decodeIds.length > maxBatch) {
    throw new Error(`running batch ${decodeIds.length} exceeds max_batch ${maxBatch}`)
  }
  const numFreeRows = maxBatch - decodeIds.length
  const tokenBudget = maxBatchTokens - decodeIds.length

  const prefillIds: number[] = []
  let longest = 0
  for (const req of state.waiting) {
    if (prefillIds.length >= numFreeRows) break
    const nextLongest = Math.max(longest, req.numPromptTokens)
    const cost = (prefillIds.length + 1) * nextLongest
    const forced = prefillIds.length === 0 && decodeIds.length === 0
    if (cost > tokenBudget && !forced) break
    prefillIds.push(req.id)
    longest = nextLongest
  }
  const numPrefillTokens = prefillIds.length * longest

  // NOTE: invariants. The batch stays within max_batch; the prefill fits in the budget the decode
  // rows left, unless it is the one forced admission (nothing running). The config guarantees
  // max_batch_tokens >= max_batch, so decode rows alone never exceed the budget.
  if (decodeIds.length + prefillIds.length > maxBatch) throw new Error('batch over max_batch')
  const forcedAlone = decodeIds.length === 0 && prefillIds.length === 1
  if (numPrefillTokens > Math.max(tokenBudget, 0) && !forcedAlone) {
    throw new Error('prefill over max_batch_tokens')
  }
  return { prefillIds, numPrefillTokens, decodeIds, numScheduledTokens: decodeIds.length + numPrefillTokens }
}
