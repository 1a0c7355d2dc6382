"""What the view's read queries need of a connection: ``execute`` with ``?`` placeholders
and a cursor to fetch from. A ``sqlite3.Connection`` is one; ``dnc.api.view.pgstore``
adapts a psycopg connection, so both backends answer with the same SQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Reader(Protocol):
    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...
