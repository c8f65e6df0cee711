"""Score calibration: one temperature for the label logits, fitted on validation data.

The label scores are softmax(label logits / T). T is fitted by minimising the negative
log-likelihood of the gold labels, every source weighing alike (`metrics.fit_temperature`). The
expected calibration error (10 equal-width bins over the top score) is reported per source before
(T = 1) and after; and, since fitting and measuring on the same rows flatters the result, also
cross-fitted: each half of a source's rows (seeded) is scored with the T fitted on the other half.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from because_train.decode import label_scores
from because_train.metrics import expected_calibration_error, fit_temperature


def ece_at(logits: np.ndarray, gold: np.ndarray, temperature: float) -> float:
    p = label_scores(logits, temperature)
    return expected_calibration_error(p.max(axis=1).tolist(), (p.argmax(axis=1) == gold).tolist())


def calibrate(
    by_source: dict[str, tuple[Sequence[Sequence[float]], Sequence[int]]], seed: int
) -> dict[str, Any]:
    """`by_source[name] = (label logits per row, gold label per row)` -> the calibration record
    for the manifest: the temperature and ECE per source before, after and cross-fitted."""
    names = sorted(by_source)
    z = {n: np.asarray(by_source[n][0], dtype=np.float64) for n in names}
    y = {n: np.asarray(by_source[n][1]) for n in names}

    def fit(select: dict[str, np.ndarray]) -> float:
        logits = [row for n in names for row in z[n][select[n]]]
        gold = [int(g) for n in names for g in y[n][select[n]]]
        groups = [n for n in names for _ in range(int(select[n].sum()))]
        return fit_temperature(logits, gold, groups)

    everything = {n: np.ones(len(y[n]), dtype=bool) for n in names}
    temperature = fit(everything)
    rng = np.random.default_rng(seed)
    half = {n: rng.random(len(y[n])) < 0.5 for n in names}
    t_a = fit(half)  # fitted on the first halves, applied to the second
    t_b = fit({n: ~half[n] for n in names})
    per_source: dict[str, dict[str, float]] = {}
    for n in names:
        a, b = half[n], ~half[n]
        cross = (ece_at(z[n][b], y[n][b], t_a) * b.sum() + ece_at(z[n][a], y[n][a], t_b) * a.sum()) / len(
            y[n]
        )
        per_source[n] = {
            "n": int(len(y[n])),
            "ece_uncalibrated": ece_at(z[n], y[n], 1.0),
            "ece": ece_at(z[n], y[n], temperature),
            "ece_cross_fitted": float(cross),
            "mean_top_score_uncalibrated": float(label_scores(z[n], 1.0).max(axis=1).mean()),
            "mean_top_score": float(label_scores(z[n], temperature).max(axis=1).mean()),
        }
    return {
        "method": "temperature",
        "temperature": temperature,
        "fitted_on": "validation rows of every source, each source weighing alike",
        "bins": 10,
        "per_source": per_source,
        "cross_fitted_temperatures": [t_a, t_b],
    }
