#!/usr/bin/env bash
# Creates .venv with edgewatch and its development tools; installs Debian packages it needs
# (python3-venv, mosquitto) when they are missing. Safe to run again: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
  echo "need root to run: $*" >&2; return 1; fi; }
apt_install() {
  as_root apt-get install -y -q "$@" >/dev/null 2>&1 || {
    as_root apt-get update -q >/dev/null && as_root apt-get install -y -q "$@" >/dev/null; }
}

command -v python3 >/dev/null || apt_install python3
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || apt_install mosquitto
# Used by tests that skip (saying why) when missing: promtool, Alertmanager, openssl,
# systemd-analyze (the units in systemd/), chromium (the HTML reports, headless).
for tool in promtool:prometheus prometheus-alertmanager:prometheus-alertmanager openssl:openssl \
            systemd-analyze:systemd chromium:chromium; do
  command -v "${tool%%:*}" >/dev/null || apt_install "${tool##*:}" \
    || echo "setup: could not install ${tool##*:}; the tests that need it will be skipped" >&2
done

stamp=.venv/.edgewatch-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && .venv/bin/python -c 'import edgewatch' 2>/dev/null; then
  exit 0
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v 'is ignored' >&2 || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v 'is ignored' >&2 || true
.venv/bin/python -c 'import edgewatch, onnxruntime, cv2, scipy, onnx, mkdocs' || { echo "setup failed: see pip output above" >&2; exit 1; }
touch "$stamp"
