"""The ingesting processes' garbage-collector settings (run in a child process: they are
process-wide)."""

from __future__ import annotations

import subprocess
import sys

from edgewatch.collector import gc_settings

CHILD = """
import gc
from edgewatch.collector import gc_settings
before = gc.get_threshold()
gc_settings.for_ingest()
after = gc.get_threshold()
print(after[0], after[0] > before[0], after[1:] == before[1:], gc.get_freeze_count() > 1000)
"""


def test_for_ingest_freezes_start_up_and_raises_the_first_generation() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    # the first generation's threshold raised, the others kept, start-up frozen
    assert out == [str(gc_settings.FIRST_GENERATION), "True", "True", "True"]
