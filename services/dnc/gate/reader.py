"""Reading outbound messages for the gate: the five fields the rule needs, checked and
normalised, a batch at a time; and the blocking entry of a message, rendered.

This runs once per message of the platform, so its common case is written for speed
(see ``OutboundReader.check``); every shortcut gives exactly what the careful reading
(``OutboundReader.parse``) gives, which tests/unit/test_gate_parse.py checks. Where the
compiled check (``dnc.gate.native``) runs, this loop is its twin and reads what it leaves.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import orjson
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from dnc.domain.channels import Channel, parse_channel
from dnc.domain.contactids import ContactIds
from dnc.domain.contacts import destination_key, normalise_sender
from dnc.domain.events import account_ok
from dnc.errors import DuplicateField, InvalidValue, MissingField, NotJson
from dnc.gate.decisions import Decision, Parsed
from dnc.gate.filter import BloomFilter
from dnc.gate.native import bloom_class
from dnc.gate.native import check as native_check
from dnc.gate.native import verdicts as native_verdicts
from dnc.gate.verdicts import blocking_entry
from dnc.index.layout import account_prefix, fingerprint

REQUIRED = ("message_id", "account", "channel", "sender", "destination")
# A channel as written in a canonical message → itself: one dict lookup checks it.
_CHANNELS = {c.value: c.value for c in Channel}
_KEY_PATTERNS = tuple(f'"{f}"'.encode() for f in REQUIRED)
_CACHE_LIMIT = 100_000
_MAX_ADDRESS = 320  # events.OutboundMessage: sender and destination
_fields = operator.itemgetter(*REQUIRED)
# The record dnc.blocked gets: the message as it came, the entry that blocks it, the time.
_BLOCKED = b'{"message":%b,"reason":"DO_NOT_CONTACT","entry":%b,"checked_at":"%b"}'

if TYPE_CHECKING:
    from dnc_hotpath import Bloom as NativeBloom
    from dnc_hotpath import Checker as NativeChecker

Records = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]


class OutboundReader:
    """Reads messages for one gate; remembers what it has validated (accounts, senders)
    and the blocking entries it has rendered."""

    def __init__(
        self, filter_mask: int, ids: ContactIds, native: NativeChecker | None = None
    ) -> None:
        self.filter_mask = filter_mask
        self.ids = ids
        # The compiled common case of check (dnc.gate.native); it learns accounts and
        # senders from here, once they passed the careful path.
        self.native = native
        # The Bloom filter the gate's contact filter must be made of for this check.
        self.bloom_class = bloom_class(native)
        self._senders: dict[str, str] = {}
        self._accounts: dict[str, bytes] = {}  # valid account → its field prefix
        self._verdicts: dict[tuple[bytes, bytes, str, str], bytes | None] = {}
        # Its compiled twin, with the envelope: no cache needed (≈ 0.2 µs a message).
        self._compiled_verdicts = native_verdicts(native)

    def check(
        self, batch: Records, bloom: BloomFilter | None, compact: bool
    ) -> tuple[list[Decision], list[int], list[int]]:
        """Every message's decision as far as it can be made here: (decisions, positions
        to look up in Redis, positions that are not "ruled out by the filter")."""
        # A null record's value is None at run time, whatever the type says: parse() tells.
        raws = [r.value for records in batch.values() for r in records]
        if self.native is not None:
            assert bloom is None or type(bloom) is self.bloom_class, type(bloom)
            return native_check(
                self.native,
                self.check_python,
                raws,
                self.filter_mask,
                bloom=cast("NativeBloom | None", bloom),
                compact=compact,
            )
        return self.check_python(raws, bloom, compact)

    def check_python(
        self, raws: Sequence[bytes], bloom: BloomFilter | None, compact: bool
    ) -> tuple[list[Decision], list[int], list[int]]:
        """``check`` in Python: the twin of the compiled check, and what decides the
        messages that one leaves to Python.

        The loop runs once per message of the platform, so the common case (a compact
        JSON object from a known account and sender) is written out inline; whatever
        does not fit it exactly takes ``parse``, the careful path, which gives the
        same result or the error."""
        keep = self.filter_mask
        loads, dumps, fields, dkey = orjson.loads, orjson.dumps, _fields, destination_key
        cid = self.ids.cid
        accounts, channels, senders = self._accounts, _CHANNELS, self._senders
        decisions: list[Decision] = []
        ask: list[int] = []
        special: list[int] = []
        for raw in raws:
            try:
                d = loads(raw)  # None raises: parse() says why
                if dumps(d) != raw:
                    _check_duplicates(raw, d)
                message_id, account, channel, sender, destination = fields(d)
                # Only checked values are cached: hits prove them valid strings.
                prefix, ch, s = accounts[account], channels[channel], senders[sender]
                if (
                    type(message_id) is not str
                    or not 0 < len(message_id) <= 256
                    or len(destination) > _MAX_ADDRESS
                ):
                    raise KeyError  # to the careful path, which names the problem
                contact = dkey(destination)
                field = prefix + cid(contact)
                fp = fingerprint(field)
            except (KeyError, TypeError, ValueError, NotJson):
                try:
                    account, ch, s, contact, fp, field = self.parse(raw)
                except (InvalidValue, NotJson) as exc:
                    special.append(len(decisions))
                    decisions.append(str(exc))
                    continue
            n = len(decisions)
            if bloom is None or fp & keep in bloom:
                ask.append(n)
            elif compact:
                decisions.append(None)
                continue
            special.append(n)
            decisions.append((account, ch, s, contact, fp, field))
        return decisions, ask, special

    def parse(self, raw: bytes | None) -> Parsed:
        """The five fields the rule needs, checked as ``events.OutboundMessage`` checks
        them, normalised as ``dnc.domain.contacts`` does at write time; with the contact's index
        field and fingerprint. The careful path of ``check`` (and its reference)."""
        if raw is None:
            raise NotJson("value: is empty (null record)")
        try:
            # Strict: UTF-8 only, no NaN/Infinity, no BOM. A message a sender might read
            # differently from us (the stdlib guesses UTF-16, accepts NaN) is refused.
            d = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise NotJson(f"value: is not valid JSON ({exc.msg} at position {exc.pos})") from None
        if type(d) is not dict:
            raise NotJson(f"value: must be a JSON object, not {type(d).__name__}")
        try:
            # A field given twice is ambiguous (see _refuse_duplicate_fields). A value
            # that is its own compact re-serialisation has no key twice.
            plain = orjson.dumps(d) == raw
        except orjson.JSONEncodeError:  # beyond what orjson writes (64-bit integers)
            plain = False
        if not plain:
            _check_duplicates(raw, d)
        try:
            message_id, account, channel, sender, destination = _fields(d)
            # Only valid strings are ever cached, so three hits also prove three types.
            prefix = self._accounts.get(account)
            ch = _CHANNELS.get(channel)
            s = self._senders.get(sender)
        except (KeyError, TypeError):  # missing, or an unhashable value
            prefix = ch = s = None
        if (
            prefix is None
            or ch is None
            or s is None
            or type(message_id) is not str
            or type(destination) is not str
            or not 0 < len(message_id) <= 256
            or not 0 < len(destination) <= _MAX_ADDRESS
        ):
            account, ch, s, destination, prefix = self._check_fields(d)
        contact = destination_key(destination)
        field = prefix + self.ids.cid(contact)  # == Layout.field(account, contact)
        return account, ch, s, contact, fingerprint(field), field

    def _check_fields(self, d: dict[str, Any]) -> tuple[str, str, str, str, bytes]:
        """Every check of the fields, in the order that decides which error is reported;
        caches what passed."""
        for name in REQUIRED:
            v = d.get(name)
            if v is None:
                raise MissingField(name)
            if type(v) is not str:
                raise InvalidValue(name, v, f"must be a string, not {type(v).__name__}")
        message_id, account, channel, sender, destination = _fields(d)
        if not 0 < len(message_id) <= 256:
            raise InvalidValue("message_id", message_id, "must be 1-256 characters")
        for name, value in (("sender", sender), ("destination", destination)):
            if not 0 < len(value) <= _MAX_ADDRESS:
                raise InvalidValue(name, value, f"must be 1-{_MAX_ADDRESS} characters")
        prefix = self._accounts.get(account)
        if prefix is None:
            if not account_ok(account):
                raise InvalidValue(
                    "account", account, "must be 1-128 printable characters without spaces"
                )
            prefix = account_prefix(account)
            if len(self._accounts) < _CACHE_LIMIT:
                self._accounts[account] = prefix
                if self.native is not None:
                    self.native.learn_account(account, prefix)
        ch = _CHANNELS.get(channel)
        if ch is None:
            parsed_channel = parse_channel(channel, allow_all=False)
            assert parsed_channel is not None
            ch = parsed_channel.value
        s = self._senders.get(sender)
        if s is None:
            s = normalise_sender(sender)
            if s is None:
                raise InvalidValue("sender", sender, "must not be empty")
            if len(self._senders) >= _CACHE_LIMIT:
                self._senders.clear()
            self._senders[sender] = s
            if self.native is not None:
                self.native.learn_sender(sender, s)
        return account, ch, s, destination, prefix

    def blocked(
        self, p: Parsed, raw: bytes, value: bytes, now: int, checked_at: bytes
    ) -> bytes | None:
        """The record for dnc.blocked of message ``value`` (read as ``p``), whose contact
        has the packed entries ``raw``; None where no entry blocks it."""
        compiled = self._compiled_verdicts
        if compiled is not None:
            out = compiled.envelope(value, p, raw, now, checked_at)
            if out is None or isinstance(out, bytes):
                return out
            # False: a record or a string the compiled side does not read exactly.
        entry = self.verdict(p, raw, now)
        return None if entry is None else _BLOCKED % (value, entry, checked_at)

    def verdict(self, p: Parsed, raw: bytes, now: int) -> bytes | None:
        """The JSON of the entry that blocks this message (the most specific), or None.
        Remembered per (contact, its packed entries, channel, sender), which decide it,
        unless one of the entries expires (then ``now`` decides too)."""
        key = (p[5], raw, p[1], p[2])
        if key in self._verdicts:
            return self._verdicts[key]
        verdict, timeless = blocking_entry(p, raw, now)
        if timeless:
            if len(self._verdicts) >= _CACHE_LIMIT:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        return verdict


def _check_duplicates(raw: bytes, d: dict[str, Any]) -> None:
    """Refuse a message that gives a required field twice.

    Every key and string value of ``d`` is a quoted token of ``raw``, and a key given
    twice is one token more: when ``raw`` holds exactly the quotes ``d`` accounts for, no
    key is repeated. Otherwise (escaped quotes, nested objects, a repeated key) look for
    each required name, spelled plainly or with escapes."""
    tokens = len(d)
    for v in d.values():
        if type(v) is str:
            tokens += 1
    if raw.count(b'"') == 2 * tokens and b"\\u" not in raw:
        return
    c = raw.count
    if b"\\u" in raw or any(c(p) > 1 for p in _KEY_PATTERNS):
        _refuse_duplicate_fields(raw)


def _refuse_duplicate_fields(raw: bytes) -> None:
    """A field given twice (possibly spelled with \\u escapes) is ambiguous: a sender might
    read the other value than we checked. Such a message is never forwarded."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # Called for every object, innermost first; only the message's own fields count
        # (a nested object of the message may well have a "destination" of its own).
        obj = _Object(pairs)
        names = [k for k, _ in pairs if k in REQUIRED]
        if len(names) != len(set(names)):
            obj.duplicate = next(n for n in names if names.count(n) > 1)
        return obj

    try:
        top = json.loads(raw, object_pairs_hook=hook)
    except (ValueError, RecursionError):
        raise NotJson("value: is not valid JSON") from None
    if isinstance(top, _Object) and top.duplicate:
        raise DuplicateField(top.duplicate)


class _Object(dict[str, Any]):
    duplicate: str | None = None
