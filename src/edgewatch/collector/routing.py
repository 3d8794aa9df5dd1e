"""Routing device alerts from the collector to Prometheus Alertmanager and/or a chat webhook.

The collector routes each alert message it stores for the first time (``Ingestor`` knows:
exactly one ingest reports a message as new, however often it is delivered), so a
duplicate delivery is never notified twice.

Incidents: a message of an incident *member* (``incident`` set: another alert of the same
group and device leads the incident) is not routed, only stored and counted in
``grouped``; its incident's lead is what people are notified of, and the lead's messages
list the members (``members``) and, for drift, the features behind it (``evidence``).

What is sent -- the Alertmanager alert (labels, annotations, ``startsAt``/``endsAt`` and the
``active_ttl_s`` of active alerts) and the webhook text -- is built in
:mod:`edgewatch.collector.alert_payloads`.

Failures
    :meth:`AlertRouter.route` never raises. A delivery that fails for a transient reason
    (connection refused, timeout, HTTP 5xx/429) is counted in ``errors[target]`` and kept in
    a bounded retry queue (the oldest is dropped beyond ``max_pending``, counted in
    ``dropped``); a newer state of the same alert replaces a queued older one, so a retry
    can never re-fire an alert that has since resolved. After a failure the target is not
    tried again for a back-off (1 s doubling to 60 s): routing meanwhile only queues, so a
    dead target costs at most one timeout per back-off. :meth:`AlertRouter.flush` retries
    the queue. An HTTP 4xx (the target refuses this payload) is counted and not retried.
    URLs are never logged in full: a webhook URL is a secret.

:class:`RouterThread` runs the router off the caller's thread (the collector's store
thread must not wait for HTTP): ``submit`` only enqueues.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import json
import logging
import queue
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from edgewatch import __version__
from edgewatch.clock import Clock, SystemClock
from edgewatch.collector.alert_payloads import (
    ACTIVE_TTL_S,
    RUNBOOK,
    AlertPayload,
    alertmanager_alert,
    as_alert,
    slack_text,
)
from edgewatch.config.urls import check_url, where
from edgewatch.contracts.alert import Alert

log = logging.getLogger(__name__)

ALERTMANAGER = "alertmanager"
WEBHOOK = "webhook"
MAX_PENDING = 1000
BACKOFF_S = (1.0, 60.0)
"""First and longest pause before a failed target is tried again by ``route``."""
_RETRYABLE_HTTP = (408, 425, 429)


class _Refused(Exception):
    """The target answered 4xx: sending the same payload again cannot help."""


@dataclasses.dataclass(frozen=True)
class _Delivery:
    target: str
    url: str
    body: bytes
    key: tuple[str, ...]
    """Queue key: a newer delivery with the same key replaces a queued one."""
    what: str
    """For logs: which alert, in which state."""


# --------------------------------------------------------------------------- URLs


# --------------------------------------------------------------------------- HTTP


def _post(url: str, body: bytes, timeout_s: float) -> None:
    """POST JSON; _Refused on 4xx, other exceptions for what may succeed later."""
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"edgewatch/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip()
        exc.close()
        if 400 <= exc.code < 500 and exc.code not in _RETRYABLE_HTTP:
            raise _Refused(f"HTTP {exc.code}: {detail}") from exc
        raise OSError(f"HTTP {exc.code}: {detail}") from exc


# --------------------------------------------------------------------------- the router


class AlertRouter:
    """Sends alert payloads to Alertmanager and/or a webhook; see the module docs.

    ``sent``, ``errors`` and ``dropped`` count by target (``"alertmanager"``, ``"webhook"``;
    ``errors["payload"]`` for payloads that could not be turned into a request).
    Thread-safe: one lock serialises routing and flushing.
    """

    def __init__(self, alertmanager_url: str = "", webhook_url: str = "",
                 timeout_s: float = 5.0, clock: Clock | None = None, *,
                 active_ttl_s: float = ACTIVE_TTL_S, generator_url: str = "",
                 runbook_url: str = RUNBOOK, max_pending: int = MAX_PENDING,
                 backoff_s: tuple[float, float] = BACKOFF_S) -> None:
        self.alertmanager_url = check_url(alertmanager_url, "alertmanager_url")
        self.webhook_url = check_url(webhook_url, "webhook_url")
        self.timeout_s = timeout_s
        self.clock: Clock = clock or SystemClock()
        self.active_ttl_s = active_ttl_s
        self.generator_url = generator_url
        self.runbook_url = runbook_url
        self.max_pending = max(1, max_pending)
        self.backoff_s = backoff_s
        self.sent: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.dropped: collections.Counter[str] = collections.Counter()
        self.grouped = 0
        """Member messages not routed (their incident's lead notifies)."""
        self._pending: collections.OrderedDict[tuple[str, ...], _Delivery] = (
            collections.OrderedDict())
        self._retry_at: dict[str, float] = {}
        self._pause: dict[str, float] = {}
        self._serial = itertools.count()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.alertmanager_url or self.webhook_url)

    @property
    def pending(self) -> int:
        """Deliveries waiting in the retry queue."""
        with self._lock:
            return len(self._pending)

    def route(self, fleet: str, payload: AlertPayload) -> None:
        """Send one ``edgewatch.alert/1`` message to every configured target (none for a
        member of an incident); never raises."""
        try:
            alert = as_alert(payload)
            if alert.incident:
                with self._lock:
                    self.grouped += 1
                return
            deliveries = self._deliveries(fleet, alert)
        except Exception as exc:  # a malformed payload must not stop the caller
            self.errors["payload"] += 1
            ident = payload.id if isinstance(payload, Alert) else payload.get("id")
            log.error("cannot route alert %r: %s", str(ident)[:80], exc)
            return
        with self._lock:
            for delivery in deliveries:
                self._enqueue(delivery)
            for target in {d.target for d in deliveries}:
                if self.clock.monotonic() >= self._retry_at.get(target, 0.0):
                    self._drain(target)

    def flush(self, force: bool = True) -> int:
        """Retry the queued deliveries (only targets past their back-off unless ``force``);
        returns how many are still queued. Never raises."""
        with self._lock:
            now = self.clock.monotonic()
            for target in {d.target for d in self._pending.values()}:
                if force or now >= self._retry_at.get(target, 0.0):
                    self._drain(target)
            return len(self._pending)

    # -- building -------------------------------------------------------------------------

    def _deliveries(self, fleet: str, alert: Alert) -> list[_Delivery]:
        what = f"{alert.device}/{alert.id} {alert.state}"
        out = []
        if self.alertmanager_url:
            request = alertmanager_alert(fleet, alert, self.clock.now(), self.active_ttl_s,
                                         self.generator_url, self.runbook_url)
            # without an id, an alert stands for itself
            ident = alert.id or f"#{next(self._serial)}"
            alert_key = (fleet, alert.device, ident)
            out.append(_Delivery(ALERTMANAGER, f"{self.alertmanager_url}/api/v2/alerts",
                                 _json([request]), (ALERTMANAGER, *alert_key), what))
        if self.webhook_url:
            text = slack_text(alert, self.runbook_url)
            out.append(_Delivery(WEBHOOK, self.webhook_url, _json({"text": text}),
                                 (WEBHOOK, str(next(self._serial))), what))
        return out

    # -- queue (callers hold the lock) ------------------------------------------------------

    def _enqueue(self, delivery: _Delivery) -> None:
        self._pending.pop(delivery.key, None)  # a newer state supersedes a queued one
        self._pending[delivery.key] = delivery
        while len(self._pending) > self.max_pending:
            _, oldest = self._pending.popitem(last=False)
            self.dropped[oldest.target] += 1
            log.warning("alert routing queue full: dropped %s for %s", oldest.what,
                        oldest.target)

    def _drain(self, target: str) -> None:
        """Send the target's queued deliveries in order; stop at the first transient error."""
        for key in [k for k, d in self._pending.items() if d.target == target]:
            if not self._attempt(self._pending[key]):
                return
            del self._pending[key]

    def _attempt(self, delivery: _Delivery) -> bool:
        """True when the delivery is done with (sent, or refused for good)."""
        try:
            _post(delivery.url, delivery.body, self.timeout_s)
        except _Refused as exc:
            self.errors[delivery.target] += 1
            log.error("%s at %s refused alert %s: %s", delivery.target, where(delivery.url),
                      delivery.what, exc)
            return True
        except Exception as exc:  # URLError, timeouts, 5xx: try again later
            self.errors[delivery.target] += 1
            self._back_off(delivery.target)
            log.warning("%s at %s unreachable for alert %s (%s); queued, retry in %.0f s",
                        delivery.target, where(delivery.url), delivery.what,
                        _reason(exc), self._pause[delivery.target])
            return False
        self.sent[delivery.target] += 1
        self._pause.pop(delivery.target, None)
        self._retry_at.pop(delivery.target, None)
        return True

    def _back_off(self, target: str) -> None:
        first, longest = self.backoff_s
        pause = min(self._pause.get(target, first / 2) * 2, longest)
        self._pause[target] = pause
        self._retry_at[target] = self.clock.monotonic() + pause


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _reason(exc: Exception) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------- thread


class RouterThread:
    """Runs an :class:`AlertRouter` on its own thread: ``submit`` never blocks.

    Payloads wait in a bounded queue (beyond ``queue_size`` they are dropped and counted in
    ``router.dropped["queue"]``); the thread routes them and, every ``retry_s``, retries
    the router's queue for targets past their back-off.
    """

    def __init__(self, router: AlertRouter, queue_size: int = 10000,
                 retry_s: float = 1.0) -> None:
        self.router = router
        self.retry_s = retry_s
        self._queue: queue.Queue[tuple[str, AlertPayload] | None] = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._run, name="alert-routing", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, fleet: str, payload: AlertPayload) -> None:
        try:
            self._queue.put_nowait((fleet, payload))
        except queue.Full:
            self.router.dropped["queue"] += 1
            ident = payload.id if isinstance(payload, Alert) else payload.get("id")
            log.warning("alert routing is behind: dropped alert %r", str(ident)[:80])

    def close(self, timeout: float = 10.0) -> None:
        """Route what was submitted (one attempt each), then stop the thread."""
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=timeout)
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.retry_s)
            except queue.Empty:
                self.router.flush(force=False)
                continue
            if item is None:
                return
            self.router.route(*item)
