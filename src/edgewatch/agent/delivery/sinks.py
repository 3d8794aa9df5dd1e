"""Where closed windows go: JSON lines files, lists (tests), several at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from edgewatch.agent.window.summary import WindowSummary


class JsonlSink:
    """Appends one JSON object per line and flushes it, so a crash loses no finished line."""

    def __init__(self, path: str | Path | None = None, stream: TextIO | None = None,
                 mode: str = "w") -> None:
        self._own = stream is None
        if stream is not None:
            self.stream = stream
        elif path is not None:
            self.stream = open(path, mode, encoding="utf-8")  # type: ignore[assignment]  # noqa: SIM115
        else:
            raise ValueError("JsonlSink needs a path or a stream")
        self._lock = threading.Lock()
        self.lines = 0

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), allow_nan=False)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.lines += 1

    def __call__(self, summary: WindowSummary) -> None:
        self.write(summary.to_dict())

    def close(self) -> None:
        if self._own:
            self.stream.close()


class ListSink:
    """Keeps summaries in memory (tests, library users)."""

    def __init__(self) -> None:
        self.summaries: list[WindowSummary] = []

    def __call__(self, summary: WindowSummary) -> None:
        self.summaries.append(summary)


class Tee:
    """Hands each summary to several sinks in turn."""

    def __init__(self, *sinks: Callable[[WindowSummary], None]) -> None:
        self.sinks = sinks

    def __call__(self, summary: WindowSummary) -> None:
        for sink in self.sinks:
            sink(summary)
