/**
 * @module
 * The HTTP thread's handle on one model's engine workers: admission (a bounded number of sequences
 * in flight), routing, deadlines, cancellation, and turning worker events back into per-request
 * results.
 *
 * A model runs on `workers` engine workers (`--workers`, default 1), each with its own ONNX Runtime
 * session, batch and KV cache. A request goes whole to the ready worker with the fewest sequences
 * in flight (the lowest index on a tie), so its texts share one batch. A worker that dies fails only
 * the requests it held and is restarted; the others keep serving.
 *
 * Admission happens here, before anything is sent to a worker: a request whose sequences would
 * push the in-flight count past `workers x maxBatch + maxQueue` fails at once with `queue_full`.
 * Its slots are given back when its last sequence ends, however it ends (done, error, deadline,
 * abort).
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
  /** Engine workers for this model (at least 1). */
  workers: number
  spinWait: boolean
  maxBatch: number
  maxBatchTokens: number
  maxQueue: number
  logger: Logger
  /** Test-only: lets `crashWorker()` make a worker die (see `WorkerInit.crashDrill`). */
  crashDrill?: boolean
}

/** One engine worker and what the HTTP thread knows of it. */
interface Replica {
  readonly index: number
  worker: Worker | null
  /** This side of the current worker's crash-drill channel (`crashDrill` only). */
  drill: MessagePort | null
  info: WorkerReady | null
  /** Last counts the worker reported. */
  numRunning: number
  numWaiting: number
  /** Sequences sent to it and not finished (what routing balances). */
  numInFlight: number
}

interface Tracked {
  index: number
  replica: Replica
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
  replica: Replica
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
  readonly #replicas: Replica[]
  #closing = false
  #nextId = 1
  readonly #tracked = new Map<number, Tracked>()
  numRestarts = 0
  /** Where latencies, batch sizes, cancellations and restarts are reported (metrics). */
  observer: EngineObserver | null = null
  /** Resolved (and cleared) when nothing is in flight any more; see `idle()`. */
  #onIdle: (() => void)[] = []

  private constructor(opts: EngineClientOptions) {
    if (!Number.isInteger(opts.workers) || opts.workers < 1) throw new Error(`workers must be a positive integer, got ${opts.workers}`)
    this.pkg = opts.pkg
    this.#opts = opts
    this.#log = opts.logger.child({ model: opts.pkg.manifest.id })
    this.#replicas = Array.from({ length: opts.workers }, (_, index) => ({ index, worker: null, drill: null, info: null, numRunning: 0, numWaiting: 0, numInFlight: 0 }))
  }

  /**
   * Starts the workers and resolves once every session is ready; rejects with the first one-line
   * reason (the workers that did start are closed).
   */
  static async start(opts: EngineClientOptions): Promise<EngineClient> {
    const client = new EngineClient(opts)
    const started = await Promise.allSettled(client.#replicas.map((r) => client.#spawn(r)))
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected')
    if (failed) {
      await client.close()
      throw failed.reason
    }
    return client
  }

  get id(): string {
    return this.pkg.manifest.id
  }

  /** At least one worker is up (a restarting one leaves the others serving). */
  get ready(): boolean {
    return !this.#closing && this.#replicas.some((r) => r.info !== null)
  }

  /** What the first ready worker reported at start-up (they share settings); null when none is up. */
  get info(): WorkerReady | null {
    return this.#replicas.find((r) => r.info !== null)?.info ?? null
  }

  /** Engine workers of this model. */
  get numWorkers(): number {
    return this.#replicas.length
  }

  /** Engine workers up and ready now. */
  get numWorkersReady(): number {
    return this.#replicas.filter((r) => r.info !== null).length
  }

  /** Sequences in the workers' running batches, as they last reported. */
  get numRunning(): number {
    return this.#replicas.reduce((n, r) => n + r.numRunning, 0)
  }

  /** Sequences waiting in the workers' queues, as they last reported. */
  get numWaiting(): number {
    return this.#replicas.reduce((n, r) => n + r.numWaiting, 0)
  }

  /** The graph the workers run. */
  get graph(): SelectedGraph {
    return this.#opts.graph
  }

  /** Sequences accepted and not finished. */
  get numInFlight(): number {
    return this.#tracked.size
  }

  /** Most sequences in flight before `queue_full`: every worker's batch, plus the queue. */
  get capacity(): number {
    return this.#replicas.length * this.#opts.maxBatch + this.#opts.maxQueue
  }

  /**
   * Runs prompts as one request on one worker: all admitted or none, results in input order.
   * Admission failures (`not_ready`, `queue_full`, `cancelled`) throw at once, so a caller can
   * answer before it starts streaming; later failures reject the promise, and cancel the
   * request's other sequences.
   */
  submit(prompts: number[][], opts: SubmitOptions): Promise<SequenceResult[]> {
    const replica = this.ready ? pickReplica(this.#replicas) : null
    if (!replica) throw new EngineError('not_ready', `model ${this.id} is not ready`)
    if (this.numInFlight + prompts.length > this.capacity) {
      throw new EngineError(
        'queue_full',
        `model ${this.id} has ${this.numInFlight} sequences in flight and this request adds ${prompts.length}; at most ${this.capacity} (workers x max_batch + max_queue)`,
      )
    }
    if (opts.signal?.aborted) throw new EngineError('cancelled', 'the client went away')
    const now = performance.now()
    return new Promise<SequenceResult[]>((resolve, reject) => {
      const ids = prompts.map(() => this.#nextId++)
      const request: RequestState = {
        ids,
        replica,
        results: new Array(prompts.length),
        numDone: 0,
        settled: false,
        resolve,
        reject,
        cleanup: () => {},
        ...(opts.onDelta ? { onDelta: opts.onDelta } : {}),
        ...(opts.onResult ? { onResult: opts.onResult } : {}),
      }
      ids.forEach((id, index) => this.#tracked.set(id, { index, replica, submittedAt: now, reasoning: '', request }))
      replica.numInFlight += ids.length

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
      this.#send(replica, { type: 'enqueue', sequences: prompts.map((promptIds, i) => ({ id: ids[i]!, promptIds })) })
    })
  }

  /**
   * Test-only crash drill (an engine started with `crashDrill: true`): makes worker `index` throw
   * between two steps, as a bug would. The requests it held fail with `engine_failed` and a new
   * worker starts in its place. Resolves when the old one has exited.
   */
  async crashWorker(message = 'crash drill', index = 0): Promise<void> {
    if (!this.#opts.crashDrill) throw new Error('crashWorker: this engine was started without crashDrill')
    const replica = this.#replicas[index]
    if (!replica) throw new Error(`crashWorker: no worker ${index}; this engine has ${this.#replicas.length}`)
    const { worker, drill } = replica
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

  /** Stops the workers after their current step; requests still in flight fail with `shutting_down`. */
  async close(): Promise<void> {
    this.#closing = true
    this.failAll(new EngineError('shutting_down', 'the server is shutting down'))
    await Promise.all(this.#replicas.map((r) => this.#stop(r)))
  }

  async #stop(replica: Replica): Promise<void> {
    const worker = replica.worker
    if (!worker) return
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
    this.#send(replica, { type: 'shutdown' })
    // NOTE: terminate() while ONNX Runtime runs aborts the process; it is only a last resort for a
    // worker that did not finish its step in 10 s.
    const timeout = setTimeout(() => void worker.terminate(), 10_000)
    await exited
    clearTimeout(timeout)
  }

  #send(replica: Replica, command: Command): void {
    replica.worker?.postMessage(command)
  }

  /** Ends a request with an error (once), cancelling its unfinished sequences in its worker. */
  #fail(request: RequestState, error: EngineError): void {
    if (request.settled) return
    request.settled = true
    request.cleanup()
    const open = request.ids.filter((id) => this.#tracked.has(id))
    for (const id of open) this.#tracked.delete(id)
    request.replica.numInFlight -= open.length
    if (open.length > 0 && error.reason !== 'engine_failed') this.#send(request.replica, { type: 'cancel', ids: open })
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
    t.replica.numInFlight--
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

  /** Fails the requests `replica` held (each request lives on one worker). */
  #failOn(replica: Replica, error: EngineError): void {
    const held = new Set([...this.#tracked.values()].filter((t) => t.replica === replica).map((t) => t.request))
    for (const r of held) this.#fail(r, error)
  }

  #spawn(replica: Replica): Promise<void> {
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
    replica.worker = worker
    replica.drill = drill?.port1 ?? null
    return new Promise<void>((resolve, reject) => {
      let started = false
      worker.on('message', (m: WorkerMessage) => {
        switch (m.type) {
          case 'ready':
            started = true
            replica.info = m.info
            resolve()
            break
          case 'fatal':
            reject(new Error(m.message))
            break
          case 'events':
            replica.numRunning = m.numRunning
            replica.numWaiting = m.numWaiting
            for (const e of m.events) this.#onEvent(e)
            if (m.step) {
              if (m.step.numPrefillRows > 0) this.observer?.pass('prefill', m.step.numPrefillRows)
              if (m.step.numDecodeRows > 0) this.observer?.pass('decode', m.step.numDecodeRows)
            }
            break
        }
      })
      worker.on('error', (err) => {
        this.#log.error({ err, worker: replica.index }, 'engine worker error')
        if (!started) reject(err)
      })
      worker.on('exit', (code) => {
        replica.info = null
        replica.worker = null
        replica.numRunning = 0
        replica.numWaiting = 0
        replica.drill?.close()
        replica.drill = null
        this.#failOn(replica, new EngineError('engine_failed', `the inference worker stopped (exit code ${code})`))
        if (!started) {
          reject(new Error(`the inference worker exited during start-up (code ${code})`))
          return
        }
        if (this.#closing) return
        // NOTE: a crash after start-up: requests it held have failed above; start a new worker.
        this.numRestarts++
        this.observer?.restarted()
        this.#log.error({ code, worker: replica.index, restarts: this.numRestarts }, 'engine worker exited; restarting it')
        setTimeout(() => {
          this.#spawn(replica).catch((err: Error) => this.#log.fatal({ err: err.message, worker: replica.index }, 'engine worker restart failed'))
        }, 500).unref()
      })
    })
  }
}

/** The ready worker with the fewest sequences in flight, the lowest index on a tie; null: none is ready. */
export function pickReplica<R extends { info: unknown; numInFlight: number }>(replicas: readonly R[]): R | null {
  let best: R | null = null
  for (const r of replicas) {
    if (r.info === null) continue
    if (best === null || r.numInFlight < best.numInFlight) best = r
  }
  return best
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10
}
