/**
 * @module
 * Prometheus metrics (prom-client), served at `GET /metrics`. One registry per running service
 * (tests start several in one process). The engine client reports through `EngineObserver`, so
 * `src/engine` does not depend on prom-client; the HTTP layer counts requests and errors.
 *
 * Names, all prefixed `because_`:
 * - `http_requests_total{route,method,status}`, `http_request_duration_seconds{route}` (to the
 *   response headers; a stream's whole life is in `request_duration_seconds`)
 * - `rejections_total{reason}`: every error answer, by error code (`queue_full`,
 *   `deadline_exceeded`, `client_closed_request`, `invalid_request`, `unauthorized`, ...),
 *   including errors sent as an SSE `error` event after the stream started
 * - `queue_depth{model}`, `running_sequences{model}`, `sequences_in_flight{model}` (gauges)
 * - `batch_size{model,pass}` (rows per prefill or decode pass)
 * - `time_to_first_token_seconds{model}`, `inter_token_latency_seconds{model}`,
 *   `queue_time_seconds{model}`, `request_duration_seconds{model}` (per sequence, accepted to label)
 * - `generated_tokens_total{model}`, `cancellations_total{model}` (requests whose client went
 *   away), `worker_restarts_total{model}`, `worker_up{model}`, `workers_ready{model}`
 * - the default process metrics of prom-client (`process_resident_memory_bytes`, ...)
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** What an engine client reports. Every method is cheap and never throws. */
export interface EngineObserver {
  /** A pass of the worker: how many rows it computed. */
  pass(kind: 'prefill' | 'decode', numRows: number): void
  firstToken(seconds: number): void
  interToken(seconds: number): void
  /** A sequence finished: its queue time, its whole time and its reasoning tokens. */
  done(queueSeconds: number, totalSeconds: number, numTokens: number): void
  /** A request whose client went away before it finished. */
  cancelled(): void
  restarted(): void
}

/** What the gauges read when scraped. */
export interface EngineGauges {
  readonly id: string
  readonly ready: boolean
  readonly numWaiting: number
  readonly numRunning: number
  readonly numInFlight: number
  /** Engine workers up and ready now (of the model's `--workers`). */
  readonly numWorkersReady: number
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
const TOKEN_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]

export interface MetricsOptions {
  /** Also collect prom-client's process metrics (RSS, CPU, event-loop lag); default true. */
  processMetrics?: boolean
}

export class Metrics {
  readonly registry = new Registry()
  readonly #engines: EngineGauges[] = []

  readonly httpRequests = new Counter({
    name: 'because_http_requests_total',
    help: 'HTTP requests by route, method and status (499: the client closed the connection first).',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  })
  readonly httpDuration = new Histogram({
    name: 'because_http_request_duration_seconds',
    help: 'Time to the response headers, by route (for a stream, until it opens).',
    labelNames: ['route'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  })
  readonly rejections = new Counter({
    name: 'because_rejections_total',
    help: 'Requests answered with an error, by error code (also errors sent as an SSE error event).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  })
  readonly #batchSize = new Histogram({
    name: 'because_batch_size',
    help: 'Rows per forward pass, by pass (prefill: prompts admitted together; decode: running sequences).',
    labelNames: ['model', 'pass'] as const,
    buckets: BATCH_BUCKETS,
    registers: [this.registry],
  })
  readonly #ttft = new Histogram({
    name: 'because_time_to_first_token_seconds',
    help: 'From acceptance to the first reasoning text (or the label when there is none), per sequence.',
    labelNames: ['model'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  })
  readonly #itl = new Histogram({
    name: 'because_inter_token_latency_seconds',
    help: 'Time between two reasoning deltas of one sequence.',
    labelNames: ['model'] as const,
    buckets: TOKEN_BUCKETS,
    registers: [this.registry],
  })
  readonly #queueTime = new Histogram({
    name: 'because_queue_time_seconds',
    help: 'From acceptance to the start of prefill, per finished sequence.',
    labelNames: ['model'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  })
  readonly #e2e = new Histogram({
    name: 'because_request_duration_seconds',
    help: 'End to end, from acceptance to the label, per finished sequence.',
    labelNames: ['model'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  })
  readonly #tokens = new Counter({
    name: 'because_generated_tokens_total',
    help: 'Reasoning tokens generated by finished sequences.',
    labelNames: ['model'] as const,
    registers: [this.registry],
  })
  readonly #cancellations = new Counter({
    name: 'because_cancellations_total',
    help: 'Requests whose client went away before they finished; their sequences left the batch.',
    labelNames: ['model'] as const,
    registers: [this.registry],
  })
  readonly #restarts = new Counter({
    name: 'because_worker_restarts_total',
    help: 'Engine workers restarted after they died.',
    labelNames: ['model'] as const,
    registers: [this.registry],
  })

  constructor({ processMetrics = true }: MetricsOptions = {}) {
    const engines = this.#engines
    const gauge = (name: string, help: string, read: (e: EngineGauges) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['model'] as const,
        registers: [this.registry],
        collect() {
          for (const e of engines) this.set({ model: e.id }, read(e))
        },
      })
    gauge('because_queue_depth', 'Sequences waiting for a batch row, as the workers last reported.', (e) => e.numWaiting)
    gauge('because_running_sequences', 'Sequences in the running batches, as the workers last reported.', (e) => e.numRunning)
    gauge('because_sequences_in_flight', 'Sequences accepted and not finished (what admission counts against workers x max-batch + max-queue).', (e) => e.numInFlight)
    gauge('because_worker_up', "1 when at least one of the model's engine workers is up and ready (it takes requests), 0 while none is.", (e) => (e.ready ? 1 : 0))
    gauge('because_workers_ready', "The model's engine workers up and ready now; fewer than --workers while one starts or restarts.", (e) => e.numWorkersReady)
    if (processMetrics) collectDefaultMetrics({ register: this.registry })
  }

  /** Registers an engine's gauges and returns the observer it reports to. */
  engine(gauges: EngineGauges): EngineObserver {
    this.#engines.push(gauges)
    const model = gauges.id
    const m = { model }
    // Children bound once: observing then costs no label lookup.
    const prefill = this.#batchSize.labels(model, 'prefill')
    const decode = this.#batchSize.labels(model, 'decode')
    const ttft = this.#ttft.labels(m)
    const itl = this.#itl.labels(m)
    const queue = this.#queueTime.labels(m)
    const e2e = this.#e2e.labels(m)
    const tokens = this.#tokens.labels(m)
    const cancellations = this.#cancellations.labels(m)
    const restarts = this.#restarts.labels(m)
    tokens.inc(0)
    cancellations.inc(0)
    restarts.inc(0)
    return {
      pass: (kind, numRows) => (kind === 'prefill' ? prefill : decode).observe(numRows),
      firstToken: (s) => ttft.observe(s),
      interToken: (s) => itl.observe(s),
      done(queueSeconds, totalSeconds, numTokens) {
        queue.observe(queueSeconds)
        e2e.observe(totalSeconds)
        tokens.inc(numTokens)
      },
      cancelled: () => cancellations.inc(),
      restarted: () => restarts.inc(),
    }
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType }
  }
}
