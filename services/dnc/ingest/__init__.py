"""``dnc ingest``: opt-out events in (inbound messages, URL unsubscribes, journey actions,
delivery reports), list commands out. ``role`` is the role, ``signals`` the delivery
reports that mean "opted out at the channel"."""
