"""The client's words (``dnc.client.words``): what the API says about a file's options,
and its codes, as a person using the command line reads them."""

from __future__ import annotations

import pytest

from dnc.client.words import entry_cells, option_words


@pytest.mark.parametrize(
    ("api", "shown"),
    [
        ("options.skip_rows: -1 is less than 0", "--skip-rows: -1 is less than 0"),
        ("skip_rows: 'x' is not a number", "--skip-rows: 'x' is not a number"),
        ("mapping: 'Phone' is not a column", "--map: 'Phone' is not a column"),
        ("default_country: 'XX' is not a country", "--default-country: 'XX' is not a country"),
        (
            "row 1 looks like a header row: skip it with Skip rows = 1",
            "row 1 looks like a header row: skip it with --skip-rows 1",
        ),
        (
            "no row is valid: check the column mapping and Skip rows",
            "no row is valid: check the --map option and --skip-rows",
        ),
        (
            "or choose the country of national-format numbers as the default country (e.g. US)",
            "or choose the country of national-format numbers with --default-country (e.g. US)",
        ),
        # Other messages are left as they are.
        ("contact: '12ab' is not a phone number", "contact: '12ab' is not a phone number"),
    ],
)
def test_file_options_are_named_as_typed(api: str, shown: str) -> None:
    assert option_words(api) == shown


def test_entry_codes_are_shown_as_words() -> None:
    entry = {"channel": "EMAIL", "sender": "acme", "sender_shown": "ACME", "source": "MANUAL"}
    assert entry_cells(entry) == ("ACME", "Email", "Added manually")
    everything = {"channel": None, "sender": None, "source": "END_USER_MESSAGE"}
    assert entry_cells(everything) == ("All senders", "All channels", "Message from end user")
