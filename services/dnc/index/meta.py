"""What the index says about itself (``IndexMeta``), and the values its operations pass.

On a single Redis the meta is one hash. On a Redis Cluster every node has its own (data
and offsets change together per node), and the index's meta is their combination: an
offset is the minimum over the nodes, the epoch names every node's epoch, and a node
without a meta, or whose slots changed since it was written, leaves the index incomplete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dnc.errors import ConfigurationError, IndexDiverged, IndexUnavailable


@dataclass(slots=True)
class IndexMeta:
    """What the index says about itself. ``epoch`` None = empty (or incomplete) index."""

    epoch: str | None = None
    layout: str | None = None
    parts: int | None = None
    changes: dict[int, int] = field(default_factory=dict)
    commands: dict[int, int] = field(default_factory=dict)
    adds_floor: int = 0
    # Cluster only: the fingerprint of the slots the node's offsets were written for, and
    # (in a combined meta) each node's own meta by its tag.
    slots: str | None = None
    nodes: dict[str, IndexMeta] = field(default_factory=dict)

    @classmethod
    def from_flat(cls, flat: Sequence[bytes]) -> IndexMeta:
        meta = cls()
        for i in range(0, len(flat), 2):
            name, value = flat[i].decode(), flat[i + 1].decode()
            if name.startswith("chg:"):
                meta.changes[int(name[4:])] = int(value)
            elif name.startswith("cmd:"):
                meta.commands[int(name[4:])] = int(value)
            elif name == "epoch":
                meta.epoch = value
            elif name == "layout":
                meta.layout = value
            elif name == "parts":
                meta.parts = int(value)
            elif name == "adds_floor":
                meta.adds_floor = int(value)
            elif name == "slots":
                meta.slots = value
        return meta

    @classmethod
    def combine(
        cls, metas: Mapping[str, IndexMeta], slots: Mapping[str, str], layout: str
    ) -> IndexMeta:
        """The index's meta from its nodes' (by tag). ``slots``: each node's current slot
        fingerprint; a node whose meta was written for other slots is not usable until
        the list writers reconcile it (``init``). ``layout``: ours, so that a node with
        another layout is the one reported."""
        out = cls(nodes=dict(metas))
        epochs = []
        usable = bool(metas)
        for tag in sorted(metas):
            m = metas[tag]
            if m.epoch is None or m.slots != slots.get(tag):
                usable = False
            epochs.append(f"{tag}={m.epoch}")
            if m.layout is not None and (out.layout is None or m.layout != layout):
                out.layout = m.layout
            if m.parts is not None:
                out.parts = max(out.parts or 0, m.parts)
        out.epoch = ",".join(epochs) if usable else None
        nodes = list(metas.values())
        for name in ("changes", "commands"):
            offsets: dict[int, int] = getattr(out, name)
            first: dict[int, int] = getattr(nodes[0], name) if nodes else {}
            for p in first:
                values = [getattr(m, name).get(p) for m in nodes]
                if None not in values:
                    offsets[p] = min(v for v in values if v is not None)
        return out

    def complete(self) -> bool:
        """Every changelog partition has been applied at least up to its start."""
        return (
            self.epoch is not None
            and self.parts is not None
            and all(p in self.changes for p in range(self.parts))
        )

    def watermarks(self) -> dict[tuple[str, int], int]:
        """Offsets that must never go back, per (node tag, partition): on a cluster a node
        that lost its last writes is noticed even when another node is the minimum."""
        if not self.nodes:
            return {("", p): o for p, o in self.changes.items()}
        return {(tag, p): o for tag, m in self.nodes.items() for p, o in m.changes.items()}

    def adds_trimmed(self, version: bytes) -> bool:
        """True if the additions stream(s) no longer hold everything after ``version``
        (the gates' filter position; ``Index.last_add_id``): the filter must be rebuilt."""
        if not self.nodes:
            return _id_ms(version) < self.adds_floor
        seen = parse_versions(version)
        return any(
            tag not in seen or _id_ms(seen[tag]) < m.adds_floor for tag, m in self.nodes.items()
        )


def parse_versions(version: bytes) -> dict[str, bytes]:
    """A cluster filter position: ``tag=stream-id`` per node, comma-separated."""
    out = {}
    for part in version.split(b","):
        tag, _, sid = part.partition(b"=")
        if sid:
            out[tag.decode()] = sid
    return out


def format_versions(versions: Mapping[str, bytes]) -> bytes:
    return b",".join(tag.encode() + b"=" + versions[tag] for tag in sorted(versions))


def _id_ms(stream_id: bytes) -> int:
    return int(stream_id.split(b"-")[0])


@dataclass(slots=True)
class ContactUpdate:
    """The new packed entries of one contact ("" = no entries left)."""

    bucket: int
    member: int
    field: bytes
    value: bytes


@dataclass(slots=True)
class LookupResult:
    meta: IndexMeta
    hits: dict[int, bytes]  # position in the batch → packed entries
    adds: list[tuple[bytes, bytes]] | None  # (stream id, blob) after the requested id
    version: bytes | None = None  # the filter position after ``adds``


def script_error(exc: RedisError) -> BaseException:
    """What a failed index script or command means for its caller (``dnc.errors``)."""
    text = str(exc)
    if isinstance(exc, ResponseError):
        if text.startswith("DIVERGED"):
            return IndexDiverged(text)
        if text.startswith("LAYOUT"):
            return ConfigurationError(
                f"{text}: every role must use the same DNC_INDEX__BUCKETS and "
                "DNC_PRIVACY__KEYS; to change them, build a new index under a new "
                "DNC_INDEX__PREFIX (it is rebuilt from dnc.changes) and switch the roles"
            )
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return IndexUnavailable(f"redis: {exc}")
    if "LOADING" in text or "BUSY" in text or "CLUSTERDOWN" in text:
        return IndexUnavailable(f"redis: {exc}")
    return exc
