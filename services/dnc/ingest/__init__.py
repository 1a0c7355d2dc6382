"""The ingest role."""
