#!/usr/bin/env bash
# The demo: a real detector on real footage, saying what it does at each step. Builds a
# reference profile from the first 400 frames of vtest.avi, replays the whole clip through the
# monitor against it, prints the windows as a table with the reason for every window that is
# not ok, and writes a self-contained HTML report.
#
# Needs python3 with venv and the agent's Python packages only (scripts/setup-venv.sh agent):
# no broker, no Prometheus, no services. Output goes to out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\ndemo: %s\n' "$*"; }
scripts/setup-venv.sh agent
assets=$(scripts/fetch-assets.sh | tail -n 1)
ln -sfn "$assets" assets
rm -rf out/demo && mkdir -p out/demo
ew=.venv/bin/edgewatch
clip=assets/video/vtest.avi
frames=$(.venv/bin/python -c 'import sys, cv2; print(int(cv2.VideoCapture(sys.argv[1]).get(cv2.CAP_PROP_FRAME_COUNT)))' "$clip")
fps=$(.venv/bin/python -c 'import sys, cv2; print(round(cv2.VideoCapture(sys.argv[1]).get(cv2.CAP_PROP_FPS), 1))' "$clip")
seconds=$(.venv/bin/python -c 'import sys; print(round(int(sys.argv[1]) / float(sys.argv[2])))' "$frames" "$fps")

say "1/5 checking configs/demo.toml and the model it names (SSDLite-MobileNetV2, a COCO object detector)"
$ew check-config configs/demo.toml
say "2/5 building a reference profile from frames 0-399 of vtest.avi (the first 40 s at $fps fps: the 'training' data, what normal looks like)"
$ew profile build --config configs/demo.toml --source "$clip" --frames 0:400 \
  --out out/demo/reference.json
say "3/5 replaying the whole clip ($frames frames, ${seconds} s) through the monitor against that reference, in 10-s windows"
$ew replay --config configs/demo.toml --source "$clip" \
  --reference out/demo/reference.json --out out/demo/summaries.jsonl --start 2026-01-01T00:00:00Z
say "4/5 the windows (edgewatch show out/demo/summaries.jsonl)"
$ew show out/demo/summaries.jsonl
say "5/5 writing the HTML report"
$ew report --summaries out/demo/summaries.jsonl --reference out/demo/reference.json \
  --out out/demo/report.html
alerts=$(grep -c '"type": *"alert"' out/demo/summaries.jsonl || true)
echo
echo "report:    $(pwd)/out/demo/report.html (open it in a browser; it needs no network)"
echo "data:      out/demo/summaries.jsonl (one JSON line per window), out/demo/reference.json"
echo "alerts:    $alerts in this run; to look at them: $ew show out/demo/summaries.jsonl (listed under the table)"
