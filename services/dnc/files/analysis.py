"""The analysis of an import file shown before anything is written: row counts, valid,
duplicate and invalid rows (with the row number the user sees, the value and the reason),
and hints that name the option which would fix the commonest mistakes."""

from __future__ import annotations

from array import array
from typing import Any

import xxhash

from dnc.files.imports import NATIONAL_HINT, ImportOptions, Invalid, Scan, Valid, scan
from dnc.files.read import ImportFile


def key_hash(v: Valid) -> int:
    return xxhash.xxh3_64_intdigest(f"{v[0]}\x1f{v[1] or ''}\x1f{v[2] or ''}".encode())


class Duplicates:
    """Counts keys seen twice in 8 bytes per row: hashes go to 256 arrays by their top
    byte, and each array is deduplicated on its own at the end, so memory stays flat even
    for a 150 MB file (a set of every key would need ~70 bytes a row)."""

    def __init__(self) -> None:
        self._parts = [array("Q") for _ in range(256)]

    def add(self, h: int) -> None:
        self._parts[h >> 56].append(h)

    def count(self) -> int:
        return sum(len(p) - len(set(p)) for p in self._parts)


def analyze(f: ImportFile, options: ImportOptions, invalid_limit: int = 100) -> dict[str, Any]:
    """What an import of this file would do; nothing is written."""
    state, rows = scan(f, options)
    seen = Duplicates()
    total = valid = 0
    invalid: list[Invalid] = []
    invalid_count = national = 0
    sample: list[dict[str, Any]] = []
    first_invalid_row: Invalid | None = None
    for _number, result in rows:
        total += 1
        if isinstance(result, Invalid):
            invalid_count += 1
            if len(invalid) < invalid_limit:
                invalid.append(result)
            if first_invalid_row is None:
                first_invalid_row = result
            if result.reason.endswith(NATIONAL_HINT):
                national += 1
            continue
        valid += 1
        seen.add(key_hash(result))
        if len(sample) < 5:
            sample.append(dict(zip(("contact", "channel", "sender"), result, strict=True)))
    duplicate = seen.count()
    assert state.columns is not None
    return {
        "file": {
            **f.describe(),
            "encoding": _encoding_name(state.encoding),
            "delimiter": state.delimiter,
        },
        "options": options.model_dump(),
        "columns": state.columns.describe(),
        "rows": total,
        "valid": valid - duplicate,
        "duplicate": duplicate,
        "invalid": invalid_count,
        "skipped": state.skipped,
        "blank": state.blank,
        "invalid_rows": [i.to_dict() for i in invalid],
        "invalid_rows_shown": len(invalid),
        "sample": sample,
        "hints": _hints(
            state,
            options=options,
            total=total,
            invalid=invalid_count,
            national=national,
            first=first_invalid_row,
        ),
    }


def _encoding_name(encoding: str | None) -> str | None:
    return {"utf-8-sig": "utf-8 (with BOM)"}.get(encoding or "", encoding)


def _hints(
    state: Scan,
    *,
    options: ImportOptions,
    total: int,
    invalid: int,
    national: int,
    first: Invalid | None,
) -> list[str]:
    hints: list[str] = []
    if national:
        hints.append(
            f"{national} phone number(s) are not possible international numbers: phone "
            "numbers must be in international format (e.g. 441234567890), or choose the "
            "country of national-format numbers as the default country (e.g. US)"
        )
    if (
        first is not None
        and first.row == options.skip_rows + 1
        and first.field == "contact"
        and isinstance(first.value, str)
        and "@" not in first.value
        and any(ch.isalpha() for ch in first.value)
    ):
        hints.append(
            f"row {first.row} looks like a header row: skip it with Skip rows = {first.row}"
        )
    if state.encoding == "latin-1":
        hints.append("the file is not UTF-8; it was read as latin-1 (ISO-8859-1)")
    if total and invalid == total:
        hints.append("no row is valid: check the column mapping and Skip rows")
    return hints
