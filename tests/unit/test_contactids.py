"""Contact ids: stable, keyed, chainable through key rotation without the contacts."""

from __future__ import annotations

import pytest

from dnc.domain.contactids import PUBLIC_KEY, ContactIds, is_token, masked
from dnc.errors import ConfigurationError, InvalidValue

K1, K2 = "1" * 32, "2" * 32


def test_ids_are_stable_and_depend_on_the_key() -> None:
    a, b = ContactIds([K1]), ContactIds([K2])
    assert a.cid("441234567890") == ContactIds([K1]).cid("441234567890")
    assert a.cid("441234567890") != b.cid("441234567890")
    assert len(a.cid("441234567890")) == 16


def test_a_stored_token_resolves_to_the_same_id_as_the_contact() -> None:
    ids = ContactIds([K1])
    token = ids.token("jane@example.com")
    assert is_token(token) and token.startswith("h1:")
    assert ids.cid(token) == ids.cid("jane@example.com")
    assert ids.token(token) == token


def test_rotation_rekeys_old_tokens_without_the_contact() -> None:
    old = ContactIds([K1]).token("441234567890")
    rotated = ContactIds([K1, K2])
    assert rotated.cid(old) == rotated.cid("441234567890")
    assert rotated.token(old).startswith("h2:")


def test_a_token_from_more_keys_than_known_is_refused() -> None:
    token = ContactIds([K1, K2]).token("441234567890")
    with pytest.raises(InvalidValue):
        ContactIds([K1]).cid(token)


def test_privacy_mode_needs_a_real_key() -> None:
    with pytest.raises(ConfigurationError):
        ContactIds([], required=True)
    with pytest.raises(ConfigurationError):
        ContactIds(["short"])
    assert ContactIds([]).cid("x") == ContactIds([PUBLIC_KEY.decode()]).cid("x")


def test_masked_shows_only_a_prefix_of_tokens() -> None:
    token = ContactIds([K1]).token("441234567890")
    assert masked(token) == token[:8] + "…" and masked("441234567890") == "441234567890"
