import json

import pytest

from because_train.normalize import EmojiTable, default_table, lower_alnum_v1, natural_v1, normalize

from conftest import REPO_ROOT

RULES = json.loads((REPO_ROOT / "tests" / "fixtures" / "normalize.json").read_text(encoding="utf-8"))["rules"]


def test_the_fixture_pins_every_rule_but_none():
    assert sorted(RULES) == ["lower-alnum-v1", "natural-v1"]


@pytest.mark.parametrize("raw, expected", RULES["lower-alnum-v1"])
def test_lower_alnum_v1_matches_the_shared_fixture(raw, expected):
    assert lower_alnum_v1(raw) == expected
    assert normalize(raw, "lower-alnum-v1") == expected


@pytest.mark.parametrize("raw, expected", RULES["natural-v1"])
def test_natural_v1_matches_the_shared_fixture(raw, expected):
    assert natural_v1(raw) == expected
    assert normalize(raw, "natural-v1", default_table()) == expected


def test_natural_v1_never_leaves_a_quotation_mark_or_a_special_token():
    # Grounded quoting relies on it: a '"' in the reasoning can only delimit a quote.
    out = natural_v1('"quoted" \u201cand\u201d <|label|> <|eos|> \uff02')
    assert '"' not in out and "<" not in out and "|" not in out


def test_natural_v1_reads_the_table_it_is_given():
    table = EmojiTable({"emoji": {"\U0001f60a": "glad"}, "emoticons": {":)": "grin"}})
    assert natural_v1("\U0001f60a\ufe0f :)", table) == "glad grin"


def test_unknown_rule_is_an_error():
    with pytest.raises(ValueError, match="unknown normalisation 'upper'"):
        normalize("x", "upper")
