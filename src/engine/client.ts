/**
 * @module
 * The HTTP thread's handle on one model's engine worker: admission (a bounded number of sequences
 * in flight), deadlines, cancellation, and turning worker events back into per-request results.
 *
 * Admission happens here, before anything is sent to the worker: a request whose sequences would
 * push the in-flight count past `maxBatch + maxQueue` fails at once with `queue_full`. Its slots
 * are given back when its last sequence ends, however it ends (done, error, deadline, abort).
 */
import { MessageChannel, Worker } from 'node:worker_threads'
import type { MessagePort } from 'node:worker_threads'
import type { Logger } from 'pino'
import type { SelectedGraph } from '../model/manifest.js'
import type { ModelPackage } from '../model/package.js'
import type { EngineObserver } from '../obs/metrics.js'
import type { Command, SequenceEvent, WorkerInit, WorkerMessage, WorkerReady } from './protocol.js'
import { EngineError } from './types.js'
import type { SequenceResult, SubmitOptions } from './types.js'

export interface EngineClientOptions {
  pkg: ModelPackage
  /** The package's graph to run (`selectGraph`). */
  graph: SelectedGraph
  device: WorkerInit['device']
  threads: number
  spinWait: boolean
  maxBatch: number
  maxBatchTokens: number
  maxQueue: number
  logger: Logger
  /** Test-only: lets `crashWorker()` make the worker die (see `WorkerInit.crashDrill`). */
  crashDrill?: boolean
}

interface Tracked {
  index: number
  submittedAt: number
  startedAt?: number
  firstTokenAt?: number
  lastTokenAt?: number
  /** The deltas so far; the worker sends the reasoning only this way. */
  reasoning: string
  request: RequestState
}

interface RequestState {
  ids: number[]
  results: (SequenceResult | undefined)[]
  numDone: number
  settled: boolean
  resolve: (results: SequenceResult[]) => void
  reject: (e: EngineError) => void
  onDelta?: (index: number, delta: string) => void
  onResult?: (index: number, result: SequenceResult) => void
  cleanup: () => void
}

const WORKER_ENTRY = new URL('./worker-entry.mjs', import.meta.url)

export class EngineClient {
  readonly pkg: ModelPackage
  readonly #opts: EngineClientOptions
  readonly #log: Logger
  #worker: Worker | null = null
  /** This side of the current worker's crash-drill channel (`crashDrill` only). */
  #drill: MessagePort | null = null
  #info: WorkerReady | null = null
  #closing = false
  #nextId = 1
  readonly #tracked = new Map<number, Tracked>()
  /** Last counts the worker reported. */
  numRunning = 0
  numWaiting = 0
  numRestarts = 0
  /** Where latencies, batch sizes, cancellations and restarts are reported (metrics). */
  observer: EngineObserver | null = null
  /** Resolved (and cleared) when nothing is in flight any more; see `idle()`. */
  #onIdle: (() => void)[] = []

  private constructor(opts: EngineClientOptions) {
    this.pkg = opts.pkg
    this.#opts = opts
    this.#log = opts.logger.child({ model: opts.pkg.manifest.id })
  }

  /** Starts the worker and resolves once its session is ready; rejects with its one-line reason. */
  static async start(opts: EngineClientOptions): Promise<EngineClient> {
    const client = new EngineClient(opts)
    await client.#spawn()
    return client
  }

  get id(): string {
    return this.pkg.manifest.id
  }

  get ready(): boolean {
    return this.#info !== null && !this.#closing
  }

  get info(): WorkerReady | null {
    return this.#info
  }

  /** The graph the worker runs. */
  get graph(): SelectedGraph {
    return this.#opts.graph
  }

  /** Sequences accepted and not finished. */
  get numInFlight(): number {
    return this.#tracked.size
  }

  /** Most sequences in flight before `queue_full`. */
  get capacity(): number {
    return this.#opts.maxBatch + this.#opts.maxQueue
  }

  /**
   * Runs prompts as one request: all admitted or none, results in input order. Admission failures
   * (`not_ready`, `queue_full`, `cancelled`) throw at once, so a caller can answer before it starts
   * streaming; later failures reject the promise, and cancel the request's other sequences.
   */
  submit(prompts: number[][], opts: SubmitOptions): Promise<SequenceResult[]> {
    if (!this.ready || !this.#worker) throw new EngineError('not_ready', `model ${this.id} is not ready`)
    if (this.numInFlight + prompts.length > this.capacity) {
      throw new EngineError(
        'queue_full',
        `model ${this.id} has ${this.numInFlight} sequences in flight and this request adds ${prompts.length}; at most ${this.capacity} (max_batch + max_queue)`,
      )
    }
    if (opts.signal?.aborted) throw new EngineError('cancelled', 'the client went away')
    const now = performance.now()
    return new Promise<SequenceResult[]>((resolve, reject) => {
      const ids = prompts.map(() => this.#nextId++)
      const request: RequestState = {
        ids,
        results: new Array(prompts.length),
        numDone: 0,
        settled: false,
        resolve,
        reject,
        cleanup: () => {},
        ...(opts.onDelta ? { onDelta: opts.onDelta } : {}),
        ...(opts.onResult ? { onResult: opts.onResult } : {}),
      }
      ids.forEach((id, index) => this.#tracked.set(id, { index, submittedAt: now, reasoning: '', request }))

      const timer = setTimeout(
        () => this.#fail(request, new EngineError('deadline_exceeded', `the deadline passed after ${Math.round(performance.now() - now)} ms`)),
        Math.max(0, opts.deadline - now),
      )
      const onAbort = () => this.#fail(request, new EngineError('cancelled', 'the client went away'))
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      request.cleanup = () => {
        clearTimeout(timer)
        opts.signal?.removeEventListener('abort', onAbort)
      }
      this.#send({ type: 'enqueue', sequences: prompts.map((promptIds, i) => ({ id: ids[i]!, promptIds })) })
    })
  }

  /**
   * Test-only crash drill (an engine started with `crashDrill: true`): makes the worker throw
   * between two steps, as a bug would. The requests it held fail with `engine_failed` and a new
   * worker starts. Resolves when the old one has exited.
   */
  async crashWorker(message = 'crash drill'): Promise<void> {
    if (!this.#opts.crashDrill) throw new Error('crashWorker: this engine was started without crashDrill')
    const worker = this.#worker
    const drill = this.#drill
    if (!worker || !drill) return
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
    drill.postMessage(message)
    await exited
  }

  /** Resolves once no sequence is in flight (at once when none is). */
  idle(): Promise<void> {
    if (this.#tracked.size === 0) return Promise.resolve()
    return new Promise<void>((resolve) => this.#onIdle.push(resolve))
  }

  /** Ends every request in flight with `error` (their sequences leave the batch next step). */
  failAll(error: EngineError): void {
    for (const r of new Set([...this.#tracked.values()].map((t) => t.request))) this.#fail(r, error)
  }

  /** Stops the worker after its current step; requests still in flight fail with `shutting_down`. */
  async close(): Promise<void> {
    this.#closing = true
    const worker = this.#worker
    if (!worker) return
    this.failAll(new EngineError('shutting_down', 'the server is shutting down'))
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
    this.#send({ type: 'shutdown' })
    // NOTE: terminate() while ONNX Runtime runs aborts the process; it is only a last resort for a
    // worker that did not finish its step in 10 s.
    const timeout = setTimeout(() => void worker.terminate(), 10_000)
    await exited
    clearTimeout(timeout)
  }

  #send(command: Command): void {
    this.#worker?.postMessage(command)
  }

  /** Ends a request with an error (once), cancelling its unfinished sequences in the worker. */
  #fail(request: RequestState, error: EngineError): void {
    if (request.settled) return
    request.settled = true
    request.cleanup()
    const open = request.ids.filter((id) => this.#tracked.has(id))
    for (const id of open) this.#tracked.delete(id)
    if (open.length > 0 && error.reason !== 'engine_failed') this.#send({ type: 'cancel', ids: open })
    if (error.reason === 'cancelled') this.observer?.cancelled()
    request.reject(error)
    this.#checkIdle()
  }

  #checkIdle(): void {
    if (this.#tracked.size > 0 || this.#onIdle.length === 0) return
    for (const resolve of this.#onIdle.splice(0)) resolve()
  }

  #onEvent(e: SequenceEvent): void {
    const t = this.#tracked.get(e.id)
    if (!t) return // cancelled or failed already
    const now = performance.now()
    switch (e.type) {
      case 'start':
        t.startedAt = now
        break
      case 'token':
        if (t.firstTokenAt === undefined) this.#firstToken(t, now)
        else this.observer?.interToken((now - t.lastTokenAt!) / 1000)
        t.lastTokenAt = now
        t.reasoning += e.delta
        t.request.onDelta?.(t.index, e.delta)
        break
      case 'done':
        // Without reasoning (a `qa` model, or an empty one) the label is the first token.
        if (t.firstTokenAt === undefined) this.#firstToken(t, now)
        this.#finish(t, e, now)
        break
      case 'error':
        this.#log.error({ err: e.message, sequence: e.id }, 'sequence failed in the engine')
        this.#fail(t.request, new EngineError('engine_failed', `the model failed on this input: ${e.message}`))
        break
    }
  }

  #firstToken(t: Tracked, now: number): void {
    t.firstTokenAt = now
    this.observer?.firstToken((now - t.submittedAt) / 1000)
  }

  /** Records a finished sequence; resolves its request when it was the last one. */
  #finish(t: Tracked, e: Extract<SequenceEvent, { type: 'done' }>, now: number): void {
    const r = t.request
    this.#tracked.delete(e.id)
    const startedAt = t.startedAt ?? now
    this.observer?.done((startedAt - t.submittedAt) / 1000, (now - t.submittedAt) / 1000, e.numReasoningTokens)
    const result: SequenceResult = {
      labelIndex: e.labelIndex,
      scores: e.scores,
      reasoning: t.reasoning,
      numReasoningTokens: e.numReasoningTokens,
      timings: {
        queue_ms: round(startedAt - t.submittedAt),
        ttft_ms: round((t.firstTokenAt ?? now) - t.submittedAt),
        total_ms: round(now - t.submittedAt),
      },
    }
    r.results[t.index] = result
    r.onResult?.(t.index, result)
    if (++r.numDone === r.ids.length && !r.settled) {
      r.settled = true
      r.cleanup()
      r.resolve(r.results as SequenceResult[])
    }
    this.#checkIdle()
  }

  #spawn(): Promise<void> {
    const drill = this.#opts.crashDrill ? new MessageChannel() : null
    const init: WorkerInit = {
      modelDir: this.pkg.dir,
      graph: this.#opts.graph.name,
      device: this.#opts.device,
      threads: this.#opts.threads,
      spinWait: this.#opts.spinWait,
      maxBatch: this.#opts.maxBatch,
      maxBatchTokens: this.#opts.maxBatchTokens,
      ...(drill ? { crashDrill: drill.port2 } : {}),
    }
    const worker = new Worker(WORKER_ENTRY, { workerData: init, ...(drill ? { transferList: [drill.port2] } : {}) })
    this.#worker = worker
    this.#drill = drill?.port1 ?? null
    return new Promise<void>((resolve, reject) => {
      let started = false
      worker.on('message', (m: WorkerMessage) => {
        switch (m.type) {
          case 'ready':
            started = true
            this.#info = m.info
            resolve()
            break
          case 'fatal':
            reject(new Error(m.message))
            break
          case 'events':
            this.numRunning = m.numRunning
            this.numWaiting = m.numWaiting
            for (const e of m.events) this.#onEvent(e)
            if (m.step) {
              if (m.step.numPrefillRows > 0) this.observer?.pass('prefill', m.step.numPrefillRows)
              if (m.step.numDecodeRows > 0) this.observer?.pass('decode', m.step.numDecodeRows)
            }
            break
        }
      })
      worker.on('error', (err) => {
        this.#log.error({ err }, 'engine worker error')
        if (!started) reject(err)
      })
      worker.on('exit', (code) => {
        this.#info = null
        this.#worker = null
        this.#drill?.close()
        this.#drill = null
        this.failAll(new EngineError('engine_failed', `the inference worker stopped (exit code ${code})`))
        if (!started) {
          reject(new Error(`the inference worker exited during start-up (code ${code})`))
          return
        }
        if (this.#closing) return
        // NOTE: a crash after start-up: requests it held have failed above; start a new worker.
        this.numRestarts++
        this.observer?.restarted()
        this.#log.error({ code, restarts: this.numRestarts }, 'engine worker exited; restarting it')
        setTimeout(() => {
          this.#spawn().catch((err: Error) => this.#log.fatal({ err: err.message }, 'engine worker restart failed'))
        }, 500).unref()
      })
    })
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10
}
