"""Greedy reasoning, then label scoring: the decoding the service implements too.

`decode_batch` only sees a `forward` function, so the same loop drives PyTorch during training and
ONNX Runtime in `evaluate`. Rules (docs/model-package.md): special ids other than the marker are
masked while reasoning; while the reasoning is inside a quotation ("..."), only tokens that keep the
quoted bytes whole words of the input are allowed (grounded quoting); the marker ends the reasoning
or is forced after the budget; the label distribution is the softmax of the label tokens' logits,
divided by the package's calibration temperature, at the marker's position, or (a package whose
manifest says `label_scores_at: first_label_token`) where the reasoning first writes a label token.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# forward(input_ids [B,S], attention_mask [B,P+S], position_ids [B,S], past) -> (last logits [B,V], past)
Forward = Callable[[np.ndarray, np.ndarray, np.ndarray, Any], tuple[np.ndarray, Any]]


QUOTE = 0x22  # '"', which natural-v1 never leaves in the input


@dataclass(frozen=True)
class QuoteState:
    inside: bool = False
    quote: bytes = b""  # bytes since the opening quotation mark
    quoted: frozenset[bytes] = frozenset()  # the quotations already closed


def advance_quote(
    state: QuoteState, token: bytes, source: bytes, repeat_ok: bool = False
) -> QuoteState | None:
    """The state after `token`, or None when the token would quote something that is not a phrase
    of `source`: an empty quotation, or quoted bytes that are not whole words of `source` (a quote
    starts where a word starts and closes where a word ends, so "hate" is no quote of "hated"); and,
    unless `repeat_ok`, a phrase the reasoning has already quoted, or a quotation that can only
    become one."""
    # Padded with a space before, for words that start the input, and after, for closing quotes
    # that end it; a growing quote is checked against the start-padded form only, so that it can
    # never run into a state no closing mark can leave.
    opened, padded = b" " + source, b" " + source + b" "
    inside, quote, quoted = state.inside, state.quote, state.quoted
    for b in token:
        if b == QUOTE:
            if inside:
                if not quote or b" " + quote + b" " not in padded:
                    return None
                if quote in quoted and not repeat_ok:
                    return None
                quoted = quoted | {quote}
            elif not source:
                return None  # nothing could be quoted
            inside, quote = not inside, b""
        elif inside:
            quote += bytes((b,))
            if b" " + quote not in opened:
                return None
    if inside and not repeat_ok and not leads_to_new(source, quote, quoted):
        return None  # every phrase this quotation could still become was quoted already
    return QuoteState(inside, quote, quoted)


def leads_to_new(source: bytes, prefix: bytes, quoted: frozenset[bytes]) -> bool:
    """Whether some phrase of whole words of `source` that starts with `prefix` is not in `quoted`.
    Checked while a quotation grows, so that the model is turned away from a repeat before it is
    committed to one (a closing mark alone could only refuse it when nothing else can follow)."""
    if not quoted:
        return True
    m, start = len(source), 0
    while (i := source.find(prefix, start)) >= 0:
        start = i + 1
        if i > 0 and source[i - 1] != 0x20:
            continue
        e = i + len(prefix)
        while True:
            if e > i and (e == m or source[e] == 0x20) and source[i:e] not in quoted:
                return True
            if e >= m:
                break
            nxt = source.find(b" ", e + 1)
            e = m if nxt < 0 else nxt
    return False


class Grounding:
    """Grounded quoting for one sequence: the input's bytes and the quotation state so far."""

    def __init__(self, source: bytes, token_bytes: list[bytes]) -> None:
        self.source, self.token_bytes, self.state = source, token_bytes, QuoteState()

    def pick(self, logits: np.ndarray, banned: list[int], marker: int) -> int:
        """The highest-logit allowed token (lowest id on ties). Inside a quotation the marker comes
        last (it would leave the quotation open), and a phrase already quoted may be quoted again
        only where nothing else can follow; outside, the marker is an ordinary candidate."""
        row = logits.astype(np.float64).copy()
        row[banned] = -np.inf
        row[np.isnan(row)] = -np.inf
        for repeat_ok in (False, True):
            picked = self._pick(row, marker, repeat_ok)
            if picked is not None:
                self.state = picked[1]
                return picked[0]
        return marker

    def _pick(self, row: np.ndarray, marker: int, repeat_ok: bool) -> tuple[int, QuoteState] | None:
        best = int(np.argmax(row))
        if row[best] == -np.inf:
            return None  # nothing but banned or non-finite logits
        nxt = self._allowed(best, marker, repeat_ok)
        if nxt is not None:
            return best, nxt
        # Rare path: walk the candidates in order; a stable sort keeps lower ids first on ties.
        for t in np.argsort(-row, kind="stable"):
            t = int(t)
            if row[t] == -np.inf:
                break
            nxt = self._allowed(t, marker, repeat_ok)
            if nxt is not None:
                return t, nxt
        return None

    def _allowed(self, token: int, marker: int, repeat_ok: bool) -> QuoteState | None:
        if token == marker:
            return None if self.state.inside else self.state
        tb = self.token_bytes[token]
        if not self.state.inside and QUOTE not in tb:
            return self.state
        return advance_quote(self.state, tb, self.source, repeat_ok)


@dataclass
class Decoded:
    reasoning_ids: list[int]
    scores: np.ndarray  # over the labels, sums to 1
    forced: bool  # the budget ran out before the model wrote the marker
    label_logits: np.ndarray | None = None  # before the temperature: what calibration is fitted on
    named: bool = False  # the scores come from where the reasoning first named a label
    gate: list[float] | None = None  # p(register | text) under a registers prior (evaluate sets it)

    @property
    def label(self) -> int:
        return int(np.argmax(self.scores))


def label_scores(label_logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(label logits / temperature) over the last axis (one row, or a batch of rows)."""
    z = np.asarray(label_logits, dtype=np.float64) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


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
    sources: list[bytes] | None = None,
    token_bytes: list[bytes] | None = None,
    temperature: float | Sequence[float] = 1.0,
    scores_at_first_label: bool = False,
    priors: list[np.ndarray] | None = None,
) -> list[Decoded]:
    """`sources` (the input bytes of each prompt) and `token_bytes` turn grounded quoting on.
    `scores_at_first_label`: a `qra` row is scored where its reasoning first writes a label token
    (the decision its reasoning states), and at the marker only when it writes none. `priors`: per
    row, what the lexical prior adds to the label logits until the row has named a label (prior.py).
    `temperature`: one for every row, or one per row (a register temperature)."""
    b = len(prompts)
    temps = (
        [float(temperature)] * b if isinstance(temperature, int | float) else [float(t) for t in temperature]
    )

    def fuse(row: np.ndarray, r: int) -> None:
        # In place and rounded to float32, as the service adds into its Float32Array of logits.
        if priors is not None:
            row[label_ids] = (row[label_ids].astype(np.float64) + priors[r]).astype(np.float32)

    label_first = set(label_ids)
    named: list[np.ndarray | None] = [None] * b
    grounding = (
        [Grounding(src, token_bytes) for src in sources]
        if sources is not None and token_bytes is not None
        else None
    )
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
        logits = np.array(logits, dtype=np.float32)
        for r in range(b):
            fuse(logits[r], r)
        z = logits[:, label_ids]
        return [Decoded([], label_scores(z[r], temps[r]), False, z[r].copy()) for r in range(b)]

    logits, past = forward(ids, mask, positions, None)
    logits = np.array(logits, dtype=np.float32)
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
            if named[r] is None:
                fuse(logits[r], r)
            if wrote_marker[r]:
                z = named[r] if named[r] is not None else logits[r][label_ids].copy()
                results[r] = Decoded(
                    reasoning[r],
                    label_scores(z, temps[r]),
                    forced[r],
                    z,
                    named[r] is not None,
                )
                continue
            if len(reasoning[r]) >= max_reasoning:
                forced[r], token = True, marker
            elif grounding is not None:
                token = grounding[r].pick(logits[r], banned, marker)
            else:
                row = logits[r].copy()
                row[banned] = -np.inf
                token = int(np.argmax(row))
            if token == marker:
                wrote_marker[r] = True
            else:
                reasoning[r].append(token)
                if scores_at_first_label and named[r] is None and token in label_first:
                    named[r] = logits[r][label_ids].copy()
            feed[r, 0] = token
        if all(x is not None for x in results):
            return [x for x in results if x is not None]
        mask = np.concatenate([mask, np.ones((b, 1), dtype=np.int64)], axis=1)
        logits, past = forward(feed, mask, next_pos[:, None].astype(np.int64), past)
        logits = np.array(logits, dtype=np.float32)
        next_pos = next_pos + 1
