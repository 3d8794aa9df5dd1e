#!/usr/bin/env bash
# Lint, type-check and test: the one command used locally and in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
if [ -z "${EDGEWATCH_ASSETS:-}" ]; then
  if [ -f ../shared/assets/video/vtest.avi ]; then export EDGEWATCH_ASSETS=../shared/assets; fi
fi
EDGEWATCH_ASSETS=$(scripts/fetch-assets.sh | tail -n 1)
export EDGEWATCH_ASSETS
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
