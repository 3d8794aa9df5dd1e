"""A real PostgreSQL server for the collector's store tests.

``EDGEWATCH_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``) names a
database on a server where the tests may create and drop databases; the fixtures in
``tests/conftest.py`` (``pg_admin``, ``pg_url``, ``store_url``) skip when it is unreachable.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

PG_URL = os.environ.get("EDGEWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def unreachable(url: str = PG_URL) -> str | None:
    """Why no test can use the server at ``url`` (a skip reason), or None when it answers."""
    try:
        import psycopg
    except ImportError:
        return "psycopg 3 is not installed: PostgreSQL store tests skipped"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {url} (set EDGEWATCH_TEST_PG): {exc}"
    return None


@contextmanager
def scratch_database(admin_url: str, prefix: str = "ew_") -> Iterator[str]:
    """The URL of a fresh, empty database ``<prefix><hex>`` on the server of ``admin_url``;
    dropped (with its connections) on exit."""
    import psycopg

    name = f"{prefix}{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield urllib.parse.urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
