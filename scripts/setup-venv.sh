#!/usr/bin/env bash
# Creates .venv with edgewatch and what the command at hand needs, saying what it does.
#
# Usage: scripts/setup-venv.sh [agent|dev]
#
#   agent  edgewatch with the agent's packages (onnxruntime, opencv, ...): all 'make demo'
#          needs. The only Debian package it may install is python3-venv.
#   dev    (the default) edgewatch with the agent's, the collector's and the development
#          packages (pytest, ruff, mypy, scipy, onnx, mkdocs): 'make test' and 'make bench'.
#          The test tools outside Python (mosquitto, promtool, Alertmanager, ...) are
#          scripts/setup-test-tools.sh's business.
#
# Safe to run again: a stamp per level in .venv says what is installed; dev includes agent.
set -euo pipefail
cd "$(dirname "$0")/.."

level=${1:-dev}
case "$level" in
  agent) extra=agent; check='import edgewatch, onnxruntime, cv2, psutil' ;;
  dev) extra=dev; check='import edgewatch, onnxruntime, cv2, scipy, onnx, mkdocs, pytest' ;;
  *) echo "usage: $0 [agent|dev]" >&2; exit 2 ;;
esac

say() { printf 'setup: %s\n' "$*" >&2; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo -n "$@"
  else echo "setup: need root to run: $*" >&2; return 1; fi
}
apt_install() {  # only the packages named, never their recommendations
  as_root apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 || {
    as_root apt-get update -q >/dev/null && \
      as_root apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
}

fresh() {  # LEVEL -> 0 when .venv already holds that level for this pyproject.toml
  local stamp=.venv/.edgewatch-$1
  [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && .venv/bin/python -c "$check" 2>/dev/null
}
if fresh "$level" || { [ "$level" = agent ] && fresh dev; }; then
  say ".venv is up to date ($level)"
  exit 0
fi

if ! command -v python3 >/dev/null; then
  say "installing python3 (apt)"
  apt_install python3
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  say "installing python3-venv (apt)"
  apt_install python3-venv
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv ($(python3 -c 'import sys; print("python", sys.version.split()[0])'))"
  python3 -m venv .venv
fi
pip() { .venv/bin/python -m pip -q --disable-pip-version-check "$@" 2>&1 | grep -v 'is ignored' >&2 || true; }
say "upgrading pip in .venv"
pip install --upgrade pip
if [ "$level" = agent ]; then
  say "installing edgewatch and the agent's dependencies into .venv (pip, about a minute)"
else
  say "installing edgewatch with the agent's, the collector's and the development dependencies into .venv (pip, a few minutes)"
fi
pip install -e ".[$extra]"
.venv/bin/python -c "$check" || { say "failed: see the pip output above"; exit 1; }
touch ".venv/.edgewatch-$level"
say "done: .venv/bin/edgewatch is the command (or: source .venv/bin/activate)"
