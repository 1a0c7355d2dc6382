"""The Do Not Contact list from the shell (dnc entries), as a client of the HTTP API.

The API is found at --api / DNC_API_URL (default http://127.0.0.1:8080) and called with
the key in --key / DNC_API_KEY.

Exit codes: 0 ok; 1 error (API unreachable, key refused, forbidden account, failed
import…); 2 usage or invalid input (also a value the API refused as invalid);
3 not found — for `check`: the contact is NOT blocked (0 means blocked, like grep).
Errors go to stderr; results to stdout.
"""

from __future__ import annotations

import inspect
import re

import typer

from dnc.client import entries, files, people, reviews


def _unwrap(doc: str | None) -> str:
    """A docstring as help text: the terminal wraps paragraphs, the source's line breaks
    would only break them up."""
    return re.sub(r"(?<!\n)\n(?!\n)", " ", inspect.cleandoc(doc or ""))


entries_app = typer.Typer(no_args_is_help=True, help=_unwrap(__doc__), add_completion=False)
# In this order in the help: the list itself, then files, then people, then reviews.
for _module in (entries, files, people, reviews):
    entries_app.registered_commands += _module.commands.registered_commands
for _command in entries_app.registered_commands:
    _command.help = _unwrap(_command.callback.__doc__ if _command.callback else None)
