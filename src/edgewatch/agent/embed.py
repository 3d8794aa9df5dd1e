"""Monitoring inside an application's own loop.

Two ways in, both leaving the application's results untouched:

- ``AppMonitor.wrap(session)`` returns a ``MonitoredSession`` whose ``run`` is the
  onnxruntime ``run`` (same arguments, same return value) plus timing and measurement;
  pass ``frame=`` (the BGR image) to get input features too.
- ``AppMonitor.observe(image, outputs, timings)`` for loops that time and run the model
  themselves.

Windows close and reach the sink exactly as in the daemon, and, as there, the configuration
decides the rest: with ``[mqtt] enabled``, windows are also queued in the outbox and published,
and alerts (``alerts.enabled``) go out with them; ``close`` stops publishing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgewatch.agent.app import build_agent
from edgewatch.agent.inference.adapters import OutputAdapter, make_adapter
from edgewatch.agent.inference.engine import defer_decoding, tensor_specs
from edgewatch.agent.inference.preprocess import Geometry, Preprocessor
from edgewatch.agent.records import Frame, Image, Timings
from edgewatch.agent.window.monitor_parts import Sink
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.clock import Clock, SystemClock
from edgewatch.config.agent import AgentConfig


class AppMonitor:
    """The agent (``build_agent``) plus the output adapter, for applications that own their
    inference loop. ``config_path`` only fills in the device's announced configuration hash."""

    def __init__(self, cfg: AgentConfig, reference: ReferenceProfile, sink: Sink, *,
                 clock: Clock | None = None, live: bool = True,
                 config_path: str | Path | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.adapter: OutputAdapter = make_adapter(cfg.model.adapter, cfg.model.postprocess)
        self._preprocess = Preprocessor(cfg.model.preprocess)
        self.agent = build_agent(cfg, reference, sink=sink, publish=cfg.mqtt.enabled,
                                 live=live, clock=self.clock, config_path=config_path)
        self.monitor = self.agent.monitor
        self._index = 0
        self.agent.start()

    def observe(self, image: Image | None, outputs: Sequence[npt.NDArray[np.generic]],
                timings: Timings | None = None, *, geometry: Geometry | None = None,
                timestamp: float | None = None) -> None:
        """Record one frame: its image (BGR, optional), raw output tensors and timings.

        Without ``geometry``, the image is taken to have been fitted to the model input as
        ``model.preprocess`` says (resize mode, width and height).
        """
        if geometry is None and image is not None:
            h, w = image.shape[:2]
            geometry = self._preprocess.geometry(w, h)
        result = defer_decoding(self.adapter, list(outputs),
                                geometry or Geometry(1, 1, 1, 1, 1.0), timings or Timings())
        ts = self.clock.now() if timestamp is None else timestamp
        # decoded only if this frame is sampled, before observe returns: the application
        # may reuse its output arrays for the next frame
        self.monitor.observe(Frame(self._index, ts, image), result, resolve_now=True)
        self._index += 1

    def wrap(self, session: Any) -> MonitoredSession:
        return MonitoredSession(session, self)

    def close(self, drain_timeout: float = 0.0) -> bool:
        """Emit the open window, stop the monitor thread, then stop publishing (after waiting
        up to ``drain_timeout`` seconds for the outbox to drain) and close the outbox; False
        when it did not drain (the rest goes out on the next start)."""
        return self.agent.close(drain_timeout)

    def __enter__(self) -> AppMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MonitoredSession:
    """Drop-in for an onnxruntime InferenceSession: ``run`` returns exactly the same outputs."""

    def __init__(self, session: Any, monitor: AppMonitor) -> None:
        self._session = session
        self._monitor = monitor
        outputs = session.get_outputs()
        monitor.adapter.check(tensor_specs(outputs))  # AdapterMismatch now, not on each run
        self._all_outputs = [o.name for o in outputs]

    def run(self, output_names: Sequence[str] | None, input_feed: dict[str, Any],
            run_options: Any = None, *, frame: Image | None = None,
            geometry: Geometry | None = None) -> list[Any]:
        t0 = time.perf_counter()
        outputs = self._session.run(output_names, input_feed, run_options)
        ms = (time.perf_counter() - t0) * 1e3
        if output_names is None or list(output_names) == self._all_outputs:
            self._monitor.observe(frame, outputs, Timings(0.0, ms, 0.0), geometry=geometry)
        return list(outputs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)
