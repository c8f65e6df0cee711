"""Provenance: hashes of inputs, the code commit and the settings, written beside every output."""

import hashlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "training"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def describe_inputs(paths: dict[str, str | Path]) -> dict[str, dict[str, str]]:
    return {name: {"path": str(p), "sha256": sha256_file(p)} for name, p in paths.items()}


def write_provenance(out: Path, stage: str, inputs: dict[str, str | Path], settings: Any) -> None:
    record = {
        "stage": stage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "code_commit": code_commit(),
        "inputs": describe_inputs(inputs),
        "settings": settings,
    }
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")
