"""Batching of `train` and the learning-rate schedule both training loops use: pure functions,
checked without a model."""

import math

import numpy as np
import pytest

from because_train.config import Config
from because_train.modeling import cosine_lr
from because_train.train import Example, batches


@pytest.mark.parametrize("n,batch_size", [(1, 64), (64, 64), (16000, 64), (3201, 64), (777, 10)])
def test_every_row_once_in_exactly_the_planned_number_of_batches(n: int, batch_size: int) -> None:
    rng = np.random.default_rng(0)
    examples = [Example(ids=[0] * int(k), roles=[], prompt=[], label=0) for k in rng.integers(3, 60, n)]
    plan = batches(examples, batch_size, rng)
    assert len(plan) == math.ceil(n / batch_size)  # what train's cosine schedule counts on
    assert sorted(i for b in plan for i in b) == list(range(n))
    assert all(len(b) <= batch_size for b in plan)


def test_cosine_schedule_warms_up_then_ends_at_min_lr() -> None:
    t = Config().train
    total = 1000

    def lr_at(step: int) -> float:
        return cosine_lr(step, total, t.lr, t.min_lr, t.warmup_steps)

    assert lr_at(0) == pytest.approx(t.lr / t.warmup_steps)
    assert lr_at(t.warmup_steps - 1) == pytest.approx(t.lr)
    assert lr_at(total) == pytest.approx(t.min_lr)
    assert lr_at(2 * total) == pytest.approx(t.min_lr)
    steps = [lr_at(s) for s in range(t.warmup_steps, total + 1)]
    assert all(a >= b for a, b in zip(steps, steps[1:], strict=False))


def test_cosine_schedule_matches_the_rgen_loops_former_formula() -> None:
    """R-Gen's own schedule, before it used `cosine_lr`: warmup, then cosine from lr to lr / 10."""
    lr, total = 2e-4, 700
    warmup = max(1, min(100, total // 20))
    for step in range(total):
        if step < warmup:
            former = lr * (step + 1) / warmup
        else:
            progress = (step - warmup) / max(1, total - warmup)
            former = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        assert cosine_lr(step, total, lr, 0.1 * lr, warmup) == pytest.approx(former, rel=1e-12)
