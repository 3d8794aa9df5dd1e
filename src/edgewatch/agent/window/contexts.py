"""Context references and reference switches: which reference judges a window.

A device may hold several references, one per *context* (day, night/IR...), configured as
``[[reference.contexts]]`` with minimal, validated conditions on a frame's own features:
``greyscale = true|false`` and ``brightness_below`` / ``brightness_above``. The first
context whose conditions a frame meets is the frame's context; a frame meeting none is in
the ``default`` context (``reference.path`` or the accepted one).

Decided per frame, used per window. A window's histograms must be counted on its
reference's bins, and which context a window belongs to is only known once it closes, so
:class:`ContextWindow` counts every frame of the window against every context's reference
(one :class:`WindowAccumulator` each: a few histogram updates more per frame) and, at the
close, keeps the counts of the context most of its measured frames matched (ties: the
first configured, the default last). A window mixing contexts is thus judged against the
majority's reference, with a note in its drift reasons. The summary says which:
``context`` (the context's name) and ``reference_id``.

Per frame, the data-quality checks and the anomaly score use the frame's own context's
reference, so a night/IR reference makes greyscale frames normal (no ``greyscale_switch``
fault) while day frames are still checked against the day reference. The no-signal
tracker is shared by all contexts.

Switching a reference (re-baselining, ``reference.push``): :meth:`ReferenceSet.replace`
may be called from any thread; the new reference applies from the next window that opens
(a window already open is still counted and judged against the reference it opened with)
and its drift judge starts with no streaks.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any

from edgewatch.agent.measure.checks import FrameChecks
from edgewatch.agent.measure.frame import FrameMeasurement
from edgewatch.agent.window.accumulator import WindowAccumulator
from edgewatch.agent.window.drift_judge import DriftJudge
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.agent.window.summary import WindowSummary
from edgewatch.config.agent import ContextConfig, DriftConfig, QualityConfig

DEFAULT = "default"


@dataclasses.dataclass(frozen=True)
class ContextRule:
    """The conditions of one context on a frame's features (all set ones must hold)."""

    name: str
    greyscale: bool | None = None
    brightness_below: float | None = None
    brightness_above: float | None = None

    @classmethod
    def from_config(cls, c: ContextConfig) -> ContextRule:
        return cls(c.name, c.greyscale, c.brightness_below, c.brightness_above)

    def matches(self, m: FrameMeasurement) -> bool:
        v = m.numeric
        if self.greyscale is not None:
            grey = v.get("greyscale")
            if grey is None or (float(grey) >= 0.5) != self.greyscale:  # type: ignore[arg-type]
                return False
        if self.brightness_below is not None or self.brightness_above is not None:
            b = v.get("brightness")
            if b is None:
                return False
            level = float(b)  # type: ignore[arg-type]
            if self.brightness_below is not None and not level < self.brightness_below:
                return False
            if self.brightness_above is not None and not level >= self.brightness_above:
                return False
        return True

    def describe(self) -> str:
        parts = []
        if self.greyscale is not None:
            parts.append(f"greyscale = {str(self.greyscale).lower()}")
        if self.brightness_below is not None:
            parts.append(f"brightness < {self.brightness_below:g}")
        if self.brightness_above is not None:
            parts.append(f"brightness >= {self.brightness_above:g}")
        return " and ".join(parts)


class JudgedReference:
    """One context's reference with its per-frame checks and its drift judge."""

    def __init__(self, context: str, profile: ReferenceProfile, quality: QualityConfig,
                 drift: DriftConfig, checks: FrameChecks | None = None) -> None:
        self.context = context
        self.profile = profile
        self.checks = checks or FrameChecks(quality, profile)
        self.judge = DriftJudge(drift, profile)


class ContextWindow:
    """One open window counted against every context's reference; see the module."""

    def __init__(self, entries: Sequence[JudgedReference], start: float, end: float) -> None:
        self.entries = list(entries)
        self.accumulators = [WindowAccumulator(e.profile, start, end) for e in self.entries]
        self.votes: dict[str, int] = {}

    def add(self, m: FrameMeasurement) -> None:
        context = m.context or DEFAULT
        if m.thumbnail is not None:  # frames without an image say nothing about the context
            self.votes[context] = self.votes.get(context, 0) + 1
        for acc in self.accumulators:
            acc.add(m)

    def majority(self) -> int:
        """Index of the entry most measured frames matched (ties: the earliest)."""
        best, most = len(self.entries) - 1, -1
        for i, e in enumerate(self.entries):
            n = self.votes.get(e.context, 0)
            if n > most:
                best, most = i, n
        return best

    @property
    def summary(self) -> WindowSummary:
        i = self.majority()
        summary = self.accumulators[i].summary
        if len(self.entries) > 1:
            summary.extra["context"] = self.entries[i].context
            mixed = {k: n for k, n in self.votes.items() if n and k != self.entries[i].context}
            if mixed:
                summary.extra["_context_note"] = (
                    f"context: {self.votes.get(self.entries[i].context, 0)} of "
                    f"{sum(self.votes.values())} frames matched {self.entries[i].context!r}, "
                    f"judged against its reference (also: "
                    + ", ".join(f"{k} {n}" for k, n in sorted(mixed.items())) + ")")
        return summary


class ReferenceSet:
    """The monitor's references: per-frame checks (``FrameCheck``), window factory and
    window judge (``WindowJudge``) in one; see the module."""

    name = "drift"

    def __init__(self, quality: QualityConfig, drift: DriftConfig,
                 default: ReferenceProfile,
                 contexts: Sequence[tuple[ContextRule, ReferenceProfile]] = ()) -> None:
        self.quality = quality
        self.drift = drift
        first = JudgedReference(DEFAULT, default, quality, drift)
        self.signal = first.checks.signal
        """The no-signal tracker, shared by every context."""
        self.rules = [rule for rule, _ in contexts]
        self._entries: dict[str, JudgedReference] = {}
        for rule, profile in contexts:
            self._entries[rule.name] = self._judged(rule.name, profile)
        self._entries[DEFAULT] = first
        self._by_id: dict[str, JudgedReference] = {}
        for e in self._entries.values():
            self._by_id[e.profile.id] = e
        self._pending: dict[str, ReferenceProfile] = {}
        self._lock = threading.Lock()
        self.on_switch: list[Callable[[str, ReferenceProfile], None]] = []
        """Called on the monitor thread when a replaced reference takes effect."""

    def _judged(self, context: str, profile: ReferenceProfile) -> JudgedReference:
        e = JudgedReference(context, profile, self.quality, self.drift)
        e.checks.signal = self.signal if hasattr(self, "signal") else e.checks.signal
        return e

    @property
    def contexts(self) -> list[str]:
        """Context names, the default last."""
        return list(self._entries)

    def profile(self, context: str = DEFAULT) -> ReferenceProfile:
        return self._entries[context].profile

    @property
    def default(self) -> ReferenceProfile:
        return self._entries[DEFAULT].profile

    def replace(self, context: str, profile: ReferenceProfile) -> None:
        """Use ``profile`` for ``context`` from the next window that opens (any thread)."""
        if context not in self._entries:
            raise KeyError(context)
        with self._lock:
            self._pending[context] = profile

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for context, profile in pending.items():
            e = self._judged(context, profile)
            self._entries[context] = e
            self._by_id[profile.id] = e  # the old id stays: windows open on it are judged
            for hook in self.on_switch:
                hook(context, profile)

    # -- FrameCheck --------------------------------------------------------------------

    def context_of(self, m: FrameMeasurement) -> str:
        for rule in self.rules:
            if rule.matches(m):
                return rule.name
        return DEFAULT

    def check(self, m: FrameMeasurement) -> None:
        m.context = self.context_of(m) if m.thumbnail is not None else DEFAULT
        self._entries[m.context].checks.check(m)

    __call__ = check

    # -- windows -----------------------------------------------------------------------

    def open(self, start: float, end: float) -> ContextWindow:
        """A new window (on the monitor thread): pending switches take effect here."""
        if self._pending:
            self._apply_pending()
        return ContextWindow(list(self._entries.values()), start, end)

    def empty(self, start: float, end: float) -> WindowSummary:
        return WindowSummary.empty(self.default, start, end)

    # -- WindowJudge -------------------------------------------------------------------

    def judge(self, summary: WindowSummary) -> dict[str, Any]:
        note = summary.extra.pop("_context_note", None)
        entry = self._by_id.get(summary.reference_id) or self._entries[DEFAULT]
        verdict = entry.judge.judge(summary)
        if note:
            verdict["reasons"] = [*verdict.get("reasons", []), note]
        return verdict
