import sys
from pathlib import Path

TRAINING = Path(__file__).resolve().parents[1]
REPO_ROOT = TRAINING.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

import pytest  # noqa: E402


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "emotion" / "train.jsonl").exists():
        pytest.skip(f"the shared emotion data is not at {SHARED_DATA}")
    return SHARED_DATA
