"""The gate's compiled check (dnc_hotpath, native/hotpath) decides every message exactly as
its Python twin: the same decisions, lookups and errors, over the gate parse tests'
cases and properties, hand-written nasty messages and the 200k-number phone sweep."""

from __future__ import annotations

import itertools
import logging
import random
import string
from typing import Any

import orjson
import phonenumbers
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from dnc.domain.contactids import ContactIds
from dnc.domain.contacts import _FAST_EMAIL, _fast_phone, destination_key
from dnc.errors import InvalidValue, NotJson
from dnc.gate.filter import BloomFilter
from dnc.gate.native import load
from dnc.gate.role import Gate
from dnc.settings import GateSettings, IndexSettings, Settings
from tests.unit.test_gate_parse import CASES, GOOD, messages, reference

try:
    import dnc_hotpath
except ImportError:  # pragma: no cover - make deps always builds it
    pytest.skip(
        "the dnc_hotpath extension is not built (no Rust compiler when `make deps` ran)",
        allow_module_level=True,
    )


def make_gate(native: bool) -> Gate:
    gate = Gate(Settings(index=IndexSettings(buckets=1024), gate=GateSettings(native_check=native)))
    assert (gate.reader.native is not None) == native, gate.check_impl
    return gate


@pytest.fixture(scope="module")
def twins() -> tuple[Gate, Gate]:
    return make_gate(True), make_gate(False)


def records(raws: list[bytes | None]) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
    half = len(raws) // 2  # two partitions, as a batch has them
    split = [raws[:half], raws[half:]]
    return {
        TopicPartition("out", p): [
            ConsumerRecord("out", p, i, 0, 0, None, raw, None, 0, len(raw or b""), [])
            for i, raw in enumerate(part)
        ]
        for p, part in enumerate(split)
    }


def both(twins: tuple[Gate, Gate], raws: list[bytes | None], keys: set[int] | None) -> None:
    """Native and Python decide alike, in both routing modes, each with the Bloom filter
    its gate makes (the extension's own and rbloom's) holding ``keys`` (None: no filter)."""
    native, python = twins
    checker = native.reader.native
    assert checker is not None
    simd = checker.simd
    try:
        # Contact ids four at a time (AVX2) and one at a time must agree too.
        for checker.simd, compact in itertools.product({simd, False}, (True, False)):
            got = native.reader.check(records(raws), a_bloom(native, keys), compact)
            want = python.reader.check(records(raws), a_bloom(python, keys), compact)
            assert got == want, (checker.simd, compact, raws)
    finally:
        checker.simd = simd


def a_bloom(gate: Gate, keys: set[int] | None) -> BloomFilter | None:
    if keys is None:
        return None
    bloom = gate.reader.bloom_class(1000, 0.0001)
    bloom.update(keys)
    return bloom


def filter_keys(gate: Gate, raws: list[bytes | None]) -> set[int]:
    """Every other valid message's contact (and nothing else), as the filter holds them."""
    keys = set()
    for raw in raws[::2]:
        try:
            p = gate.reader.parse(raw)
        except (InvalidValue, NotJson):  # invalid: not in the filter
            continue
        keys.add(p[4] & gate.reader.filter_mask)
    return keys


def good(**changes: object) -> bytes:
    return orjson.dumps({**GOOD, **changes})


G = orjson.dumps(GOOD)
NASTY: list[bytes | None] = [
    *CASES,
    G[:-1] + b',"account":"acme"}',  # a required key twice, same value
    G[:-1] + b',"sender":"OTHER"}',
    b'{"acc\\u006funt":"x",' + G[1:],  # an escaped key spelling a required name
    b'{"acc\\tount":"x",' + G[1:],  # an escaped key spelling nothing
    good(text="\\u0041"),  # a backslash-u inside a value (escaped by orjson: \\\\u)
    G[:-1] + b',"text":"\\u00e9"}',
    good(destination="441234567890").replace(b'"441234567890"', b'"44123456789\\u0030"'),
    good(sender="AC\\ME"),
    G.replace(b'"ACME"', b'"AC\\/ME"'),  # a simple escape in a required value
    G[:-1] + b',"text":"a\\nb\\"c\\\\"}',  # simple escapes elsewhere: fine
    G[:-1] + b',"text":"tab\there"}',  # a raw control character
    G[:-1] + b',"text":"caf\xc3\xa9"}',  # UTF-8
    G[:-1] + b',"text":"caf\xe9"}',  # not UTF-8
    G[:-1] + b',"text":"\xed\xa0\x80"}',  # an encoded surrogate
    b"\xef\xbb\xbf" + G,  # a byte-order mark
    G[:-1] + b',"n":NaN}',
    G[:-1] + b',"n":Infinity}',
    G[:-1] + b',"n":-0,"m":0.5e-7,"k":1E+2}',
    G[:-1] + b',"n":123456789012345678}',
    G[:-1] + b',"n":1234567890123456789}',
    G[:-1] + b',"n":18446744073709551616}',
    G[:-1] + b',"n":1e400}',
    G[:-1] + b',"n":1.}',
    G[:-1] + b',"n":01}',
    G[:-1] + b',"n":-}',
    G[:-1] + b',"n":.5}',
    G[:-1] + b',"n":+1}',
    G[:-1] + b',"meta":{"destination":"441234567891","sender":{"x":[1,{"y":null}]}}}',
    G[:-1] + b',"meta":{"destination":"a","destination":"b"}}',
    G[:-1] + b',"deep":' + b"[" * 15 + b"]" * 15 + b"}",
    G[:-1] + b',"deep":' + b"[" * 40 + b"]" * 40 + b"}",
    G[:-1] + b',"deep":' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}",
    b" \t\r\n" + G.replace(b",", b" ,\n ").replace(b":", b"\t:\r") + b" \n",
    G + b"x",
    G + b"{}",
    G[:-1],
    G[:-1] + b",}",
    b'{"message_id":"m-1",,' + G[1:],
    G.replace(b":", b"::", 1),
    b"null",
    b"{}",
    b'"a string"',
    b"[" + G + b"]",
    good(message_id="é" * 256),
    good(message_id="é" * 257),
    good(message_id=""),
    good(destination="4" * 320),
    good(destination="+44 " + "1" * 317),
    good(destination="00441234567890"),
    good(destination="+441234567890"),
    good(destination="+ 44 1234 567890"),
    good(destination="0441234567890"),
    good(destination="441234567890 "),
    good(destination="٤٤1234567890"),  # Arabic-Indic digits
    good(destination="jane@example.com"),
    good(destination="Jane.Doe+tag@Mail.Example.CO.uk"),
    good(destination="henry@example.com"),  # starts with "h", like a contact-id token
    good(destination="a@b.test"),  # a special-use name: the validator's
    good(destination="a@b.LocalHost"),
    good(destination="a..b@example.com"),
    good(destination=".a@example.com"),
    good(destination="a@-x.com"),
    good(destination="a@x-.com"),
    good(destination="a@x--y.com"),
    good(destination="a@x.c0m"),
    good(destination="a@com"),
    good(destination=" a@example.com"),
    good(destination="a@example.com\t"),
    good(destination="jané@example.com"),
    good(destination="a@b@example.com"),
    good(destination="x" * 64 + "@example.com"),
    good(destination="x" * 65 + "@example.com"),
    good(destination="a@" + "y" * 63 + ".com"),
    good(destination="a@" + "y" * 64 + ".com"),
    good(destination="a@" + ".".join(["y" * 60] * 4) + ".com"),  # past one hash block
    good(destination="a@" + ".".join(["y" * 62] * 4) + ".com"),  # 257: too long
    good(destination="33612345678"),  # France: national prefix "0"
    good(destination="5491123456789"),  # Argentina: a real pattern
    good(destination="4401234567890"),
    good(channel="EMAIL"),
    good(channel="VOICE"),
    good(channel="Sms"),
    good(account="other"),
    good(sender="acme"),
    good(message_id=7),
    good(destination=441234567890),
]


def test_nasty_messages_are_decided_alike(twins: tuple[Gate, Gate]) -> None:
    native, _ = twins
    both(twins, NASTY, None)  # cold caches, then warm
    both(twins, NASTY, None)
    both(twins, NASTY, filter_keys(native, NASTY))


def test_the_common_case_is_compiled(twins: tuple[Gate, Gate]) -> None:
    """Not vacuous: a plain message from a known account and sender never reaches Python."""
    native, _ = twins
    native.reader.check(records([G]), None, True)  # learns account and sender
    assert native.reader.native is not None
    values = [
        G,
        good(destination="+44 1234 567890"),
        good(destination="Jane@Example.com"),
        good(text='say "hi"\\n'),
    ]
    ask, slow = native.reader.native.probe(values, native.reader.filter_mask, None)
    assert (ask, slow) == ([0, 1, 2, 3], [])


def test_the_careful_reading_agrees(twins: tuple[Gate, Gate]) -> None:
    native, _ = twins
    decisions, _, _ = native.reader.check(records(NASTY), None, True)
    assert decisions == [reference(raw) for raw in NASTY]


@given(st.lists(messages(), min_size=1, max_size=6))
@settings(max_examples=300, deadline=None)
def test_same_decisions_on_messages_near_the_valid_ones(
    twins: tuple[Gate, Gate], raws: list[bytes]
) -> None:
    values: list[bytes | None] = [G, *raws, *raws]
    both(twins, values, None)
    both(twins, values, filter_keys(twins[0], values))


def sweep() -> list[str]:
    """The 200k-number sweep of tests/unit/test_contacts.py (same seed and formats)."""
    rng = random.Random(20261126)
    formats = [
        lambda d: d, lambda d: "+" + d, lambda d: "00" + d,
        lambda d: "+" + d[:3] + " " + d[3:7] + " " + d[7:],
    ]  # fmt: skip
    numbers = []
    for cc in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        for length in range(4, 18):
            for _ in range(67):
                national = rng.choice("0123456789") + "".join(
                    rng.choices(string.digits, k=length - 1)
                )
                numbers.append(rng.choice(formats)(str(cc) + national))
    return numbers


def test_phone_fast_path_is_the_same_over_the_sweep(twins: tuple[Gate, Gate]) -> None:
    checker = twins[0].reader.native
    assert checker is not None
    numbers = sweep()
    assert len(numbers) >= 200_000
    decided = 0
    for raw in numbers:
        fast = checker.fast_phone(raw)
        if fast is not None:
            decided += 1
            assert fast == _fast_phone(raw), raw
    # Only the 19 calling codes with a real national-prefix pattern are left to Python.
    python_decided = sum(_fast_phone(raw) is not None for raw in numbers)
    assert decided > 0.85 * python_decided


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["", "+", "00", "+ ", "00 ", " ", "0"]),
    st.text(alphabet=string.digits + " ", min_size=0, max_size=20),
)
@example("+", "4402012345678")
@example("", "390612345678")
@example("+", "5491123456789")
@example("", "4" * 70)
def test_phone_fast_path_never_disagrees(
    twins: tuple[Gate, Gate], prefix: str, digits: str
) -> None:
    checker = twins[0].reader.native
    assert checker is not None
    fast = checker.fast_phone(prefix + digits)
    assert fast is None or fast == _fast_phone(prefix + digits)


EMAIL_PARTS = ["a", "Z", "0", ".", "-", "_", "+", "@", "!", " ", "é", "co", "test", "x" * 30]


@given(st.lists(st.sampled_from(EMAIL_PARTS), max_size=14).map("".join))
@example("jane@example.com")
@example("a@b.onion")
@example("a@b.onions")
@example("a" * 64 + "@b.com")
@settings(max_examples=1000, deadline=None)
def test_email_fast_path_is_the_regular_expression(twins: tuple[Gate, Gate], raw: str) -> None:
    """Never a different answer, and no address the expression takes is left out (apart
    from the ones with spaces around, which Python strips first)."""
    checker = twins[0].reader.native
    assert checker is not None
    fast = checker.fast_email(raw)
    taken = len(raw) <= 254 and _FAST_EMAIL.fullmatch(raw) is not None
    assert fast == (raw.lower() if taken else None)
    if fast is not None:
        assert destination_key(raw) == fast


def test_the_gate_says_which_check_it_uses(caplog: pytest.LogCaptureFixture) -> None:
    for native in (True, False):
        gate = make_gate(native)
        with caplog.at_level(logging.INFO, logger="dnc.gate.role"):
            gate.report_check_impl()
        assert f"per-message check: {gate.check_impl}" in caplog.text
        text = generate_latest(gate.metrics.registry).decode()
        assert f'dnc_gate_check_impl{{impl="native"}} {float(native)}' in text
        assert f'dnc_gate_check_impl{{impl="python"}} {float(not native)}' in text
    assert make_gate(True).check_impl.startswith("native")
    assert make_gate(False).check_impl == "python (turned off: DNC_GATE__NATIVE_CHECK=false)"
    two_keys = Settings(privacy={"keys": ["k" * 32, "j" * 32]})  # type: ignore[arg-type]
    assert Gate(two_keys).check_impl.startswith("python (several contact-id keys")


@given(st.text(min_size=1, max_size=300))
@example("441234567890")
@example("x" * 128)
@example("x" * 129)
@example("x" * 256)
def test_contact_ids_are_the_same(contact: str) -> None:
    for key in ("k" * 32, "long key " * 7 + "x"):
        ids = ContactIds([key])
        checker = load(ids, enabled=True)[0]
        assert checker is not None
        assert checker.contact_id(contact) == ids.cid(contact)


def test_a_string_rust_cannot_hold_is_not_learned(twins: tuple[Gate, Gate]) -> None:
    checker = twins[0].reader.native
    assert checker is not None
    checker.learn_sender("\ud800", "x")  # a lone surrogate: not UTF-8, stays Python's
    checker.learn_account("\udfff", b"\xed\xbf\xbf\x1f")
    assert checker.probe([G.replace(b'"ACME"', b'"\\ud800"')], 1, None) == ([], [0])


def test_the_extensions_bloom_filter_never_forgets_and_keeps_its_error_rate() -> None:
    """A key added is always found (a miss would let a message past the list); keys never
    added are found about as often as the error rate says, no more."""
    rng = random.Random(11)
    mask = make_gate(True).reader.filter_mask
    added = {rng.getrandbits(64) & mask for _ in range(100_000)}
    bloom = dnc_hotpath.Bloom(100_000, 0.01)
    bloom.update(added)
    assert all(k in bloom for k in added)
    others = [k for k in (rng.getrandbits(64) & mask for _ in range(100_000)) if k not in added]
    false_positives = sum(k in bloom for k in others) / len(others)
    assert false_positives < 0.015, false_positives
    assert bloom.hashes == 7 and bloom.size_in_bits == 2247 * 512  # 20 % over the classic size


def test_the_extensions_bloom_filter_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(ValueError, match="capacity 0 must be positive"):
        dnc_hotpath.Bloom(0, 0.01)
    with pytest.raises(ValueError, match=r"error_rate 1\.5"):
        dnc_hotpath.Bloom(10, 1.5)
    bloom = dnc_hotpath.Bloom(10, 0.01)
    with pytest.raises(OverflowError):
        bloom.add(-1)  # a key is a masked fingerprint, never negative
    with pytest.raises(TypeError):
        bloom.update(["not a key"])


def test_contact_ids_four_at_a_time_are_the_keyed_blake2b_of_each() -> None:
    """Every length a single block holds, in every lane, with and without AVX2: each
    message's filter key is the one the Python check computes."""
    if not make_gate(True).reader.native.simd:  # type: ignore[union-attr]
        pytest.skip("this CPU has no AVX2: contact ids are computed one at a time")
    native, python = make_gate(True), make_gate(False)
    rng = random.Random(3)
    values = []
    for n in range(1, 129):
        local = "".join(rng.choice(string.ascii_lowercase) for _ in range(max(n - 12, 1)))
        values.append(good(destination=f"{local}@example.com"[:n] if n > 13 else local + "@x.io"))
        values.append(good(destination=f"+44 7700 9{rng.randrange(10**5):05d}"))
    values.append(good(destination="a" * 200 + "@example.com"))  # two blocks: one at a time
    both((native, python), values, filter_keys(python, values))
