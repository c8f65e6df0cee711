#!/usr/bin/env bash
# Creates training/.venv from the pinned requirements when it is missing or the pins changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=training/.venv
STAMP="$VENV/.requirements.sha256"
WANT=$(sha256sum training/requirements.txt | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ]; then
  exit 0
fi
echo "== training: creating $VENV from training/requirements.txt"
python3 -m venv "$VENV"
# PIP_RETRIES=0: where only a local index answers, retrying the public one costs seconds a package.
PIP_RETRIES=${PIP_RETRIES:-0} "$VENV/bin/pip" install -q --disable-pip-version-check -r training/requirements.txt
echo "$WANT" > "$STAMP"
