#!/usr/bin/env bash
# The dependency floors, tested: a throw-away venv with edgewatch[agent,collector] installed at
# the lowest versions pyproject.toml declares (pip -c constraints/floors.txt), then a fast
# subset of the tests that exercise those libraries: the wire contracts (msgspec), the
# statistics (numpy), reference profiles and a replay of real footage (onnxruntime, opencv),
# the collector's store (psycopg, on SQLite and PostgreSQL) and its metrics
# endpoint (prometheus-client). About 5 minutes on 2 cores, most of it pip.
#
# Usage: scripts/test-floors.sh [PYTEST ARGS...]     (make test-floors)
#
# The test tools (pytest, hypothesis, scipy) are not pinned: pip picks versions that agree
# with the floors. The venv lives in ${TMPDIR:-/tmp} and is removed at the end; set
# EDGEWATCH_FLOORS_VENV to keep one (it is reused when it exists).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'test-floors: %s\n' "$*" >&2; }

TESTS=(tests/contracts tests/stats tests/agent/window/test_reference_id.py
       tests/cli/test_show_replay.py tests/collector/test_store.py
       tests/collector/test_metrics.py)
py=${EDGEWATCH_PYTHON:-python3}
venv=${EDGEWATCH_FLOORS_VENV:-$(mktemp -d "${TMPDIR:-/tmp}/edgewatch-floors.XXXXXX")}
# pip builds the wheel in the tree: remove the build/ folder it leaves, unless it was there
[ -e build ] && keep_build=1 || keep_build=
cleanup() {
  [ -n "$keep_build" ] || rm -rf -- build
  [ -n "${EDGEWATCH_FLOORS_VENV:-}" ] || rm -rf -- "$venv"
}
trap cleanup EXIT
if [ ! -x "$venv/bin/python" ]; then
  say "creating a throw-away venv in $venv ($("$py" -c 'import sys; print("python", sys.version.split()[0])'))"
  "$py" -m venv "$venv"
fi
pip() {  # quiet pip, without the notes about this machine's unused index folders
  local rc=0
  "$venv/bin/python" -m pip -q --disable-pip-version-check "$@" >"$venv/pip.log" 2>&1 || rc=$?
  grep -v 'is ignored' "$venv/pip.log" >&2 || true
  return "$rc"
}
say "installing edgewatch[agent,collector] at the floors of constraints/floors.txt (pip, a few minutes)"
pip install -c constraints/floors.txt ".[agent,collector]" pytest hypothesis scipy
say "installed: $("$venv/bin/python" -m pip list --disable-pip-version-check 2>/dev/null | awk '{n = tolower($1); gsub("_", "-", n)} n ~ /^(msgspec|numpy|paho-mqtt|onnxruntime|opencv-python-headless|psutil|prometheus-client|psycopg|psycopg-binary)$/ {printf "%s %s, ", n, $2}')"
"$venv/bin/python" - <<'EOF'
# every pin of constraints/floors.txt that applies here is what got installed
import importlib.metadata as md, re, sys
bad = []
for line in open("constraints/floors.txt"):
    line = line.split("#")[0].strip()
    if not line or "python_version" in line and sys.version_info >= (3, 11):
        continue
    name, version = re.match(r"([A-Za-z0-9_.-]+)==([^;\s]+)", line).groups()
    if md.version(name) != version:
        bad.append(f"{name} {md.version(name)} (floor {version})")
sys.exit("not at the floors: " + ", ".join(bad) if bad else 0)
EOF
if [ -z "${EDGEWATCH_ASSETS:-}" ] && [ -f ../shared/assets/video/vtest.avi ]; then
  export EDGEWATCH_ASSETS=../shared/assets
fi
EDGEWATCH_ASSETS=$(scripts/fetch-assets.sh | tail -n 1)
export EDGEWATCH_ASSETS PATH="$PWD/.venv/tools/bin:$PATH"
say "pytest ${TESTS[*]} $*"
# from the tests' directory's parent, but against the installed package: src/ is not on the path
"$venv/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}" "$@"
