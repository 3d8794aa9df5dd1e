"""Checking what arrives from devices before it is stored; a bad payload is counted, never
fatal.

:func:`check` parses the topic, decodes the payload into its contract
(:func:`edgewatch.contracts.codec.decode`: every bound checked, schema 1 summaries compacted
to schema 2) and checks that the message names the topic's device. A refusal raises
:class:`~edgewatch.contracts.codec.Rejected`, whose ``reason`` is one of
:data:`~edgewatch.contracts.codec.REASONS`. What passes may still be refused by the store (a
keyed message without a boot id, a value the database cannot take): the ingest quarantines
it.
"""

from __future__ import annotations

from typing import NamedTuple

from edgewatch.contracts import codec
from edgewatch.contracts.codec import Message, Rejected
from edgewatch.contracts.topics import parse

__all__ = ["Checked", "Rejected", "check"]


class Checked(NamedTuple):
    """A device message that passed: its topic's parts, the message, its canonical JSON."""

    leaf: str
    fleet: str
    device: str
    message: Message
    canonical: bytes
    """:func:`edgewatch.contracts.codec.canonical` of the message: what the store keeps."""


def check(topic: str, raw: bytes, root: str,
          content_type: str | None = None) -> Checked | None:
    """The parts of a device message; None for topics the collector does not store
    (commands it sent itself). ``content_type`` is the MQTT 5 property (None: recognised
    from the bytes). Raises :class:`Rejected`."""
    parts = parse(topic, root)
    if parts is None:
        raise Rejected("topic", f"unexpected topic {topic[:200]!r}")
    fleet, device, leaf = parts
    if leaf.startswith("cmd/"):
        return None
    message, canonical = codec.decode_canonical(leaf, raw, content_type)
    if message.device != device:
        raise Rejected("device", f"payload device {message.device[:130]!r} published under "
                                 f"{device!r}")
    return Checked(leaf, fleet, device, message, canonical)
