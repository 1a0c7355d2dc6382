"""The real ``dnc entries`` command against a real API server (uvicorn on a free port)
over the real stack."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import orjson
import pytest

from tests.apikit import (
    SECRET_A,
    SECRET_B,
    MakeSettings,
    api_settings,
    served_api,
)
from tests.integration.test_api_imports import SEED_CSV
from tests.kit import ROOT, running
from tests.ports import free_port

pytestmark = pytest.mark.integration


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return orjson.loads(self.stdout)


def cli(port: int) -> Callable[..., Awaitable[Result]]:
    """``dnc entries ARGS`` against the API served on ``port``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNC_")}
    env |= {"DNC_API_URL": f"http://127.0.0.1:{port}", "DNC_API_KEY": SECRET_A}

    async def run(*args: str, key: str | None = None) -> Result:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dnc", "entries", *args,
            env=env | ({"DNC_API_KEY": key} if key else {}),
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    return run


@pytest.fixture
async def dnc(
    make_settings: MakeSettings, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Result]]]:
    """Run ``dnc entries ARGS`` against a served API; returns exit code and output."""
    port = free_port()
    settings = await api_settings(make_settings, tmp_path, port=port)
    async with running(settings, "ingest", "listwriter", "gate"), served_api(settings):
        yield cli(port)


async def test_list_says_more_than_when_a_filtered_total_is_a_lower_bound(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    """Past DNC_VIEW__COUNT_BOUND a filtered total is a lower bound (an API addition):
    the CLI must not print it as the exact count."""
    port = free_port()
    settings = await api_settings(make_settings, tmp_path, port=port)
    settings = settings.model_copy(
        update={"view": settings.view.model_copy(update={"count_bound": 2})}
    )
    async with running(settings, "listwriter"), served_api(settings):
        dnc = cli(port)
        for number in ("+44 1234 567890", "+44 1234 567891", "+44 1234 567892"):
            r = await dnc("add", number, "-a", "acme", "--channel", "sms")
            assert r.code == 0, r.stderr
        r = await dnc("add", "+44 1234 567893", "-a", "acme", "--channel", "viber")
        assert r.code == 0, r.stderr
        r = await dnc("list", "--channel", "SMS", "--limit", "1")
        assert r.code == 0, r.stderr
        assert "1 of more than 2 entries; next page: --cursor" in r.stderr
        r = await dnc("list", "--channel", "VIBER")
        assert "1 of 1 entries" in r.stderr  # within the bound: exact
        r = await dnc("list", "--limit", "1")
        assert "1 of 4 entries" in r.stderr  # unfiltered: always exact


async def test_seed_example_through_the_cli(
    dnc: Callable[..., Awaitable[Result]], tmp_path: Path
) -> None:
    seed = tmp_path / "dnc.csv"
    seed.write_bytes(SEED_CSV)

    r = await dnc("import", str(seed), "--analyze-only", "--skip-rows", "1")
    assert r.code == 0, r.stderr
    assert "row 2: contact: '1234567890' is not a possible international phone number" in r.stderr
    assert "--default-country" in r.stderr  # the option, as it is typed

    # Invalid rows and no terminal to ask: nothing is imported without --yes.
    r = await dnc("import", str(seed), "-a", "acme", "--skip-rows", "1")
    assert r.code == 1
    assert "pass --yes" in r.stderr

    r = await dnc(
        "import", str(seed), "-a", "acme", "--skip-rows", "1", "--default-country", "US", "--json"
    )
    assert r.code == 0, r.stderr
    status = r.json()
    assert (status["state"], status["added"], status["rejected"]) == ("finished", 2, 0)

    r = await dnc(
        "check", "+1 123 456 7890", "-a", "acme", "--channel", "viber", "--sender", "9876543210"
    )
    assert r.code == 0, r.stderr
    assert "11234567890 in acme: BLOCKED" in r.stdout
    r = await dnc("check", "11234567890", "-a", "acme", "--channel", "SMS")
    assert r.code == 3
    assert "not blocked" in r.stdout
    r = await dnc(
        "check", "enduser@customer.com", "-a", "acme", "--channel", "EMAIL",
        "--sender", "send.campaign@infobip.com", "--json",
    )  # fmt: skip
    assert r.code == 0
    assert r.json()["entry"]["channel"] is None

    r = await dnc("list", "--all", "--json", "--source", "IMPORT")
    assert r.code == 0, r.stderr
    assert sorted((e["contact"], e["channel"], e["sender"]) for e in r.json()) == [
        ("11234567890", "VIBER", "9876543210"),
        ("enduser@customer.com", None, "send.campaign@infobip.com"),
    ]


async def test_add_list_remove_export(
    dnc: Callable[..., Awaitable[Result]], tmp_path: Path
) -> None:
    r = await dnc("add", "+44 1234 567890", "-a", "acme", "-a", "acme-eu", "--channel", "sms")
    assert r.code == 0, r.stderr
    assert "acme: added 441234567890" in r.stdout
    r = await dnc("add", "jane@example.com", "-a", "acme", "--sender", "=1+2")
    assert r.code == 0, r.stderr

    r = await dnc("list", "--limit", "1")
    assert r.code == 0
    assert "1 of 3 entries; next page: --cursor" in r.stderr
    assert "jane@example.com" in r.stdout

    out = tmp_path / "out.csv"
    r = await dnc("export", "-o", str(out), "-a", "acme")
    assert r.code == 0, r.stderr
    rows = list(csv.reader(io.StringIO(out.read_text("utf-8-sig"), newline="")))
    assert [row[0] for row in rows[1:]] == ["jane@example.com", "441234567890"]
    assert rows[1][1] == "'=1+2"
    assert not out.with_name("out.csv.part").exists()
    r = await dnc("export", "-o", str(tmp_path / "out.xlsx"), "--channel", "SMS")
    assert r.code == 0, r.stderr
    sheet = openpyxl.load_workbook(tmp_path / "out.xlsx")["Entries"]
    assert sheet.max_row == 3

    r = await dnc("remove", "--matching", "--channel", "SMS", "--dry-run")
    assert (r.code, r.stdout.strip()) == (0, "2 entries match")
    r = await dnc("remove", "--matching", "--channel", "SMS")
    assert r.code == 1
    assert "pass --yes" in r.stderr
    r = await dnc("remove", "--matching", "--channel", "SMS", "--yes")
    assert r.code == 0, r.stderr
    assert "removed 2" in r.stdout
    r = await dnc("remove", "jane@example.com", "-a", "acme", "--sender", "=1+2")
    assert (r.code, r.stdout.strip()) == (0, "removed 1, not on the list 0")
    r = await dnc("list", "--json")
    assert r.json()["total"] == 0


async def test_errors_and_exit_codes(dnc: Callable[..., Awaitable[Result]], tmp_path: Path) -> None:
    r = await dnc("list", key="wrong-key")
    assert r.code == 1
    assert "the API key was refused" in r.stderr
    r = await dnc("list", "-a", "other")
    assert r.code == 1
    assert "forbidden" in r.stderr
    r = await dnc("add", "12ab", "-a", "acme")
    assert r.code == 2
    assert "invalid input: contact: '12ab' is not a phone number or e-mail address" in r.stderr
    r = await dnc("add", "441234567890", "-a", "acme", "--channel", "whatsapp")
    assert r.code == 2
    assert "use a journey action" in r.stderr
    r = await dnc("list", "--bogus")
    assert r.code == 2

    big = tmp_path / "big.csv"
    big.write_bytes(b"441234567890\n" * (15 * 1024 * 1024 // 13 + 1))
    r = await dnc("import", str(big), "-a", "acme")
    assert r.code == 1
    assert "too large" in r.stderr
    assert ".zip" in r.stderr
    with zipfile.ZipFile(tmp_path / "big.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(big, "big.csv")
        archive.writestr("notes.txt", "ignored")
    r = await dnc("import", str(tmp_path / "big.zip"), "--analyze-only")
    assert r.code == 0, r.stderr
    assert "(used big.csv; ignored: notes.txt)" in r.stderr

    png = tmp_path / "list.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    r = await dnc("import", str(png), "-a", "acme")
    assert r.code == 2
    assert "PNG image" in r.stderr

    r = await dnc("list", key=SECRET_B)
    assert r.code == 0
    r = await dnc("list", "--api", "http://127.0.0.1:9")
    assert r.code == 1
    assert "cannot reach the API" in r.stderr


async def test_dry_run_output_is_in_words_not_codes(
    dnc: Callable[..., Awaitable[Result]], tmp_path: Path
) -> None:
    for args in (("jane@example.com", "--channel", "EMAIL"), ("441234567890",)):
        r = await dnc("add", *args, "-a", "acme")
        assert r.code == 0, r.stderr
    audience = tmp_path / "audience.csv"
    audience.write_text("Name,Phone\r\nJane,jane@example.com\r\nTom,441234567890\r\nBob,12ab\r\n")

    # The contact column by its header text needs the header row: the error names the
    # options to type, not the API's field names.
    r = await dnc(
        "dry-run", str(audience), "-a", "acme", "--channel", "EMAIL", "--map", "Phone=contact"
    )
    assert r.code == 2
    assert "--map: 'Phone' is not a column number" in r.stderr
    assert "set --skip-rows to include the header row" in r.stderr
    assert "skip_rows" not in r.stderr and "mapping:" not in r.stderr

    r = await dnc(
        "dry-run", str(audience), "-a", "acme", "--channel", "EMAIL",
        "--map", "Phone=contact", "--skip-rows", "1",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    assert "rows 3: valid 2, duplicate 0, invalid 1; suppressed 2, deliverable 0" in r.stdout
    assert "row 4: '12ab'" in r.stderr
    lines = [line.split("\t") for line in r.stdout.splitlines()[1:]]
    assert lines[0] == ["Row", "Contact", "Channel", "Sender", "Source", "Added", "Expires"]
    shown = {row[1]: (row[2], row[3], row[4], row[6]) for row in lines[1:]}
    assert shown == {
        "jane@example.com": ("Email", "All senders", "Added manually", "Never"),
        "441234567890": ("All channels", "All senders", "Added manually", "Never"),
    }

    out = tmp_path / "suppressed.csv"
    r = await dnc(
        "dry-run", str(audience), "-a", "acme", "--channel", "EMAIL",
        "--map", "1=contact", "--skip-rows", "1", "--out", str(out),
    )  # fmt: skip
    assert r.code == 0, r.stderr
    written = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert {(row[2], row[4]) for row in written[1:]} == {
        ("Email", "Added manually"),
        ("All channels", "Added manually"),
    }
