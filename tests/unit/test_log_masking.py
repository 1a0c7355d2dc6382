"""Logs never contain a full phone number or e-mail address."""

from __future__ import annotations

import logging

from dnc.logs import MaskingJsonFormatter, MaskingTextFormatter, mask


def test_phone_numbers_in_any_format_keep_only_two_digits() -> None:
    for text in ["441234567890", "+44 1234 567890", "(555) 010-9999", "0044-1234-567-890"]:
        masked = mask(f"destination: '{text}' is bad")
        assert "1234" not in masked and "010" not in masked


def test_email_local_parts_are_masked() -> None:
    assert mask("from jane.doe@example.com") == "from j***@example.com"


def test_dates_and_small_numbers_stay_readable() -> None:
    assert mask("2026-11-26 partition 3 offset 42") == "2026-11-26 partition 3 offset 42"


def test_both_formatters_mask_messages_and_exceptions() -> None:
    record = logging.LogRecord("dnc", logging.ERROR, __file__, 1, "bad %s", ("441234567890",), None)
    try:
        raise ValueError("jane@example.com")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    for fmt in (MaskingJsonFormatter(), MaskingTextFormatter("%(message)s")):
        out = fmt.format(record)
        assert "441234567890" not in out and "jane@example.com" not in out
