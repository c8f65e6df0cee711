import sys
from pathlib import Path

TRAINING = Path(__file__).resolve().parents[1]
REPO_ROOT = TRAINING.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))
