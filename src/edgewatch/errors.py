"""The one exception tree of edgewatch; third-party errors are translated at the boundary."""

from __future__ import annotations


class EdgewatchError(Exception):
    """Root of every error edgewatch raises on purpose."""


class ConfigError(EdgewatchError):
    """The configuration file is missing, unreadable or invalid; the message names the key."""


class ModelError(EdgewatchError):
    """The ONNX model cannot be loaded or run."""


class AdapterMismatch(ModelError):
    """The model's inputs or outputs do not fit the configured adapter."""


class SourceError(EdgewatchError):
    """A frame source cannot be opened."""


class ProfileError(EdgewatchError):
    """A reference profile is unreadable or does not fit the running model."""


class ProfileMismatch(ProfileError):
    """The reference profile was built for another model, adapter or feature set."""


class OutboxError(EdgewatchError):
    """The outbox cannot be opened or failed in a way that is not a disk condition."""


class StatsError(EdgewatchError, ValueError):
    """A statistic was given values it cannot accept (bad edges, incompatible merge)."""
