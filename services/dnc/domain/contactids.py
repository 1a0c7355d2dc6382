"""Contact ids: a keyed hash of a contact, so a contact can be looked up without being
stored (contract addition, "privacy mode").

``cid(contact)`` is BLAKE2b-128 keyed with the first key, then re-keyed with each later
key in turn: ``h1 = B(k1, contact)``, ``h2 = B(k2, h1)``, … Adding a key (rotation) can
therefore re-key every stored id *without* the contacts, and an id is only as exposed as
the whole key chain. Stored ids are written ``h<n>:<base64url>``, where ``n`` is how many
keys made them: resolving one applies the keys it has not seen yet.

The Redis index is always keyed by contact id (in both modes), so an erased contact keeps
its suppression: the changelog entry is rewritten with the id, and the index, keyed by
the same id, does not change.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence

from dnc.errors import ConfigurationError, InvalidValue

# Used when no key is configured: a hash, not a secret. Fine while privacy mode is off
# (the changelog holds the contacts anyway); privacy mode refuses to start with it.
PUBLIC_KEY = b"dnc contact id v1: public, not a secret"
_TOKEN = re.compile(r"h([1-9][0-9]{0,2}):([A-Za-z0-9_-]{22})")
_MIN_KEY_BYTES = 32


class ContactIds:
    def __init__(self, keys: Sequence[str], *, required: bool = False) -> None:
        raw = [k.encode() for k in keys]
        if required and not raw:
            raise ConfigurationError(
                "privacy mode needs at least one contact-id key (DNC_PRIVACY__KEYS)"
            )
        for k in raw:
            if len(k) < _MIN_KEY_BYTES:
                raise ConfigurationError(
                    f"contact-id keys must be at least {_MIN_KEY_BYTES} bytes of secret"
                )
        self._keys = [k[:64] for k in raw] or [PUBLIC_KEY]
        # Pre-keyed hash states: copying one is cheaper than keying a new one (0.29 µs).
        self._states = [hashlib.blake2b(digest_size=16, key=k) for k in self._keys]

    @property
    def version(self) -> int:
        return len(self._keys)

    @property
    def single_key(self) -> bytes | None:
        """The key when there is one (the gate's compiled check reproduces only that)."""
        return self._keys[0] if len(self._keys) == 1 else None

    def cid(self, contact: str) -> bytes:
        """The id of a canonical contact, or of a stored ``h<n>:…`` token."""
        if not contact.startswith("h") and len(self._states) == 1:
            # The gate's case, once per message: a plain contact and one key.
            h = self._states[0].copy()
            h.update(contact.encode())
            return h.digest()
        match = _TOKEN.fullmatch(contact) if contact.startswith("h") else None
        if match is not None:
            seen = int(match.group(1))
            if seen > len(self._keys):
                raise InvalidValue(
                    "contact", contact, f"was made with {seen} keys; {len(self._keys)} are known"
                )
            value = base64.urlsafe_b64decode(match.group(2) + "==")
            start = seen
        else:
            value = contact.encode()
            start = 0
        for state in self._states[start:]:
            h = state.copy()
            h.update(value)
            value = h.digest()
        return value

    def token(self, contact: str) -> str:
        """``h<n>:…``: how a contact is stored where it must not appear (idempotent)."""
        return f"h{self.version}:" + _b64(self.cid(contact))


def is_token(contact: str) -> bool:
    return contact.startswith("h") and _TOKEN.fullmatch(contact) is not None


def masked(contact: str) -> str:
    """How a contact id is shown to people: short, visibly not a number or address."""
    return contact[:8] + "…" if is_token(contact) else contact


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
