"""stream/batch: the open target transaction's state, against a recording fake applier: pages sent
while open, commit order (pending changes, then the checkpoint commit, then on_commit -- the ack),
due by rows or age, only on a source transaction boundary, rollback drops everything."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from replicator.changes import LSN, Keepalive, Op, Position, RowChange, TableRef, TargetChange, Transaction
from replicator.mapping.router import Routed
from replicator.stream.batch import Batch
from tests.unit.reference.batch_a6daaf2 import StepBatch
from replicator.sync.snapshot import Progress

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Recorder:
    """The applier calls a Batch makes, plus its flush/commit/on_commit callables, in one log."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def begin(self) -> None:
        self.log.append(("begin", None))

    def rollback(self) -> None:
        self.log.append(("rollback", None))

    def flush(self, changes: list[Routed | Progress]) -> None:
        self.log.append(("flush", len(changes)))

    def commit(self, position: Position, commit_time: Any) -> None:
        self.log.append(("commit", (position, commit_time)))

    def committed(self, position: Position) -> None:
        self.log.append(("ack", position))


def _batch(rec: Recorder, page: int = 1000, checkpoint: Position | None = LSN(1)) -> StepBatch:
    """A Batch with the per-step methods the apply loop's `add_txn` replaced (the tests drive the steps)."""
    return StepBatch(rec, rec.flush, rec.commit, rec.committed, checkpoint, page=page)  # type: ignore[arg-type]


def _changes(n: int) -> list[Routed | Progress]:
    return [TargetChange(TableRef("erp", "customers"), Op.INSERT, ("cid",), (i,), {"cid": i}) for i in range(n)]


def _txn(lsn: int, n: int = 1, final: bool = True, at: datetime | None = T0) -> Transaction:
    row = RowChange(TableRef("public", "customer"), Op.INSERT, None, {"id": lsn})
    return Transaction(str(lsn), LSN(lsn), at, (row,) * n, final)


def test_commit_sends_the_pending_changes_then_commits_then_acks_and_resets() -> None:
    rec = Recorder()
    batch = _batch(rec)
    batch.begin()
    batch.add(_changes(3))
    batch.end_of(_txn(10, at=T0), taken_at=5.0)
    batch.add(_changes(2))
    batch.end_of(_txn(20, at=None), taken_at=6.0)
    assert batch.ready() and batch.last is not None and batch.last.position == LSN(20)
    done = batch.commit(LSN(20), None)
    assert rec.log == [("begin", None), ("flush", 5), ("commit", (LSN(20), None)), ("ack", LSN(20))]
    assert (done.position, done.rows, done.txns, done.oldest) == (LSN(20), 5, 2, (T0, 5.0))
    assert done.seconds >= 0
    assert not batch.open and batch.pending == [] and (batch.rows, batch.txns, batch.oldest) == (0, 0, None)
    assert batch.checkpoint == LSN(20) and batch.skipped_to is None


def test_a_full_page_goes_to_the_server_while_the_transaction_stays_open() -> None:
    rec = Recorder()
    batch = _batch(rec, page=4)
    batch.begin()
    batch.add(_changes(3))
    assert rec.log == [("begin", None)]
    batch.add(_changes(2))
    assert rec.log == [("begin", None), ("flush", 5)] and batch.pending == [] and batch.rows == 5
    batch.end_of(_txn(7), taken_at=0.0)
    batch.commit(LSN(7), T0)
    assert rec.log[2:] == [("flush", 0), ("commit", (LSN(7), T0)), ("ack", LSN(7))]


def test_never_ready_inside_a_source_transaction() -> None:
    rec = Recorder()
    batch = _batch(rec)
    assert not batch.ready()  # nothing open
    batch.begin()
    batch.add(_changes(1))
    batch.end_of(_txn(5, final=False), taken_at=0.0)
    assert batch.mid_txn and not batch.ready() and batch.txns == 0
    assert batch.timeout(max_ms=10_000) == 0.5  # mid-transaction: wait for the rest, not for max_ms
    batch.add(_changes(1))
    batch.end_of(_txn(5), taken_at=0.0)
    assert batch.ready() and batch.txns == 1
    assert 0 < batch.timeout(max_ms=10_000) <= 10.0


def test_full_by_rows_or_by_age() -> None:
    rec = Recorder()
    batch = _batch(rec)
    batch.begin()
    batch.add(_changes(3))
    assert not batch.full(max_rows=4, max_ms=60_000)
    assert batch.full(max_rows=3, max_ms=60_000)
    batch.started = time.monotonic() - 0.2
    assert batch.full(max_rows=100, max_ms=100)
    assert batch.timeout(max_ms=100) == 0.0


def _skipped(batch: Batch) -> Position | None:
    return batch.skipped_to  # read through a call: mypy keeps the narrowing of the attribute otherwise


def test_a_keepalive_ends_the_open_batch_and_a_skip_waits_for_the_next_commit() -> None:
    rec = Recorder()
    batch = _batch(rec)
    batch.skip(LSN(3))
    assert batch.skipped_to == LSN(3) and batch.checkpoint == LSN(1)
    batch.begin()
    batch.ends_at(Keepalive(LSN(9)))
    assert batch.ready()
    batch.commit(LSN(9), None)
    assert (_skipped(batch), batch.checkpoint) == (None, LSN(9))


def test_rollback_drops_the_open_batch_without_committing_or_acking() -> None:
    rec = Recorder()
    batch = _batch(rec)
    batch.begin()
    batch.add(_changes(2))
    batch.end_of(_txn(4), taken_at=0.0)
    batch.rollback()
    assert rec.log == [("begin", None), ("rollback", None)]
    assert not batch.open and batch.pending == [] and batch.rows == 0 and batch.checkpoint == LSN(1)


def test_a_failed_commit_does_not_ack_and_leaves_the_batch_open() -> None:
    rec = Recorder()

    def failing(position: Position, commit_time: Any) -> None:
        raise RuntimeError("lost the lease")

    batch = StepBatch(rec, rec.flush, failing, rec.committed, LSN(1))  # type: ignore[arg-type]
    batch.begin()
    batch.add(_changes(1))
    batch.end_of(_txn(4), taken_at=0.0)
    with pytest.raises(RuntimeError, match="lost the lease"):
        batch.commit(LSN(4), T0)
    assert ("ack", LSN(4)) not in rec.log
    assert batch.open and batch.checkpoint == LSN(1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans(), st.booleans(), st.integers(0, 1), st.booleans()),
                max_size=30),
       st.integers(1, 8), st.integers(1, 12))
def test_add_txn_is_add_then_end_of_then_full(steps: list[tuple[int, bool, bool, int, bool]], page: int,
                                              max_rows: int) -> None:
    """The apply loop's one call per source transaction against the three it replaced: the same calls to
    the applier and the callables, the same state, the same verdict, commits included."""
    one, three = Recorder(), Recorder()
    fast = Batch(one, one.flush, one.commit, one.committed, LSN(1), page=page)  # type: ignore[arg-type]
    slow = _batch(three, page=page)  # the three steps add_txn replaced (tests/unit/reference)
    for i, (n, final, timed, rows_in_txn, commit) in enumerate(steps):
        txn = _txn(i + 2, n=rows_in_txn, final=final, at=T0 if timed else None)
        for b in (fast, slow):
            if not b.open:
                b.begin()
        max_ms = 0.0 if commit else 60_000.0  # 0: due by age at once
        due = fast.add_txn(_changes(n), txn, float(i), max_rows, max_ms)
        slow.add(_changes(n))
        slow.end_of(txn, float(i))
        assert due == (txn.final and slow.full(max_rows, max_ms))
        state = [(b.open, b.mid_txn, len(b.pending), b.rows, b.txns, b.last, b.oldest) for b in (fast, slow)]
        assert state[0] == state[1]
        if due:
            d1, d2 = fast.commit(txn.position, txn.commit_time), slow.commit(txn.position, txn.commit_time)
            assert (d1.position, d1.rows, d1.txns, d1.oldest) == (d2.position, d2.rows, d2.txns, d2.oldest)
        assert one.log == three.log
