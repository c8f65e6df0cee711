"""Greedy reasoning, then label scoring: the decoding the service implements too.

`decode_batch` only sees a `forward` function, so the same loop drives PyTorch during training and
ONNX Runtime in `evaluate`. Rules (docs/model-package.md): special ids other than the marker are
masked while reasoning; the marker ends the reasoning or is forced after the budget; the label
distribution is the softmax of the six label tokens' logits at the marker's position.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# forward(input_ids [B,S], attention_mask [B,P+S], position_ids [B,S], past) -> (last logits [B,V], past)
Forward = Callable[[np.ndarray, np.ndarray, np.ndarray, Any], tuple[np.ndarray, Any]]


@dataclass
class Decoded:
    reasoning_ids: list[int]
    scores: np.ndarray  # over the labels, sums to 1
    forced: bool  # the budget ran out before the model wrote the marker

    @property
    def label(self) -> int:
        return int(np.argmax(self.scores))


def label_scores(logits: np.ndarray, label_ids: list[int]) -> np.ndarray:
    z = logits[label_ids].astype(np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def decode_batch(
    forward: Forward,
    prompts: list[list[int]],
    *,
    kind: str,
    marker: int,
    banned: list[int],
    label_ids: list[int],
    max_reasoning: int,
    pad: int,
) -> list[Decoded]:
    b = len(prompts)
    width = max(len(p) for p in prompts)
    ids = np.full((b, width), pad, dtype=np.int64)
    mask = np.zeros((b, width), dtype=np.int64)
    for r, p in enumerate(prompts):  # left padding; positions count real tokens only
        ids[r, width - len(p) :] = p
        mask[r, width - len(p) :] = 1
    positions = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
    if kind == "qa":  # the marker is part of the prompt: score at once
        ids = np.concatenate([ids, np.full((b, 1), marker, dtype=np.int64)], axis=1)
        mask = np.concatenate([mask, np.ones((b, 1), dtype=np.int64)], axis=1)
        positions = np.concatenate([positions, positions[:, -1:] + 1], axis=1)
        logits, _ = forward(ids, mask, positions, None)
        return [Decoded([], label_scores(logits[r], label_ids), False) for r in range(b)]

    logits, past = forward(ids, mask, positions, None)
    next_pos = positions[:, -1] + 1
    reasoning: list[list[int]] = [[] for _ in range(b)]
    results: list[Decoded | None] = [None] * b
    forced = [False] * b
    wrote_marker = [False] * b  # the marker was fed at the last step: these logits score labels
    while True:
        feed = np.full((b, 1), pad, dtype=np.int64)
        for r in range(b):
            if results[r] is not None:
                continue
            if wrote_marker[r]:
                results[r] = Decoded(reasoning[r], label_scores(logits[r], label_ids), forced[r])
                continue
            if len(reasoning[r]) >= max_reasoning:
                forced[r], token = True, marker
            else:
                row = logits[r].copy()
                row[banned] = -np.inf
                token = int(np.argmax(row))
            if token == marker:
                wrote_marker[r] = True
            else:
                reasoning[r].append(token)
            feed[r, 0] = token
        if all(x is not None for x in results):
            return [x for x in results if x is not None]
        mask = np.concatenate([mask, np.ones((b, 1), dtype=np.int64)], axis=1)
        logits, past = forward(feed, mask, next_pos[:, None].astype(np.int64), past)
        next_pos = next_pos + 1
