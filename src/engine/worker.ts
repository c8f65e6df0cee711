/**
 * @module
 * The engine worker thread: loads one model package, creates its ONNX Runtime session and runs the
 * batch loop. `session.run()` blocks this thread for a whole forward pass, which is why it lives
 * here and not on the HTTP thread.
 *
 * The loop yields to the message queue between steps (`setImmediate`), so commands that arrived
 * during a pass are applied before the next one; with nothing to do it sleeps until a command comes.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { loadPackage } from '../model/package.js'
import { BatchEngine } from './engine.js'
import { loadModel } from './model-runtime.js'
import type { Command, SequenceEvent, WorkerInit, WorkerMessage } from './protocol.js'

const port = parentPort
if (!port) throw new Error('worker.ts must run in a worker thread')
const init = workerData as WorkerInit

function post(message: WorkerMessage): void {
  port!.postMessage(message)
}

async function main(): Promise<void> {
  let engine: BatchEngine
  try {
    // The HTTP thread verified the hashes before starting this worker.
    const pkg = await loadPackage(init.modelDir, { verify: false })
    const { model, session } = await loadModel(pkg, init.device, init.threads, { graph: init.graph, spinning: init.spinWait })
    engine = new BatchEngine(model, { maxBatch: init.maxBatch, maxBatchTokens: init.maxBatchTokens })
    post({
      type: 'ready',
      info: { provider: session.provider, threads: init.threads, ...(session.fallbackReason ? { fallbackReason: session.fallbackReason } : {}) },
    })
  } catch (e) {
    post({ type: 'fatal', message: String(e instanceof Error ? e.message : e).split('\n')[0]! })
    return
  }

  let shuttingDown = false
  let crash: string | null = null
  let wake: (() => void) | null = null
  port!.on('message', (command: Command) => {
    switch (command.type) {
      case 'enqueue':
        for (const s of command.sequences) engine.enqueue(s.id, s.promptIds)
        break
      case 'cancel':
        for (const id of command.ids) engine.cancel(id)
        break
      case 'shutdown':
        shuttingDown = true
        break
    }
    wake?.()
  })
  init.crashDrill?.on('message', (message: string) => {
    crash = message
    wake?.()
  })

  // Events wait in `pending` and go out in one message right before the next forward pass (so a
  // client sees a token before the thread is busy with the next pass) or with the end of the step:
  // one message per decode step instead of two (each postMessage wakes the HTTP thread). Counts go
  // out with every message, so the HTTP thread's view of the batch is never stale (a cancellation
  // changes them without events).
  let pending: SequenceEvent[] = []
  let lastCounts = ''
  const flush = (step?: { numPrefillRows: number; numDecodeRows: number }) => {
    const counts = `${engine.numRunning}/${engine.numWaiting}`
    if (pending.length === 0 && counts === lastCounts && !step) return
    lastCounts = counts
    const events = pending
    pending = []
    post({ type: 'events', events, numRunning: engine.numRunning, numWaiting: engine.numWaiting, ...(step ? { step } : {}) })
  }
  const emit = (events: SequenceEvent[]) => {
    for (const e of events) pending.push(e)
  }
  while (!shuttingDown) {
    if (crash !== null) throw new Error(crash)
    if (engine.hasWork()) {
      await engine.step(emit, () => flush())
      // One message ends each step: its last events, the counts after it and the rows its passes computed.
      flush(engine.lastStep)
      // Let queued commands (new requests, cancellations) in before the next step.
      await new Promise<void>((resolve) => setImmediate(resolve))
    } else {
      await new Promise<void>((resolve) => (wake = resolve))
      wake = null
    }
  }
  port!.close()
  // An open port with a listener would keep this thread alive after the loop.
  init.crashDrill?.close()
}

void main()
