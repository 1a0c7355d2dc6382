"""The Redis index."""
