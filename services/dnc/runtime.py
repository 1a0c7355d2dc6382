"""Process entry: logging, the event loop, signals, orderly shutdown.

Signal handlers are registered here and nowhere else. SIGTERM/SIGINT ask the role to stop
taking work; the role finishes the batch in flight (up to ``shutdown_deadline_s``),
commits, and closes its clients. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from dnc.settings import Settings

log = logging.getLogger("dnc")


class Role(Protocol):
    async def start(self) -> None: ...
    async def run(self) -> None: ...
    def request_stop(self) -> None: ...
    async def stop(self) -> None: ...


# --- logs never contain a full phone number or e-mail address ---------------------------

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
    fmt.converter = __import__("time").gmtime
    handler.setFormatter(fmt)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # aiokafka is chatty at INFO about every group rejoin.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))


def run_role(factory: Callable[[Settings], Role], settings: Settings, name: str) -> int:
    """Run one role until it is told to stop; return the process exit code."""
    configure_logging(settings)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    return asyncio.run(_main(factory, settings, name))


async def _main(factory: Callable[[Settings], Role], settings: Settings, name: str) -> int:
    role = factory(settings)
    loop = asyncio.get_running_loop()
    signals = {"count": 0}

    def on_signal(signum: int) -> None:
        signals["count"] += 1
        if signals["count"] > 1:
            log.warning("%s: second signal, exiting now", name)
            os._exit(130)
        log.info("%s: %s received, stopping", name, signal.Signals(signum).name)
        role.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    code = 0
    try:
        await role.start()
        log.info("%s: started", name)
        await role.run()
    except Exception:
        log.exception("%s: stopped by an error", name)
        code = 1
    finally:
        try:
            await asyncio.wait_for(role.stop(), settings.shutdown_deadline_s + 5)
        except Exception:
            log.exception("%s: error while stopping", name)
            code = code or 1
    log.info("%s: stopped", name)
    return code
