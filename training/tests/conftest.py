import json
import sys
from pathlib import Path

TRAINING = Path(__file__).resolve().parents[1]
REPO_ROOT = TRAINING.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

import pytest  # noqa: E402


def shared_file(*parts: str) -> Path:
    """A file of the shared data (../shared/data beside the repository). A test that needs a missing
    one fails and says which: a skip would let the suite pass without testing anything."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.fail(f"{path} is missing: these tests need the shared data at {SHARED_DATA}", pytrace=False)
    return path


def labelled_count(path: Path) -> int:
    """Rows of a JSONL file whose `label` is set, counted from the file itself."""
    with open(path, encoding="utf-8") as f:
        return sum(json.loads(line).get("label") is not None for line in f if line.strip())


@pytest.fixture
def shared_data() -> Path:
    shared_file("emotion", "train.jsonl")
    return SHARED_DATA
