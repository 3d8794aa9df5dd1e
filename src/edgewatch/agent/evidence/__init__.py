"""Evidence on the device: frames kept when an alert fires, near the operating threshold and
at random (``capture``), with a pre-trigger ring (``ring``), triggers and caps
(``triggers``), an atomic on-disk store with its index (``store``) and optional face
redaction (``redact``, with ``shapes`` freeing a model's fixed input shape). See
docs/evidence.md."""
