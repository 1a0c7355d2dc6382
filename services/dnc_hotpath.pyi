"""Types of the compiled gate check (native/hotpath/src/lib.rs; see dnc.gate.native)."""

from collections.abc import Mapping, Sequence

class Checker:
    def __init__(
        self,
        key: bytes,
        table: Mapping[str, tuple[int, Sequence[int], str | None]],
        channels: Sequence[str],
    ) -> None: ...
    def learn_account(self, account: str, prefix: bytes) -> None: ...
    def learn_sender(self, raw: str, canonical: str) -> None: ...
    def keys(
        self, values: list[bytes] | list[bytes | None], mask: int
    ) -> tuple[list[int], list[int]]: ...
    def parsed(
        self, values: list[bytes] | list[bytes | None]
    ) -> list[tuple[str, str, str, str, int, bytes] | None]: ...
    def fast_phone(self, raw: str) -> str | None: ...
