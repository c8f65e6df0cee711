"""Classification metrics: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix."""

import re
from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_metrics(gold: Sequence[int], pred: Sequence[int], labels: list[str]) -> dict[str, Any]:
    k = len(labels)
    cm = np.zeros((k, k), dtype=np.int64)
    for g, p in zip(gold, pred, strict=True):
        cm[g, p] += 1
    per_class = {}
    f1s = []
    for i, name in enumerate(labels):
        tp = cm[i, i]
        precision = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        recall = tp / cm[i, :].sum() if cm[i, :].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(cm[i, :].sum()),
        }
        f1s.append(f1)
    n = int(cm.sum())
    return {
        "n": n,
        "accuracy": float(np.trace(cm) / n) if n else 0.0,
        "macro_f1": float(np.mean(f1s)),
        "per_class": per_class,
        "confusion": cm.tolist(),
    }


QUOTED = re.compile(r'"([^"]*)"')


def quoted_phrases(reasoning: str) -> list[str]:
    """The phrases a reasoning quotes ("..."), complete quotations only."""
    return QUOTED.findall(reasoning)


def expected_calibration_error(top: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """ECE over the top score: |accuracy - mean top score| per equal-width bin, weighted by the bin's
    share of rows."""
    p = np.asarray(top, dtype=np.float64)
    c = np.asarray(correct, dtype=np.float64)
    if len(p) == 0:
        return 0.0
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.sum() / len(p) * abs(c[sel].mean() - p[sel].mean())
    return float(total)


def fit_temperature(logits: Sequence[np.ndarray], gold: Sequence[int], groups: Sequence[str]) -> float:
    """The temperature T minimising the negative log-likelihood of softmax(z / T), every group (a
    source) weighing alike; a golden-section search over log T in [1/20, 200]."""
    z = np.stack([np.asarray(x, dtype=np.float64) for x in logits])
    y = np.asarray(gold)
    names = sorted(set(groups))
    masks = [np.asarray([g == n for g in groups]) for n in names]

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        s = s - s.max(axis=1, keepdims=True)
        lp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
        row = -lp[np.arange(len(y)), y]
        return float(np.mean([row[m].mean() for m in masks]))

    lo, hi = np.log(1 / 20), np.log(200.0)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))
