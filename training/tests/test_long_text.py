"""because_train.long_text, the port of the service's window planner and aggregation: the cases of
tests/unit/long-text.test.ts, seeded random texts for the invariants, and the real encoder."""

import math
import random
import re

import pytest

from because_train.long_text import (
    Span,
    UnplannableError,
    aggregate_windows,
    plan_windows,
    read_text,
    split_code_points,
    split_sentences,
    split_words,
)

from conftest import REPO_ROOT

QRA = REPO_ROOT / "models" / "emotion-qra-natural"


def texts(text: str, spans: list[Span]) -> list[str]:
    return [text[s.start : s.end] for s in spans]


def words(text: str):
    """One token per word: the simplest counter a planner must handle."""
    return lambda s, e: len(text[s:e].split())


def no_space(text: str) -> str:
    return re.sub(r"\s", "", text)


# splitSentences


def test_a_sentence_ends_after_marks_and_closing_quotes_before_white_space():
    text = 'I am sad. You are happy!  Why? He said "stop." Then (he left.) ok'
    assert texts(text, split_sentences(text)) == [
        "I am sad.",
        "You are happy!",
        "Why?",
        'He said "stop."',
        "Then (he left.)",
        "ok",
    ]


def test_a_sentence_ends_at_every_line_break_and_keeps_its_run_of_marks():
    text = "first line\r\nsecond… third?!\n\n  Wait... what"
    assert texts(text, split_sentences(text)) == ["first line", "second…", "third?!", "Wait...", "what"]


def test_no_sentence_ends_inside_a_number_an_address_or_a_word():
    text = "rated 3.5 stars on www.example.com, e.g.this one"
    assert texts(text, split_sentences(text)) == [text]


def test_white_space_holds_no_sentence():
    assert split_sentences(" \n\t ") == []
    assert split_sentences("") == []


def test_white_space_is_javascripts():
    # U+FEFF is space to JavaScript's \s (the service's), U+0085 and U+001C only to Python's.
    text = "sad.\ufeffhappy.\x85ok.\x1cno"
    assert texts(text, split_sentences(text)) == ["sad.", "happy.\x85ok.\x1cno"]
    assert texts(text, split_words(text, Span(0, len(text)))) == ["sad.", "happy.\x85ok.\x1cno"]
    # "$" would match before a final line break; the service's does not.
    assert texts("end.\n", split_sentences("end.\n")) == ["end."]


PIECES = ["word", "a", ".", "!", "?", "…", '"', ")", " ", "  ", "\n", "\r\n", "\t", "😊", "é", "\u00a0"]


def test_sentences_cover_every_non_space_character_once_in_order_trimmed():
    rng = random.Random(1)
    for _ in range(500):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40)))
        spans = split_sentences(text)
        for i, s in enumerate(spans):
            assert s.start < s.end
            if i:
                assert s.start >= spans[i - 1].end
            assert text[s.start : s.end] == text[s.start : s.end].strip()
        assert no_space("".join(texts(text, spans))) == no_space(text)


# splitWords and splitCodePoints


def test_words_are_cut_at_spaces_and_long_words_every_few_code_points():
    text = "xx  ab cd\tef "
    assert texts(text, split_words(text, Span(2, 12))) == ["ab", "cd", "ef"]
    emoji = "a😊😊b😊"
    assert texts(emoji, split_code_points(Span(0, len(emoji)), 2)) == ["a😊", "😊b", "😊"]


# planWindows


def test_a_text_that_fits_is_one_window_trimmed():
    text = "  I am sad. So sad.  "
    assert texts(text, plan_windows(text, 10, words(text))) == ["I am sad. So sad."]


def test_whole_sentences_are_packed_greedily():
    text = "one two. three four. five six seven. eight."
    assert texts(text, plan_windows(text, 4, words(text))) == [
        "one two. three four.",
        "five six seven. eight.",
    ]
    assert texts(text, plan_windows(text, 3, words(text))) == [
        "one two.",
        "three four.",
        "five six seven.",
        "eight.",
    ]


def test_a_sentence_longer_than_a_window_is_cut_at_spaces_and_packed_with_the_next():
    text = "a b c d e f g. h i."
    assert texts(text, plan_windows(text, 3, words(text))) == ["a b c", "d e f", "g. h i."]


def test_a_word_longer_than_a_window_is_cut_between_characters():
    text = "ok 😊😊😊😊😊😊😊. a"

    def count(s: int, e: int) -> int:  # one token per code point that is not a space
        return sum(not c.isspace() for c in text[s:e])

    # The word is halved until each piece fits (4 + 4 code points, then 2 + 2 + 2 + 2).
    assert texts(text, plan_windows(text, 3, count)) == ["ok", "😊😊", "😊😊", "😊😊", "😊. a"]


def test_the_exact_count_of_a_joined_window_is_checked():
    text = "a b. c d. e f."

    def count(s: int, e: int) -> int:  # joining sentences costs one token more than their parts
        return words(text)(s, e) + (1 if len(split_sentences(text[s:e])) > 1 else 0)

    windows = plan_windows(text, 4, count)
    assert all(count(w.start, w.end) <= 4 for w in windows)
    assert texts(text, windows) == ["a b.", "c d.", "e f."]


def test_what_the_model_reads_nothing_in_joins_a_neighbour_or_is_left_out():
    def letters(text: str):
        return lambda s, e: len(re.findall("[a-z]+", text[s:e]))

    text = "happy.\n\n....\n\n!!!! sad."
    assert texts(text, plan_windows(text, 1, letters(text))) == ["happy.\n\n....\n\n!!!!", "sad."]
    text = ".... happy"

    def joined(s: int, e: int) -> int:
        return letters(text)(s, e) + (1 if len(split_sentences(text[s:e])) > 1 else 0)

    assert texts(text, plan_windows(text, 1, joined)) == ["happy"]


def test_a_character_alone_over_a_window_is_refused():
    with pytest.raises(UnplannableError):
        plan_windows("ab", 1, lambda s, e: 2 * (e - s))


def test_windows_hold_for_any_text():
    pieces = ["word", "longerword", "a", ".", "!", " ", "\n", "😊", "x" * 9]
    rng = random.Random(2)
    for _ in range(500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))
        limit = rng.randint(1, 8)

        def count(s: int, e: int, text: str = text) -> int:  # a token per 3 code points of a word
            return sum(math.ceil(len(w) / 3) for w in text[s:e].split())

        windows = plan_windows(text, limit, count)
        for i, w in enumerate(windows):
            assert 0 < count(w.start, w.end) <= limit
            if i:
                assert w.start >= windows[i - 1].end
        assert no_space("".join(texts(text, windows))) == no_space(text)


# aggregateWindows


def test_windows_weigh_by_their_tokens_and_the_label_is_the_argmax_of_the_mean():
    a = aggregate_windows([[0.8, 0.2], [0.1, 0.9]], [30, 90])
    assert a.scores[0] == pytest.approx(0.25 * 0.8 + 0.75 * 0.1, abs=1e-12)
    assert a.scores[1] == pytest.approx(0.25 * 0.2 + 0.75 * 0.9, abs=1e-12)
    assert (a.label_index, a.deciding_window) == (1, 1)


def test_the_reasoning_is_that_of_the_window_most_supporting_the_label():
    a = aggregate_windows([[0.5, 0.3, 0.2], [0.4, 0.6, 0.0], [0.9, 0.1, 0.0]], [100, 100, 10])
    assert (a.label_index, a.deciding_window) == (0, 2)
    assert sum(a.scores) == pytest.approx(1, abs=1e-12)


def test_ties_go_to_the_first_label_and_the_first_window():
    a = aggregate_windows([[0.5, 0.5], [0.5, 0.5]], [4, 4])
    assert (a.scores, a.label_index, a.deciding_window) == ([0.5, 0.5], 0, 0)
    with pytest.raises(ValueError):
        aggregate_windows([], [])


# read_text


def test_start_is_the_first_ids_and_end_the_last():
    ids = list(range(10))

    def never(_: str) -> list[int]:
        raise AssertionError("start and end cut the whole text's ids")

    start = read_text("some text", ids, 4, "start", never)
    assert (start.windows, start.spans, start.dropped) == ([[0, 1, 2, 3]], None, 6)
    end = read_text("some text", ids, 4, "end", never)
    assert (end.windows, end.spans, end.dropped) == ([[6, 7, 8, 9]], None, 6)
    for mode in ("start", "end", "windows"):
        whole = read_text("some text", ids, 10, mode, never)
        assert (whole.windows, whole.spans, whole.dropped) == ([ids], [Span(0, 9)], 0)
    with pytest.raises(ValueError, match="truncate 'middle'"):
        read_text("some text", ids, 4, "middle", never)


def test_windows_encode_each_part_of_the_text_on_its_own():
    text = "one two. three four. five six seven. eight."

    def encode(t: str) -> list[int]:
        return [len(w) for w in t.split()]

    r = read_text(text, encode(text), 4, "windows", encode)
    assert texts(text, r.spans) == ["one two. three four.", "five six seven. eight."]
    assert r.windows == [encode("one two. three four."), encode("five six seven. eight.")]
    assert r.dropped == 0


# With the real model's encoder


@pytest.fixture(scope="module")
def spec():
    from because_train.package import load_package

    return load_package(QRA).spec


def test_real_windows_fit_cut_at_sentences_and_join_to_the_text(spec):
    sentences = [
        "I can't believe they cancelled my flight again!",
        "The staff were rude and nobody helped 😡.",
        "I waited six hours at the gate.",
    ]
    long = " ".join(sentences[i % 3] for i in range(30))
    ids = spec.text_ids(long)
    assert len(ids) > 128
    r = read_text(long, ids, 128, "windows", spec.text_ids)
    assert len(r.windows) > 1
    for w, span in zip(r.windows, r.spans, strict=True):
        part = long[span.start : span.end]
        assert w == spec.text_ids(part) and len(w) <= 128
        assert any(part.startswith(s) for s in sentences) and part[-1] in ".!"
    assert " ".join(texts(long, r.spans)) == long
    start = read_text(long, ids, 128, "start", spec.text_ids)
    assert start.windows == [ids[:128]] and start.dropped == len(ids) - 128
