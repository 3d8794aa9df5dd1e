"""The alert store of an offline replay (``":memory:"``): the same state as a file's,
without SQLite."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgewatch.agent.alerts.state import Alert, AlertStore, Override


def _alert(key: str, **changes: object) -> Alert:
    fields: dict[str, object] = dict(
        key=key, id="a-" + key, rule="drift", subject="default", metric="drift.score",
        severity="drift", state="firing", since=10.0, observed=9.5, window_start=0.0,
        window_end=10.0, last_notified=10.0, evidence=[{"feature": "contrast", "z": 9.0}])
    fields.update(changes)
    return Alert(**fields)  # type: ignore[arg-type]


def _exercise(store: AlertStore) -> tuple[dict[str, Alert], dict[str, Override],
                                          dict[str, int]]:
    """The same saves and drops on any store; what it then holds."""
    store.save_alert(_alert("drift|default"))
    store.save_alert(_alert("quality|default", rule="quality", state="acknowledged"))
    store.save_alert(_alert("drift|default", state="snoozed", snoozed_until=99.0))
    store.drop_alert("quality|default")
    store.save_override("drift", Override(enabled=False, threshold=2.5))
    store.save_counter("drift|default", 3)
    store.save_counter("quality|default", 2)
    store.save_counter("quality|default", 0)  # a zero counter is dropped
    return store.alerts(), store.overrides(), store.counters()


@pytest.fixture
def file_store(tmp_path: Path) -> AlertStore:
    return AlertStore(tmp_path / "alerts.db")


def test_memory_store_holds_what_a_file_store_holds(file_store: AlertStore) -> None:
    memory = AlertStore(":memory:")
    expected = _exercise(file_store)
    got = _exercise(memory)
    assert got == expected
    alerts, overrides, counters = got
    assert alerts["drift|default"].state == "snoozed"
    assert "quality|default" not in alerts
    assert overrides == {"drift": Override(enabled=False, threshold=2.5)}
    assert counters == {"drift|default": 3}
    memory.close()
    file_store.close()


def test_memory_store_returns_copies() -> None:
    """What a caller does to a loaded alert does not change the stored one (as with a
    file, whose rows are decoded anew on every load)."""
    store = AlertStore(":memory:")
    store.save_alert(_alert("k"))
    loaded = store.alerts()["k"]
    loaded.state = "resolved"
    loaded.evidence.append({"feature": "noise"})
    again = store.alerts()["k"]
    assert again.state == "firing"
    assert again.evidence == [{"feature": "contrast", "z": 9.0}]


def test_memory_store_starts_empty_each_time() -> None:
    first = AlertStore(":memory:")
    first.save_counter("k", 1)
    assert AlertStore(":memory:").counters() == {}


def test_memory_store_does_not_load_sqlite() -> None:
    """The point of it: a replay's process never loads SQLite for its alert state."""
    code = textwrap.dedent("""
        import sys
        from edgewatch.agent.alerts.state import AlertStore
        store = AlertStore(":memory:")
        store.save_counter("k", 1)
        assert store.counters() == {"k": 1}
        print(sorted(m for m in sys.modules if "sqlite" in m))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
