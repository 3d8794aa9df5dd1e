#!/usr/bin/env bash
# The demo: a real detector on real footage. Builds a reference from the first 400 frames
# of vtest.avi, replays the whole clip through the monitor, prints what it measured and writes
# a self-contained HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
assets=$(scripts/fetch-assets.sh | tail -n 1)
ln -sfn "$assets" assets
mkdir -p out/demo
ew=.venv/bin/edgewatch
$ew check-config configs/demo.toml
$ew profile build --config configs/demo.toml --source assets/video/vtest.avi --frames 0:400 \
  --out out/demo/reference.json
$ew replay --config configs/demo.toml --source assets/video/vtest.avi \
  --reference out/demo/reference.json --out out/demo/summaries.jsonl --start 2026-01-01T00:00:00Z
$ew show out/demo/summaries.jsonl
$ew report --summaries out/demo/summaries.jsonl --reference out/demo/reference.json \
  --out out/demo/report.html
echo "summaries: out/demo/summaries.jsonl   reference: out/demo/reference.json"
echo "report: $(pwd)/out/demo/report.html (open it in a browser; it needs no network)"
