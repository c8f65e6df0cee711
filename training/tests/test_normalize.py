import json

import pytest

from because_train.normalize import lower_alnum_v1, normalize

from conftest import REPO_ROOT

CASES = json.loads((REPO_ROOT / "tests" / "fixtures" / "normalize.json").read_text())["cases"]


@pytest.mark.parametrize("raw, expected", CASES)
def test_lower_alnum_v1_matches_the_shared_fixture(raw, expected):
    assert lower_alnum_v1(raw) == expected


def test_unknown_rule_is_an_error():
    with pytest.raises(ValueError, match="unknown normalisation 'upper'"):
        normalize("x", "upper")
