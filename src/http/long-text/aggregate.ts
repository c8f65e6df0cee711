/**
 * @module
 * One answer from the answers of a text's windows (docs/long-texts.md, "Aggregation").
 */

export interface WindowScores {
  /** Calibrated label distribution of the window, in the model's label order. */
  scores: readonly number[]
  /** Text tokens the window holds. */
  numTokens: number
}

export interface Aggregate {
  /** Mean of the windows' scores, each weighted by its share of the tokens read. */
  scores: number[]
  /** The argmax of `scores` (the first label on a tie). */
  labelIndex: number
  /**
   * The window whose own scores give that label the highest probability (the first on a tie):
   * its reasoning is the answer's, so the reasoning quotes the part of the text that decided.
   */
  decidingWindow: number
}

/**
 * Token-weighted mean of the windows' distributions: every token of the text weighs the same, so
 * a short last window does not count as much as a full one. A single window is returned unchanged.
 */
export function aggregateWindows(windows: readonly WindowScores[]): Aggregate {
  if (windows.length === 0) throw new Error('aggregateWindows: no windows')
  const total = windows.reduce((n, w) => n + w.numTokens, 0)
  const numLabels = windows[0]!.scores.length
  const scores = new Array<number>(numLabels).fill(0)
  for (const w of windows) {
    const weight = total > 0 ? w.numTokens / total : 1 / windows.length
    for (let k = 0; k < numLabels; k++) scores[k]! += weight * w.scores[k]!
  }
  const labelIndex = argmax(scores)
  const decidingWindow = argmax(windows.map((w) => w.scores[labelIndex]!))
  return { scores, labelIndex, decidingWindow }
}

function argmax(xs: readonly number[]): number {
  let best = 0
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i
  return best
}
