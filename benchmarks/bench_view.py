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
BATCH = 5000
BOUND = 10_000  # DNC_VIEW__COUNT_BOUND's default


IDS = ContactIds(["bench-view privacy key, 32 bytes or more"])


def record(
    rng: random.Random, i: int, *, privacy: bool = False, spread: int = 0
) -> tuple[bytes, bytes]:
    """Entry ``i``. ``spread`` > 0: added_at follows the log position (``spread`` entries over
    the year, an hour of jitter), as a replay of a real changelog does; 0: random over the
    year (the worst case for the indexes' inserts)."""
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
        if spread:
            added_at = START_MS + i * YEAR_MS // spread + rng.randrange(3_600_000)
        else:
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


def percentiles(fns: list[Callable[[], object]], n: int) -> tuple[float, float]:
    """(p50 ms, p99 ms) over ``n`` calls, going round ``fns``."""
    times = []
    for i in range(n):
        t = time.perf_counter()
        fns[i % len(fns)]()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


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
            " + pg_total_relation_size('account_counts')"
        ).fetchone()
        view.conn.commit()
        return int(row[0]) if row else 0
    assert isinstance(view, SqliteStore)
    return os.path.getsize(path)


def build(writer: ViewStore, args: argparse.Namespace) -> tuple[float, float]:
    """Apply ``args.rows`` entries in batches of 5000; (seconds in ``apply``, seconds
    making the records), so that the rate is the store's, not this script's."""
    rng = random.Random(7)
    spread = args.rows if args.order == "log" else 0
    applying = making = 0.0
    for start in range(0, args.rows, BATCH):
        t = time.perf_counter()
        batch = [
            (0, i, *record(rng, i, privacy=args.privacy, spread=spread))
            for i in range(start, min(start + BATCH, args.rows))
        ]
        history = [
            (0, i, *history_record(k, v, f"0-{i}-0")) for _, i, k, v in batch if args.history
        ]
        making += time.perf_counter() - t
        t = time.perf_counter()
        writer.apply(batch, {0: start + len(batch)}, history, {0: start + len(batch)})
        applying += time.perf_counter() - t
    return applying, making


FILTERED = {
    "account, channel SMS": EntryQuery(accounts=("acme",), channels=("SMS",)),
    "account, channel ALL": EntryQuery(accounts=("acme",), channels=(None,)),
    "account, sender": EntryQuery(accounts=("acme",), senders=("sender7",)),
    "account, source IMPORT": EntryQuery(accounts=("acme",), sources=("IMPORT",)),
    "account, source+channel": EntryQuery(
        accounts=("acme",), sources=("MANUAL",), channels=("SMS", "VIBER")
    ),
    "account, contact prefix": EntryQuery(accounts=("acme",), contact_prefixes=("44700001",)),
    "account, 10 contacts": EntryQuery(
        accounts=("acme",), contacts=tuple(f"44{7000000000 + i * 7:010d}" for i in range(10))
    ),
    "account, added range": EntryQuery(
        accounts=("acme",), added_from=START_MS + YEAR_MS // 2, added_to=START_MS + YEAR_MS
    ),
}


def measure(backend: str, args: argparse.Namespace) -> dict[str, str]:
    """Build the view on ``backend`` and measure it; the figures of the summary table."""
    out: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(dir=args.dir))
        path = Path(tmp) / "view.sqlite3"
        writer: ViewStore
        url = ""
        if backend == "postgres":
            url = stack.enter_context(fresh_database())
            writer = PostgresStore(url, {"bench": "1"}, schema="dnc_view_bench")
        else:
            writer = SqliteStore(path, {"bench": "1"})
        writer.open()
        stack.callback(writer.close)
        build_s, making_s = build(writer, args)
        writer.optimize()
        if isinstance(writer, SqliteStore):
            writer.close()  # checkpoints the WAL into the file
            writer.open()
        size = view_bytes(writer, path)
        rows = writer.count(EntryQuery(accounts=tuple(a for a, _ in ACCOUNTS)))
        print(
            f"{backend}: {rows:,} rows built in {build_s:.1f}s = {rows / build_s:,.0f} rows/s "
            f"(making the records took another {making_s:.1f}s, not counted); "
            f"{size / 1e6:.1f} MB = {size / rows:.0f} B per entry",
            flush=True,
        )
        if isinstance(writer, PostgresStore):
            sizes = writer.conn.execute(
                "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'dnc_view_bench' AND c.relname LIKE 'entries%'"
                " ORDER BY 2 DESC"
            ).fetchall()
            writer.conn.commit()
            print("  " + ", ".join(f"{name} {size / rows:.0f} B" for name, size in sizes))
        out["build rows/s"] = f"{rows / build_s:,.0f}"
        out["bytes per entry"] = f"{size / rows:.0f}"
        pages(writer, args, out)
        out["export rows/s"] = f"{export_rate(writer, args.export):,.0f}"
        if isinstance(writer, PostgresStore):
            out["new instance: first page"] = f"{first_request_ms(url):.0f} ms"
        else:
            out["new instance: first page"] = f"{build_s:.0f} s (builds its file)"
        if args.table:
            query_table(writer, args)
    return out


def pages(writer: ViewStore, args: argparse.Namespace, out: dict[str, str]) -> None:
    """First and filtered pages (p50/p99 over ``args.queries``), totals."""
    accounts = [EntryQuery(accounts=(a,)) for a, _ in ACCOUNTS]
    firsts = [functools.partial(writer.page, q, 51, None) for q in accounts]
    p50, p99 = percentiles(firsts, args.queries)
    out["first page p50/p99"] = f"{p50:.2f} / {p99:.2f} ms"
    filtered = [functools.partial(writer.page, q, 51, None) for q in FILTERED.values()]
    p50, p99 = percentiles(filtered, args.queries)
    out["filtered page p50/p99"] = f"{p50:.2f} / {p99:.2f} ms"
    acme = EntryQuery(accounts=("acme",))
    ms, _, n = timed(functools.partial(writer.total, acme, BOUND), 5)
    assert isinstance(n, tuple)
    out["unfiltered total (acme)"] = f"{ms:.1f} ms ({n[0]:,})"
    slowest = (-1.0, "")
    for name, q in FILTERED.items():
        ms, _, n = timed(functools.partial(writer.total, q, BOUND), 3)
        assert isinstance(n, tuple)
        shown = f"more than {n[0]:,}" if n[1] else f"{n[0]:,}"
        slowest = max(slowest, (ms, f"{ms:.1f} ms ({name}: {shown})"))
    out["filtered total, slowest"] = slowest[1]


def export_rate(writer: ViewStore, limit: int) -> float:
    """Rows/s of an export of the largest account: keyset chunks of 1000, as the API
    streams them, each entry made into its JSON line."""
    q = EntryQuery(accounts=("acme",))
    after: store.Position | None = None
    done = 0
    t = time.perf_counter()
    while done < limit:
        entries = writer.page(q, 1000, after)
        if not entries:
            break
        for e, _ in entries:
            orjson.dumps(e.to_dict())
        done += len(entries)
        after = store.position_of(entries[-1])
    return done / (time.perf_counter() - t)


def first_request_ms(url: str) -> float:
    """A new API instance on PostgreSQL: readers' pool opened, first page answered."""
    t = time.perf_counter()
    fresh = PostgresStore(url, {"bench": "1"}, schema="dnc_view_bench")
    fresh.open_readers()
    try:
        fresh.page(EntryQuery(accounts=("acme",)), 51, None)
        return (time.perf_counter() - t) * 1000
    finally:
        fresh.close()


def query_table(writer: ViewStore, args: argparse.Namespace) -> None:
    """Per filter: first page, page 200 (through cursors), exact count."""
    print(
        f"\n{'query':28} {'page50 p50':>10} {'max':>7} {'deep p50':>9} {'count p50':>10} "
        f"{'max':>7} {'matches':>9}"
    )
    queries = {"account": EntryQuery(accounts=("acme",)), **FILTERED}
    queries["3 accounts"] = EntryQuery(accounts=tuple(a for a, _ in ACCOUNTS))
    for name, q in queries.items():
        first_ms, first_max, _ = timed(functools.partial(writer.page, q, 51, None), args.repeat)
        after: store.Position | None = None
        for _ in range(200):
            entries = writer.page(q, 50, after)
            if len(entries) < 50:
                break
            after = store.position_of(entries[-1])
        deep_ms, _, _ = timed(functools.partial(writer.page, q, 51, after), args.repeat)
        count_ms, count_max, n = timed(functools.partial(writer.count, q), 3)
        print(
            f"{name:28} {first_ms:9.2f}ms {first_max:6.1f} {deep_ms:8.2f}ms "
            f"{count_ms:9.1f}ms {count_max:6.1f} {n:>9,}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10, help="runs per query in --table")
    parser.add_argument("--queries", type=int, default=200, help="pages for p50/p99")
    parser.add_argument("--export", type=int, default=1_000_000, help="rows exported")
    parser.add_argument("--dir", default=None, help="where to build the file (default: a tmp dir)")
    parser.add_argument("--privacy", action="store_true", help="contacts stored as contact ids")
    parser.add_argument("--history", action="store_true", help="one history record per entry")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument(
        "--order",
        choices=["log", "random"],
        default="log",
        help="added_at in log order (a changelog's replay) or random over a year",
    )
    parser.add_argument("--table", action="store_true", help="also the per-filter table")
    args = parser.parse_args()
    backends = ["postgres", "sqlite"] if args.backend == "both" else [args.backend]
    results = {b: measure(b, args) for b in backends}
    print(f"\n{args.rows:,} entries, added_at in {args.order} order; load {os.getloadavg()}")
    print(f"{'':28}" + "".join(f"{b:>40}" for b in backends))
    for name in results[backends[0]]:
        print(f"{name:28}" + "".join(f"{results[b][name]:>40}" for b in backends))


if __name__ == "__main__":
    main()
