"""because_train: the offline pipeline that trains because's reasoning-then-label classifier.

Stages follow arXiv 2507.00214 (Henrichsen and Krebs, 2025): a reasoning generator (R-Gen) writes
a reasoning for every (text, gold label) pair, and the classifier learns text -> reasoning, label
(Q->RA) next to the label-only baseline (Q->A).
"""

import sys

LABELS: tuple[str, ...] = ("sadness", "joy", "love", "anger", "fear", "surprise")


def log(msg: str) -> None:
    """Progress and results for the person running a stage: one line on stderr, flushed at once."""
    print(msg, file=sys.stderr, flush=True)
