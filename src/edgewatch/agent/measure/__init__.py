"""Measuring one frame: image features, output features, quality faults, anomaly score."""
