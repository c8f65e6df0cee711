"""because_train: the offline pipeline that trains because's reasoning-then-label classifier.

Stages follow arXiv 2507.00214 (Henrichsen and Krebs, 2025): a reasoning generator (R-Gen) writes
a reasoning for every (text, gold label) pair, and the classifier learns text -> reasoning, label
(Q->RA) next to the label-only baseline (Q->A). The label set comes from the config (`[labels]`).
"""
