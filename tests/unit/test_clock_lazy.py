"""conflicts/clock: the lazy commit clock answers exactly as the eager one did, and stays bounded.

`EagerClock` below is the record as it was before it became lazy (main at 6905239): `saw` indexed every
change as it came. The lazy clock queues them and indexes on lookup with the same code; the property test
feeds both the same random transactions (inserts, updates that leave some columns as they were, key-only
before images, deletes, repeated keys, several tables with one- and two-column keys, both sides, echoes,
long values) with lookups interleaved, and compares every answer of `wait_for(timeout=0)`.
"""
from __future__ import annotations

import gc
import tracemalloc
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from hypothesis import HealthCheck, given, settings, strategies as st

from replicator.changes import LSN, Op, RowChange, TableRef, Transaction
from replicator.conflicts.clock import (ENTRY_BYTES, NAMES, OLDER_BYTES, CommitClock, _Digest, _Entry, _older,
                                        _same, _slim, key_form)

A = TableRef("public", "a")  # key (id)
B = TableRef("public", "b")  # key (id, code): a Decimal in the key
C = TableRef("public", "c")  # not two-way: never recorded
KEYS = {("crm", A): ("id",), ("erp", A): ("id",), ("crm", B): ("id", "code"), ("erp", B): ("id", "code")}
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
LONG_VALUE = "L" * 300  # digested by the index (clock.LONG is 256)


def same(a: Any, b: Any) -> bool:
    return bool(a == b)


class EagerClock:
    """The reference: CommitClock.saw and wait_for of main at 6905239, indexing as the changes come
    (its `shared`/`share` did not change and are not needed here)."""

    def __init__(self, keys: dict[tuple[str, TableRef], tuple[str, ...]], size: int, max_bytes: int):
        self.keys, self.size, self.max_bytes = keys, size, max_bytes
        self._rows: OrderedDict[tuple[str, TableRef, tuple[Any, ...]], _Entry] = OrderedDict()
        self.bytes = 0
        self._names: dict[tuple[str, ...], tuple[str, ...]] = {}

    def saw(self, side: str, txn: Transaction) -> None:
        if txn.echo or txn.commit_time is None or not txn.changes:
            return
        entries: list[tuple[tuple[str, TableRef, tuple[Any, ...]], _Entry, Mapping[str, Any] | None,
                            Mapping[str, Any] | None]] = []
        when = txn.commit_time
        for ch in txn.changes:
            cols = self.keys.get((side, ch.table))
            if cols is None:
                continue
            deleted = ch.op is Op.DELETE
            row = ch.before if deleted else ch.after
            if row is None:
                continue
            try:
                key = key_form([row[c] for c in cols])
            except KeyError:
                continue
            if deleted:
                entries.append(((side, ch.table, key), (when, (), (), ENTRY_BYTES, None), None, None))
                continue
            values, size = _slim(row)
            names = tuple(row)
            shared = self._names.get(names)
            if shared is None:
                if len(self._names) >= NAMES:
                    self._names.clear()
                shared = self._names[names] = names
            entries.append(((side, ch.table, key), (when, shared, values, size, None),
                            ch.before if ch.op is Op.UPDATE else None, row))
        if not entries:
            return
        rows = self._rows
        for k, v, before, after in entries:
            old = rows.get(k)
            if old is not None:
                self.bytes -= old[3]
                if before is not None and after is not None:
                    older = _older(old, before, after)
                    if older is not None:
                        v = (v[0], v[1], v[2], v[3] + OLDER_BYTES * len(older), older)
            rows[k] = v
            rows.move_to_end(k)
            self.bytes += v[3]
        while rows and (len(rows) > self.size or self.bytes > self.max_bytes):
            self.bytes -= rows.popitem(last=False)[1][3]

    def wait_for(self, side: str, table: TableRef, key: Iterable[Any], column: str, value: Any,
                 equal: Callable[[Any, Any], bool], timeout: float = 0.0, deleted: bool = False) -> datetime | None:
        found = self._rows.get((side, table, key_form(key)))
        if found is not None and (not found[1] if deleted else column in found[1] and _same(
                found[2][found[1].index(column)], value, equal)):
            older = found[4]
            return older.get(column, found[0]) if older and not deleted else found[0]
        return None


# -- random transactions
VALUES = st.sampled_from([0, 1, 2, "x", "y", None, Decimal("1.50"), LONG_VALUE, LONG_VALUE + "!", b"\x00"])
COLUMNS = ("v", "w", "note")


@st.composite
def change(draw: Any) -> RowChange:
    table = draw(st.sampled_from([A, A, B, C]))
    key: dict[str, Any] = {"id": draw(st.integers(1, 4))}
    if table is B:
        key["code"] = draw(st.sampled_from([Decimal("1"), Decimal("1.0"), Decimal("2")]))
    op = draw(st.sampled_from([Op.INSERT, Op.UPDATE, Op.UPDATE, Op.UPDATE, Op.DELETE]))
    cols = draw(st.sampled_from([COLUMNS, COLUMNS, ("v", "w")]))  # rows of two shapes
    after = {**key, **{c: draw(VALUES) for c in cols}}
    if op is Op.INSERT:
        return RowChange(table, op, None, after)
    # an update's before image: the full old row (some columns as they are after), the key only, or none
    kind = draw(st.sampled_from(["full", "full", "key", "none"]))
    before: dict[str, Any] | None = None
    if kind == "full":
        before = {**key, **{c: (after[c] if draw(st.booleans()) else draw(VALUES)) for c in cols}}
    elif kind == "key":
        before = dict(key)
    if op is Op.DELETE:
        return RowChange(table, op, before if before is not None else dict(key), None)
    return RowChange(table, op, before, after)


@st.composite
def transaction(draw: Any) -> tuple[str, Transaction]:
    side = draw(st.sampled_from(["crm", "erp"]))
    changes = tuple(draw(st.lists(change(), min_size=0, max_size=4)))
    when = None if draw(st.integers(0, 19)) == 0 else T0 + timedelta(seconds=draw(st.integers(0, 30)))
    return side, Transaction("t", LSN(0), when, changes, echo=draw(st.integers(0, 9)) == 0)


@st.composite
def lookup(draw: Any) -> tuple[Any, ...]:
    table = draw(st.sampled_from([A, B, C]))
    key: tuple[Any, ...] = (draw(st.integers(1, 4)),)
    if table is B:
        key += (draw(st.sampled_from([Decimal("1"), Decimal("1.00"), Decimal("2")])),)
    return (draw(st.sampled_from(["crm", "erp"])), table, key, draw(st.sampled_from(COLUMNS + ("id",))),
            draw(VALUES), draw(st.integers(0, 4)) == 0)


STEPS = st.lists(st.one_of(transaction(), st.lists(lookup(), min_size=1, max_size=6)), max_size=40)


def entries(rows: Mapping[Any, _Entry]) -> list[Any]:
    """The index's entries in order, digests by their SHA-256 (a _Digest is equal only to itself)."""
    return [(k, (t, names, tuple(v.sha if isinstance(v, _Digest) else v for v in values), size, older))
            for k, (t, names, values, size, older) in rows.items()]


def ask(clock: Any, q: tuple[Any, ...]) -> datetime | None:
    side, table, key, column, value, deleted = q
    return clock.wait_for(side, table, key, column, value, same, timeout=0, deleted=deleted)  # type: ignore[no-any-return]


def every_lookup(clocks: list[Any]) -> list[list[datetime | None]]:
    out = []
    for side in ("crm", "erp"):
        for table in (A, B):
            for i in range(1, 5):
                for key in ([(i,)] if table is A else [(i, Decimal(1)), (i, Decimal(2))]):
                    for column in COLUMNS:
                        for value in (0, 1, 2, "x", "y", None, Decimal("1.5"), LONG_VALUE, LONG_VALUE + "!", b"\x00"):
                            out.append([ask(c, (side, table, key, column, value, False)) for c in clocks])
                    out.append([ask(c, (side, table, key, "", None, True)) for c in clocks])
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STEPS)
def test_the_lazy_clock_answers_as_the_eager_one(steps: list[Any]) -> None:
    eager = EagerClock(dict(KEYS), size=10**6, max_bytes=10**12)
    lazy = CommitClock(dict(KEYS), size=10**6, max_bytes=10**12)
    for step in steps:
        if isinstance(step, tuple):
            eager.saw(*step)
            lazy.saw(*step)
        else:  # lookups between transactions: the lazy clock indexes what it queued so far
            for q in step:
                assert ask(lazy, q) == ask(eager, q), q
    for answers in every_lookup([eager, lazy]):
        assert answers[0] == answers[1]
    # the same entries, in the same order (what the bound forgets first)
    assert entries(lazy._rows) == entries(eager._rows)
    assert lazy.bytes == eager.bytes


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STEPS, st.integers(1, 12), st.integers(300, 6000))
def test_the_bound_holds_over_the_index_and_the_queue(steps: list[Any], size: int, max_bytes: int) -> None:
    clock = CommitClock(dict(KEYS), size=size, max_bytes=max_bytes)
    for step in steps:
        if isinstance(step, tuple):
            clock.saw(*step)
            # counted without indexing (reading `bytes` or `_rows` would index the queue)
            assert len(clock._index) + clock._queued <= size
            assert clock._index_bytes + clock._queued_bytes <= max_bytes
            assert clock._queued == sum(len(q[2]) for q in clock._queue)
            assert all(len(q[2]) == len(q[3]) for q in clock._queue)
        else:
            for q in step:
                ask(clock, q)
            assert not clock._queue and clock._queued == clock._queued_bytes == 0
    assert len(clock._rows) <= size and clock.bytes <= max_bytes


def bench_update(i: int, k: int, note: int = 100) -> RowChange:
    def row(n: int) -> dict[str, Any]:
        return {"id": i, "qty": n, "name": f"item {i}", "amount": Decimal(n) / 100,
                "changed_at": T0 + timedelta(seconds=n), "note": f"{i:06d}".ljust(note, "x"), "seq": n}
    return RowChange(A, Op.UPDATE, row(k), row(k + 1))


def test_saw_only_queues_and_a_lookup_indexes() -> None:
    clock = CommitClock({("crm", A): ("id",)})
    for j in range(50):
        clock.saw("crm", Transaction(str(j), LSN(j), T0 + timedelta(seconds=j), (bench_update(j % 10, j // 10),)))
    clock.saw("crm", Transaction("c", LSN(0), T0, (RowChange(C, Op.INSERT, None, {"id": 1}),)))  # not two-way
    assert not clock._index and len(clock._queue) == 50 and clock._queued == 50
    # key 3 was updated at 3, 13, 23, 33, 43 s; its name never changed: dated by the first edit read
    assert clock.wait_for("crm", A, (3,), "name", "item 3", same, timeout=0) == T0 + timedelta(seconds=3)
    assert clock.wait_for("crm", A, (3,), "seq", 5, same, timeout=0) == T0 + timedelta(seconds=43)
    assert not clock._queue and len(clock._index) == 10


def test_a_transaction_of_several_tables_queues_only_its_two_way_changes() -> None:
    clock = CommitClock({("crm", A): ("id",), ("crm", B): ("id", "code")})
    changes = (RowChange(A, Op.INSERT, None, {"id": 1, "v": 1}), RowChange(C, Op.INSERT, None, {"id": 2}),
               RowChange(B, Op.INSERT, None, {"id": 3, "code": Decimal("1.0"), "v": 2}),
               RowChange(C, Op.INSERT, None, {"id": 4}))
    clock.saw("crm", Transaction("t", LSN(0), T0, changes))
    (_, _, held, cols_of, _), = clock._queue
    assert list(held) == [changes[0], changes[2]] and cols_of == (("id",), ("id", "code"))
    assert clock.wait_for("crm", B, (3, Decimal(1)), "v", 2, same, timeout=0) == T0


def test_queued_changes_keep_the_key_columns_they_were_read_with() -> None:
    keys: dict[tuple[str, TableRef], tuple[str, ...]] = {("crm", A): ("id",)}
    clock = CommitClock(keys)
    clock.saw("crm", Transaction("t", LSN(0), T0, (RowChange(A, Op.INSERT, None, {"id": 1, "v": 5}),)))
    keys[("crm", A)] = ("v",)  # a mapping reload changed the key after the change was read
    assert clock.wait_for("crm", A, (1,), "v", 5, same, timeout=0) == T0
    assert clock.wait_for("crm", A, (5,), "v", 5, same, timeout=0) is None


def test_the_oldest_are_forgotten_first_the_index_before_the_queue() -> None:
    clock = CommitClock({("crm", A): ("id",)}, size=100, max_bytes=10**12)
    for j in range(100):
        clock.saw("crm", Transaction(str(j), LSN(j), T0, (bench_update(j, 0),)))
    assert clock.wait_for("crm", A, (0,), "seq", 1, same, timeout=0) == T0  # indexes all 100
    later = T0 + timedelta(seconds=1)
    for j in range(30):  # 30 more changes: the 30 least recently edited rows of the index make room
        clock.saw("crm", Transaction(str(j), LSN(j), later, (bench_update(1000 + j, 0),)))
    assert len(clock._index) == 70 and clock._queued == 30
    assert clock.wait_for("crm", A, (29,), "seq", 1, same, timeout=0) is None
    assert clock.wait_for("crm", A, (30,), "seq", 1, same, timeout=0) == T0
    assert clock.wait_for("crm", A, (1029,), "seq", 1, same, timeout=0) == later
    # a transaction larger than the bound keeps its last changes (bytes counted pro rata)
    big = tuple(bench_update(2000 + j, 0) for j in range(250))
    clock.saw("crm", Transaction("big", LSN(0), later, big))
    assert not clock._index and clock._queued == 100 and len(clock._queue[0][2]) == 100
    assert clock.wait_for("crm", A, (2150,), "seq", 1, same, timeout=0) == later
    assert clock.wait_for("crm", A, (2149,), "seq", 1, same, timeout=0) is None


def test_queued_long_values_count_their_whole_length() -> None:
    """A queued row holds its long values (the index keeps digests): 1 MB notes fill the byte bound
    after a few dozen changes, not after SIZE."""
    clock = CommitClock({("crm", A): ("id",)}, max_bytes=40_000_000)
    for j in range(200):
        clock.saw("crm", Transaction(str(j), LSN(j), T0, (bench_update(j, 0, note=1_000_000),)))
    assert clock._queued_bytes <= 40_000_000 and 15 <= clock._queued <= 20  # two 1 MB images per update


def test_the_queue_estimate_covers_what_queued_updates_keep_alive() -> None:
    """The byte bound is only a bound if the estimate is not far below what tracemalloc sees: 10,000
    queued single-row updates (both images of each row), the decoded transactions gone otherwise."""
    gc.collect()
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        clock = CommitClock({("crm", A): ("id",)}, size=50_000, max_bytes=10**12)
        for j in range(10_000):
            clock.saw("crm", Transaction(str(j), LSN(j), T0, (bench_update(j, 0),)))
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        if not was:
            tracemalloc.stop()
    traced = sum(d.size_diff for d in after.compare_to(before, "filename"))
    assert clock._queued == 10_000 and not clock._index
    assert 0.75 * traced <= clock._queued_bytes <= 1.25 * traced, (traced, clock._queued_bytes)


def test_readers_queue_while_the_other_direction_looks_up() -> None:
    """saw on two reader threads, lookups on a third meanwhile (indexing under the same lock): the end
    state answers as the eager clock fed each side's transactions in order."""
    import threading

    def side_txns(side: str) -> list[Transaction]:
        return [Transaction(str(j), LSN(j), T0 + timedelta(seconds=j), (bench_update(j % 50, j),))
                for j in range(3000)]

    keys = {("crm", A): ("id",), ("erp", A): ("id",)}
    lazy = CommitClock(dict(keys), size=10**6, max_bytes=10**12)
    eager = EagerClock(dict(keys), size=10**6, max_bytes=10**12)
    feeds = {side: side_txns(side) for side in ("crm", "erp")}
    done = threading.Event()

    def read(side: str) -> None:
        for t in feeds[side]:
            lazy.saw(side, t)

    def look() -> None:
        while not done.is_set():
            lazy.wait_for("erp", A, (7,), "name", "item 7", same, timeout=0)

    readers = [threading.Thread(target=read, args=(s,)) for s in ("crm", "erp")]
    looker = threading.Thread(target=look)
    looker.start()
    for r in readers:
        r.start()
    for r in readers:
        r.join(60)
    done.set()
    looker.join(60)
    for side in ("crm", "erp"):
        for t in feeds[side]:
            eager.saw(side, t)
    assert sorted(entries(lazy._rows)) == sorted(entries(eager._rows))
    assert lazy.wait_for("crm", A, (7,), "name", "item 7", same, timeout=0) == T0 + timedelta(seconds=7)


def queue_state(clock: Any) -> tuple[Any, ...]:
    """What the clock holds without indexing it: the queue (changes compared as objects) and its counts."""
    return ([(side, when, [id(ch) for ch in changes], tuple(cols_of), size)
             for side, when, changes, cols_of, size in clock._queue],
            clock._queued, clock._queued_bytes,
            [(k, (t, names, tuple(v.sha if type(v).__name__ == "_Digest" else v for v in values), size, older))
             for k, (t, names, values, size, older) in clock._index.items()],  # either module's _Digest
            clock._index_bytes)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(transaction(), transaction(), st.lists(lookup(), min_size=1, max_size=3)), max_size=60),
       st.integers(1, 12), st.integers(300, 6000))
def test_saw_queues_and_forgets_as_the_clock_of_6c8df9f(steps: list[Any], size: int, max_bytes: int) -> None:
    """saw's single-row fast path (its own forgetting of single-row transactions included) leaves the queue,
    the index and their counts exactly as the code it replaced, after every step, under small bounds that
    forget often (a large transaction at the queue's head, the index's rows before the queue)."""
    from tests.unit.reference.clock_6c8df9f import CommitClock as Reference

    old = Reference(dict(KEYS), size=size, max_bytes=max_bytes)
    new = CommitClock(dict(KEYS), size=size, max_bytes=max_bytes)
    for step in steps:
        if isinstance(step, tuple):
            old.saw(*step)
            new.saw(*step)
        else:
            for q in step:
                assert ask(new, q) == ask(old, q), q
        assert queue_state(new) == queue_state(old)
    for answers in every_lookup([old, new]):
        assert answers[0] == answers[1]


def test_a_full_clock_forgets_single_row_transactions_in_saw_and_a_large_one_pro_rata() -> None:
    clock = CommitClock({("crm", A): ("id",)}, size=10, max_bytes=10**12)
    big = tuple(bench_update(100 + j, 0) for j in range(6))
    clock.saw("crm", Transaction("big", LSN(0), T0, big))
    for j in range(6):
        clock.saw("crm", Transaction(str(j), LSN(j), T0, (bench_update(j, 0),)))
    # 12 changes for 10: the large transaction at the head loses its first two
    assert clock._queued == 10 and [len(q[2]) for q in clock._queue] == [4] + [1] * 6
    for j in range(6, 12):
        clock.saw("crm", Transaction(str(j), LSN(j), T0, (bench_update(j, 0),)))
    assert clock._queued == 10 and [len(q[2]) for q in clock._queue] == [1] * 10
    assert clock.wait_for("crm", A, (1,), "seq", 1, same, timeout=0) is None
    assert clock.wait_for("crm", A, (2,), "seq", 1, same, timeout=0) == T0


def test_a_restart_with_new_key_columns_drops_saws_memo_of_the_table() -> None:
    """saw remembers the key columns of the table it met last; a direction restarted after a reload that
    changed them hands the new ones over with `use_keys`, and the next change is keyed by them."""
    clock = CommitClock({("crm", A): ("id",)})
    clock.saw("crm", Transaction("1", LSN(1), T0, (RowChange(A, Op.INSERT, None, {"id": 1, "v": 5}),)))
    clock.use_keys("crm", {("crm", A): ("v",)})
    later = T0 + timedelta(seconds=1)
    clock.saw("crm", Transaction("2", LSN(2), later, (RowChange(A, Op.INSERT, None, {"id": 2, "v": 6}),)))
    assert [q[3] for q in clock._queue] == [(("id",),), (("v",),)]
    assert clock.wait_for("crm", A, (1,), "v", 5, same, timeout=0) == T0  # read with the old key
    assert clock.wait_for("crm", A, (6,), "v", 6, same, timeout=0) == later
    assert clock.wait_for("crm", A, (2,), "v", 6, same, timeout=0) is None
