"""The HTTP API, called from the client: errors become messages and exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from dnc.client.terminal import ERROR, NOT_FOUND, USAGE, fail
from dnc.client.words import option_words


class Client:
    """httpx with the API's error answers turned into messages and exit codes."""

    def __init__(self, api: str, key: str | None) -> None:
        if not key:
            fail("an API key is required: --key or DNC_API_KEY", USAGE)
        self.api = api.rstrip("/")
        self.http = httpx.Client(
            base_url=self.api, headers={"Authorization": f"Bearer {key}"}, timeout=300
        )

    def call(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kw: Any) -> Any:
        with self._errors():
            r = self.http.request(method, path, **kw)
        self.check(r, ok)
        return r.json()

    @contextmanager
    def stream(self, method: str, path: str, **kw: Any) -> Iterator[httpx.Response]:
        with self._errors(), self.http.stream(method, path, **kw) as r:
            if r.status_code != 200:
                r.read()
                self.check(r, (200,))
            yield r

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError as exc:
            fail(f"cannot reach the API at {self.api} ({exc or type(exc).__name__})")

    def check(self, r: httpx.Response, ok: tuple[int, ...]) -> None:
        if r.status_code not in ok:
            text, code = _ANSWERS.get(r.status_code, (f"the API answered {r.status_code}: {{}}", 1))
            fail(text.format(option_words(_message(r))), code)


_ANSWERS = {
    401: ("the API key was refused: {} (set --key or DNC_API_KEY)", ERROR),
    403: ("forbidden: {}", ERROR),
    404: ("{}", NOT_FOUND),
    413: ("too large: {}", ERROR),
    422: ("invalid input: {}", USAGE),
}


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text.strip()[:500] or r.reason_phrase
    if isinstance(body, dict):
        detail = body.get("error") or body.get("detail")
        if isinstance(detail, list):  # request validation: field paths and messages
            return "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
            )
        if detail:
            return str(detail)
    return str(body)[:500]
