"""The list view's two stores (``DNC_VIEW__BACKEND=sqlite|postgres``) behind their one
interface, each test run on both: the changelog applied against a plain-Python model of the
list (every filter, keyset pages through ties), offsets kept across a restart, a view of
another changelog rebuilt, one writer only, and the history table. PostgreSQL alone: schema
versions migrated once however many instances start together, a newer schema refused."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import psycopg
import pytest

from dnc.api.view import history, store
from dnc.api.view.backend import SqliteStore, ViewStore
from dnc.api.view.pgstore import SCHEMA_VERSION, PostgresStore, migrate
from dnc.api.view.query import EntryQuery
from dnc.api.view.sorting import SORT_COLUMNS, sort_value
from dnc.domain.entries import Entry, EntryKey, Source
from dnc.errors import ConfigurationError, ViewQueryTimeout
from tests.unit.test_api_view_history import OTHER, PHONE, TOKEN, record
from tests.unit.test_api_view_sorting import walk_sorted
from tests.unit.test_api_view_store import (
    change,
    listed,
    matches,
    random_entry,
    random_query,
)

T0 = 1_795_671_087_123
MakeStore = Callable[[dict[str, str]], ViewStore]


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    """Stores of one view (one file; one database and schema), to open and close."""
    made: list[ViewStore] = []
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""

    def make(identity: dict[str, str]) -> ViewStore:
        s: ViewStore
        if request.param == "postgres":
            s = PostgresStore(url, identity, schema="dnc_view_t", pool_size=2)
        else:
            s = SqliteStore(tmp_path / "v.sqlite3", identity)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def view(make_store: MakeStore) -> ViewStore:
    s = make_store({"topic": "t"})
    s.open()
    return s


def test_the_store_answers_like_the_model_for_random_changes_and_queries(view: ViewStore) -> None:
    rng = random.Random(3)
    model: dict[EntryKey, store.Listed] = {}
    offsets = iter(range(10**6))
    for batch in range(30):
        records: list[store.Change] = []
        for _ in range(rng.randrange(1, 40)):
            if model and rng.random() < 0.3:
                gone = rng.choice(list(model))
                del model[gone]
                records.append((0, next(offsets), gone.to_json(), None))
            else:
                e = random_entry(rng)
                records.append((0, next(offsets), *change(e)[2:]))
                model[e.key] = listed(records[-1], e)
        # A foreign record is skipped, not fatal.
        records.append((0, next(offsets), b"not json", b"{}"))
        assert view.apply(records, {0: batch + 1}) == 1
    assert view.offsets() == {0: 30}

    for _ in range(200):
        q = random_query(rng)
        expected = sorted(
            (le for le in model.values() if matches(q, le[0])),
            key=store.position_of,
            reverse=True,
        )
        assert view.count(q) == len(expected)
        assert set(view.keys(q)) == {e.key for e, _ in expected}
        limit = rng.randrange(1, 6)
        walked: list[store.Listed] = []
        after = None
        while True:
            got = view.page(q, limit, after)
            walked += got
            if len(got) < limit:
                break
            after = store.position_of(got[-1])
        assert walked == expected  # the same order, origins and cursors on both backends
    wanted = [*list(model)[:5], EntryKey("acme", "nobody@example.com", None, None)]
    assert view.get(wanted) == {k: model[k][0] for k in wanted[:5]}
    assert view.listed(wanted) == {k: model[k] for k in wanted[:5]}


def test_an_extension_keeps_the_origin_and_a_prefix_is_a_byte_range(view: ViewStore) -> None:
    key = EntryKey("acme", "jane@example.com", "SMS", None)
    view.apply([change(Entry(key, Source.MANUAL, T0, {"kind": "api"}))], {0: 1})
    view.apply([change(Entry(key, Source.MANUAL, T0, None, T0 + 99))], {0: 2})  # extended
    got = view.get([key])[key]
    assert (got.origin, got.expires_at) == ({"kind": "api"}, T0 + 99)
    odd = EntryKey("acme", "jane\U0001f600@example.com", None, None)  # beyond the BMP
    view.apply([change(Entry(odd, Source.MANUAL, T0, None))], {0: 3})
    found = view.keys(EntryQuery(accounts=("acme",), contact_prefixes=("jane",)))
    assert sorted(found, key=str) == sorted([key, odd], key=str)
    assert view.keys(EntryQuery(accounts=("acme",), contact_prefixes=("jane\U0001f600",))) == [odd]
    # Two spellings of one key in one batch: one entry, the later record's.
    same = EntryKey("acme", "441234567890", None, None)
    later = Entry(same, Source.IMPORT, T0 + 5, None)
    spelled = b'[ "acme", "441234567890", null, null ]'
    first = change(Entry(same, Source.MANUAL, T0, None))
    view.apply([first, (0, first[1] + 1, spelled, later.to_json())], {0: 4})
    assert view.get([same]) == {same: later}


def test_offsets_survive_a_restart_and_another_changelogs_view_is_rebuilt(
    make_store: MakeStore,
) -> None:
    e = Entry(EntryKey("acme", "441234567890", None, None), Source.MANUAL, 5, {"kind": "api"})
    first = make_store({"topic": "t"})
    assert first.open() == {}
    with pytest.raises(ConfigurationError):  # one writer per view
        make_store({"topic": "t"}).open()
    first.apply([change(e)], {0: 7, 1: 3}, [(0, 0, *record("acme", PHONE, "0-0-0", T0))], {0: 1})
    first.close()

    again = make_store({"topic": "t"})
    assert again.open() == {0: 7, 1: 3}
    assert again.offsets(store.HISTORY) == {0: 1}
    assert again.count(EntryQuery(accounts=("acme",))) == 1
    again.close()

    other = make_store({"topic": "another-changelog"})
    assert other.open() == {}
    assert other.offsets(store.HISTORY) == {}
    assert other.count(EntryQuery(accounts=("acme",))) == 0
    assert other.history_page(["acme"], [PHONE], 10, None) == []


def test_history_records_tombstones_order_and_the_people_a_filter_matches(
    view: ViewStore,
) -> None:
    rng = random.Random(5)
    made = []
    for i in range(40):
        account = rng.choice(["acme", "acme-eu"])
        contact = rng.choice([PHONE, OTHER, TOKEN])
        cause = {"kind": "api", "request_id": f"r{i}"} if i % 3 else None
        made.append(record(account, contact, f"0-{i}-0", T0 + rng.randrange(5), cause=cause))
    with_position = [(i % 2, i, k, v) for i, (k, v) in enumerate(made)]
    assert view.apply([], {}, [*with_position, (0, 99, b"[1,2]", b"{}")], {0: 40, 1: 39}) == 1
    assert view.offsets(store.HISTORY) == {0: 40, 1: 39}

    mine = [
        (p, o, orjson.loads(k), orjson.loads(v))
        for p, o, k, v in with_position
        if orjson.loads(k)[0] == "acme" and orjson.loads(k)[1] in (PHONE, TOKEN)
    ]
    expected = sorted(mine, key=lambda m: (m[3]["at"], m[0], m[1]), reverse=True)
    walked: list[history.HistoryItem] = []
    after = None
    while True:
        got = view.history_page(["acme"], [PHONE, TOKEN], 3, after)
        walked += got
        if len(got) < 3:
            break
        after = got[-1].position
    assert [(h.part, h.off) for h in walked] == [(m[0], m[1]) for m in expected]
    assert [h.to_dict()["entry"] for h in walked] == [m[3]["entry"] for m in expected]

    keys = view.history_keys("acme", [PHONE, TOKEN])
    assert sorted(orjson.dumps(k) for k in keys) == sorted(orjson.dumps(m[2]) for m in mine)
    erase = record("acme", TOKEN, "1-500-0", T0 + 9, "erase", cause={"kind": "erasure"})
    view.apply([], {}, [(1, 500, orjson.dumps(k), None) for k in keys] + [(1, 501, *erase)])
    left = view.history_page(["acme"], [PHONE, TOKEN], 100, None)
    assert [(h.action, h.contact, h.cause) for h in left] == [("erase", TOKEN, {"kind": "erasure"})]

    view.reset()
    assert view.history_page(["acme", "acme-eu"], [PHONE, OTHER, TOKEN], 100, None) == []
    listed = Entry(EntryKey("acme", PHONE, "SMS", None), Source.MANUAL, T0, None)
    view.apply(
        [change(listed), change(Entry(EntryKey("acme", OTHER, None, None), Source.MANUAL, T0))],
        {0: 2},
        [
            (0, 0, *record("acme", PHONE, "0-0-0", T0, channel="SMS")),
            (0, 1, *record("acme", OTHER, "0-1-0", T0 + 1)),
            (0, 2, *record("acme", "449999999999", "0-2-0", T0 + 2)),  # no longer listed
            (0, 3, *record("acme", PHONE, "0-3-0", T0 + 3, "remove", channel="VIBER")),
            (0, 4, *record("acme-eu", PHONE, "0-4-0", T0 + 4)),  # another account
        ],
        {0: 5},
    )

    def walk(q: EntryQuery, chunk: int) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        after = None
        while True:
            got = view.history_of_matching(q, chunk, after)
            out += [(h.contact, h.off) for h in got]
            if len(got) < chunk:
                return out
            after = history.export_position(got[-1])

    assert walk(EntryQuery(accounts=("acme",)), 1) == [(PHONE, 0), (PHONE, 3), (OTHER, 1)]
    assert walk(EntryQuery(accounts=("acme",), channels=("SMS",)), 10) == [(PHONE, 0), (PHONE, 3)]
    people = view.history_of_people([("acme", OTHER), ("acme", PHONE), ("acme", OTHER)])
    assert [(h.contact, h.off) for h in people] == [(PHONE, 0), (PHONE, 3), (OTHER, 1)]


# --- PostgreSQL only: schema versions ----------------------------------------------------


def test_instances_starting_together_migrate_once(postgres_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def one() -> None:
        try:
            with psycopg.connect(postgres_url) as conn:
                start.wait(timeout=10)
                migrate(conn, "dnc_view_t")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT version FROM dnc_view_t.schema_version").fetchall()
    assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_a_schema_newer_than_the_code_is_refused(postgres_url: str) -> None:
    s = PostgresStore(postgres_url, {"topic": "t"}, schema="dnc_view_t")
    s.open()
    s.close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("INSERT INTO dnc_view_t.schema_version VALUES (%s)", (SCHEMA_VERSION + 1,))
    newer = PostgresStore(postgres_url, {"topic": "t"}, schema="dnc_view_t")
    with pytest.raises(ConfigurationError, match=f"version {SCHEMA_VERSION + 1}, newer than"):
        newer.open()
    newer.close()


def test_totals_follow_adds_updates_and_removals_across_chunks(view: ViewStore) -> None:
    """Unfiltered totals (PostgreSQL: the per-account counters) and bounded filtered ones
    agree with the model after batches larger than a write chunk, in which keys are added,
    changed and removed again (in one chunk and across chunks)."""
    rng = random.Random(41)
    model: dict[EntryKey, Entry] = {}
    for batch in range(3):
        records: list[store.Change] = []
        for _ in range(2600):  # pgwrite.CHUNK is 1000
            e = random_entry(rng)
            if e.key in model and rng.random() < 0.4:
                records.append((0, change(e)[1], e.key.to_json(), None))
                del model[e.key]
            else:
                records.append(change(e))
                model[e.key] = e
        view.apply(records, {0: (batch + 1) * len(records)})
        for accounts in (("acme",), ("acme", "acme-eu"), ("acme", "acme-eu", "beta")):
            q = EntryQuery(accounts=accounts)
            expected = sum(1 for e in model.values() if matches(q, e))
            assert view.total(q, 1) == (expected, False)  # unfiltered: always exact
        for _ in range(20):
            q = random_query(rng)
            n = sum(1 for e in model.values() if matches(q, e))
            if q == EntryQuery(accounts=q.accounts):
                assert view.total(q, 5) == (n, False)
            else:
                assert view.total(q, 5) == ((5, True) if n > 5 else (n, False))


def test_a_list_query_past_the_statement_timeout_answers_clearly(postgres_url: str) -> None:
    s = PostgresStore(postgres_url, {"topic": "t"}, schema="dnc_view_t", statement_timeout_s=0.1)
    s.open()
    try:
        with pytest.raises(ViewQueryTimeout, match=r"ran longer than 0\.1 s .* narrow the filter"):
            s._read(lambda c: c.execute("SELECT pg_sleep(2)").fetchall())
        assert s.count(EntryQuery(accounts=("acme",))) == 0  # the pool is still usable
    finally:
        s.close()


def test_sorted_pages_and_the_overview_answer_alike(view: ViewStore) -> None:
    """The page's other orders (issue 17) and its overview panel, on both backends: every
    order walks the model's order page by page; the totals are the model's."""
    rng = random.Random(29)
    model: dict[EntryKey, store.Listed] = {}
    records: list[store.Change] = []
    for _ in range(150):
        e = random_entry(rng)
        records.append(change(e))
        model[e.key] = listed(records[-1], e)
    view.apply(records, {0: 1})
    for column in SORT_COLUMNS:
        for descending in (False, True):
            order = (column, descending)
            for _ in range(6):
                q = random_query(rng)
                expected = sorted(
                    (le for le in model.values() if matches(q, le[0])),
                    key=lambda le: (sort_value(le[0], column), le[1]),
                    reverse=descending,
                )
                walked = walk_sorted(view.sorted_page, q, rng.randrange(1, 7), order)
                assert walked == expected, order
    accounts = sorted({k.account for k in model})[:2]
    mine = [e for e, _ in model.values() if e.key.account in accounts]
    summary = view.overview(accounts, 7, T0)
    assert summary["total"] == len(mine)
    assert summary["by_source"] == dict(Counter(e.source.value for e in mine))
    assert summary["by_channel"] == dict(Counter(e.key.channel or "ALL" for e in mine))
    assert len(summary["days"]) == 7
