/**
 * @module
 * Messages between the HTTP thread and the engine worker. The worker owns all engine state; the
 * HTTP thread only sends commands and receives events, each keyed by the sequence id it chose.
 */
import type { MessagePort } from 'node:worker_threads'

/** Settings the worker starts with (`workerData`). */
export interface WorkerInit {
  modelDir: string
  /** The package's graph to run, already checked against its manifest on the HTTP thread. */
  graph: string
  device: 'auto' | 'cpu' | 'cuda'
  threads: number
  /** `--spin-wait`. */
  spinWait: boolean
  maxBatch: number
  maxBatchTokens: number
  /**
   * Test-only crash drill (an engine started with `crashDrill: true`): a string posted here is
   * thrown by the worker between two steps, as a bug would, and the worker dies. It is a channel
   * of its own so that the commands below have no way to crash a production worker; drills need
   * it because terminating a worker from outside while ONNX Runtime runs aborts the whole process.
   */
  crashDrill?: MessagePort
}

/** HTTP thread -> worker. */
export type Command =
  /** New sequences, appended to the waiting queue in this order. */
  | { type: 'enqueue'; sequences: { id: number; promptIds: number[] }[] }
  /** Sequences whose caller went away or whose deadline passed; gone at the next step. */
  | { type: 'cancel'; ids: number[] }
  /** Stop after the current step; the worker then exits. */
  | { type: 'shutdown' }

/** One sequence's progress, worker -> HTTP thread. */
export type SequenceEvent =
  /** The sequence left the queue: its prefill runs in this step. */
  | { type: 'start'; id: number }
  /**
   * Newly stable reasoning text (never empty, never a split character). The reasoning crosses only
   * this way: a sequence's deltas, joined, are its whole reasoning.
   */
  | { type: 'token'; id: number; delta: string }
  /**
   * The sequence finished and has left the batch: its label (index into the manifest's labels),
   * one probability per label, and how many reasoning tokens it wrote (the marker excluded).
   */
  | { type: 'done'; id: number; labelIndex: number; scores: number[]; numReasoningTokens: number }
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
