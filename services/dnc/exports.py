"""Export of entries as CSV or XLSX, with the columns of the list page.

Both formats are produced from an async iterator of entry batches and never hold more
than one batch: CSV is streamed as it is written; XLSX is written by xlsxwriter in
``constant_memory`` mode to a temporary file (a workbook is a zip, which cannot be
streamed before it is complete) and then streamed from that file.

Spreadsheet-formula injection (a sender like ``=HYPERLINK(...)`` that a spreadsheet would
evaluate) is neutralised in both formats with a leading apostrophe.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

from dnc.entries import Entry
from dnc.timestamps import format_ms

HEADER = ("Contact information", "Sender", "Source", "Channel", "Account", "Added")
ALL_CHANNELS = "All channels"
# What Excel, LibreOffice and Google Sheets may read as the start of a formula (OWASP's
# list), with the full-width forms some of them fold to ASCII.
_FORMULA_START = frozenset("=+-@\t\r＝＋－＠")
XLSX_MAX_ROWS = 1_048_576  # per sheet, header included
_READ_CHUNK = 256 * 1024


def neutralise(text: str) -> str:
    """Prefix an apostrophe to a cell a spreadsheet would take for a formula, also when
    the dangerous character follows leading spaces."""
    if text and (text[0] in _FORMULA_START or text.lstrip(" ")[:1] in _FORMULA_START):
        return "'" + text
    return text


def row_of(entry: Entry) -> tuple[str, ...]:
    k = entry.key
    return tuple(
        neutralise(v)
        for v in (
            k.contact,
            k.sender or "",
            entry.source.value,
            k.channel or ALL_CHANNELS,
            k.account,
            format_ms(entry.added_at),
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
        self.sheets = 0
        self.rows = 0

    def _new_sheet(self) -> None:
        self.sheets += 1
        name = "Entries" if self.sheets == 1 else f"Entries {self.sheets}"
        self._sheet = self._book.add_worksheet(name)
        for col, width in enumerate((28, 28, 18, 14, 20, 26)):
            self._sheet.set_column(col, col, width)
        self._sheet.write_row(0, 0, HEADER, self._bold)
        self._sheet.freeze_panes(1, 0)
        self._row = 1

    def add(self, entries: list[Entry]) -> None:
        for entry in entries:
            if self._row >= XLSX_MAX_ROWS:
                self._new_sheet()
            for col, value in enumerate(row_of(entry)):
                self._sheet.write_string(self._row, col, value)
            self._row += 1
        self.rows += len(entries)

    def close(self) -> Path:
        if self._sheet is None:
            self._new_sheet()  # an empty export still has its header
        self._book.close()
        return self.path

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


async def xlsx_file(batches: AsyncIterator[list[Entry]], directory: str | None = None) -> IO[bytes]:
    """Write the workbook (in a thread, batch by batch) and return it open for reading.
    The file is unlinked at once: it disappears when the stream is closed, whatever
    happens to the response."""
    builder = await asyncio.to_thread(XlsxBuilder, directory)
    try:
        async for batch in batches:
            await asyncio.to_thread(builder.add, batch)
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


async def batches_of(entries: list[Entry], size: int = 1000) -> AsyncIterator[list[Entry]]:
    for start in range(0, len(entries), size):
        yield entries[start : start + size]
