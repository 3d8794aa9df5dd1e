"""HTTP(S) URLs in configuration: checked when the file is read, shown without secrets in
logs. Standard library only, so checking a configuration stays quick."""

from __future__ import annotations

import urllib.parse

from edgewatch.errors import ConfigError


def where(url: str) -> str:
    """scheme://host[:port] of a URL: enough for a log line, without secrets."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def check_url(url: str, what: str) -> str:
    """``url`` without a trailing slash; ConfigError unless it is an http(s) URL."""
    if not url:
        return ""
    try:
        parts = urllib.parse.urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # ValueError for a bad port
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(f"{what}: expected an http:// or https:// URL, got {where(url)!r}")
    return url.rstrip("/")
