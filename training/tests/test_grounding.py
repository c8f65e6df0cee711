"""Grounded quoting (decode.py): a quotation the model writes is always a span of its input."""

import numpy as np

from because_train.decode import Grounding, QuoteState, advance_quote, decode_batch, leads_to_new
from because_train.metrics import quoted_phrases

SOURCE = b"i cant believe it !"


def test_advance_quote_keeps_spans_of_the_input_only():
    out = QuoteState()
    inside = advance_quote(out, b' "', SOURCE)
    assert inside == QuoteState(True, b"")
    assert advance_quote(inside, b"cant", SOURCE) == QuoteState(True, b"cant")
    assert advance_quote(inside, b"hate", SOURCE) is None  # not in the text
    assert advance_quote(inside, b'"', SOURCE) is None  # an empty quotation
    assert advance_quote(QuoteState(True, b"cant"), b" believe", SOURCE) == QuoteState(True, b"cant believe")
    assert advance_quote(QuoteState(True, b"cant"), b" it", SOURCE) is None  # "cant it" is not a span
    # A token that closes one quotation and opens the next (the old model's `" "love"`).
    assert advance_quote(QuoteState(True, b"it"), b'" "', SOURCE) == QuoteState(True, b"", frozenset({b"it"}))
    assert advance_quote(QuoteState(True, b"it"), b'" "love', SOURCE) is None
    # Outside a quotation anything goes; an empty input cannot be quoted at all.
    assert advance_quote(out, b"anger", SOURCE) == out
    assert advance_quote(out, b'"', b"") is None


def test_a_quote_is_whole_words():
    src = b"i hated it !"
    hate = advance_quote(QuoteState(True, b""), b"hate", src)
    assert hate == QuoteState(True, b"hate")  # may still grow into "hated"
    assert advance_quote(hate, b'"', src) is None  # but "hate" is no quote of "hated"
    assert advance_quote(hate, b'd"', src) == QuoteState(False, b"", frozenset({b"hated"}))
    assert advance_quote(QuoteState(True, b""), b"ated", src) is None  # starts inside a word
    assert advance_quote(QuoteState(True, b""), b" it", src) is None  # starts with a space
    assert advance_quote(QuoteState(True, b"it"), b' !"', src) == QuoteState(False, b"", frozenset({b"it !"}))
    # An open quote never runs past the end of the input, where no closing mark could follow.
    assert advance_quote(QuoteState(True, b"it !"), b" ", src) is None


def test_a_phrase_is_quoted_once_unless_nothing_else_can_close_the_quotation():
    src = b"i hated it"
    once = QuoteState(True, b"it", frozenset({b"it"}))
    assert advance_quote(once, b'"', src) is None
    assert advance_quote(once, b'"', src, repeat_ok=True) == QuoteState(False, b"", frozenset({b"it"}))
    # In decoding: the model wants "it" again; "it" is the input's last word, so nothing but a
    # repeat can close the quotation: the repeat is taken rather than leaving it open.
    tokens = [b"<m>", b'"', b"hated", b"it", b" it"]
    g = Grounding(src, tokens)
    g.state = once
    assert g.pick(np.array([5.0, 9.0, 1.0, 1.0, 1.0], dtype=np.float32), banned=[], marker=0) == 1
    # Where the quotation can grow instead ("hated" -> "hated it"), the repeat is refused.
    g = Grounding(src, tokens)
    g.state = QuoteState(True, b"hated", frozenset({b"hated"}))
    assert g.pick(np.array([0.0, 9.0, 1.0, 1.0, 1.0], dtype=np.float32), banned=[], marker=0) == 4


def test_a_quotation_that_can_only_become_a_repeat_is_turned_away():
    src, quoted = b"i feel so happy", frozenset({b"happy"})
    assert not leads_to_new(src, b"happy", quoted)
    assert not leads_to_new(src, b"hap", quoted)
    assert leads_to_new(src, b"so", quoted)  # "so", "so happy"
    assert leads_to_new(src, b"", quoted)
    every = {b"i", b"i feel", b"i feel so", b"i feel so happy", b"feel", b"feel so", b"feel so happy"}
    assert not leads_to_new(src, b"", frozenset(every | {b"so", b"so happy", b"happy"}))
    assert advance_quote(QuoteState(True, b"", quoted), b"happy", src) is None
    assert advance_quote(QuoteState(True, b"", quoted), b"happy", src, repeat_ok=True) == QuoteState(
        True, b"happy", quoted
    )
    # The model's favourite, "happy" again, gives way to its next choice that can be new.
    g = Grounding(src, [b"<m>", b'"', b"happy", b"so", b"feel"])
    g.state = QuoteState(True, b"", quoted)
    assert g.pick(np.array([0.0, 1.0, 9.0, 5.0, 3.0], dtype=np.float32), banned=[], marker=0) == 3


def test_multibyte_input_is_compared_as_bytes():
    src = "café 😊".encode()
    s = advance_quote(QuoteState(True, b""), b"caf", src)
    assert s is not None and advance_quote(s, "é".encode(), src) == QuoteState(True, "café".encode())
    assert advance_quote(QuoteState(True, b""), "😊".encode()[:2], src) is not None


def test_pick_walks_the_candidates_in_order_and_the_marker_is_always_allowed():
    tokens = [b"<m>", b'"', b"hate", b"believe", b"cant", b"!"]
    g = Grounding(SOURCE, tokens)
    g.state = QuoteState(True, b"")
    logits = np.array([0.0, 1.0, 9.0, 5.0, 5.0, 1.0], dtype=np.float32)
    # "hate" is best but not in the text; "believe" and "cant" tie: the lower id wins.
    assert g.pick(logits, banned=[], marker=0) == 3
    assert g.state == QuoteState(True, b"believe")
    g.state = QuoteState(True, b"")
    assert g.pick(np.array([-1, 9, 9, -np.inf, np.nan, 0], dtype=np.float32), banned=[], marker=0) == 5
    g.state = QuoteState(True, b"it !")
    assert g.pick(np.array([-1, 2, 9, 9, 9, 9], dtype=np.float32), banned=[], marker=0) == 1
    g.state = QuoteState(True, b"it !")
    assert g.pick(np.array([-1, -np.inf, 9, 9, 9, 9], dtype=np.float32), banned=[], marker=0) == 0


def test_decode_batch_grounds_what_an_adversarial_model_wants_to_quote():
    """A fake model that always prefers to quote "hate", which no input contains."""
    tokens = [b"<pad>", b"<m>", b' "', b'"', b"hate", b"joy", *[bytes([c]) for c in range(97, 123)], b" "]
    vocab = len(tokens)
    t = {tok: i for i, tok in enumerate(tokens)}

    def forward(ids, mask, pos, past):
        step = 0 if past is None else past + 1
        logits = np.zeros((ids.shape[0], vocab), dtype=np.float32)
        plan = [t[b' "'], t[b"hate"], t[b"hate"], t[b'"'], t[b"joy"], 1]
        for r in range(ids.shape[0]):
            logits[r, plan[min(step, len(plan) - 1)]] = 10.0
            logits[r, t[b'"']] += 1.0  # closing is the second choice everywhere
        return logits, step

    texts = [b"the meeting is at pm", b"fine", b"h"]
    prompts = [[t[bytes([c])] for c in text if bytes([c]) in t] for text in texts]
    out = decode_batch(
        forward,
        prompts,
        kind="qra",
        marker=1,
        banned=[0],
        label_ids=[4, 5],
        max_reasoning=12,
        pad=0,
        sources=texts,
        token_bytes=tokens,
    )
    for d, src in zip(out, texts, strict=True):
        text = b"".join(tokens[i] for i in d.reasoning_ids).decode()
        assert all(q.encode() in src for q in quoted_phrases(text)), text


def test_scores_can_come_from_where_the_reasoning_first_names_a_label():
    """The reasoning names joy (while doubting it against anger), then after the marker the model
    is sure of anger: `scores_at_first_label` reports the named decision with its doubt."""
    tokens = [b"<pad>", b"<m>", b" is", b" it", b" anger", b" joy"]
    plan = [(5, {5: 3.0, 4: 2.0}), (2, {}), (4, {}), (1, {}), (0, {4: 30.0, 5: 0.0})]

    def forward(ids, mask, pos, past):
        step = 0 if past is None else past + 1
        token, extra = plan[min(step, len(plan) - 1)]
        logits = np.zeros((ids.shape[0], len(tokens)), dtype=np.float32)
        logits[:, token] = 10.0
        for t, v in extra.items():
            logits[:, t] = v if t != token else 10.0
        return logits, step

    args = dict(kind="qra", marker=1, banned=[0], label_ids=[4, 5], max_reasoning=8, pad=0)
    (at_marker,) = decode_batch(forward, [[2, 3]], **args)
    (named,) = decode_batch(forward, [[2, 3]], **args, scores_at_first_label=True)
    assert at_marker.reasoning_ids == named.reasoning_ids == [5, 2, 4]
    assert at_marker.label == 0 and not at_marker.named  # anger, sure of it
    assert named.named and named.label == 1  # joy, the first label the reasoning wrote
    # Its logits at that step: joy 10 (the token picked), anger 2.
    assert np.allclose(named.label_logits, [2.0, 10.0])
    assert np.isclose(named.scores.sum(), 1.0)
