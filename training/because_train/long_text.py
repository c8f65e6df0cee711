"""Long texts, read the ways the service reads them (docs/long-texts.md).

A port of `src/http/long-text/plan.ts` (where a text is cut into windows) and `aggregate.ts` (one
answer from the windows' answers), so that `evaluate --truncate windows` and the service agree row
for row (`tests/service/truncate-parity.test.ts`). Pure functions, no model: the caller supplies
the token count of a span, so the plan is exact for whatever the package's encoder does.

Spans are code point offsets into the text as sent (Python's own string indices): the service plans
on UTF-16 offsets and reports code points, which cut the text at the same places, since a cut never
falls inside a surrogate pair. White space is JavaScript's `\\s`, not Python's: the two differ on a
few characters (U+001C-U+001F and U+0085 are space to Python only, U+FEFF to JavaScript only), and a
sentence or word boundary must fall where the service puts it.
"""

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TRUNCATE_MODES = ("start", "end", "windows")

# ECMAScript's WhiteSpace and LineTerminator: what `\s` matches in the service's regular expressions.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_JS_SPACE_RE = re.compile(f"[{_JS_SPACE}]")
# A sentence ends after a run of . ! ? or … (then closing quotes or brackets) followed by white space
# or the end, and at every line break. `\Z`, not `$`: Python's `$` also matches before a final "\n".
SENTENCE_END = re.compile(f"[.!?\u2026]+[\"'\u201d\u2019\u00bb)\\]]*(?=[{_JS_SPACE}]|\\Z)|\n")
WORD = re.compile(f"[^{_JS_SPACE}]+")
# How full a cut inside a word aims to make a window: its tokens per code point are an average.
CHUNK_FILL = 0.9


@dataclass(frozen=True)
class Span:
    """`text[start:end]`, in code points."""

    start: int
    end: int


# The model's text tokens of `text[start:end]` (normalised, then encoded).
CountTokens = Callable[[int, int], int]


class UnplannableError(ValueError):
    """A piece too long for one window even when cut at every character: the text cannot be planned."""


def _is_space(c: str) -> bool:
    return _JS_SPACE_RE.fullmatch(c) is not None


def _trimmed(text: str, start: int, end: int) -> Span | None:
    """`text[start:end]` without the white space at its ends, or None when nothing else is in it."""
    while start < end and _is_space(text[start]):
        start += 1
    while end > start and _is_space(text[end - 1]):
        end -= 1
    return Span(start, end) if start < end else None


def split_sentences(text: str) -> list[Span]:
    """The sentences of `text`, trimmed, in order; white space between them belongs to none."""
    spans: list[Span] = []
    start = 0
    for m in SENTENCE_END.finditer(text):
        end = m.start() if m.group(0) == "\n" else m.end()
        s = _trimmed(text, start, end)
        if s:
            spans.append(s)
        start = m.end()
    last = _trimmed(text, start, len(text))
    if last:
        spans.append(last)
    return spans


def split_words(text: str, span: Span) -> list[Span]:
    """The words (runs of non-space) inside `span`."""
    return [Span(m.start(), m.end()) for m in WORD.finditer(text, span.start, span.end)]


def split_code_points(span: Span, size: int) -> list[Span]:
    """`span` cut every `size` code points."""
    return [Span(s, min(s + size, span.end)) for s in range(span.start, span.end, size)]


def _fitting_pieces(text: str, max_tokens: int, count: CountTokens) -> tuple[list[Span], list[int]]:
    """Pieces that each fit `max_tokens`, covering every sentence of `text` in order: a sentence that
    fits is one piece; one that does not is cut at spaces; a word that does not fit is cut every so
    many code points (as many as its average tokens per code point lets fit), and such a cut is
    halved until it fits."""
    pieces: list[Span] = []
    counts: list[int] = []

    def fit(span: Span, level: str, known: int | None = None) -> None:
        n = count(span.start, span.end) if known is None else known
        if n <= max_tokens:
            pieces.append(span)
            counts.append(n)
            return
        num_code_points = span.end - span.start
        if level == "sentence":
            words = split_words(text, span)
            for w in words:  # a sentence of one word is that word: its count is known
                fit(w, "word", n if len(words) == 1 else None)
        elif level == "word":
            # The same arithmetic as the service's (left to right, in doubles).
            size = max(1, math.floor(CHUNK_FILL * max_tokens * num_code_points / n))
            for c in split_code_points(span, size):
                fit(c, "chunk")
        else:
            if num_code_points <= 1:
                raise UnplannableError(
                    f"one character at {span.start} alone is {n} tokens, over {max_tokens}"
                )
            a, b = split_code_points(span, (num_code_points + 1) // 2)
            fit(a, "chunk")
            fit(b, "chunk")

    for s in split_sentences(text):
        fit(s, "sentence")
    return pieces, counts


def plan_windows(text: str, max_tokens: int, count: CountTokens) -> list[Span]:
    """Consecutive, non-overlapping windows over `text`, each at most `max_tokens` tokens by `count`,
    together holding every character but the white space between them. Greedy: a window takes
    pieces (sentences where they fit) while their summed counts fit, then its exact count is checked
    (tokens of a joined span need not be the sum of its pieces') and it gives pieces back to the
    next window until it fits. Windows of no tokens are left out. Raises `UnplannableError` when a
    single character is over `max_tokens`."""
    pieces, counts = _fitting_pieces(text, max_tokens, count)
    windows: list[Span] = []
    i = 0
    while i < len(pieces):
        j, total = i, counts[i]
        while j + 1 < len(pieces) and total + counts[j + 1] <= max_tokens:
            j += 1
            total += counts[j]
        # A window of one piece is that piece, whose own count fits: the loop always ends.
        exact = count(pieces[i].start, pieces[j].end) if j > i else counts[i]
        while exact > max_tokens:
            j -= 1
            exact = count(pieces[i].start, pieces[j].end) if j > i else counts[i]
        if exact > 0:
            windows.append(Span(pieces[i].start, pieces[j].end))
        i = j + 1
    return windows


@dataclass(frozen=True)
class Aggregate:
    scores: list[float]  # the windows' scores, each weighted by its share of the tokens read
    label_index: int  # the argmax of `scores` (the first label on a tie)
    deciding_window: int  # the window whose own scores most support that label (the first on a tie)


def _argmax(xs: Sequence[float]) -> int:
    best = 0
    for i in range(1, len(xs)):
        if xs[i] > xs[best]:
            best = i
    return best


def aggregate_windows(scores: Sequence[Sequence[float]], num_tokens: Sequence[int]) -> Aggregate:
    """Token-weighted mean of the windows' label distributions (every token of the text weighs the
    same, so a short last window counts for less than a full one), its argmax, and the window whose
    reasoning is the answer's."""
    if not scores:
        raise ValueError("aggregate_windows: no windows")
    total = sum(num_tokens)
    mean = [0.0] * len(scores[0])
    for w, n in zip(scores, num_tokens, strict=True):
        weight = n / total if total > 0 else 1 / len(scores)
        for k in range(len(mean)):
            mean[k] += weight * float(w[k])
    label = _argmax(mean)
    return Aggregate(mean, label, _argmax([float(w[label]) for w in scores]))


@dataclass(frozen=True)
class Reading:
    """What the model reads of one text: the text ids of each window, in text order."""

    windows: list[list[int]]
    spans: list[Span] | None  # each window's code points (None where cut by tokens: start, end)
    dropped: int  # text tokens not read (start, end)


def read_text(
    text: str, text_ids: list[int], limit: int, mode: str, encode: Callable[[str], list[int]]
) -> Reading:
    """`text` (whose ids, normalised and encoded whole, are `text_ids`) as `mode` reads it with at
    most `limit` text tokens a window: whole when it fits, whatever the mode; else its first
    (`start`: `text_ids[:limit]`, what evaluate has always read) or last (`end`) `limit` ids, or
    windows planned as the service plans them, each encoded on its own by `encode`."""
    n = len(text_ids)
    if n <= limit:
        return Reading([text_ids], [Span(0, len(text))], 0)
    if mode == "start":
        return Reading([text_ids[:limit]], None, n - limit)
    if mode == "end":
        return Reading([text_ids[n - limit :]], None, n - limit)
    if mode != "windows":
        raise ValueError(f"truncate {mode!r}: expected one of {', '.join(TRUNCATE_MODES)}")
    # The planner asks for a span's count more than once (a piece, then the window it joins).
    encoded: dict[tuple[int, int], list[int]] = {(0, len(text)): text_ids}

    def ids(start: int, end: int) -> list[int]:
        key = (start, end)
        if key not in encoded:
            encoded[key] = encode(text[start:end])
        return encoded[key]

    try:
        spans = plan_windows(text, limit, lambda s, e: len(ids(s, e)))
    except UnplannableError as e:
        raise UnplannableError(f"cannot be cut into windows of {limit} tokens: {e}") from None
    if not spans:
        raise ValueError(f"no window of text tokens in a text of {n} tokens")
    return Reading([ids(s.start, s.end) for s in spans], spans, 0)
