"""The API's list view: a local SQLite copy of ``dnc.changes`` and ``dnc.history`` for the
queries the index is not built for. ``listview`` consumes and serves it, ``store`` and
``history`` are its tables and queries, ``query`` the filter, ``pages`` cursors."""
