"""``dnc listwriter``: the only writer of the list. ``role`` consumes commands and keeps the
index caught up with the changelog, ``evaluate`` turns a batch of commands into changes,
history and confirmations, ``expiry`` sends expired entries back as commands."""
