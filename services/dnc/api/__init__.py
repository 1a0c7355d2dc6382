"""The HTTP API (``dnc api``): thin FastAPI routes over the list's services.

Every write becomes a command on ``dnc.commands``, so the index, the changelog, the history
and every other consumer see it exactly as they see opt-outs from end users.
"""
