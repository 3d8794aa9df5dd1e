"""Windows: assigning frames, accumulating histograms, judging drift against the reference."""
