"""The ``dnc entries`` command line, a client of the HTTP API."""
