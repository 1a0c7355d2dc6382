"""The gate's per-message check, compiled: ``dnc_hotpath`` (``native/hotpath``, Rust, built
by ``make deps``) decides the common case of ``OutboundReader.check`` a batch at a time;
the Python loop stays as its twin and decides everything the extension does not fully
understand (it answers "ask Python" for those, and they are few).

Where the extension is missing (no Rust compiler at install time), turned off
(``DNC_GATE__NATIVE_CHECK=false``) or cannot reproduce the contact ids (several keys),
the gate uses the Python check and says which in its log and in ``dnc_gate_check_impl``.
tests/unit/test_gate_native.py checks that both decide every message alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress
from typing import TYPE_CHECKING, Protocol

from rbloom import Bloom

from dnc.domain.channels import Channel
from dnc.domain.contactids import ContactIds
from dnc.domain.contacts import phone_fast_path_table
from dnc.gate.decisions import Decision
from dnc.gate.verdicts import SOURCE_NAME
from dnc.index.layout import CODE_CHANNEL

if TYPE_CHECKING:
    from dnc.gate.filter import BloomFilter
    from dnc_hotpath import Bloom as NativeBloom
    from dnc_hotpath import Checker as NativeChecker
    from dnc_hotpath import Verdicts as NativeVerdicts


class PythonCheck(Protocol):
    """The reader's own loop, for the messages the extension leaves to Python."""

    def __call__(
        self, raws: Sequence[bytes], bloom: BloomFilter | None, compact: bool
    ) -> tuple[list[Decision], list[int], list[int]]: ...


def bloom_class(native: NativeChecker | None) -> type[BloomFilter]:
    """The contact filter's Bloom filter: the extension's own where the compiled check
    runs (it probes it inside its loop), else rbloom's."""
    if native is None:
        return Bloom
    import dnc_hotpath

    return dnc_hotpath.Bloom


def verdicts(native: NativeChecker | None) -> NativeVerdicts | None:
    """The compiled blocked record (``dnc.gate.verdicts`` and the envelope) where the
    compiled check runs: the layout's codes are given to it from here, never copied."""
    if native is None:
        return None
    import dnc_hotpath

    return dnc_hotpath.Verdicts(CODE_CHANNEL, SOURCE_NAME)


def load(ids: ContactIds, enabled: bool) -> tuple[NativeChecker | None, str]:
    """The compiled checker, or None and why not."""
    if not enabled:
        return None, "python (turned off: DNC_GATE__NATIVE_CHECK=false)"
    key = ids.single_key
    if key is None:
        return None, "python (several contact-id keys: the compiled check knows one)"
    try:
        import dnc_hotpath  # optional: built where a Rust compiler is
    except ImportError:
        return None, "python (the dnc_hotpath extension is not installed: no Rust compiler?)"
    table = {
        cc: (cc_len, sorted(lengths), None if matcher is None else pattern_of(matcher))
        for cc, (cc_len, lengths, matcher) in phone_fast_path_table().items()
    }
    checker = dnc_hotpath.Checker(key, table, [c.value for c in Channel])
    return checker, "native (dnc_hotpath, compiled)"


def pattern_of(matcher: object) -> str:
    """The regular expression of a bound ``re.Pattern.match``."""
    pattern = getattr(matcher, "__self__", None)
    text = getattr(pattern, "pattern", None)
    assert isinstance(text, str), matcher
    return text


def check(
    native: NativeChecker,
    python: PythonCheck,
    raws: list[bytes],
    mask: int,
    *,
    bloom: NativeBloom | None,
    compact: bool,
) -> tuple[list[Decision], list[int], list[int]]:
    """``OutboundReader.check`` of a batch's values, the common case compiled: the same
    (decisions, positions to look up, positions not ruled out by the filter)."""
    # The keys and the filter probe in one compiled loop: per message ruled out by the
    # filter (nearly all) no Python object at all.
    ask, slow = native.probe(raws, mask, bloom)
    n = len(raws)
    decisions: list[Decision] = [None] * n
    if compact:
        special = ask.copy()  # the caller may widen `special` in place (Gate._ruled_out)
    elif slow:
        fast = [True] * n
        for i in slow:
            fast[i] = False
        special = list(compress(range(n), fast))
    else:
        special = list(range(n))
    if special:
        parsed = native.parsed([raws[i] for i in special])
        for i, p in zip(special, parsed, strict=True):
            assert p is not None  # what probe() decided, parsed() decides alike
            decisions[i] = p
    if not slow:
        return decisions, ask, special
    their, their_ask, their_special = python([raws[i] for i in slow], bloom, compact)
    for i, d in zip(slow, their, strict=True):
        decisions[i] = d
    ask = sorted(ask + [slow[j] for j in their_ask])
    special = sorted(special + [slow[j] for j in their_special])
    return decisions, ask, special
