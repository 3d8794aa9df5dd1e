"""The agent's durable store-and-forward queue: one SQLite file in WAL mode (the standard
library's sqlite3: every statement is its own SQL, under the outbox's own transactions).

``Outbox`` (``facade``) is the one class callers use; it composes the parts, each with one
job, the way a storage interface sits in front of its backends:

- ``queue``: the durable queue, rows of the ``messages`` table and the seq counter;
- ``memory``: the fallback that keeps messages and acks while the disk refuses writes;
- ``loss``: loss counters and reports (compacted, evicted, dropped, rejected);
- ``caps``: the age and size caps, eviction and shrinking the file;
- ``compaction``: merging consecutive summaries under the size cap;
- ``database``: the SQLite file itself (pragmas, schema, transactions, size);
- ``rows``: the rows, stats and reports the outbox hands out.

Delivery is at-least-once (a row leaves after the broker's PUBACK), seqs never go back,
the disk stays bounded and nothing is lost silently: each module's docstring says how.
"""

from edgewatch.agent.delivery.outbox.facade import Outbox
from edgewatch.agent.delivery.outbox.rows import (
    PRIORITY,
    TRANSPORT_FIELDS,
    CapReport,
    MergeFn,
    OutboxRow,
    OutboxStats,
)
from edgewatch.errors import OutboxError

__all__ = ["PRIORITY", "TRANSPORT_FIELDS", "CapReport", "MergeFn", "Outbox", "OutboxError",
           "OutboxRow", "OutboxStats"]
