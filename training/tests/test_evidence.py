import re

import pytest

from because_train import LABELS
from because_train.config import EvidenceConfig
from because_train.data import load_rows
from because_train.normalize import lower_alnum_v1
from because_train.rgen import RgenItem
from because_train.rgen.evidence import EvidenceReasoningGenerator, merge_adjacent


@pytest.fixture(scope="module")
def items(request):
    from conftest import SHARED_DATA

    path = SHARED_DATA / "emotion" / "train.jsonl"
    if not path.exists():
        pytest.skip("shared emotion data missing")
    rows = load_rows(str(path))[:1200]
    return [RgenItem(f"train:{i}", lower_alnum_v1(r.text), LABELS[r.label]) for i, r in enumerate(rows)]


@pytest.fixture(scope="module")
def fitted(items):
    gen = EvidenceReasoningGenerator(EvidenceConfig(folds=3), seed=7, labels=LABELS)
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
    again = EvidenceReasoningGenerator(EvidenceConfig(folds=3), seed=7, labels=LABELS)
    again.fit(items)
    assert again.generate(items[:200]) == fitted.generate(items[:200])
    other = EvidenceReasoningGenerator(EvidenceConfig(folds=3), seed=8, labels=LABELS)
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

    text = render(Evidence(["boring"], ("super", 1)), "sadness", LABELS, seed=1, key="k")
    assert text.index("sadness") < text.index('"super"') and text.endswith(("hints at joy.", "(joy)."))
