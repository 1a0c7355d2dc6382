"""Signed unsubscribe tokens (HMAC-SHA256, key rotation, expiry).

A token is ``<payload>.<signature>``, both base64url without padding. The payload names the
signing key by a short id, so after a rotation old links still verify as long as their key
is still configured (keys are listed newest first; the first one signs). A token that was
tampered with, has expired, or was signed by a key no longer configured is refused with a
reason; replaying a valid token is harmless because adding an existing entry changes
nothing (rule 1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from dnc.domain.timestamps import now_ms
from dnc.errors import ConfigurationError, InvalidValue

_MIN_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class UnsubscribeClaims:
    account: str
    contact: str
    channel: str | None
    sender: str | None
    campaign_id: str | None
    expires_at_ms: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"dnc-unsubscribe-kid" + key).hexdigest()[:12]


class TokenSigner:
    def __init__(self, keys: Sequence[str]) -> None:
        raw = [k.encode() for k in keys]
        for k in raw:
            if len(k) < _MIN_KEY_BYTES:
                raise ConfigurationError(
                    f"unsubscribe keys must be at least {_MIN_KEY_BYTES} bytes of secret "
                    "(generate one: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
        self._keys = {_key_id(k): k for k in raw}
        self._signing = raw[0] if raw else None

    @property
    def enabled(self) -> bool:
        return self._signing is not None

    def sign(self, claims: UnsubscribeClaims) -> str:
        if self._signing is None:
            raise ConfigurationError("no unsubscribe key configured (DNC_API__UNSUBSCRIBE_KEYS)")
        payload = orjson.dumps(
            {
                "k": _key_id(self._signing),
                "a": claims.account,
                "c": claims.contact,
                "ch": claims.channel,
                "s": claims.sender,
                "cp": claims.campaign_id,
                "exp": claims.expires_at_ms,
            }
        )
        body = _b64(payload)
        sig = hmac.new(self._signing, body.encode(), hashlib.sha256).digest()
        return f"{body}.{_b64(sig)}"

    def verify(self, token: object, *, now: int | None = None) -> UnsubscribeClaims:
        if not isinstance(token, str) or token.count(".") != 1 or len(token) > 2048:
            raise InvalidValue("token", _short(token), "is not an unsubscribe token")
        body, sig = token.split(".")
        try:
            payload = orjson.loads(_unb64(body))
            signature = _unb64(sig)
        except (ValueError, orjson.JSONDecodeError):
            raise InvalidValue("token", _short(token), "is not an unsubscribe token") from None
        if not isinstance(payload, dict):
            raise InvalidValue("token", _short(token), "is not an unsubscribe token")
        key = self._keys.get(str(payload.get("k")))
        if key is None:
            raise InvalidValue(
                "token", _short(token), "was signed with a key that is no longer valid"
            )
        expected = hmac.new(key, body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise InvalidValue("token", _short(token), "has an invalid signature (tampered)")
        exp = payload.get("exp")
        if not isinstance(exp, int) or exp <= (now_ms() if now is None else now):
            raise InvalidValue("token", _short(token), "has expired")
        return UnsubscribeClaims(
            account=payload["a"],
            contact=payload["c"],
            channel=payload.get("ch"),
            sender=payload.get("s"),
            campaign_id=payload.get("cp"),
            expires_at_ms=exp,
        )


def _short(token: object) -> object:
    if isinstance(token, str) and len(token) > 24:
        return token[:20] + "…"
    return token
