"""Bearer API keys, each granting a set of accounts; only their SHA-256 is configured.

A request naming an account its key does not grant gets 403 with the same answer whether
the account exists or not, so a key learns nothing about other tenants.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import HTTPException, Request, status

from dnc.settings import ApiKey


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    accounts: frozenset[str]

    def authorize(self, accounts: Iterable[str]) -> None:
        """403 unless every account is granted to this key."""
        for account in accounts:
            if account not in self.accounts:
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN, "this key is not allowed to use that account"
                )

    def scope(self, requested: Iterable[str] | None) -> list[str]:
        """The accounts a query covers: the requested ones (all granted) or every granted one."""
        wanted = list(dict.fromkeys(requested or ()))
        if not wanted:
            return sorted(self.accounts)
        self.authorize(wanted)
        return wanted


class KeyRing:
    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_hash = {k.sha256.lower(): Principal(k.name, frozenset(k.accounts)) for k in keys}

    def __len__(self) -> int:
        return len(self._by_hash)

    def resolve(self, secret: str) -> Principal | None:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        # Constant-time comparison over every key: the time taken says nothing about how
        # much of a hash matched.
        found = None
        for known, principal in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                found = principal
        return found


def principal_from(request: Request, keys: KeyRing) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "an API key is required (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = keys.resolve(secret.strip())
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal
