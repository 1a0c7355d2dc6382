"""Kafka plumbing the roles share: ``clients`` (factories, topics, batched produce),
``pipeline`` (exactly-once consume → produce), ``deadletter``, and ``role`` (the base of
the roles whose work is a pipeline)."""
