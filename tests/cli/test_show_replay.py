"""``edgewatch show`` (edgewatch.cli.show) on real replay output: SSDLite on vtest.avi against
a reference of its first 150 frames; a short last window, and black frames."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgewatch.cli import main
from edgewatch.cli.show import INSUFFICIENT, format_table, read_lines, reasons, verdict
from edgewatch.contracts import SummaryV1
from support.footage import agent_config


@pytest.fixture(scope="module")
def replays(assets: Path, vtest: Path, tmp_path_factory: pytest.TempPathFactory,
            ) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("show")
    cfg = agent_config(assets, work)
    ref = work / "reference.json"
    assert main(["profile", "build", "--config", str(cfg), "--source", str(vtest),
                 "--frames", "0:150", "--out", str(ref)]) == 0
    black = work / "black"
    black.mkdir()
    for i in range(100):
        cv2.imwrite(str(black / f"{i:05d}.png"), np.zeros((576, 768, 3), np.uint8))
    out = {"clean": work / "clean.jsonl", "black": work / "black.jsonl"}
    common = ["--config", str(cfg), "--reference", str(ref), "--start",
              "2026-01-01T00:00:00Z"]
    # 130 frames at 10 fps: a full 10-s window, then 3 s (about 8 measured frames)
    assert main(["replay", "--source", str(vtest), "--frames", "400:530",
                 "--out", str(out["clean"]), *common]) == 0
    main(["replay", "--source", str(black), "--fps", "10", "--out", str(out["black"]),
          *common])  # exits 0 or 1: every frame is usable, but black
    return out


def _hms(s: SummaryV1) -> str:
    return dt.datetime.fromtimestamp(s.window.start, dt.timezone.utc).strftime("%H:%M:%S")


def _summaries(path: Path) -> list[SummaryV1]:
    return [r for r in read_lines(path) if isinstance(r, SummaryV1)]


def test_a_window_with_too_few_frames_is_insufficient_and_says_why(
        replays: dict[str, Path]) -> None:
    full, short = _summaries(replays["clean"])
    assert short.frames.monitored < 10 <= full.frames.monitored
    assert verdict(short) == INSUFFICIENT and verdict(full) != INSUFFICIENT
    table = format_table(read_lines(replays["clean"]), width=200).splitlines()
    rows = table[3:5]  # after the title and the two header lines
    assert [row.split()[0] for row in rows] == [_hms(full), _hms(short)]
    assert rows[1].split()[-1] == INSUFFICIENT  # the drift column
    why = next(line for line in table if line.startswith(f"{_hms(short)} {INSUFFICIENT}:"))
    assert f"only {short.frames.monitored} monitored frames" in why


def test_black_frames_show_the_fault_and_the_drifted_features(
        replays: dict[str, Path]) -> None:
    (window,) = _summaries(replays["black"])
    assert window.quality.get("black", 0) > 0 and verdict(window) == "drift"
    why = reasons(window)
    assert why[0].startswith(f"data quality: black in {window.quality['black']} of "
                             f"{window.frames.monitored} measured frames")
    drifted = [r for r in why if "reference SDs" in r or "Jensen-Shannon" in r]
    assert len(drifted) == 3 and why[-1].endswith("more features flagged (in the JSON line's "
                                                  "drift.features)")
    assert window.drift is not None
    worst = max(window.drift.features.items(), key=lambda nf: nf[1].effect or 0.0)
    assert drifted[0].startswith(f"{worst[0]} (") and " reference SDs" in drifted[0]
    assert drifted[0].endswith(": drift, confirmed")
    text = format_table(read_lines(replays["black"]), width=120)
    row = text.splitlines()[3]
    assert row.split()[0] == _hms(window)
    assert row.split()[-2].startswith("black") and row.split()[-1] == "drift"
    assert f"\n{_hms(window)} drift: " in text and "\nalerts" in text


def test_the_table_fits_the_width_and_names_what_it_left_out(
        replays: dict[str, Path]) -> None:
    records = read_lines(replays["clean"])
    wide = format_table(records, width=200).splitlines()
    table = wide[:wide.index("")]  # the title fits on one line of 200
    assert table[1].split()[:4] == ["start", "length", "seen", "mon"]
    assert table[2].split()[:4] == ["UTC", "s", "frames", "frames"]  # units
    assert "bright = mean luminance, grey levels 0-255" in wide
    assert not any(line.startswith("(left out") for line in wide)
    narrow = format_table(records, width=80).splitlines()
    assert all(len(line) <= 80 for line in narrow)
    header = next(line.split() for line in narrow if line.split()[:1] == ["start"])
    assert header == ["start", "seen", "mon", "errors", "det", "bright", "quality", "drift"]
    assert any(line.startswith("(left out to fit 80 columns: length, drop, score")
               for line in narrow)
