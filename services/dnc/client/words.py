"""The words a person reads in the client's output (tables, summaries, errors): the same
labels the page and the exports use for the API's codes (``dnc.domain.labels``), and the
client's own options where the API names a form field or a control of the page. ``--json``
output keeps the API's codes: programs read that."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dnc.domain.labels import (
    ACTION_LABELS,
    ALL_SENDERS,
    CAUSE_LABELS,
    NEVER,
    channel_label,
    source_label,
)

__all__ = ["ALL_SENDERS", "NEVER", "action_words", "cause_words", "channel_label", "source_label"]

# The file options of import and dry run: the API's field names (a form field, or one of
# its JSON ``options``) → this client's option.
OPTIONS = {
    "skip_rows": "--skip-rows",
    "mapping": "--map",
    "default_country": "--default-country",
}
# What the API tells the page's user to change, as the page names its controls.
_PAGE_CONTROLS = (
    (re.compile(r"\bSkip rows\b(?: = (\d+))?"), "--skip-rows"),
    (re.compile(r"\bthe column mapping\b"), "the --map option"),
    (re.compile(r"\bas the default country\b"), "with --default-country"),
)
_FIELD = re.compile(r"^(?:options\.)?(skip_rows|mapping|default_country)(?=:)")


def action_words(action: str) -> str:
    return ACTION_LABELS.get(action, action)


def cause_words(kind: str) -> str:
    return CAUSE_LABELS.get(kind, kind)


def option_words(text: str) -> str:
    """An API message about a file's options, in this client's terms: ``skip_rows: 3 …``
    → ``--skip-rows: 3 …``, "set Skip rows to include the header row" → "set --skip-rows
    to include the header row"."""
    text = _FIELD.sub(lambda m: OPTIONS[m.group(1)], text.strip())
    for pattern, option in _PAGE_CONTROLS:
        text = pattern.sub(_with_value(option), text)
    return text


def _with_value(option: str) -> Callable[[re.Match[str]], str]:
    """``Skip rows = 1`` → ``--skip-rows 1``: the option as it is typed, with its value."""
    return lambda m: f"{option} {m.group(1)}" if m.lastindex and m.group(1) else option


def entry_cells(entry: dict[str, Any]) -> tuple[str, str, str]:
    """An entry's sender, channel and source as people read them."""
    return (
        entry.get("sender_shown") or entry.get("sender") or ALL_SENDERS,
        channel_label(entry.get("channel")),
        source_label(entry.get("source")),
    )
