"""The device side: from frames to verdicts, alerts and the outbox."""
