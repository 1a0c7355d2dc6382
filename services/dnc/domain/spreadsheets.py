"""Text that goes into a spreadsheet cell: what a spreadsheet must not take for a formula.

A sender like ``=HYPERLINK(...)``, or an inbound message's text in the history, would be
evaluated by the spreadsheet that opens an export; the exports (``dnc.files.exports``)
and the CLI's CSV files (``dnc.client.people``) write every cell through ``neutralise``.
"""

from __future__ import annotations

# What Excel, LibreOffice and Google Sheets may read as the start of a formula (OWASP's
# list), with the full-width forms some of them fold to ASCII.
_FORMULA_START = frozenset("=+-@\t\r＝＋－＠")


def neutralise(text: str) -> str:
    """Prefix an apostrophe to a cell a spreadsheet would take for a formula, also when
    the dangerous character follows leading spaces."""
    if text and (text[0] in _FORMULA_START or text.lstrip(" ")[:1] in _FORMULA_START):
        return "'" + text
    return text
