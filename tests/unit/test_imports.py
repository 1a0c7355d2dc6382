"""Import files and their analysis: every file is built by the test."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import openpyxl
import pytest

from dnc.api.imports.commands import MAX_OPS, CommandBuilder
from dnc.domain.entries import Command, Source
from dnc.errors import InvalidValue
from dnc.files.analysis import analyze
from dnc.files.imports import ImportOptions, chunks, count_rows, parse_mapping
from dnc.files.read import FileTooLarge, ImportFile, ImportFileError, Limits, cell_text, open_upload
from dnc.kafka.clients import MAX_BATCH_BYTES

LIMITS = Limits(max_bytes=15 * 1024 * 1024, max_uncompressed=150 * 1024 * 1024)
SEED = (
    b"Contact information,Sender,Channel\n"
    b"1234567890,9876543210,Viber\n"
    b"enduser@customer.com,send.campaign@infobip.com,\n"
)


def run(name: str, data: bytes, limits: Limits = LIMITS, **options: Any) -> dict[str, Any]:
    return analyze(open_upload(name, data, limits), ImportOptions(**options))


def zipped(*files: tuple[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


def workbook(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# --- the seed's example ---------------------------------------------------------------------


def test_seed_example_needs_a_country_for_its_national_number() -> None:
    result = run("dnc.csv", SEED, skip_rows=1)
    assert (result["rows"], result["valid"], result["invalid"]) == (2, 1, 1)
    (row,) = result["invalid_rows"]
    assert (row["row"], row["field"], row["value"]) == (2, "contact", "1234567890")
    assert row["reason"].startswith("is not a possible international phone number")
    assert "default country" in row["reason"]
    assert any("international format" in h and "default country" in h for h in result["hints"])


def test_seed_example_with_default_country_us() -> None:
    result = run("dnc.csv", SEED, skip_rows=1, default_country="us")
    assert (result["rows"], result["valid"], result["duplicate"], result["invalid"]) == (2, 2, 0, 0)
    assert result["sample"] == [
        {"contact": "11234567890", "channel": "VIBER", "sender": "9876543210"},
        {"contact": "enduser@customer.com", "channel": None, "sender": "send.campaign@infobip.com"},
    ]
    assert result["hints"] == []


def test_seed_example_pasted_as_a_pipe_table() -> None:
    text = b"1234567890 | 9876543210 | Viber\nenduser@customer.com | send.campaign@infobip.com |\n"
    result = run("dnc.txt", text, default_country="US")
    assert result["file"]["delimiter"] == "|"
    assert result["valid"] == 2


def test_header_row_is_recognised_as_such() -> None:
    result = run("dnc.csv", SEED, default_country="US")
    assert any("row 1 looks like a header row" in h for h in result["hints"])


# --- formats ---------------------------------------------------------------------------------


def test_zip_uses_the_first_file_and_names_the_others() -> None:
    data = zipped(
        ("__MACOSX/._first.csv", b"\x00\x05\x16\x07junk"),
        ("folder/", b""),
        ("first.csv", b"441234567890\n447700900123\n"),
        ("second.csv", b"33612345678\n"),
        ("third.xlsx", b"PK"),
    )
    result = run("upload.zip", data)
    assert result["file"]["used"] == "first.csv"
    assert result["file"]["ignored"] == ["second.csv", "third.xlsx"]
    assert result["valid"] == 2


def test_zip_holding_an_xlsx() -> None:
    data = zipped(("list.xlsx", workbook([["441234567890"], ["jane@example.com"]])))
    result = run("upload.zip", data)
    assert (result["file"]["format"], result["valid"]) == ("xlsx", 2)


def test_nested_zip_is_refused() -> None:
    with pytest.raises(ImportFileError, match="nested archives are not accepted"):
        open_upload("upload.zip", zipped(("inner.zip", zipped(("a.csv", b"1")))), LIMITS)
    with pytest.raises(ImportFileError, match="nested archives are not accepted"):
        open_upload("upload.zip", zipped(("inner.csv", zipped(("a.csv", b"1")))), LIMITS)


def test_zip_bomb_is_refused_while_reading() -> None:
    limits = Limits(max_bytes=LIMITS.max_bytes, max_uncompressed=1024 * 1024)
    bomb = zipped(("bomb.csv", b"4412345678\n" * 500_000))  # 5.5 MB -> ~11 kB compressed
    assert len(bomb) < 50_000
    with pytest.raises(FileTooLarge, match="unpacks to"):
        run("bomb.zip", bomb, limits)
    # A header that lies about the size: the counting reader still stops it.
    lying = bytearray(bomb)
    lying[22:26] = (100).to_bytes(4, "little")  # local header: uncompressed size
    directory = lying.rfind(b"PK\x01\x02")
    lying[directory + 24 : directory + 28] = (100).to_bytes(4, "little")
    with pytest.raises((FileTooLarge, ImportFileError)):
        run("bomb.zip", bytes(lying), limits)


def test_reading_a_member_counts_what_comes_out() -> None:
    # Whatever a header says, reading stops at the limit.
    data = zipped(("a.csv", b"441234567890\n" * 1000))
    f = ImportFile("a.zip", "csv", len(data), Limits(LIMITS.max_bytes, 1000), data, member="a.csv")
    with f.open() as stream, pytest.raises(FileTooLarge, match="unpacks to more than"):
        stream.read()


def test_a_file_over_15_mb_is_refused_with_the_zip_suggestion() -> None:
    big = b"441234567890\n" * (15 * 1024 * 1024 // 13 + 1)
    with pytest.raises(FileTooLarge) as info:
        open_upload("big.csv", big, LIMITS)
    assert "compress it into a .zip" in str(info.value)
    assert "15 MB limit" in str(info.value)
    # The same rows fit in a .zip.
    result = run("big.zip", zipped(("big.csv", big)))
    assert result["rows"] == len(big) // 13
    assert result["duplicate"] == result["rows"] - 1


def test_malformed_xlsx_gets_a_clear_error() -> None:
    with pytest.raises(ImportFileError, match=r"not an \.xlsx workbook"):
        open_upload("list.xlsx", b"contact\n441234567890\n", LIMITS)
    with pytest.raises(ImportFileError, match=r"not an \.xlsx workbook"):
        open_upload("list.xlsx", zipped(("hello.txt", b"hi")), LIMITS)
    broken = zipped(("xl/workbook.xml", b"<not-xml"), ("[Content_Types].xml", b"<x/>"))
    with pytest.raises(ImportFileError, match=r"is not a readable \.xlsx workbook"):
        run("list.xlsx", broken)
    truncated = workbook([["441234567890"]])[:-200]
    with pytest.raises(ImportFileError, match=r"xlsx"):
        run("list.xlsx", truncated)


def test_csv_that_is_really_a_png() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200)
    with pytest.raises(ImportFileError, match="is not a text file: its content is a PNG image"):
        open_upload("contacts.csv", png, LIMITS)
    with pytest.raises(ImportFileError, match="binary data"):
        open_upload("contacts.csv", bytes(range(256)) * 4, LIMITS)
    with pytest.raises(ImportFileError, match="legacy Office file"):
        open_upload("contacts.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), LIMITS)


def test_unsupported_extensions() -> None:
    with pytest.raises(ImportFileError, match=r"has the extension '.pdf'; supported: .txt"):
        open_upload("list.pdf", b"%PDF-1.4", LIMITS)
    with pytest.raises(ImportFileError, match="has no extension"):
        open_upload("list", b"441234567890", LIMITS)


def test_csv_with_bom_and_semicolons() -> None:
    data = "\ufeffPhone;Sender;Channel\n441234567890;ACME;sms\n447700900123;;\n".encode()
    result = run("list.csv", data, skip_rows=1)
    assert result["file"]["encoding"] == "utf-8 (with BOM)"
    assert result["file"]["delimiter"] == ";"
    assert result["columns"]["contact"]["header"] == "Phone"  # no BOM in the header
    assert result["sample"][0] == {"contact": "441234567890", "channel": "SMS", "sender": "acme"}


def test_quoted_fields_and_tabs() -> None:
    data = b'contact\tsender\n"441234567890"\t"Acme, Inc"\n"jane@example.com"\t""\n'
    result = run("list.txt", data, skip_rows=1)
    assert result["file"]["delimiter"] == "\t"
    assert result["sample"][0]["sender"] == "acme, inc"


def test_latin1_fallback_is_reported() -> None:
    data = "441234567890,Café Crème\n".encode("latin-1")
    result = run("list.csv", data)
    assert result["file"]["encoding"] == "latin-1"
    assert result["sample"][0]["sender"] == "café crème"
    assert any("latin-1" in h for h in result["hints"])


def test_utf16_text_as_excel_saves_it() -> None:
    data = "contact\tsender\n441234567890\tACME\n".encode("utf-16")
    result = run("list.txt", data, skip_rows=1)
    assert (result["file"]["encoding"], result["valid"]) == ("utf-16", 1)


def test_skip_rows_and_unmapped_columns() -> None:
    data = (
        b"Do Not Contact export\n"
        b"\n"
        b"name,phone,notes,via\n"
        b"Jane,441234567890,likes tea,SMS\n"
        b"John,447700900123,=cmd|' /C calc'!A0,\n"
    )
    result = run("list.csv", data, skip_rows=3, mapping={"phone": "contact", "3": "channel"})
    assert result["skipped"] == 3
    assert result["columns"] == {
        "contact": {"column": 1, "header": "phone"},
        "channel": {"column": 3, "header": "via"},
    }
    assert result["sample"] == [
        {"contact": "441234567890", "channel": "SMS", "sender": None},
        {"contact": "447700900123", "channel": None, "sender": None},
    ]


def test_mapping_errors_name_the_problem() -> None:
    with pytest.raises(InvalidValue, match="no header row"):
        run("a.csv", b"441234567890\n", mapping={"Phone": "contact"})
    with pytest.raises(InvalidValue, match=r"'Phone' is not a column of the header row \('tel'"):
        run("a.csv", b"tel\n441234567890\n", skip_rows=1, mapping={"Phone": "contact"})
    with pytest.raises(InvalidValue, match="maps no column to contact"):
        run("a.csv", b"441234567890\n", mapping={"0": "sender"})
    with pytest.raises(InvalidValue, match="is not a field"):
        run("a.csv", b"441234567890\n", mapping={"0": "phone"})
    with pytest.raises(InvalidValue, match="more than one column"):
        run("a.csv", b"1,2\n", mapping={"0": "contact", "1": "contact"})
    with pytest.raises(InvalidValue, match="not a known ISO country code"):
        run("a.csv", b"441234567890\n", default_country="XX")
    with pytest.raises(ImportFileError, match="fewer than the rows to skip"):
        run("a.csv", b"441234567890\n", skip_rows=5)
    assert parse_mapping("0=contact, Sender Id=sender") == {"0": "contact", "Sender Id": "sender"}
    with pytest.raises(InvalidValue, match="COLUMN=FIELD"):
        parse_mapping("contact")


def test_channel_rules_of_the_contract() -> None:
    data = (
        b"441234567890,,WhatsApp\n"  # row 1: never by file
        b"jane@example.com,,SMS\n"  # row 2: e-mail only EMAIL or all
        b"441234567890,,email\n"  # row 3: a phone never EMAIL
        b"jane@example.com,,Email\n"
        b"441234567890,,ALL\n"
        b"441234567890,,All channels\n"  # what the export writes
        b"441234567890,,pigeon\n"
    )
    result = run("a.csv", data)
    reasons = {r["row"]: r for r in result["invalid_rows"]}
    assert set(reasons) == {1, 2, 3, 7}
    assert "use a journey action, or leave the channel blank" in reasons[1]["reason"]
    assert "choose Email or leave the channel blank" in reasons[2]["reason"]
    assert "not allowed for a phone number" in reasons[3]["reason"]
    assert reasons[7]["error"].startswith("channel: 'pigeon' is not a channel")
    assert (result["valid"], result["duplicate"]) == (2, 1)


def test_duplicates_blanks_and_invalid_rows() -> None:
    data = b"441234567890\n+44 1234 567890\n\n ,\n12ab\n0044 1234 567890,ACME\n"
    result = run("a.csv", data)
    assert (result["rows"], result["valid"], result["duplicate"], result["blank"]) == (4, 2, 1, 2)
    (bad,) = result["invalid_rows"]
    assert (bad["row"], bad["value"]) == (5, "12ab")
    assert bad["reason"] == "is not a phone number or e-mail address"


def test_invalid_rows_listed_up_to_the_limit_with_the_total() -> None:
    data = b"".join(b"bad%d\n" % i for i in range(250))
    f = open_upload("a.csv", data, LIMITS)
    result = analyze(f, ImportOptions(), invalid_limit=100)
    assert (result["invalid"], result["invalid_rows_shown"]) == (250, 100)
    assert result["invalid_rows"][-1]["row"] == 100


def test_xlsx_rows_cells_and_gaps() -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet["A1"] = "Phone"
    sheet["A2"] = 441234567890
    sheet["A3"] = 4.4123456789e11 + 1
    sheet["A5"] = "jane@example.com"  # row 4 is missing from the sheet XML
    book.create_sheet("second")["A1"] = "447700900999"
    buffer = io.BytesIO()
    book.save(buffer)
    result = run("a.xlsx", buffer.getvalue(), skip_rows=1)
    assert (result["rows"], result["valid"], result["blank"]) == (3, 3, 1)
    assert result["sample"][1]["contact"] == "441234567891"
    assert cell_text(4.4123456789e11) == "441234567890"
    assert cell_text(True) == "TRUE"


def test_chunks_cover_every_row_once() -> None:
    data = b"".join(b"4477009%05d\n" % i for i in range(2500)) + b"bad\n"
    f = open_upload("a.csv", data, LIMITS)
    got = list(chunks(f, ImportOptions(), 1000))
    assert [c.rows for c in got] == [1000, 1000, 501]
    assert sum(len(c.valid) for c in got) == 2500
    assert got[-1].invalid[0].row == 2501
    assert count_rows(f, ImportOptions()) == 2501


def test_commands_share_a_partition_and_stay_small() -> None:
    def partition_of(account: str, contact: str) -> int:
        return sum(map(ord, contact)) % 3

    build = CommandBuilder(["acme", "acme-eu"], "imp-1", {"kind": "import"}, partition_of)
    rows = [(f"4477009{i:05d}", "SMS", None) for i in range(3000)]
    commands = build(rows)
    assert sum(len(c.ops) for c in commands) == 6000
    for c in commands:
        assert len(c.ops) <= MAX_OPS
        assert len({partition_of(o.key.account, o.key.contact) for o in c.ops}) == 1
        assert {o.source for o in c.ops} == {Source.IMPORT}
        assert c.ref == "imp-1"
        assert Command.from_json(c.to_json()).ops == c.ops
    # Long e-mail contacts and senders: fewer ops per command, never a record too big
    # for a producer batch (kafka.MAX_BATCH_BYTES).
    long_rows = [(f"{i:0>200}@example.com", None, "y" * 200 + "@example.com") for i in range(3000)]
    long_commands = build(long_rows)
    assert max(len(c.ops) for c in long_commands) < MAX_OPS
    assert max(len(c.to_json()) for c in long_commands) < MAX_BATCH_BYTES
