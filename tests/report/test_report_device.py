"""A device report of a real replay (the SSD model on vtest.avi: the second half as filmed,
then darkened so the input features drift), written by ``edgewatch report`` and opened in
headless Chromium: no console message, every chart drawn, a screenshot kept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgewatch.cli import main
from edgewatch.report import charts, data, html
from support import footage
from support.browser import assert_renders
from support.windows import day_of_windows, reference_of


@pytest.fixture(scope="module")
def replay_lines(assets: Path, vtest: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("report")
    cfg = footage.agent_config(assets, work)
    footage.build_reference(cfg, vtest, work)
    ref = work / "reference.json"
    footage.replay(cfg, vtest, ref, work / "clean.jsonl", "cam-1",
                   frames=f"{footage.SECOND_HALF}:795")
    dark = footage.degraded_frames(vtest, work / "dark", footage.darkened(0.35))
    footage.replay(cfg, dark, ref, work / "dark.jsonl", "cam-1",
                   start=footage.START + 80.0)
    lines = work / "lines.jsonl"
    lines.write_text((work / "clean.jsonl").read_text() + (work / "dark.jsonl").read_text())
    return {"lines": lines, "reference": ref, "work": work}


def test_device_report_of_a_replay_renders_in_chromium(replay_lines: dict) -> None:
    out = replay_lines["work"] / "device.html"
    assert main(["report", "--summaries", str(replay_lines["lines"]), "--reference",
                 str(replay_lines["reference"]), "--out", str(out)]) == 0
    page = out.read_text()
    found = data.lines_data(replay_lines["lines"], replay_lines["reference"])
    assert len(found.summaries) >= 8
    drifted = data.drifted_features(found.summaries)
    assert "brightness" in drifted  # darkened frames
    assert "<h3>brightness</h3>" in page and "Drift per feature" in page
    assert "model_sha256" in page  # the model information, as a table
    _assert_offline(page)
    shown = assert_renders(out, "device-replay")  # verdict, heat, quality, latency, histograms
    assert int(shown.charts.split()[1]) == 4 + len(drifted) - page.count("no reference histogram")


def test_drifted_histogram_merges_the_drifted_windows_exactly(replay_lines: dict) -> None:
    found = data.lines_data(replay_lines["lines"], replay_lines["reference"])
    merged = data.merged_counts(found.summaries, "brightness")
    by_hand = [0] * len(merged)
    for s in found.summaries:
        f = s.drift.flagged.get("brightness") if s.drift else None
        if f is not None and (f.status == "drift" or f.drifted):
            by_hand = [a + b for a, b in zip(by_hand, s.features["brightness"].counts)]
    assert merged == by_hand and sum(merged) > 0


def _assert_offline(page: str) -> None:
    """Nothing is fetched: no src/href to anywhere, no url(), no @import, no font."""
    without_ns = page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in without_ns and "https://" not in without_ns
    assert not re.search(r"\b(src|href)=\"(?!data:)", page)
    assert "url(" not in page and "@import" not in page and "@font-face" not in page


def test_a_day_of_windows_stays_small_and_renders(tmp_path: Path) -> None:
    windows = day_of_windows()
    assert len(windows) == 1440
    page = html.device_html(data.DeviceData("bench-cam", windows, reference_of(windows[0])))
    assert len(page.encode()) <= 1_000_000
    assert page.count("<h3>") == 1  # brightness drifted in the afternoon
    out = tmp_path / "day.html"
    out.write_text(page)
    _assert_offline(page)
    assert_renders(out, "device-day")


def test_columns_merge_windows_and_keep_the_worst_verdict() -> None:
    windows = day_of_windows(12, drift=(5, 6))
    cols = data.columns(windows, limit=4)
    assert [len(c) for c in cols] == [3, 3, 3, 3]
    assert data.worst(cols[1]) == "drift"
    p50 = data.latency(cols[0], "inference_ms", 0.5)
    assert p50 is not None and p50 > 0


def test_charts_are_svg_with_content() -> None:
    svg = charts.strip([("a", ["#fff", "#fff", "#000"])], "strip")
    assert svg.count("<rect") == 2  # equal neighbours are one rectangle
    assert "<polyline" in charts.lines([("x", [1.0, None, 2.0, 3.0])], "lines")
    assert charts.histograms([1, 2, 3], [3, 2, 1], [0.0, 1.0], "h").count("<rect") >= 3
    assert charts.heat_colour(None) != charts.heat_colour(0.9) != charts.heat_colour(0.4)


def test_the_page_checks_its_charts_itself() -> None:
    page = html.device_html(data.DeviceData("x", []))
    assert "data-charts" in page and "<svg" not in page  # nothing to draw without windows
