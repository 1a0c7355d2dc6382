"""Placeholder: the list view (SQLite, materialised from dnc.changes) is being written."""

from __future__ import annotations

from dnc.settings import Settings


class ListView:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
