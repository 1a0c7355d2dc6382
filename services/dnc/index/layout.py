"""Where a contact lives in the index, and how its entries are packed: pure functions and
``Layout``, shared by every role (the roles that only produce commands use them too) and
by both index implementations (``dnc.index.single``, ``dnc.index.cluster``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import xxhash

from dnc.domain.channels import Channel
from dnc.domain.contactids import ContactIds
from dnc.domain.entries import Entry, EntryKey, Source
from dnc.errors import ConfigurationError
from dnc.settings import IndexSettings, Settings

SEP = "\x1f"  # between fields of a record (and in ``account␟contact``)
REC = "\x1e"  # between records

# Stored in every packed entry: a code never changes meaning, and a new channel needs a
# code of its own (tests/unit/test_index_layout.py checks every channel has one).
CHANNEL_CODE: dict[str | None, str] = {
    Channel.SMS: "S",
    Channel.MMS: "M",
    Channel.VOICE: "V",
    Channel.VIBER: "B",
    Channel.WHATSAPP: "W",
    Channel.RCS: "R",
    Channel.EMAIL: "E",
    None: "*",
}
CODE_CHANNEL = {code: None if ch is None else str(ch) for ch, code in CHANNEL_CODE.items()}
SOURCE_CODE = {
    Source.END_USER_MESSAGE: "U",
    Source.CAMPAIGN_ACTION: "C",
    Source.URL_OPT_OUT: "L",
    Source.MANUAL: "M",
    Source.IMPORT: "I",
    Source.CHANNEL_SIGNAL: "D",
}
CODE_SOURCE = {v: k for k, v in SOURCE_CODE.items()}

_PARTITION_SEED = 0x5EED
_SEP_BYTES = SEP.encode()


def contact_field(account: str, cid: bytes) -> bytes:
    """The index field of a contact: the account and its contact id (``dnc.domain.contactids``).
    No contact is ever stored in Redis, in either mode."""
    return account.encode() + _SEP_BYTES + cid


def account_prefix(account: str) -> bytes:
    return account.encode() + _SEP_BYTES


def fingerprint(field_bytes: bytes) -> int:
    return xxhash.xxh3_64_intdigest(field_bytes)


def filter_key(bucket: int, member: int) -> int:
    """See ``Layout.filter_key``."""
    return ((member + 0x80000000) << 32) | bucket


def list_partition(field_bytes: bytes, partitions: int) -> int:
    """Partition of ``dnc.commands`` / ``dnc.changes`` that owns a contact (by its field,
    so a contact and its stored id land in the same partition)."""
    return xxhash.xxh3_64_intdigest(field_bytes, _PARTITION_SEED) % partitions


def entry_slot(channel: str | None, sender: str | None) -> str:
    """The start of a packed entry that identifies it within its contact."""
    return f"{CHANNEL_CODE[channel]}{SEP}{sender or ''}{SEP}"


def pack_entries(entries: Iterable[Entry]) -> bytes:
    """The lower-case source code marks an entry stored under the contact's id."""
    out = []
    for e in entries:
        k = e.key
        code = SOURCE_CODE[e.source]
        out.append(  # entry_slot() inline: this runs per entry of every changed contact
            f"{CHANNEL_CODE[k.channel]}{SEP}{k.sender or ''}{SEP}"
            f"{code.lower() if e.stored_as_id else code}"
            f"{SEP}{e.added_at}{SEP}{'' if e.expires_at is None else e.expires_at}"
        )
    return REC.join(out).encode()


def unpack_entries(
    account: str, contact: str, raw: bytes, stored_id: str | None = None
) -> list[Entry]:
    """The entries of a contact. ``stored_id`` (the contact's id as the changelog stores
    it) becomes the key of entries stored under the id; without it they keep
    ``contact``."""
    entries = []
    for rec in raw.decode().split(REC):
        ch, sender, src, added, expires = rec.split(SEP)
        as_id = src.islower()
        entries.append(
            Entry(
                EntryKey(
                    account,
                    stored_id if as_id and stored_id else contact,
                    CODE_CHANNEL[ch],
                    sender or None,
                ),
                CODE_SOURCE[src.upper()],
                int(added),
                None,
                int(expires) if expires else None,
                as_id,
            )
        )
    return entries


class Layout:
    """Where a contact lives: its field, bucket, member and list partition. Pure (no
    Redis), so the roles that only produce commands use it too."""

    def __init__(self, settings: IndexSettings, ids: ContactIds | None = None) -> None:
        if settings.buckets & (settings.buckets - 1):
            raise ConfigurationError(
                f"index buckets must be a power of two, not {settings.buckets}"
            )
        self.settings = settings
        self.ids = ids or ContactIds([])
        self._mask = settings.buckets - 1
        # The key chain is part of the layout: a role with other contact-id keys would
        # look up other fields, so the index refuses it (see init.lua / Gate._trust).
        probe = self.ids.cid("dnc layout probe").hex()[:12]
        self.layout = f"v2;buckets={settings.buckets};ids={probe}"

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        return cls(settings.index, contact_ids(settings))

    def field(self, account: str, contact: str) -> bytes:
        return contact_field(account, self.ids.cid(contact))

    def partition(self, account: str, contact: str, partitions: int) -> int:
        return list_partition(self.field(account, contact), partitions)

    def locate(self, account: str, contact: str) -> tuple[int, int, bytes]:
        """(bucket, member, field) of a contact."""
        f = self.field(account, contact)
        fp = xxhash.xxh3_64_intdigest(f)
        return fp & self._mask, (fp >> 32) - 0x80000000, f

    def filter_key(self, bucket: int, member: int) -> int:
        """The integer the gates' in-process filter stores for a contact: the bits of its
        fingerprint the index keeps, i.e. ``fingerprint & filter_mask``, so the gate gets
        it from a fingerprint with one AND."""
        return filter_key(bucket, member)

    @property
    def mask(self) -> int:
        return self._mask

    @property
    def filter_mask(self) -> int:
        return 0xFFFFFFFF00000000 | self._mask


def contact_ids(settings: Settings) -> ContactIds:
    """The deployment's contact ids: every role must build them the same way."""
    return ContactIds(
        [k.get_secret_value() for k in settings.privacy.keys], required=settings.privacy.enabled
    )


def expiry_arg(changes: Sequence[tuple[bytes, int | None]]) -> bytes:
    """Expiry index changes as the scripts take them (see apply.lua)."""
    return b"\x1e".join(
        k + b"\x1f" + (b"" if ms is None else str(ms).encode()) for k, ms in changes
    )


def progress_arg(counters: Mapping[tuple[str, str], int] | None) -> str:
    """Progress counters as the scripts take them (see apply.lua)."""
    return REC.join(f"{ref}{SEP}{name}{SEP}{n}" for (ref, name), n in (counters or {}).items())


def as_bytes(value: bytes | str) -> bytes:
    """The client returns bytes (decode_responses is off); narrow the declared union."""
    return value if isinstance(value, bytes) else value.encode()
