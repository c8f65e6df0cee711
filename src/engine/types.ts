/**
 * @module
 * What the engine promises its callers: the result of a sequence, the options of a request, and
 * the one error type with its reasons. The HTTP layer depends on this module, not on the worker
 * client that implements it.
 */

export type EngineErrorReason =
  /** Too many sequences in flight; retry later. */
  | 'queue_full'
  /** The request's deadline passed before it finished. */
  | 'deadline_exceeded'
  /** The caller went away (its signal aborted). */
  | 'cancelled'
  /** The worker is starting, restarting or gone. */
  | 'not_ready'
  /** The worker failed while running the request. */
  | 'engine_failed'
  /** The server is shutting down and the drain timeout passed (or no new work is taken). */
  | 'shutting_down'

export class EngineError extends Error {
  override name = 'EngineError'
  constructor(
    readonly reason: EngineErrorReason,
    message: string,
  ) {
    super(message)
  }
}

/** The result of one sequence. */
export interface SequenceResult {
  /** Index into the manifest's labels. */
  labelIndex: number
  scores: number[]
  reasoning: string
  /** Reasoning tokens generated (the marker excluded). */
  numReasoningTokens: number
  timings: { queue_ms: number; ttft_ms: number; total_ms: number }
}

export interface SubmitOptions {
  /** `performance.now()` time after which the request fails with `deadline_exceeded`. */
  deadline: number
  /** Aborting it cancels the request (`cancelled`); its sequences leave the batch next step. */
  signal?: AbortSignal
  /** Reasoning text as it is generated, per sequence index. */
  onDelta?: (index: number, delta: string) => void
  /** A sequence's result as soon as it has its label, before the request's other sequences end. */
  onResult?: (index: number, result: SequenceResult) => void
}
