"""Logs: JSON (or text) lines on stderr, never with a full phone number or e-mail address.

Every formatter masks what it writes (``mask``), including structured fields and
tracebacks: contacts reach log lines through error messages and values we cannot control.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

from dnc.settings import Settings

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+)")
# A run of digits with the separators people write phone numbers with.
_DIGITS = re.compile(r"\+?\(?\d[\d \-().]*\d")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def mask(text: str) -> str:
    """Mask e-mail local parts, and all but the last two digits of any run of 7 or more
    digits (phone numbers in any format). Safety over beauty: a large count or offset in
    a log line is masked too."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)

    def digits(m: re.Match[str]) -> str:
        run = m.group(0)
        if _DATE.match(run):
            return run
        n = sum(c.isdigit() for c in run)
        if n < 7:
            return run
        return "*" * (n - 2) + "".join(c for c in run if c.isdigit())[-2:]

    return _DIGITS.sub(digits, text)


class MaskingJsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": mask(record.getMessage()),
        }
        # Structured fields: log.info("...", extra={"fields": {...}}); string values masked.
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                out.setdefault(key, mask(value) if isinstance(value, str) else value)
        if record.exc_info:
            out["exc"] = mask(self.formatException(record.exc_info))
        return orjson.dumps(out).decode()


class MaskingTextFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - stdlib name
        record.message = mask(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802 - stdlib name
        return mask(super().formatException(ei))


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_json:
        fmt: logging.Formatter = MaskingJsonFormatter()
    else:
        fmt = MaskingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    fmt.converter = time.gmtime
    handler.setFormatter(fmt)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # aiokafka is chatty at INFO about every group rejoin.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
