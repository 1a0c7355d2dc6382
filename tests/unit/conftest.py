"""Fixtures of the unit tier (no services, no clocks)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

import phonenumbers
import pytest

from dnc.domain import contacts


class CostlyWork:
    """The lengths of the texts handed to the work whose cost grows with its input."""

    # More than any bounded field allows (an e-mail address 254, a destination 320): a
    # text this long was not cut off before the costly work.
    BOUNDED = 1000

    def __init__(self) -> None:
        self.lengths: list[int] = []

    @property
    def longest(self) -> int:
        return max(self.lengths, default=0)


@pytest.fixture
def costly(monkeypatch: pytest.MonkeyPatch) -> CostlyWork:
    """What Unicode normalisation, phone number parsing and e-mail validation are handed
    during a test. Instead of timing a huge value's refusal (which fails on a busy
    machine), a test asserts that the huge value never reached that work."""
    work = CostlyWork()

    def counted(fn: Callable[..., Any], position: int) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            text = args[position] if len(args) > position else None
            if isinstance(text, str):
                work.lengths.append(len(text))
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(unicodedata, "normalize", counted(unicodedata.normalize, 1))
    monkeypatch.setattr(phonenumbers, "parse", counted(phonenumbers.parse, 0))
    monkeypatch.setattr(contacts, "validate_email", counted(contacts.validate_email, 0))
    return work
