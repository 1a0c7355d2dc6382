"""Unsubscribe tokens: tampering, expiry, rotation."""

from __future__ import annotations

import pytest

from dnc.domain.unsubscribe import TokenSigner, UnsubscribeClaims
from dnc.errors import ConfigurationError, InvalidValue

OLD, NEW = "o" * 40, "n" * 40
CLAIMS = UnsubscribeClaims("acme", "jane@example.com", "EMAIL", None, "c-9", 10_000)


def test_a_token_verifies_and_carries_its_claims() -> None:
    assert TokenSigner([NEW]).verify(TokenSigner([NEW]).sign(CLAIMS), now=1) == CLAIMS


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: "x" + t[1:],
        lambda t: t.replace(".", ""),
        lambda t: t + ".x",
    ],
)
def test_tampered_tokens_are_refused(mutate: object) -> None:
    token = TokenSigner([NEW]).sign(CLAIMS)
    with pytest.raises(InvalidValue) as info:
        TokenSigner([NEW]).verify(mutate(token), now=1)  # type: ignore[operator]
    assert info.value.field == "token"


def test_expired_tokens_are_refused() -> None:
    with pytest.raises(InvalidValue, match="expired"):
        TokenSigner([NEW]).verify(TokenSigner([NEW]).sign(CLAIMS), now=10_000)


def test_rotation_keeps_old_links_until_their_key_is_removed() -> None:
    old_token = TokenSigner([OLD]).sign(CLAIMS)
    assert TokenSigner([NEW, OLD]).verify(old_token, now=1) == CLAIMS
    with pytest.raises(InvalidValue, match="no longer valid"):
        TokenSigner([NEW]).verify(old_token, now=1)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        TokenSigner(["short"])
