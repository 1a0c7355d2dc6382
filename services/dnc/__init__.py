"""Do Not Contact suppression service. The subpackages follow the data:

``domain`` (the list's vocabulary and rules, pure) → ``ingest`` (opt-out events → list
commands) → ``listwriter`` (commands → changelog, history, Redis index) → ``gate``
(outbound messages, checked against the index); ``api`` and ``client`` (people and their
tools), ``files`` (imports and exports), over ``kafka`` (exactly-once pipeline) and
``index`` (the Redis index). ``cli`` is the command line, ``runtime`` a role's process,
``lifecycle`` a role's start and stop, ``settings`` the one settings object. The layers
are import-linter contracts in pyproject.toml.
"""
