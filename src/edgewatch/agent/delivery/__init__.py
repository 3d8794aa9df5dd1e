"""Getting windows off the device: outbox, publisher, sinks, status."""
