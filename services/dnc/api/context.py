"""What the API's routes share: settings, index, command writer, keys, the list view.

Built once by ``ApiServer`` (or a test), started before the first request and stopped
after the last one. Routes get it through ``dnc.api.deps``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from dnc.api.auth import KeyRing
from dnc.api.commands import CommandWriter
from dnc.api.contactforms import ContactForms
from dnc.api.view.listview import ListView
from dnc.api.view.reviews import ReviewBoard
from dnc.api.view.served import View
from dnc.api.view.shared import SharedView
from dnc.domain.unsubscribe import TokenSigner
from dnc.index import Index, make_index
from dnc.settings import Settings


@dataclass
class ApiContext:
    settings: Settings
    index: Index
    writer: CommandWriter
    view: View
    keys: KeyRing
    signer: TokenSigner
    contacts: ContactForms
    reviews: ReviewBoard
    _started: bool = field(default=False, repr=False)
    # Background work started by routes (imports) that must end before the clients close.
    _stoppers: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)

    def on_stop(self, stopper: Callable[[], Awaitable[None]]) -> None:
        self._stoppers.append(stopper)

    @classmethod
    def build(cls, settings: Settings) -> ApiContext:
        index = make_index(settings)
        return cls(
            settings=settings,
            index=index,
            writer=CommandWriter(settings, index),
            view=make_view(settings),
            keys=KeyRing(settings.api.keys),
            signer=TokenSigner([k.get_secret_value() for k in settings.api.unsubscribe_keys]),
            contacts=ContactForms(index.ids, privacy=settings.privacy.enabled),
            reviews=ReviewBoard(settings),
        )

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self.index.start()
        await self.writer.start()
        await self.view.start()
        await self.reviews.start()

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        for stopper in reversed(self._stoppers):
            await stopper()
        await self.reviews.stop()
        await self.view.stop()
        await self.writer.stop()
        await self.index.stop()


def make_view(settings: Settings) -> View:
    """With PostgreSQL every instance reads the view ``dnc viewwriter`` keeps; with SQLite
    each keeps its own file."""
    return SharedView(settings) if settings.view.backend == "postgres" else ListView(settings)
