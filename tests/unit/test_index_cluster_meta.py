"""The pure parts of the index on a Redis Cluster: how the masters' metas combine into the
index's, the gates' filter position per master, and the slot map → tags, ranges and
buckets (``dnc.index_meta``, ``dnc.index_topology``)."""

from __future__ import annotations

from typing import Any

from redis.crc import key_slot

from dnc.index.meta import IndexMeta, format_versions, parse_versions
from dnc.index.topology import NO_NODE, Topologies, _merge

LAYOUT = "v2;buckets=256;ids=abc"


def node_meta(epoch: str | None, slots: str | None, **changes: int) -> IndexMeta:
    return IndexMeta(
        epoch=epoch,
        layout=LAYOUT if epoch else None,
        parts=2 if epoch else None,
        changes={int(k[1:]): v for k, v in changes.items()},
        commands={int(k[1:]): v + 1 for k, v in changes.items()},
        slots=slots,
    )


def test_offsets_are_the_minimum_over_the_masters_and_the_epoch_names_them_all() -> None:
    metas = {
        "n0": node_meta("e0", "f0", p0=10, p1=5),
        "n1": node_meta("e1", "f1", p0=7, p1=9),
    }
    meta = IndexMeta.combine(metas, {"n0": "f0", "n1": "f1"}, LAYOUT)
    assert meta.epoch == "n0=e0,n1=e1"
    assert meta.changes == {0: 7, 1: 5} and meta.commands == {0: 8, 1: 6}
    assert meta.complete() and meta.layout == LAYOUT
    assert meta.watermarks() == {("n0", 0): 10, ("n0", 1): 5, ("n1", 0): 7, ("n1", 1): 9}


def test_a_master_without_meta_or_with_other_slots_makes_the_index_incomplete() -> None:
    slots = {"n0": "f0", "n1": "f1"}
    lost = {"n0": node_meta("e0", "f0", p0=10, p1=5), "n1": node_meta(None, None)}
    meta = IndexMeta.combine(lost, slots, LAYOUT)
    assert meta.epoch is None and not meta.complete() and meta.changes == {}
    moved = {"n0": node_meta("e0", "f0", p0=10, p1=5), "n1": node_meta("e1", "old", p0=3, p1=3)}
    assert IndexMeta.combine(moved, slots, LAYOUT).epoch is None
    partial = {"n0": node_meta("e0", "f0", p0=10, p1=5), "n1": node_meta("e1", "f1", p0=4)}
    meta = IndexMeta.combine(partial, slots, LAYOUT)
    assert meta.changes == {0: 4} and not meta.complete()


def test_a_master_with_another_layout_is_the_one_reported() -> None:
    other = node_meta("e1", "f1", p0=1, p1=1)
    other.layout = "v2;buckets=1024;ids=abc"
    metas = {"n0": node_meta("e0", "f0", p0=1, p1=1), "n1": other}
    assert IndexMeta.combine(metas, {"n0": "f0", "n1": "f1"}, LAYOUT).layout == other.layout


def test_the_filter_position_names_every_master() -> None:
    metas = {"n0": node_meta("e0", "f0", p0=1), "n1": node_meta("e1", "f1", p0=1)}
    metas["n0"].adds_floor, metas["n1"].adds_floor = 1000, 2000
    meta = IndexMeta.combine(metas, {"n0": "f0", "n1": "f1"}, LAYOUT)
    version = format_versions({"n1": b"2500-0", "n0": b"1500-3"})
    assert version == b"n0=1500-3,n1=2500-0"
    assert parse_versions(version) == {"n0": b"1500-3", "n1": b"2500-0"}
    assert not meta.adds_trimmed(version)
    assert meta.adds_trimmed(b"n0=1500-3,n1=1999-0"), "trimmed past the position"
    assert meta.adds_trimmed(b"n0=1500-3"), "a master the position does not name"
    single = IndexMeta(adds_floor=1000)
    assert single.adds_trimmed(b"999-0") and not single.adds_trimmed(b"1000-0")


def _topology(owned: dict[str, list[tuple[int, int]]]) -> Any:
    topologies = Topologies("redis://127.0.0.1:1/0", "p", 256, 1.0)
    return topologies._build(owned)


def test_each_master_gets_a_tag_of_its_own_slots_and_every_bucket_a_master() -> None:
    owned = {"h:1": [(0, 5460)], "h:2": [(5461, 10922)], "h:3": [(10923, 16383)]}
    topology = _topology(owned)
    assert [n.addr for n in topology.nodes] == ["h:1", "h:2", "h:3"]
    for node in topology.nodes:
        lo, hi = (int(x) for x in node.ranges.split("-"))
        assert lo <= key_slot(node.tag.encode()) <= hi
        assert key_slot(node.meta_key.encode()) == key_slot(node.tag.encode())
        assert key_slot(node.x_key("p", 3).encode()) == key_slot(node.tag.encode())
    for b in range(256):
        node = topology.nodes[topology.node_of(b)]
        lo, hi = (int(x) for x in node.ranges.split("-"))
        assert lo <= key_slot(f"p:m:{{{b}}}".encode()) <= hi
    assert NO_NODE not in topology.bucket_node
    again = _topology(dict(reversed(owned.items())))
    assert [(n.addr, n.tag, n.fp) for n in again.nodes] == [
        (n.addr, n.tag, n.fp) for n in topology.nodes
    ], "every process that reads the same map names the same keys"


def test_slot_ranges_are_merged_so_a_fingerprint_names_a_set_of_slots() -> None:
    assert _merge([(10, 20), (0, 9), (30, 40), (21, 25)]) == [(0, 25), (30, 40)]
    a = _topology({"h:1": [(0, 99), (100, 16383)]})
    b = _topology({"h:1": [(0, 16383)]})
    assert a.nodes[0].fp == b.nodes[0].fp and a.nodes[0].ranges == "0-16383"
