"""Safe model updates on the device: a new model is received and staged beside the running
one (``receive``; one update's files on disk: ``incoming``), validated, run in shadow,
committed, soaked (``soak``) and rolled back when it misbehaves (``lifecycle``)."""
