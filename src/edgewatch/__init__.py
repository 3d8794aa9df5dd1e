"""edgewatch: monitoring for computer-vision models on edge devices."""

__version__ = "0.1.0"

FEATURE_SET_VERSION = "1"
"""Version of the per-frame feature definitions; a reference profile records it."""
