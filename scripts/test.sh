#!/usr/bin/env bash
# Lint, type-check and test: the one command used locally and in CI.
#
# Sets up .venv with the development packages (scripts/setup-venv.sh dev), the test tools
# (scripts/setup-test-tools.sh: mosquitto, promtool, Alertmanager, ... never as running or
# enabled services) and the assets (scripts/fetch-assets.sh: ../shared/assets when present,
# else fetched), then runs ruff, mypy and pytest; arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'test: %s\n' "$*" >&2; }
scripts/setup-venv.sh dev
scripts/setup-test-tools.sh
export PATH="$PWD/.venv/tools/bin:$PATH"
if [ -z "${EDGEWATCH_ASSETS:-}" ] && [ -f ../shared/assets/video/vtest.avi ]; then
  export EDGEWATCH_ASSETS=../shared/assets
fi
EDGEWATCH_ASSETS=$(scripts/fetch-assets.sh | tail -n 1)
export EDGEWATCH_ASSETS
say "ruff (lint)"
.venv/bin/ruff check src tests bench
say "mypy (types)"
.venv/bin/mypy
say "pytest (assets: $EDGEWATCH_ASSETS)"
.venv/bin/python -m pytest "$@"
