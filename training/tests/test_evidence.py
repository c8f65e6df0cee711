import re

import pytest

from because_train.config import EMOTIONS, EvidenceConfig
from because_train.data import load_rows
from because_train.normalize import lower_alnum_v1
from because_train.rgen import RgenItem
from because_train.rgen.evidence import EvidenceReasoningGenerator, merge_adjacent


@pytest.fixture(scope="module")
def items(request):
    from conftest import shared_file

    rows = load_rows(str(shared_file("emotion", "train.jsonl")), labels=EMOTIONS)[:1200]
    return [RgenItem(f"train:{i}", lower_alnum_v1(r.text), EMOTIONS[r.label]) for i, r in enumerate(rows)]


@pytest.fixture(scope="module")
def fitted(items):
    gen = EvidenceReasoningGenerator(EvidenceConfig(folds=3), seed=7, labels=EMOTIONS)
    gen.fit(items)
    return gen


def test_every_quoted_phrase_occurs_in_the_text(items, fitted):
    out = fitted.generate(items[:400])
    quoted_rows = 0
    for it, reasoning in zip(items[:400], out, strict=True):
        quotes = re.findall(r'"([^"]+)"', reasoning)
        quoted_rows += bool(quotes)
        for q in quotes:
            assert re.search(rf"(^| ){re.escape(q)}( |$)", it.text), (q, it.text)
        conclusion = re.split(r", (?:though|despite) ", reasoning)[0].removesuffix(".")
        assert conclusion.endswith(it.label), reasoning  # the gold emotion is named, before any contrary cue
    assert quoted_rows > 350  # nearly every row has a phrase to quote


def test_same_seed_same_text_other_seed_other_phrasing(items, fitted):
    again = EvidenceReasoningGenerator(EvidenceConfig(folds=3), seed=7, labels=EMOTIONS)
    again.fit(items)
    assert again.generate(items[:200]) == fitted.generate(items[:200])
    other = EvidenceReasoningGenerator(EvidenceConfig(folds=3), seed=8, labels=EMOTIONS)
    other.fit(items)
    assert other.generate(items[:200]) != fitted.generate(items[:200])


def test_cross_fitting_never_explains_a_row_with_a_teacher_that_saw_it(items, fitted):
    for it in items:
        assert it.key not in fitted.teacher_for(it.key).trained_keys
    held_out = RgenItem("validation:0", "i feel so happy and grateful", "joy")
    assert fitted.teacher_for(held_out.key) is fitted.full
    assert 0.5 < fitted.stats["teacher_cross_fit_accuracy"] < 1.0


def test_touching_spans_merge():
    assert merge_adjacent([(3, 4), (1, 3), (6, 7)]) == [(1, 4), (6, 7)]


def test_contrary_cue_follows_the_conclusion():
    from because_train.rgen.evidence import Evidence, render

    text = render(Evidence(["boring"], ("super", 1)), "sadness", EMOTIONS, seed=1, key="k")
    assert text.index("sadness") < text.index('"super"') and text.endswith(("hints at joy.", "(joy)."))


def _fitted_with(items, style: str) -> EvidenceReasoningGenerator:
    gen = EvidenceReasoningGenerator(EvidenceConfig(folds=3, style=style), seed=7, labels=EMOTIONS)
    gen.fit(items)
    return gen


def _named(reasoning: str) -> list[str]:
    """Emotions named outside quotes, in order."""
    bare = re.sub(r'"[^"]*"', "", reasoning)
    return [w for w in re.findall(r"[a-z]+", bare) if w in EMOTIONS]


def test_survey_chooses_cues_without_the_gold_label_and_concludes_with_it(items):
    gen = _fitted_with(items, "survey")
    for it in items[:200]:
        [mine] = gen.generate([it])
        other = EMOTIONS[(EMOTIONS.index(it.label) + 1) % len(EMOTIONS)]
        [flipped] = gen.generate([RgenItem(it.key, it.text, other)])
        assert re.findall(r'"[^"]*" \(\w+\)', mine) == re.findall(r'"[^"]*" \(\w+\)', flipped)
        assert _named(mine)[-1] == it.label and _named(flipped)[-1] == other
        for q in re.findall(r'"([^"]+)"', mine):
            assert re.search(rf"(^| ){re.escape(q)}( |$)", it.text), (q, it.text)


def test_lead_names_the_gold_emotion_first_then_the_same_evidence(items, fitted):
    gen = _fitted_with(items, "lead")
    for it, gold_style, lead in zip(
        items[:200], fitted.generate(items[:200]), gen.generate(items[:200]), strict=True
    ):
        assert _named(lead)[0] == it.label, lead
        assert re.findall(r'"[^"]*"', lead) == re.findall(r'"[^"]*"', gold_style)


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="gold, lead or survey"):
        EvidenceReasoningGenerator(EvidenceConfig(style="chatty"), seed=1, labels=EMOTIONS)
