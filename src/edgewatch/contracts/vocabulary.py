"""Names and ranks shared by messages, alert rules and metrics, without msgspec: modules that
only need the vocabulary (configuration checks, alert rule metrics) stay light to import."""

from __future__ import annotations

SEVERITY_RANK: dict[str, float] = {"ok": 0.0, "warning": 1.0, "drift": 2.0}
"""Drift verdicts as numbers (alert rules' ``drift.severity``, the collector's metrics)."""
QUALITY_FAULTS: tuple[str, ...] = (
    "decode_error", "black", "blank", "frozen", "overexposed", "underexposed", "blurred",
    "greyscale_switch", "resolution_change", "nonfinite_output", "empty_output_streak",
    "inference_error",
)
"""The data-quality faults agents report in ``quality`` (names outside it may appear)."""
