#!/usr/bin/env bash
# Installs the tools some tests run, without leaving services enabled or running.
#
# Usage: scripts/setup-test-tools.sh        (scripts/test.sh runs it)
#
# The tools and where they come from (Debian/Ubuntu):
#   mosquitto                  the MQTT broker the tests start on free ports (package mosquitto)
#   promtool                   checks the collector's /metrics output (package prometheus)
#   prometheus-alertmanager, amtool   the collector's Alertmanager route (prometheus-alertmanager)
#   openssl                    TLS certificates for the broker tests
#   systemd-analyze            checks the units in systemd/ (package systemd)
#   chromium                   renders the HTML reports headless
#   mosquitto_sub              counts deliveries in bench/drain.py and bench/ingest.py
#                              (package mosquitto-clients)
#
# Installing mosquitto, prometheus or prometheus-alertmanager with apt would also enable and
# start their services (a broker on port 1883, Prometheus on 9090, Alertmanager on 9093, and
# node-exporter pulled in as a recommendation). So those three are not installed: their .deb
# is fetched with 'apt-get download' (no root needed once the package lists exist) and
# unpacked with 'dpkg-deb -x' into .venv/tools/<package>/, and their programs are linked into
# .venv/tools/bin, which scripts/test.sh puts first on PATH (tests/support also looks there).
# promtool, alertmanager and amtool are static Go programs; mosquitto needs a few shared
# libraries, which are installed as libraries (lib* packages from its Depends; no services).
# openssl, systemd-analyze, chromium and mosquitto-clients install no services: they are installed with apt
# (--no-install-recommends) when missing.
#
# A tool already on PATH is used as it is. A tool that cannot be had is reported; the tests
# that need it skip and say why. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.venv/tools
say() { printf 'setup: %s\n' "$*" >&2; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo -n "$@"
  else return 1; fi
}
apt_install() {
  as_root apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 || {
    as_root apt-get update -q >/dev/null 2>&1 && \
      as_root apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1; }
}
have() { PATH="$PWD/$TOOLS/bin:$PATH:/usr/sbin:/sbin" command -v "$1" >/dev/null; }

unpack() {  # PACKAGE PROGRAM... : unpack PACKAGE's .deb under $TOOLS and link PROGRAMs
  local pkg=$1 dl deb prog
  shift
  dl=$(mktemp -d "${TMPDIR:-/tmp}/edgewatch-tools.XXXXXX")
  if ! (cd "$dl" && apt-get download "$pkg" >/dev/null 2>&1); then
    as_root apt-get update -q >/dev/null 2>&1 || true
    (cd "$dl" && apt-get download "$pkg" >/dev/null 2>&1) || { rm -rf "$dl"; return 1; }
  fi
  deb=$(find "$dl" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
  rm -rf "${TOOLS:?}/$pkg" && mkdir -p "$TOOLS/$pkg" "$TOOLS/bin"
  dpkg-deb -x "$deb" "$TOOLS/$pkg"
  # its shared libraries (not the package itself: that would enable its service)
  local libs
  libs=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/[ (].*//; s/^ *//' | grep '^lib' || true)
  rm -rf "$dl"
  if [ -n "$libs" ]; then
    # shellcheck disable=SC2086
    apt_install $libs || say "could not install $pkg's libraries ($(echo $libs))"
  fi
  for prog in "$@"; do
    local found
    found=$(find "$TOOLS/$pkg/usr/bin" "$TOOLS/$pkg/usr/sbin" -name "$prog" -type f 2>/dev/null | head -n 1)
    [ -n "$found" ] || { say "$pkg has no $prog"; return 1; }
    ln -sfn "$PWD/$found" "$TOOLS/bin/$prog"
  done
}

# program:package[:program...] unpacked without installing (their packages carry services)
for spec in mosquitto:mosquitto:mosquitto_passwd promtool:prometheus \
            prometheus-alertmanager:prometheus-alertmanager:amtool; do
  prog=${spec%%:*}; rest=${spec#*:}; pkg=${rest%%:*}
  progs=$prog; [ "$rest" != "$pkg" ] && progs="$prog ${rest#*:}"
  have "$prog" && continue
  say "unpacking $pkg into $TOOLS (apt-get download; not installed, so no service starts)"
  # shellcheck disable=SC2086
  unpack "$pkg" $progs || say "could not get $prog; the tests that need it will be skipped"
done

# Debian's Alertmanager reads its notification templates from this directory (set when it was
# built; no flag changes it): the unpacked package's copies go there when they are missing.
tmpl=/usr/share/prometheus/alertmanager
unpacked="$TOOLS/prometheus-alertmanager$tmpl"
if [ -d "$unpacked" ] && [ ! -e "$tmpl/default.tmpl" ]; then
  say "placing Alertmanager's templates in $tmpl (the unpacked program reads them there)"
  as_root mkdir -p "$tmpl" && as_root cp -r "$unpacked/." "$tmpl/" \
    || say "could not write $tmpl; Alertmanager will not start"
fi

# program:package installed with apt (no services)
for spec in openssl:openssl systemd-analyze:systemd chromium:chromium mosquitto_sub:mosquitto-clients; do
  prog=${spec%%:*}; pkg=${spec##*:}
  have "$prog" && continue
  say "installing $pkg (apt, for $prog)"
  apt_install "$pkg" || say "could not install $pkg; the tests that need $prog will be skipped"
done
say "test tools ready (programs not on PATH are linked in $TOOLS/bin)"
