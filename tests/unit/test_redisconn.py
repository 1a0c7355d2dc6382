"""The hiredis packing gives redis-py's bytes for every argument type the roles send, and
redis-py's behaviour (its own packing, its own errors) for what hiredis does not take."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from dnc.index.connections import PackedConnection, PackedSSLConnection, connection_options

CASES = [
    ("EVALSHA", "a" * 40, 3, "k1", b"k2", "k3", "", b"", 0, -7, 2**40, 1.5, "é☃", b"\x00\xff"),
    ("CONFIG GET", "maxmemory"),
    (b"CLIENT SETNAME", b"dnc"),
    ("SET", bytearray(b"ab"), memoryview(b"cd")),
]


@pytest.mark.parametrize("args", CASES)
def test_packs_what_redis_py_packs(args: tuple[object, ...]) -> None:
    ours = b"".join(PackedConnection().pack_command(*args))  # type: ignore[arg-type]
    theirs = b"".join(Connection().pack_command(*args))  # type: ignore[arg-type]
    assert ours == theirs


@pytest.mark.parametrize("bad", [None, True, object()])
def test_invalid_arguments_fail_as_in_redis_py(bad: object) -> None:
    with pytest.raises(DataError):
        PackedConnection().pack_command("SET", "k", bad)  # type: ignore[arg-type]


def test_the_url_scheme_picks_the_connection() -> None:
    assert connection_options("redis://h:1/0") == {"connection_class": PackedConnection}
    assert connection_options("rediss://h:1/0") == {"connection_class": PackedSSLConnection}
    assert connection_options("unix:///tmp/redis.sock") == {}
