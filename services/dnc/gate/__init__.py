"""``dnc gate``: every outbound message checked against the list, exactly once. ``role``
is the role, ``reader`` reads and normalises a batch of messages, ``filter`` the
in-process filter that keeps most of them away from Redis."""
