#!/usr/bin/env bash
# npm test: the whole suite, Python (training/) and TypeScript (service, page, load-test tools).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-venv.sh

echo "== training: ruff"
training/.venv/bin/ruff check training
training/.venv/bin/ruff format --check training
echo "== training: pytest"
PYTHONPATH=training training/.venv/bin/python -m pytest training/tests -q -p no:cacheprovider

echo "== service: typecheck"
npx tsc --noEmit
npx tsc -p tests/browser/tsconfig.json
npx tsc -p bench
echo "== service: vitest"
npx vitest run
