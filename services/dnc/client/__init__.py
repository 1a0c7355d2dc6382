"""``dnc entries …``: the list from the shell, a client of the HTTP API (it imports no
server code). ``app`` assembles the commands of ``entries``, ``files`` and ``people``;
``http`` calls the API, ``terminal`` prints and asks, ``options`` are shared options."""
