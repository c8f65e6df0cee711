#!/usr/bin/env bash
# Runs the training package with its venv (created on first use): scripts/py.sh <stage> [args].
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/scripts/ensure-venv.sh"
PYTHONPATH="$ROOT/training" exec "$ROOT/training/.venv/bin/python" -m because_train "$@"
