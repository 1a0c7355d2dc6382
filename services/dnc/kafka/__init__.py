"""Kafka plumbing: clients, batched produce, and the exactly-once pipeline."""
