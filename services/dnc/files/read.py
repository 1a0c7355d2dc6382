"""Import files: which file of an upload is read, whether it is what its name says, and
its rows as lists of cell texts.

Accepted: ``.txt``, ``.csv``, ``.xlsx``, or a ``.zip`` holding one of those (the first
file in archive order is used, the others are named as ignored). Every limit is enforced
while reading, never taken from what a file says about itself.
"""

from __future__ import annotations

import codecs
import csv
import io
import posixpath
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import IO, Any, Literal

from dnc.errors import InvalidValue

Kind = Literal["txt", "csv", "xlsx"]
Row = tuple[int, list[str]]  # (row number as the user sees it, cell texts)

SUPPORTED = ".txt, .csv, .xlsx, or a .zip holding one of them"
DELIMITERS = (",", ";", "\t", "|")
_SNIFF_CHARS = 64 * 1024
_SNIFF_LINES = 50
_CHUNK = 1 << 20

# First bytes of formats people upload by mistake.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook or a .zip)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "a legacy Office file (.xls/.doc): save it as .xlsx or .csv"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"{\\rtf", "an RTF document"),
)


class ImportFileError(InvalidValue):
    """The upload cannot be read as an import file. ``value`` is the file's name."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__("file", name, reason)


class FileTooLarge(ImportFileError):
    """The upload (or what it unpacks to) is over a size limit: HTTP 413."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int
    max_uncompressed: int


def megabytes(n: int) -> str:
    """ "15 MB", "15.5 MB": a limit reads as it is set, a size with one decimal."""
    mb = n / (1024 * 1024)
    return f"{mb:.0f} MB" if mb == int(mb) else f"{mb:.1f} MB"


def what_is(head: bytes) -> str | None:
    """What a file's first bytes say it is, when that is a known binary format."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


class _Limited(io.RawIOBase):
    """Reads at most ``limit`` bytes of a stream and fails beyond: a zip member's header
    may lie about its size, the count of what actually comes out cannot."""

    def __init__(self, raw: IO[bytes], limit: int, name: str) -> None:
        self._raw, self._left, self._limit, self._name = raw, limit, limit, name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        data = self._raw.read(len(view))
        self._left -= len(data)
        if self._left < 0:
            raise FileTooLarge(
                self._name, f"unpacks to more than {megabytes(self._limit)}, the limit for a file"
            )
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


@dataclass(slots=True)
class ImportFile:
    """The file of an upload that will be read. ``open()`` may be called once per pass."""

    name: str  # as uploaded
    kind: Kind
    size: int
    limits: Limits
    data: bytes = field(repr=False)
    used: str | None = None  # the file used, when the upload is a .zip
    ignored: list[str] = field(default_factory=list)
    member: str | None = None  # set while ``data`` is the .zip rather than the file itself

    @property
    def shown(self) -> str:
        return f"{self.name}: {self.used}" if self.used else self.name

    def open(self) -> IO[bytes]:
        if self.member is None:
            return io.BytesIO(self.data)
        archive = zipfile.ZipFile(io.BytesIO(self.data))
        raw = _Limited(archive.open(self.member), self.limits.max_uncompressed, self.shown)
        return io.BufferedReader(raw, _CHUNK)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "format": self.kind,
            "used": self.used,
            "ignored": self.ignored,
        }


def open_upload(name: str, data: bytes, limits: Limits) -> ImportFile:
    """Check an upload and choose the file to read; ImportFileError says what is wrong."""
    name = posixpath.basename(name.replace("\\", "/")).strip() or "upload"
    if len(data) > limits.max_bytes:
        hint = (
            "split the list into several files"
            if name.lower().endswith(".zip")
            else "compress it into a .zip (with this one file inside) and upload the .zip"
        )
        raise FileTooLarge(
            name,
            f"is {megabytes(len(data))}, more than the {megabytes(limits.max_bytes)} limit: {hint}",
        )
    if not data:
        raise ImportFileError(name, "is empty: there is nothing to import")
    ext = posixpath.splitext(name.lower())[1]
    if ext == ".zip":
        return _from_zip(name, data, limits)
    kind = _kind_of(name, ext)
    _check_content(name, kind, data[:8192], data, limits)
    return ImportFile(name, kind, len(data), limits, data)


def _kind_of(name: str, ext: str) -> Kind:
    if ext in (".txt", ".csv", ".xlsx"):
        return "xlsx" if ext == ".xlsx" else "txt" if ext == ".txt" else "csv"
    shown = f"the extension {ext!r}" if ext else "no extension"
    raise ImportFileError(name, f"has {shown}; supported: {SUPPORTED}")


def _check_content(name: str, kind: Kind, head: bytes, whole: bytes | None, limits: Limits) -> None:
    found = what_is(head)
    if kind == "xlsx":
        if not head.startswith(b"PK\x03\x04"):
            looks = found or ("text" if _looks_textual(head) else "not a workbook")
            raise ImportFileError(name, f"is not an .xlsx workbook (its content is {looks})")
        if whole is not None:
            _check_workbook(name, whole, limits)
        return
    if found is not None:
        raise ImportFileError(name, f"is not a text file: its content is {found}")
    if not _looks_textual(head):
        raise ImportFileError(
            name, "is not a text file: it contains binary data (NUL or control bytes)"
        )


def _looks_textual(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return b"\x00" not in head and control <= len(head) // 100


def _check_workbook(name: str, data: bytes, limits: Limits) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            names = book.namelist()
            unpacked = sum(i.file_size for i in book.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImportFileError(name, f"is not a readable .xlsx workbook ({exc})") from None
    if "xl/workbook.xml" not in names:
        raise ImportFileError(
            name, "is a ZIP archive but not an .xlsx workbook (no xl/workbook.xml)"
        )
    # CPython's zipfile never returns more than a member's declared size (it fails on the
    # CRC instead), so the declared sizes bound what openpyxl can unpack.
    if unpacked > limits.max_uncompressed:
        raise FileTooLarge(
            name,
            f"unpacks to {megabytes(unpacked)}, more than {megabytes(limits.max_uncompressed)}",
        )


def _from_zip(name: str, data: bytes, limits: Limits) -> ImportFile:
    if not data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        found = what_is(data[:16]) or ("text" if _looks_textual(data[:8192]) else "unknown")
        raise ImportFileError(name, f"is not a .zip archive (its content is {found})")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [
            i
            for i in archive.infolist()
            if not i.is_dir()
            and not i.filename.startswith("__MACOSX/")
            and not posixpath.basename(i.filename).startswith("._")
            and posixpath.basename(i.filename) != ".DS_Store"
        ]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImportFileError(name, f"is not a readable .zip archive ({exc})") from None
    if not members:
        raise ImportFileError(
            name, f"is a .zip archive with no file in it; it must hold {SUPPORTED}"
        )
    first, ignored = members[0], [m.filename for m in members[1:]]
    inner = first.filename
    shown = f"{name}: {inner}"
    ext = posixpath.splitext(inner.lower())[1]
    if ext == ".zip":
        raise ImportFileError(shown, "is a .zip inside the .zip; nested archives are not accepted")
    kind = _kind_of(shown, ext)
    if first.flag_bits & 0x1:
        raise ImportFileError(shown, "is password-protected; upload it without a password")
    if first.file_size > limits.max_uncompressed:
        raise FileTooLarge(
            shown,
            f"unpacks to {megabytes(first.file_size)}, more than the "
            f"{megabytes(limits.max_uncompressed)} limit for a file",
        )
    picked = ImportFile(name, kind, len(data), limits, data, inner, ignored, member=inner)
    try:
        with picked.open() as stream:
            if kind == "xlsx":
                # openpyxl needs to seek; the member is bounded by the counting reader.
                book = stream.read()
                _check_content(shown, kind, book[:8192], book, limits)
                return ImportFile(name, kind, len(data), limits, book, inner, ignored)
            head = stream.read(8192)
    except NotImplementedError as exc:  # e.g. an unsupported compression method
        raise ImportFileError(shown, f"cannot be unpacked ({exc})") from None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ImportFileError(shown, f"cannot be unpacked ({exc})") from None
    if what_is(head) is not None and head.startswith(b"PK"):
        raise ImportFileError(
            shown, "is an archive inside the .zip; nested archives are not accepted"
        )
    _check_content(shown, kind, head, None, limits)
    return picked


# --- rows -------------------------------------------------------------------------------


@dataclass(slots=True)
class Table:
    """How a file was read, and its rows."""

    rows: Iterator[Row]
    encoding: str | None = None  # text files
    delimiter: str | None = None  # text files; None = one column


def read_table(f: ImportFile) -> Table:
    if f.kind == "xlsx":
        return Table(_xlsx_rows(f))
    encoding = detect_encoding(f)
    delimiter = sniff_delimiter(f, encoding)
    return Table(_text_rows(f, encoding, delimiter or ","), encoding, delimiter)


def detect_encoding(f: ImportFile) -> str:
    """utf-8 (a BOM is dropped), utf-16 when it has a BOM, else latin-1: that reads any
    byte, and the answer says so, so the user can tell why an accent looks odd."""
    with f.open() as stream:
        head = stream.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        decoder = codecs.getincrementaldecoder("utf-8")()
        chunk = head
        try:
            while chunk:
                decoder.decode(chunk)
                chunk = stream.read(_CHUNK)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8"


def sniff_delimiter(f: ImportFile, encoding: str) -> str | None:
    """The delimiter among , ; TAB | that splits the first lines most consistently."""
    with f.open() as stream:
        text = io.TextIOWrapper(stream, encoding, newline="").read(_SNIFF_CHARS)
    lines = [line for line in text.splitlines()[:-1] or text.splitlines() if line.strip()]
    lines = lines[:_SNIFF_LINES]
    best, best_score = None, 0
    for delimiter in DELIMITERS:
        counts = [len(r) for r in csv.reader(lines, delimiter=delimiter)]
        split = [c for c in counts if c > 1]
        if not split:
            continue
        mode = max(set(split), key=split.count)
        score = split.count(mode)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _text_rows(f: ImportFile, encoding: str, delimiter: str) -> Iterator[Row]:
    with f.open() as stream:
        text = io.TextIOWrapper(stream, encoding, newline="")
        reader = csv.reader(text, delimiter=delimiter)
        n = 0
        try:
            for n, cells in enumerate(reader, 1):
                yield n, cells
        except csv.Error as exc:
            raise ImportFileError(f.shown, f"row {n + 1} cannot be read: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ImportFileError(f.shown, f"row {n + 1} is not valid {encoding}: {exc}") from None


def _xlsx_rows(f: ImportFile) -> Iterator[Row]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(f.open(), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises anything from KeyError to XML errors
        raise ImportFileError(
            f.shown, f"is not a readable .xlsx workbook ({_short(exc)})"
        ) from None
    n = 0
    try:
        if not book.worksheets:
            raise ImportFileError(f.shown, "has no worksheet")
        sheet = book.worksheets[0]
        # The stored dimensions may be wrong; trusting them would drop rows silently.
        sheet.reset_dimensions()
        for n, values in enumerate(sheet.iter_rows(values_only=True), 1):
            yield n, [cell_text(v) for v in values]
    except ImportFileError:
        raise
    except Exception as exc:
        raise ImportFileError(f.shown, f"row {n + 1} cannot be read ({_short(exc)})") from None
    finally:
        book.close()


def cell_text(value: object) -> str:
    """A spreadsheet cell as the text a user typed: 441234567890 stays digits, not 4.4e11."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e17:
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "…"
