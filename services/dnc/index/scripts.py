"""The index's Lua scripts (``lua/``), loaded for a client.

Every write of the index is one of them, so data and offsets change in one atomic step;
both index implementations run the same scripts (on a cluster, once per master).
"""

from __future__ import annotations

from importlib import resources

from redis.asyncio import Redis, RedisCluster
from redis.commands.core import AsyncScript

NAMES = ("apply", "init", "load", "lookup", "replay")
INCLUDE = "-- #include "


def lua_script(name: str) -> str:
    """The text of ``lua/<name>.lua``, with each ``-- #include <file>`` line replaced by
    that file (the opening the writing scripts share: ``lua/writes.lua``)."""
    lua = resources.files("dnc.index").joinpath("lua")
    lines = lua.joinpath(f"{name}.lua").read_text().split("\n")
    return "\n".join(
        lua.joinpath(line.removeprefix(INCLUDE).strip()).read_text().rstrip("\n")
        if line.startswith(INCLUDE)
        else line
        for line in lines
    )


def register(client: Redis | RedisCluster) -> dict[str, AsyncScript]:
    """Every script, by name, callable on ``client`` (or on another client given per call)."""
    return {name: client.register_script(lua_script(name)) for name in NAMES}
