"""The fleet collector: an idempotent message store and fleet-level views of the summaries."""
