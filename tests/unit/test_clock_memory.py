"""conflicts/clock: the commit clock's memory bounds (rows and estimated bytes), deterministic sizes."""
from __future__ import annotations

import gc
import tracemalloc
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from replicator.changes import LSN, Op, RowChange, TableRef, Transaction
from replicator.conflicts.clock import CommitClock

T = TableRef("erp", "bench_item")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def bench_row(i: int, note: int = 100) -> dict[str, Any]:
    """A row like bench/'s bench_item: 7 columns, a 100-character note."""
    return {"id": i, "qty": i % 97, "name": f"name {i}", "amount": Decimal(i) / 100,
            "changed_at": T0 + timedelta(seconds=i), "note": f"{i:06d}" + "x" * (note - 6), "seq": i}


def feed(clock: CommitClock, n: int, width: int = 100, start: int = 0, per_txn: int = 100) -> None:
    for first in range(start, start + n, per_txn):
        changes = tuple(RowChange(T, Op.INSERT, None, bench_row(i, width)) for i in range(first, first + per_txn))
        clock.saw("erp", Transaction(str(first), LSN(first), T0, changes))


def same(a: Any, b: Any) -> bool:
    return bool(a == b)


def test_rows_are_bounded_by_count() -> None:
    clock = CommitClock({("erp", T): ("id",)}, size=1000, max_bytes=10**12)
    feed(clock, 5000)
    assert len(clock._rows) == 1000
    assert clock.wait_for("erp", T, (4999,), "seq", 4999, same, timeout=0) == T0  # the newest kept
    assert clock.wait_for("erp", T, (3999,), "seq", 3999, same, timeout=0) is None  # the oldest forgotten


def test_rows_are_bounded_by_bytes_so_wide_rows_cannot_fill_memory() -> None:
    clock = CommitClock({("erp", T): ("id",)}, size=50_000, max_bytes=1_000_000)
    feed(clock, 5000, width=250)  # ~1.0 KB estimated each (the note alone 250 bytes, not yet a digest)
    assert clock.bytes <= 1_000_000
    assert 700 <= len(clock._rows) <= 1100
    assert clock.wait_for("erp", T, (4999,), "note", bench_row(4999, 250)["note"], same, timeout=0) == T0


def test_bytes_are_counted_once_per_key() -> None:
    clock = CommitClock({("erp", T): ("id",)}, size=50_000, max_bytes=10**12)
    feed(clock, 100)
    once = clock.bytes
    for _ in range(5):
        feed(clock, 100)  # the same keys edited again: replaced, not added
    assert clock.bytes == once and len(clock._rows) == 100
    clock.saw("erp", Transaction("d", LSN(1), T0, (RowChange(T, Op.DELETE, {"id": 7}, None),)))
    assert clock.wait_for("erp", T, (7,), "", None, same, timeout=0, deleted=True) == T0
    assert clock.bytes < once and len(clock._rows) == 100


def test_rows_of_one_shape_share_their_column_names() -> None:
    clock = CommitClock({("erp", T): ("id",)}, size=50_000, max_bytes=10**12)
    feed(clock, 300)
    assert len({id(entry[1]) for entry in clock._rows.values()}) == 1


def test_the_estimate_covers_what_the_entries_keep_alive() -> None:
    """The byte bound is only a bound if the estimate is not far below what tracemalloc sees: 10,000
    bench rows remembered after the decoded transactions are gone."""
    gc.collect()
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        clock = CommitClock({("erp", T): ("id",)}, size=50_000, max_bytes=10**12)
        feed(clock, 10_000)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        if not was:
            tracemalloc.stop()
    traced = sum(d.size_diff for d in after.compare_to(before, "filename"))
    assert len(clock._rows) == 10_000
    # ~0.6 KB a row kept (a dict per row took ~0.9 KB); the estimate is within 25% of it
    assert 0.75 * traced <= clock.bytes <= 1.25 * traced, (traced, clock.bytes)
    assert traced / 10_000 < 800, traced / 10_000
