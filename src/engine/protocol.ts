/**
 * @module
 * Messages between the HTTP thread and the engine worker. The worker owns all engine state; the
 * HTTP thread only sends commands and receives events, each keyed by the sequence id it chose.
 */

/** Settings the worker starts with (`workerData`). */
export interface WorkerInit {
  modelDir: string
  device: 'auto' | 'cpu' | 'cuda'
  threads: number
  maxBatch: number
  maxBatchTokens: number
}

/** HTTP thread -> worker. */
export type Command =
  /** New sequences, appended to the waiting queue in this order. */
  | { type: 'enqueue'; sequences: { id: number; promptIds: number[] }[] }
  /** Sequences whose caller went away or whose deadline passed; gone at the next step. */
  | { type: 'cancel'; ids: number[] }
  /** Stop after the current step; the worker then exits. */
  | { type: 'shutdown' }
  /**
   * Crash drill: the worker throws `message` between steps, as a bug would, and dies. (Terminating
   * a worker from outside while ONNX Runtime runs aborts the whole process, so drills use this.)
   */
  | { type: 'crash'; message: string }

/** One sequence's progress, worker -> HTTP thread. */
export type SequenceEvent =
  /** The sequence left the queue: its prefill runs in this step. */
  | { type: 'start'; id: number }
  /** Newly stable reasoning text (never empty, never a split character). */
  | { type: 'token'; id: number; delta: string }
  /** Label scoring: index into the manifest's labels, and one probability per label. */
  | { type: 'label'; id: number; index: number; scores: number[] }
  /** The sequence finished; it has left the batch. */
  | { type: 'done'; id: number; reasoning: string; usage: { input_tokens: number; reasoning_tokens: number } }
  /** The sequence failed inside the engine; it has left the batch. */
  | { type: 'error'; id: number; message: string }

/** What the worker reports at start-up. */
export interface WorkerReady {
  provider: 'cpu' | 'cuda'
  /** Set when `auto` fell back to the CPU. */
  fallbackReason?: string
  threads: number
}

/** Worker -> HTTP thread. */
export type WorkerMessage =
  | { type: 'ready'; info: WorkerReady }
  /** Start-up failed; the worker exits. One line. */
  | { type: 'fatal'; message: string }
  /** Events of one step (batched: one message per forward pass, not per token). */
  | {
      type: 'events'
      events: SequenceEvent[]
      numRunning: number
      numWaiting: number
      /** Set on the message that ends a step: the rows of its prefill and decode passes. */
      step?: { numPrefillRows: number; numDecodeRows: number }
    }
