"""Import of contacts from a file: options, column mapping, the rules every row must pass,
and the rows an import applies (the analysis shown first is ``dnc.files.analysis``).

Rows are checked with the same normalisation and channel rules as a contact added by hand
(``by_hand=True``: no WHATSAPP; e-mail only EMAIL or all channels; a phone never EMAIL).
Files are read by ``dnc.files.read``; the background job is ``dnc.api.imports.jobs``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dnc.domain.channels import Channel, check_channel_for_contact, parse_channel
from dnc.domain.contacts import ContactKind, normalise_contact, normalise_sender
from dnc.domain.entries import SENDERS, sender_as_entered
from dnc.domain.labels import ALL_SENDERS
from dnc.domain.timestamps import parse_ts
from dnc.errors import InvalidValue
from dnc.files.read import ImportFile, ImportFileError, read_table

Target = Literal["contact", "sender", "channel"]
TARGETS: tuple[Target, ...] = ("contact", "sender", "channel")
# The seed's example layout: contact information, sender, channel.
DEFAULT_MAPPING: dict[str, Target] = {"0": "contact", "1": "sender", "2": "channel"}
ALL_CHANNELS = ("", "all", "all channels")
_CACHE_LIMIT = 10_000
MAX_TTL_DAYS = 36_500
_DAY_MS = 86_400_000
NATIONAL_HINT = (
    "; if the file holds national numbers, choose the country they belong to "
    "as the default country (e.g. US)"
)


class ImportOptions(BaseModel):
    """How to read a file. Row numbers count from 1 as a spreadsheet shows them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    skip_rows: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="rows 1..N are ignored (e.g. 1 for a header row); data starts at row N+1",
    )
    mapping: dict[str, str] | None = Field(
        default=None,
        description="file column → contact | sender | channel. A column is its 0-based index "
        "('0') or its header text (the last skipped row). Unmapped columns are ignored. "
        "Default: {'0': 'contact', '1': 'sender', '2': 'channel'}",
    )
    default_country: str | None = Field(
        default=None,
        description="ISO country code (e.g. US, GB) for numbers written in national format",
        max_length=8,
    )
    # Contract addition: entries that stop blocking (and leave the list) by themselves.
    expires_at: str | None = Field(
        default=None,
        max_length=40,
        description="RFC 3339: the imported entries expire then (must be in the future)",
    )
    ttl_days: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TTL_DAYS,
        description="the imported entries expire this many days after the import starts",
    )

    @model_validator(mode="after")
    def _one_expiry(self) -> ImportOptions:
        check_expiry(self.expires_at, self.ttl_days)
        return self


def check_expiry(expires_at: str | None, ttl_days: float | None) -> int | None:
    """The shape of an expiry request: one of the two, a timestamp that parses. Returns
    ``expires_at`` in epoch ms (whether it is still in the future is ``resolve_expiry``'s
    question: options are kept, and time passes)."""
    if expires_at is not None and ttl_days is not None:
        raise InvalidValue(
            "ttl_days", ttl_days, "cannot be given together with expires_at; choose one"
        )
    return None if expires_at is None else parse_ts(expires_at, "expires_at")


def resolve_expiry(expires_at: str | None, ttl_days: float | None, now: int) -> int | None:
    """When entries added now with this request expire (epoch ms), or None (never)."""
    at = check_expiry(expires_at, ttl_days)
    if at is not None:
        if at <= now:
            raise InvalidValue("expires_at", expires_at, "is not in the future")
        return at
    if ttl_days is not None:
        if not 0 < ttl_days <= MAX_TTL_DAYS:
            raise InvalidValue(
                "ttl_days", ttl_days, f"must be more than 0 and at most {MAX_TTL_DAYS}"
            )
        return now + int(ttl_days * _DAY_MS)
    return None


@dataclass(frozen=True, slots=True)
class Columns:
    """0-based indexes of the mapped columns."""

    contact: int
    sender: int | None = None
    channel: int | None = None
    names: dict[str, str] = field(default_factory=dict)  # target → header text, if any

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for target in TARGETS:
            index = getattr(self, target)
            if index is not None:
                out[target] = {"column": index, "header": self.names.get(target)}
        return out


def parse_mapping(text: str) -> dict[str, str]:
    """``0=contact,1=sender,Channel=channel`` (the CLI's and form field's spelling)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        column, sep, target = part.rpartition("=")
        if not sep or not column.strip():
            raise InvalidValue("mapping", part, "must look like COLUMN=FIELD, e.g. 0=contact")
        out[column.strip()] = target.strip()
    return out


def resolve_columns(options: ImportOptions, header: list[str] | None) -> Columns:
    mapping = DEFAULT_MAPPING if options.mapping is None else options.mapping
    found: dict[str, int] = {}
    names: dict[str, str] = {}
    for column, raw_target in mapping.items():
        target = raw_target.strip().lower()
        if target in ("", "ignore", "none"):
            continue
        if target not in TARGETS:
            raise InvalidValue(
                "mapping", raw_target, "is not a field; map columns to contact, sender or channel"
            )
        index = _column_index(column, header)
        if target in found:
            raise InvalidValue("mapping", raw_target, "is mapped from more than one column")
        found[target] = index
        if header is not None and index < len(header) and header[index].strip():
            names[target] = header[index].strip()
    if "contact" not in found:
        raise InvalidValue("mapping", mapping, "maps no column to contact")
    return Columns(found["contact"], found.get("sender"), found.get("channel"), names)


def _column_index(column: str, header: list[str] | None) -> int:
    text = column.strip()
    if text.isdigit():
        return int(text)
    if header is None:
        raise InvalidValue(
            "mapping",
            column,
            "is not a column number, and there is no header row to find it in "
            "(set Skip rows to include the header row)",
        )
    wanted = text.casefold()
    for i, cell in enumerate(header):
        if cell.strip().casefold() == wanted:
            return i
    shown = ", ".join(repr(c.strip()) for c in header[:20])
    raise InvalidValue("mapping", column, f"is not a column of the header row ({shown})")


# (contact, channel or None = all, sender or None = all), all canonical. A tuple: this is
# built once per row of files with a million rows.
Valid = tuple[str, str | None, str | None]


@dataclass(frozen=True, slots=True)
class Invalid:
    row: int
    field: str
    value: object
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "field": self.field,
            "value": self.value,
            "reason": self.reason,
            "error": str(InvalidValue(self.field, self.value, self.reason)),
        }


class RowChecker:
    """Turns the cells of one row into a Valid key, or raises InvalidValue. Senders and
    channels repeat across rows, so their results (or errors) are cached."""

    def __init__(self, columns: Columns, default_country: str | None) -> None:
        self.region = default_country
        self._contact = columns.contact
        self._sender = -1 if columns.sender is None else columns.sender
        self._channel = -1 if columns.channel is None else columns.channel
        self._senders: dict[str, str | InvalidValue | None] = {}
        # Senders as the file writes them, where the list keeps another form ("ACME" →
        # "acme"): the first spelling seen of each.
        self.senders_shown: dict[str, str] = {}
        self._channels: dict[str, str | InvalidValue | None] = {}

    def check(self, cells: list[str]) -> Valid:
        n = len(cells)
        i = self._contact
        raw = cells[i].strip() if i < n else ""
        try:
            contact, kind = normalise_contact(raw, "contact", self.region)
        except InvalidValue as exc:
            if self.region is None and _could_be_national(raw, exc.reason):
                raise InvalidValue("contact", raw, exc.reason + NATIONAL_HINT) from None
            raise
        got: str | InvalidValue | None
        sender = channel = None
        i = self._sender
        if 0 <= i < n:
            try:
                got = self._senders[cells[i]]
            except KeyError:
                got = self._cache(self._senders, cells[i], _sender_of)
                if isinstance(got, str) and got not in self.senders_shown:
                    written = sender_as_entered(cells[i], got).get(SENDERS, {})
                    self.senders_shown.update(written)
            if isinstance(got, InvalidValue):
                raise got
            sender = got
        i = self._channel
        if 0 <= i < n:
            try:
                got = self._channels[cells[i]]
            except KeyError:
                got = self._cache(self._channels, cells[i], _channel_of)
            if isinstance(got, InvalidValue):
                raise got
            channel = got
            if channel is not None and (kind is ContactKind.EMAIL or channel in _BY_RULE):
                check_channel_for_contact(kind, Channel(channel), by_hand=True)
        return contact, channel, sender

    @staticmethod
    def _cache(
        cache: dict[str, str | InvalidValue | None],
        raw: str,
        parse: Callable[[str], str | None],
    ) -> str | InvalidValue | None:
        try:
            value: str | InvalidValue | None = parse(raw)
        except InvalidValue as exc:
            value = exc
        if len(cache) < _CACHE_LIMIT:
            cache[raw] = value
        return value


# Channels a phone contact may not have by hand; every other one is fine for a phone.
_BY_RULE = frozenset({Channel.EMAIL.value, Channel.WHATSAPP.value})


def _sender_of(raw: str) -> str | None:
    # The export writes "All senders" for a blank sender; a re-import must read it back.
    if raw.strip().casefold() == ALL_SENDERS.casefold():
        return None
    return normalise_sender(raw)


def _channel_of(raw: str) -> str | None:
    text = raw.strip()
    # The export writes "All channels"; a re-import must read it back.
    if text.lower() in ALL_CHANNELS:
        return None
    channel = parse_channel(text)
    return None if channel is None else channel.value


def _could_be_national(raw: str, reason: str) -> bool:
    international = raw.startswith(("+", "00"))
    return not international and (
        reason.startswith("is not a possible international") or "unknown country code" in reason
    )


@dataclass(slots=True)
class Scan:
    """One pass over a file. ``rows`` yields (row number, Valid or Invalid) for every
    non-blank row after the skipped ones; the counters are final once it is exhausted."""

    file: ImportFile
    options: ImportOptions
    encoding: str | None = None
    delimiter: str | None = None
    columns: Columns | None = None
    blank: int = 0
    skipped: int = 0
    senders_shown: dict[str, str] = field(default_factory=dict)


def scan(
    f: ImportFile, options: ImportOptions
) -> tuple[Scan, Iterator[tuple[int, Valid | Invalid]]]:
    """Read a file's rows with these options. Column and option errors are raised
    before the first row is yielded (by ``prepare``), so a job can fail fast."""
    table = read_table(f)
    state = Scan(f, options, table.encoding, table.delimiter)
    header: list[str] | None = None
    if options.skip_rows:
        for number, cells in table.rows:
            header = cells
            state.skipped += 1
            if number >= options.skip_rows:
                break
    if options.skip_rows and state.skipped < options.skip_rows:
        raise ImportFileError(
            f.shown, f"has {state.skipped} rows, fewer than the rows to skip ({options.skip_rows})"
        )
    state.columns = resolve_columns(options, header)
    checker = RowChecker(state.columns, _region(options.default_country))
    state.senders_shown = checker.senders_shown

    def rows() -> Iterator[tuple[int, Valid | Invalid]]:
        check = checker.check
        for number, cells in table.rows:
            try:
                yield number, check(cells)
            except InvalidValue as exc:
                if exc.field == "contact" and not exc.value and not any(c.strip() for c in cells):
                    state.blank += 1
                    continue
                yield number, Invalid(number, exc.field, exc.value, exc.reason)

    return state, rows()


def _region(default_country: str | None) -> str | None:
    if default_country is None or not default_country.strip():
        return None
    region = default_country.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidValue(
            "default_country", default_country, "is not a known ISO country code (e.g. US, GB)"
        )
    return region


@dataclass(slots=True)
class Chunk:
    rows: int
    valid: list[Valid]
    invalid: list[Invalid]
    # Senders as written in the file (kept form → as written), shared by every chunk.
    senders_shown: dict[str, str] = field(default_factory=dict)


def chunks(f: ImportFile, options: ImportOptions, size: int) -> Iterator[Chunk]:
    """The rows of an import in chunks of ``size`` rows (the job's unit of progress)."""
    state, rows = scan(f, options)
    chunk = Chunk(0, [], [], state.senders_shown)
    for _number, result in rows:
        chunk.rows += 1
        if isinstance(result, Invalid):
            chunk.invalid.append(result)
        else:
            chunk.valid.append(result)
        if chunk.rows >= size:
            yield chunk
            chunk = Chunk(0, [], [], state.senders_shown)
    if chunk.rows:
        yield chunk


def count_rows(f: ImportFile, options: ImportOptions) -> int:
    """Non-blank rows after the skipped ones (the total a job's progress counts to)."""
    _state, rows = scan(f, options)
    return sum(1 for _ in rows)
