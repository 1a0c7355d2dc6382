"""What the client shows and asks on the terminal: results on stdout, errors on stderr,
the exit codes (see ``dnc.client.app``), tables, JSON and confirmations."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

OK, ERROR, USAGE, NOT_FOUND = 0, 1, 2, 3


def fail(message: str, code: int = ERROR) -> NoReturn:
    err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def show_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if not out.is_terminal:
        sys.stdout.write("".join("\t".join(r) + "\n" for r in [header, *rows]))
        return
    table = Table(*header)
    for row in rows:
        table.add_row(*row)
    out.print(table)


def confirm(question: str) -> None:
    if not sys.stdin.isatty():
        fail(f"{question} (not a terminal: pass --yes to confirm)")
    if not typer.confirm(question, default=False):
        raise typer.Exit(ERROR)
