/**
 * @module
 * The order a stream tells a text's windows in. Every window runs at once in the engine, so their
 * reasoning arrives interleaved; a reader needs one window's reasoning after another. Windows are
 * told in text order: the current one live, the later ones held until it ends, then flushed
 * (whatever they wrote meanwhile at once, the rest live).
 */

export interface SequencedOutput {
  /** Window `index` starts: the deltas that follow are its reasoning. */
  window(index: number): void
  delta(index: number, text: string): void
}

/**
 * @example
 * ```ts
 * const seq = new WindowSequencer(3, { window: (i) => send('window', i), delta: (_i, d) => send('reasoning', d) })
 * seq.start()
 * // engine callbacks: seq.delta(i, text), seq.done(i)
 * ```
 */
export class WindowSequencer {
  #current = 0
  readonly #held: string[]
  readonly #done: boolean[]

  constructor(
    readonly numWindows: number,
    readonly out: SequencedOutput,
  ) {
    this.#held = new Array<string>(numWindows).fill('')
    this.#done = new Array<boolean>(numWindows).fill(false)
  }

  /** Opens the first window; call before any delta may arrive. */
  start(): void {
    if (this.numWindows > 0) this.out.window(0)
  }

  delta(index: number, text: string): void {
    if (index === this.#current) this.out.delta(index, text)
    else this.#held[index] += text
  }

  /** Window `index` has written its label; when it is the current one, the next ones follow. */
  done(index: number): void {
    this.#done[index] = true
    while (this.#current < this.numWindows && this.#done[this.#current]) {
      if (++this.#current === this.numWindows) return
      this.out.window(this.#current)
      const held = this.#held[this.#current]!
      this.#held[this.#current] = ''
      if (held) this.out.delta(this.#current, held)
    }
  }
}
