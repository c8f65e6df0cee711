"""Batching and learning-rate schedule of `train`: pure functions, checked without a model."""

import math

import numpy as np
import pytest

from because_train.config import Config
from because_train.train import Example, batches, lr_at


@pytest.mark.parametrize("n,batch_size", [(1, 64), (64, 64), (16000, 64), (3201, 64), (777, 10)])
def test_every_row_once_in_exactly_the_planned_number_of_batches(n: int, batch_size: int) -> None:
    rng = np.random.default_rng(0)
    examples = [Example(ids=[0] * int(k), roles=[], prompt=[], label=0) for k in rng.integers(3, 60, n)]
    plan = batches(examples, batch_size, rng)
    assert len(plan) == math.ceil(n / batch_size)  # what train's cosine schedule counts on
    assert sorted(i for b in plan for i in b) == list(range(n))
    assert all(len(b) <= batch_size for b in plan)


def test_cosine_schedule_warms_up_then_ends_at_min_lr() -> None:
    config = Config()
    t = config.train
    total = 1000
    assert lr_at(0, total, config) == pytest.approx(t.lr / t.warmup_steps)
    assert lr_at(t.warmup_steps - 1, total, config) == pytest.approx(t.lr)
    assert lr_at(total, total, config) == pytest.approx(t.min_lr)
    steps = [lr_at(s, total, config) for s in range(t.warmup_steps, total + 1)]
    assert all(a >= b for a, b in zip(steps, steps[1:], strict=False))
