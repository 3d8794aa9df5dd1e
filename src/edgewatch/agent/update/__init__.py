"""Safe model updates on the device: a new model is received and staged beside the running
one (``receive``), validated, run in shadow, committed, soaked and rolled back when it
misbehaves (``lifecycle``)."""
