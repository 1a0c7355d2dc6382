"""Export of entries as CSV or XLSX, with the columns of the list page.

Both formats are produced from an async iterator of entry batches and never hold more
than one batch: CSV is streamed as it is written; XLSX is written by xlsxwriter in
``constant_memory`` mode to a temporary file (a workbook is a zip, which cannot be
streamed before it is complete) and then streamed from that file.

On request the history of the exported entries' people goes with them (contract
addition): a second sheet "History" in XLSX; with CSV, a .zip holding ``entries.csv`` and
``history.csv`` (both are written to a temporary file first, like a workbook).

Spreadsheet-formula injection (a sender like ``=HYPERLINK(...)`` that a spreadsheet would
evaluate, or an inbound message's text in the history) is neutralised in every format
with a leading apostrophe. Contact ids are written masked, as the page shows them.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import os
import tempfile
import zipfile
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import orjson

from dnc.domain.contactids import masked
from dnc.domain.entries import Entry, shown_sender
from dnc.domain.labels import (
    ACTION_LABELS,
    ALL_SENDERS,
    CAUSE_LABELS,
    NEVER,
    channel_label,
    source_label,
)
from dnc.domain.spreadsheets import neutralise
from dnc.domain.timestamps import format_ms

T = TypeVar("T")

HEADER = ("Contact information", "Sender", "Source", "Channel", "Account", "Added", "Expires")
HISTORY_HEADER = (
    "At",
    "Action",
    "Account",
    "Contact information",
    "Channel",
    "Sender",
    "Source",
    "Added",
    "Expires",
    "Cause",
    "Details",
)
XLSX_MAX_ROWS = 1_048_576  # per sheet, header included
_READ_CHUNK = 256 * 1024


class HistoryLike(Protocol):
    """A history record as the list view holds it (``dnc.api.view.history.HistoryItem``)."""

    @property
    def account(self) -> str: ...
    @property
    def at(self) -> int: ...
    @property
    def action(self) -> str: ...
    @property
    def entry(self) -> dict[str, Any]: ...
    @property
    def cause(self) -> dict[str, Any] | None: ...


def row_of(entry: Entry) -> tuple[str, ...]:
    k = entry.key
    return tuple(
        neutralise(v)
        for v in (
            masked(k.contact),
            shown_sender(k.sender, entry.origin) or ALL_SENDERS,
            source_label(entry.source.value),
            channel_label(k.channel),
            k.account,
            format_ms(entry.added_at),
            NEVER if entry.expires_at is None else format_ms(entry.expires_at),
        )
    )


def history_row(h: HistoryLike) -> tuple[str, ...]:
    e, cause = h.entry, dict(h.cause or {})
    kind = cause.pop("kind", "")
    return tuple(
        neutralise(v)
        for v in (
            format_ms(h.at),
            ACTION_LABELS.get(h.action, h.action),
            h.account,
            masked(str(e.get("contact") or "")),
            channel_label(e.get("channel")),
            shown_sender(e.get("sender"), h.cause) or (ALL_SENDERS if e.get("added_at") else ""),
            source_label(e.get("source")),
            e.get("added_at") or "",
            e.get("expires_at") or (NEVER if e.get("added_at") else ""),
            CAUSE_LABELS.get(str(kind), str(kind)),
            orjson.dumps(cause).decode() if cause else "",
        )
    )


async def csv_stream(
    batches: AsyncIterator[list[Entry]], *, bom: bool = True
) -> AsyncIterator[bytes]:
    """RFC 4180 CSV (CRLF), UTF-8; with a BOM by default so Excel reads UTF-8 senders."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    yield (codecs.BOM_UTF8 if bom else b"") + _drain(buffer)
    async for batch in batches:
        writer.writerows(row_of(e) for e in batch)
        yield _drain(buffer)


class CsvZip:
    """``entries.csv`` then ``history.csv`` in a .zip written to a temporary file."""

    def __init__(self, *, bom: bool, directory: str | None = None) -> None:
        fd, name = tempfile.mkstemp(prefix="dnc-export-", suffix=".zip", dir=directory)
        os.close(fd)
        self.path = Path(name)
        self.bom = bom
        self._zip = zipfile.ZipFile(name, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
        self._member: IO[bytes] | None = None
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\r\n")

    def _open(self, name: str, header: tuple[str, ...]) -> None:
        self._end()
        self._member = self._zip.open(name, "w", force_zip64=True)
        self._csv.writerow(header)
        self._member.write((codecs.BOM_UTF8 if self.bom else b"") + _drain(self._buffer))

    def _rows(self, rows: Iterable[tuple[str, ...]]) -> None:
        assert self._member is not None
        self._csv.writerows(rows)
        self._member.write(_drain(self._buffer))

    def add(self, entries: list[Entry]) -> None:
        if self._member is None:
            self._open("entries.csv", HEADER)
        self._rows(row_of(e) for e in entries)

    def add_history(self, items: list[Any]) -> None:
        self._rows(history_row(h) for h in items)

    def start_history(self) -> None:
        if self._member is None:
            self._open("entries.csv", HEADER)
        self._open("history.csv", HISTORY_HEADER)

    def _end(self) -> None:
        if self._member is not None:
            self._member.close()
            self._member = None

    def close(self) -> Path:
        self._end()
        self._zip.close()
        return self.path

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return data


class XlsxBuilder:
    """A workbook written row by row to a temporary file; a new sheet when one is full."""

    def __init__(self, directory: str | None = None) -> None:
        import xlsxwriter

        fd, name = tempfile.mkstemp(prefix="dnc-export-", suffix=".xlsx", dir=directory)
        os.close(fd)
        self.path = Path(name)
        self._book = xlsxwriter.Workbook(
            name,
            {
                "constant_memory": True,
                # Every value is text: no formulas, links or numbers made from strings.
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "tmpdir": directory or tempfile.gettempdir(),
            },
        )
        self._bold = self._book.add_format({"bold": True})
        self._sheet: Any = None
        self._row = XLSX_MAX_ROWS
        self._kind = "Entries"
        self.sheets = 0
        self.history_sheets = 0
        self.rows = 0

    def _new_sheet(self) -> None:
        header: tuple[str, ...]
        widths: tuple[int, ...]
        if self._kind == "Entries":
            self.sheets += 1
            n, header, widths = self.sheets, HEADER, (28, 28, 18, 14, 20, 26, 26)
        else:
            self.history_sheets += 1
            n, header = self.history_sheets, HISTORY_HEADER
            widths = (26, 10, 20, 28, 14, 28, 18, 26, 26, 16, 60)
        self._sheet = self._book.add_worksheet(self._kind if n == 1 else f"{self._kind} {n}")
        for col, width in enumerate(widths):
            self._sheet.set_column(col, col, width)
        self._sheet.write_row(0, 0, header, self._bold)
        self._sheet.freeze_panes(1, 0)
        self._row = 1

    def _write(self, rows: Iterable[tuple[str, ...]]) -> None:
        for row in rows:
            if self._row >= XLSX_MAX_ROWS:
                self._new_sheet()
            for col, value in enumerate(row):
                self._sheet.write_string(self._row, col, value)
            self._row += 1

    def add(self, entries: list[Entry]) -> None:
        self._write(row_of(e) for e in entries)
        self.rows += len(entries)

    def start_history(self) -> None:
        """Every later row goes to the "History" sheet (constant_memory: an earlier sheet
        cannot be written again)."""
        if self._sheet is None:
            self._new_sheet()
        self._kind = "History"
        self._new_sheet()

    def add_history(self, items: list[Any]) -> None:
        self._write(history_row(h) for h in items)

    def close(self) -> Path:
        if self._sheet is None:
            self._new_sheet()  # an empty export still has its header
        self._book.close()
        return self.path

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class _Builder(Protocol):
    def add(self, entries: list[Entry]) -> None: ...
    def start_history(self) -> None: ...
    def add_history(self, items: list[Any]) -> None: ...
    def close(self) -> Path: ...
    def discard(self) -> None: ...


async def xlsx_file(
    batches: AsyncIterator[list[Entry]],
    directory: str | None = None,
    history: AsyncIterator[list[Any]] | None = None,
) -> IO[bytes]:
    """Write the workbook (in a thread, batch by batch) and return it open for reading.
    The file is unlinked at once: it disappears when the stream is closed, whatever
    happens to the response. ``history``: records for a "History" sheet."""
    builder = await asyncio.to_thread(XlsxBuilder, directory)
    return await _build(builder, batches, history)


async def csv_zip_file(
    batches: AsyncIterator[list[Entry]],
    history: AsyncIterator[list[Any]],
    *,
    bom: bool = True,
    directory: str | None = None,
) -> IO[bytes]:
    """``entries.csv`` and ``history.csv`` in a .zip, open for reading (as ``xlsx_file``)."""
    builder = await asyncio.to_thread(lambda: CsvZip(bom=bom, directory=directory))
    return await _build(builder, batches, history)


async def _build(
    builder: _Builder,
    batches: AsyncIterator[list[Entry]],
    history: AsyncIterator[list[Any]] | None,
) -> IO[bytes]:
    try:
        async for batch in batches:
            await asyncio.to_thread(builder.add, batch)
        if history is not None:
            await asyncio.to_thread(builder.start_history)
            async for items in history:
                await asyncio.to_thread(builder.add_history, items)
        path = await asyncio.to_thread(builder.close)
        handle = path.open("rb")
    finally:
        builder.discard()
    return handle


async def file_stream(handle: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        for chunk in _chunks(handle):
            yield chunk
            await asyncio.sleep(0)
    finally:
        handle.close()


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(_READ_CHUNK):
        yield chunk


async def batches_of(items: list[T], size: int = 1000) -> AsyncIterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
