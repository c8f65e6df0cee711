"""Classification metrics: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix."""

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
