"""The API's pure additions: contact forms (privacy mode, ids, masking), the audience
dry run's reading and decisions, and expiry options."""

from __future__ import annotations

import pytest

from dnc.api import audience
from dnc.api.contactforms import ContactForms, shown
from dnc.api.writes import manual_key
from dnc.domain.contactids import ContactIds
from dnc.domain.entries import Entry, EntryKey, Source
from dnc.errors import InvalidValue
from dnc.files.imports import ImportOptions, resolve_expiry
from dnc.files.read import Limits, open_upload

IDS = ContactIds(["unit-test contact id key, at least 32 bytes long"])
PHONE = "441234567890"
TOKEN = IDS.token(PHONE)
LIMITS = Limits(1 << 20, 1 << 22)


def test_contact_forms_with_and_without_privacy_mode() -> None:
    clear, private = ContactForms(IDS, privacy=False), ContactForms(IDS, privacy=True)
    assert clear.parse("+44 1234 567890")[0] == PHONE
    assert clear.parse(f" {TOKEN} ") == (TOKEN, None)
    assert clear.stored(PHONE) == PHONE
    assert private.stored(PHONE) == TOKEN
    assert private.stored(TOKEN) == TOKEN
    assert clear.forms(PHONE) == [PHONE, TOKEN]  # an erased person is kept under the id
    assert private.forms(PHONE) == [TOKEN]
    assert clear.forms(TOKEN) == [TOKEN]
    with pytest.raises(InvalidValue, match="masked contact id") as masked:
        clear.parse(TOKEN[:8] + "…")
    assert masked.value.field == "contact"
    with pytest.raises(InvalidValue, match="was made with 2 keys"):
        clear.parse("h2:" + TOKEN[3:])
    assert shown({"contact": TOKEN, "x": 1}) == {
        "contact": TOKEN[:8] + "…",
        "contact_id": TOKEN,
        "x": 1,
    }
    assert shown({"contact": PHONE}) == {"contact": PHONE}


def test_keys_typed_by_hand_are_stored_as_the_mode_says() -> None:
    private = ContactForms(IDS, privacy=True)
    key = manual_key("acme", "+44 1234 567890", "sms", "ACME", adding=True, forms=private)
    assert key == EntryKey("acme", TOKEN, "SMS", "acme")
    # An id's kind is unknown: only the rules that do not depend on it apply.
    assert manual_key("acme", TOKEN, None, None, adding=True, forms=private).contact == TOKEN
    with pytest.raises(InvalidValue, match="journey action"):
        manual_key("acme", TOKEN, "WHATSAPP", None, adding=True, forms=private)
    with pytest.raises(InvalidValue, match="e-mail address"):
        manual_key("acme", "jane@example.com", "SMS", None, adding=False, forms=private)


def test_audience_from_values_and_files() -> None:
    forms = ContactForms(IDS, privacy=False)
    got = audience.from_values([PHONE, "+44 1234 567890", "12ab", None, TOKEN], forms)
    assert got.contacts == [PHONE, TOKEN]
    assert list(got.rows) == [1, 5]
    assert got.counts(1) == {
        "rows": 5,
        "valid": 2,
        "invalid": 2,
        "duplicate": 1,
        "suppressed": 1,
        "deliverable": 1,
    }
    assert [(i["row"], i["value"]) for i in got.invalid_rows] == [(3, "12ab"), (4, None)]

    data = f"name,phone,channel\nA,{PHONE},FAX\nB,{TOKEN},\n,,\nC,nope,\n".encode()
    f = open_upload("a.csv", data, LIMITS)
    options = ImportOptions(skip_rows=1, mapping={"phone": "contact", "2": "channel"})
    got = audience.from_file(f, options)
    assert got.contacts == [PHONE, TOKEN]  # the channel column is not read
    assert list(got.rows) == [2, 3]
    assert [(i["row"], i["value"]) for i in got.invalid_rows] == [(5, "nope")]
    assert got.file is not None
    assert (got.file["skipped"], got.file["blank"]) == (1, 1)
    with pytest.raises(InvalidValue, match="maps no column to contact"):
        audience.contact_options(ImportOptions(mapping={"0": "sender"}))


def test_the_blocking_entry_is_the_gates() -> None:
    def e(channel: str | None, sender: str | None, expires: int | None = None) -> Entry:
        return Entry(EntryKey("acme", PHONE, channel, sender), Source.MANUAL, 1, None, expires)

    entries = [e(None, None, expires=5), e("SMS", None), e("SMS", "acme"), e(None, "promo")]
    assert audience.first_blocking(entries, "SMS", "acme", 10) == entries[2]
    assert audience.first_blocking(entries, "SMS", "other", 10) == entries[1]
    assert audience.first_blocking(entries, "VIBER", "other", 10) is None  # expired
    assert audience.first_blocking(entries, "VIBER", "other", 4) == entries[0]
    assert audience.first_blocking(entries, "VIBER", None, 10) == entries[3]  # any sender


def test_expiry_options() -> None:
    now = 1_800_000_000_000
    assert resolve_expiry(None, None, now) is None
    assert resolve_expiry(None, 1.5, now) == now + 129_600_000
    assert resolve_expiry("2030-01-01T00:00:00+01:00", None, now) == 1_893_452_400_000
    for expires_at, ttl, field, words in (
        ("2030-01-01T00:00:00Z", 1.0, "ttl_days", "choose one"),
        ("2020-01-01T00:00:00Z", None, "expires_at", "not in the future"),
        ("2030-01-01", None, "expires_at", "no time zone"),
        (None, 0.0, "ttl_days", "more than 0"),
    ):
        with pytest.raises(InvalidValue, match=words) as refused:
            resolve_expiry(expires_at, ttl, now)
        assert refused.value.field == field
    assert ImportOptions(ttl_days=30).ttl_days == 30
    with pytest.raises(ValueError, match="choose one"):
        ImportOptions(ttl_days=30, expires_at="2030-01-01T00:00:00Z")
