"""The garbage collector's settings for a process that ingests messages.

Every decoded message is a handful of new containers (structs, lists), and CPython's cyclic
garbage collector runs its first generation every 700 new containers, its second every ten
of those: every few messages at thousands of messages a second, though decoded messages
form no reference cycles (reference counting frees them). Each run also walks the
containers a batch still holds. :func:`for_ingest` freezes what start-up created (imports,
configuration: never walked again) and raises the first generation's threshold, so the
collector runs about once per 50,000 new containers. Cycles are still collected, later.
``edgewatch collector`` sets it in its process, the ingest worker (``store.worker_process``)
in its own, and ``bench/ingest.py`` in its process, as the collector does.
"""

from __future__ import annotations

import gc

__all__ = ["FIRST_GENERATION", "for_ingest"]

FIRST_GENERATION = 50_000
"""New containers between two runs of the first generation (CPython's default: 700)."""


def for_ingest() -> None:
    """Freeze what the process holds now and raise the first generation's threshold; for a
    process of its own (the collector's, its ingest worker's), called once set up."""
    gc.collect()  # what start-up left as garbage is not frozen
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(FIRST_GENERATION, second, third)
