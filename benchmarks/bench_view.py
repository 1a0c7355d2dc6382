"""The list view's store at scale: build time, bytes per entry, page and count times.

    .venv/bin/python benchmarks/bench_view.py --rows 1000000
    .venv/bin/python benchmarks/bench_view.py --rows 1000000 --privacy --history
    DNC_POSTGRES_URL=postgresql://dnc@127.0.0.1:15432/dnc \
      .venv/bin/python benchmarks/bench_view.py --rows 1000000 --backend postgres

``--backend postgres`` builds the view in a database of its own on ``DNC_POSTGRES_URL``
(created, then dropped); sizes are then the tables' and indexes' (``pg_total_relation_size``).

``--privacy`` stores contacts as privacy mode does (contact ids, ``h1:`` + 22 characters);
``--history`` also writes one history record ("add", with its cause) per entry, as the
list writer does for every entry it creates.

Rows go in through ``ViewStore.apply`` (the path the changelog consumer uses) as
changelog records in batches of 5000; queries run through the same store methods the API's
reader threads call. No Kafka is needed: this measures the store, not the consumer.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import psycopg

from dnc.api.view import store
from dnc.api.view.backend import SqliteStore, ViewStore
from dnc.api.view.pgstore import PostgresStore
from dnc.api.view.query import EntryQuery
from dnc.domain.contactids import ContactIds
from dnc.domain.entries import EntryKey
from dnc.domain.timestamps import format_ms

ACCOUNTS = [("acme", 0.7), ("acme-eu", 0.2), ("beta", 0.1)]
SENDERS = [f"sender{i}" for i in range(40)] + ["447700900001", "news@acme.com"]
YEAR_MS = 365 * 24 * 3600 * 1000
START_MS = 1_760_000_000_000


IDS = ContactIds(["bench-view privacy key, 32 bytes or more"])


def record(rng: random.Random, i: int, *, privacy: bool = False) -> tuple[bytes, bytes]:
    account = rng.choices([a for a, _ in ACCOUNTS], [w for _, w in ACCOUNTS])[0]
    if rng.random() < 0.8:
        contact = f"44{7000000000 + i * 7 % 1_000_000_000:010d}"
        channel = rng.choice(["SMS", "SMS", "VIBER", "VOICE", None])
    else:
        contact = f"user{i}@example{i % 97}.com"
        channel = rng.choice(["EMAIL", None])
    sender = rng.choice(SENDERS) if rng.random() < 0.5 else None
    if rng.random() < 0.3:  # imports: thousands of entries share one added_at
        source, added_at = "IMPORT", START_MS + (i % 10) * 1_000_000
        origin: dict[str, object] = {"kind": "import", "import_id": f"imp-{i % 10}", "row": i}
    else:
        source = rng.choice(["END_USER_MESSAGE", "MANUAL", "URL_OPT_OUT", "CAMPAIGN_ACTION"])
        added_at = START_MS + rng.randrange(YEAR_MS)
        origin = {
            "kind": "inbound_message",
            "message_id": f"mo-{i}",
            "text": "STOP",
            "received_at": format_ms(added_at),
            "topic": "dnc.inbound-messages",
            "partition": i % 6,
            "offset": i,
        }
    if privacy:
        contact = IDS.token(contact)
    key = EntryKey(account, contact, channel, sender)
    value = {
        "account": account,
        "contact": contact,
        "channel": channel,
        "sender": sender,
        "source": source,
        "added_at": format_ms(added_at),
        "origin": origin,
    }
    return key.to_json(), orjson.dumps(value)


def history_record(key: bytes, value: bytes, hid: str) -> tuple[bytes, bytes]:
    """The history record of an entry's creation, as the list writer writes it."""
    k, entry = orjson.loads(key), orjson.loads(value)
    record = {"action": "add", "entry": entry, "at": entry["added_at"], "cause": entry["origin"]}
    return orjson.dumps([*k, hid]), orjson.dumps(record)


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """(median ms, max ms, last result)."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times), result


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    server = os.environ.get("DNC_POSTGRES_URL")
    if not server:
        raise SystemExit("--backend postgres needs DNC_POSTGRES_URL (make up-postgres)")
    name = f"dnc_bench{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(server, dbname=name)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(
                psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                    psycopg.sql.Identifier(name)
                )
            )


def view_bytes(view: ViewStore, path: Path) -> int:
    if isinstance(view, PostgresStore):
        row = view.conn.execute(
            "SELECT pg_total_relation_size('entries') + pg_total_relation_size('history')"
        ).fetchone()
        view.conn.commit()
        return int(row[0]) if row else 0
    assert isinstance(view, SqliteStore)
    return os.path.getsize(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--dir", default=None, help="where to build the file (default: a tmp dir)")
    parser.add_argument("--privacy", action="store_true", help="contacts stored as contact ids")
    parser.add_argument("--history", action="store_true", help="one history record per entry")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    rng = random.Random(7)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(dir=args.dir))
        path = Path(tmp) / "view.sqlite3"
        writer: ViewStore
        if args.backend == "postgres":
            url = stack.enter_context(fresh_database())
            writer = PostgresStore(url, {"bench": "1"}, schema="dnc_view_bench")
        else:
            writer = SqliteStore(path, {"bench": "1"})
        writer.open()
        stack.callback(writer.close)
        t0 = time.perf_counter()
        for start in range(0, args.rows, 5000):
            batch = [
                record(rng, i, privacy=args.privacy)
                for i in range(start, min(start + 5000, args.rows))
            ]
            history = [
                (0, start + n, *history_record(k, v, f"0-{start + n}-0"))
                for n, (k, v) in enumerate(batch)
                if args.history
            ]
            writer.apply(batch, {0: start + len(batch)}, history, {0: start + len(batch)})
        build_s = time.perf_counter() - t0
        writer.optimize()
        if isinstance(writer, SqliteStore):
            writer.close()  # checkpoints the WAL into the file
            writer.open()
        size = view_bytes(writer, path)
        rows = writer.count(EntryQuery(accounts=tuple(a for a, _ in ACCOUNTS)))
        print(f"{args.backend}: rows {rows}  build {build_s:.1f}s ({rows / build_s:,.0f} rows/s)")
        kind = "contact ids" if args.privacy else "contacts"
        extra = " and one history record" if args.history else ""
        print(
            f"file {size / 1e6:.1f} MB  = {size / rows:.0f} bytes per entry{extra} "
            f"(with indexes; {kind})"
        )

        acme = ("acme",)
        queries = {
            "account": EntryQuery(accounts=acme),
            "account, channel SMS": EntryQuery(accounts=acme, channels=("SMS",)),
            "account, channel ALL": EntryQuery(accounts=acme, channels=(None,)),
            "account, sender": EntryQuery(accounts=acme, senders=("sender7",)),
            "account, source IMPORT": EntryQuery(accounts=acme, sources=("IMPORT",)),
            "account, source+channel": EntryQuery(
                accounts=acme, sources=("MANUAL",), channels=("SMS", "VIBER")
            ),
            "account, contact prefix": EntryQuery(accounts=acme, contact_prefixes=("44700001",)),
            "account, 10 contacts": EntryQuery(
                accounts=acme, contacts=tuple(f"44{7000000000 + i * 7:010d}" for i in range(10))
            ),
            "account, added range": EntryQuery(
                accounts=acme, added_from=START_MS + YEAR_MS // 2, added_to=START_MS + YEAR_MS
            ),
            "3 accounts": EntryQuery(accounts=("acme", "acme-eu", "beta")),
        }
        print(
            f"\n{'query':28} {'page50 p50':>10} {'max':>7} {'deep p50':>9} {'count p50':>10} "
            f"{'max':>7} {'matches':>9}"
        )
        for name, q in queries.items():
            first_ms, first_max, first = timed(
                functools.partial(writer.page, q, 51, None), args.repeat
            )
            # Page 200 (10,000 entries in), reached through cursors as a client would.
            after: store.Position | None = None
            for _ in range(200):
                entries = writer.page(q, 50, after)
                if len(entries) < 50:
                    break
                after = store.position_of(entries[-1])
            deep_ms, _, _ = timed(functools.partial(writer.page, q, 51, after), args.repeat)
            count_ms, count_max, n = timed(
                functools.partial(writer.count, q), max(3, args.repeat // 4)
            )
            assert isinstance(first, list)
            print(
                f"{name:28} {first_ms:9.2f}ms {first_max:6.1f} {deep_ms:8.2f}ms "
                f"{count_ms:9.1f}ms {count_max:6.1f} {n:>9,}"
            )


if __name__ == "__main__":
    main()
