"""stream/channel's gate: the reader reads ahead while the applier waits on the server, not while it computes.

The gate changes only when a put may go through: the items, their order and the bound stay those of the
ungated channel (tests/unit/test_channel.py). A differential run checks that under random interleavings;
the others pin each rule of the gate, the applier's side (PostgresApplier._run lends around every
statement) and the commit clock's (a wait_for opens the awaited reader's gate)."""
from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from replicator.appliers import postgres
from replicator.changes import LSN, Op, RowChange, TableRef, Transaction
from replicator.config import Account, Connection, Secret
from replicator.conflicts.clock import CommitClock
from replicator.stream.channel import Channel

A = TableRef("public", "a")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _put_blocks(chan: Channel, item: Any, rows: int, wait: float = 0.15) -> tuple[threading.Thread, threading.Event]:
    """Start a put on another thread; (its thread, set when it went through)."""
    done = threading.Event()

    def writer() -> None:
        chan.put(item, rows, threading.Event())
        done.set()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    done.wait(wait)
    return t, done


def test_an_ungated_channel_fills_to_its_bound_whatever_is_lent() -> None:
    chan = Channel(max_rows=10)
    stop = threading.Event()
    for i in range(10):
        assert chan.put(i, 1, stop)
    chan.lend()  # no gate: nothing changes
    chan.reclaim()
    _, done = _put_blocks(chan, "x", 1)
    assert not done.is_set()
    assert chan.take_all(0) == list(range(10))
    assert done.wait(2.0)


def test_the_gate_holds_the_reader_at_low_until_the_applier_lends() -> None:
    chan = Channel(max_rows=10)
    chan.gate(3)
    stop = threading.Event()
    for i in range(3):  # under `low`: always through (an idle stream's transaction is handed over at once)
        assert chan.put(i, 1, stop)
    t, done = _put_blocks(chan, 3, 1)
    assert not done.is_set(), "a put past `low` went through while the applier computes"
    chan.lend()  # the applier waits on the server: the reader may go on, up to max_rows
    assert done.wait(2.0)
    t.join()
    for i in range(4, 10):
        assert chan.put(i, 1, stop)
    _, full = _put_blocks(chan, 10, 1)
    assert not full.is_set(), "past max_rows even while lent"
    chan.reclaim()
    assert chan.take_all(0) == list(range(10))
    assert full.wait(2.0)  # take_all empties it: under `low` again
    t2, held = _put_blocks(chan, 11, 2)  # 1 + 2 rows: still through (the check is before the put)
    assert held.is_set()
    t2.join()
    _, held2 = _put_blocks(chan, 12, 1)
    assert not held2.is_set(), "reclaim did not close the gate again"
    chan.lend()
    assert held2.wait(2.0)
    assert chan.take_all(0) == [10, 11, 12]


def test_a_peer_waiting_for_this_reader_opens_the_gate_until_its_last_wait_ends() -> None:
    chan = Channel(max_rows=10)
    chan.gate(1)
    stop = threading.Event()
    assert chan.put("a", 1, stop)
    chan.peer_waits(True)
    chan.peer_waits(True)
    assert chan.put("b", 1, stop)
    chan.peer_waits(False)
    assert chan.put("c", 1, stop)  # one wait still on
    chan.peer_waits(False)
    _, done = _put_blocks(chan, "d", 1)
    assert not done.is_set()
    chan.peer_waits(True)
    assert done.wait(2.0)
    chan.peer_waits(False)
    assert chan.take_all(0) == ["a", "b", "c", "d"]


def test_a_stop_still_ends_a_put_held_at_the_gate() -> None:
    chan = Channel(max_rows=10)
    chan.gate(1)
    stop = threading.Event()
    chan.put("x", 1, stop)
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    assert chan.put("y", 1, stop) is False
    assert time.monotonic() - started < 2.0


def test_gated_and_ungated_hand_over_the_same_items_in_the_same_order() -> None:
    """A differential: a reader thread and an applier thread (lending at random) over a gated channel and an
    ungated one; the applier sees the same items, in order, and no take holds more rows than the bound plus
    the last item."""
    rng = random.Random(14)
    sizes = [rng.choice([1, 1, 1, 3, 100, 250]) for _ in range(3000)]

    def run(gated: bool) -> list[int]:
        chan = Channel(max_rows=500)
        if gated:
            chan.gate(100)
        stop = threading.Event()
        seen: list[int] = []

        def reader() -> None:
            for i, n in enumerate(sizes):
                assert chan.put(i, n, stop)
            chan.put_final(-1)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        r = random.Random(7)
        while True:
            items = chan.take_all(0.5)
            assert sum(sizes[i] for i in items if i >= 0) <= 500 + 250
            seen += items
            if items and items[-1] == -1:
                break
            if r.random() < 0.5:
                chan.lend()
                time.sleep(r.choice([0, 0.0005]))
                chan.reclaim()
        t.join(5)
        return seen

    expected = list(range(len(sizes))) + [-1]
    assert run(False) == expected
    assert run(True) == expected


class _Gate:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def lend(self) -> None:
        self.calls.append("lend")

    def reclaim(self) -> None:
        self.calls.append("reclaim")


def _pg() -> postgres.PostgresApplier:
    acc = Account("u", Secret(""))
    return postgres.PostgresApplier(Connection("crm", "postgresql", "h", 5432, "crm", acc, acc), "erp_to_crm")


def test_the_postgres_applier_lends_around_every_statement_and_reclaims_after_an_error() -> None:
    a = _pg()
    assert a.reports_waits
    assert a._run(lambda x: x + 1, 1) == 2  # no gate: as before
    gate = _Gate()
    a.io_gate = gate

    def inside() -> str:
        gate.calls.append("statement")
        return "done"
    assert a._run(inside) == "done"
    assert gate.calls == ["lend", "statement", "reclaim"]

    def fails() -> None:
        raise ValueError("not a server error")
    with pytest.raises(ValueError):
        a._run(fails)
    assert gate.calls[-2:] == ["lend", "reclaim"]


def test_the_mariadb_applier_lends_around_each_round_trip_of_its_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """MariaDB: the gate is told by the connection (connect.MyConnection.query), around the statement's round trip
    alone -- the applier formats its literals outside it -- and the applier hands its gate to each new connection."""
    import pymysql

    from replicator.appliers import mariadb
    from replicator.connect import MyConnection

    gate = _Gate()

    def query(self: Any, sql: Any, unbuffered: bool = False) -> int:
        gate.calls.append(f"query {sql}")
        if sql == "bad":
            raise pymysql.err.OperationalError(2013, "lost")
        return 1
    monkeypatch.setattr(pymysql.connections.Connection, "query", query)
    db = object.__new__(MyConnection)
    assert db.query("SELECT 1") == 1 and gate.calls == ["query SELECT 1"]  # no gate: as before
    db.gate = gate
    assert db.query("SELECT 2") == 1
    with pytest.raises(pymysql.err.OperationalError):
        db.query("bad")
    assert gate.calls[1:] == ["lend", "query SELECT 2", "reclaim", "lend", "query bad", "reclaim"]

    acc = Account("u", Secret(""))
    a = mariadb.MariaDBApplier(Connection("erp", "mariadb", "h", 3306, "erp", acc, acc), "crm_to_erp")
    assert a.reports_waits and a.io_gate is None
    a.io_gate = gate  # set by the stream after connect: the open connection gets it
    a.db = object.__new__(MyConnection)
    a.io_gate = gate
    assert a.db.gate is gate
    monkeypatch.setattr(mariadb, "my_connect", lambda conn, account: object.__new__(MyConnection))
    monkeypatch.setattr(mariadb.MariaDBApplier, "_session", lambda self, *args: None)
    a.connect()  # a reconnect: the new connection is gated too
    assert a.db.gate is gate


def _update(i: int, j: int) -> Transaction:
    change = RowChange(A, Op.UPDATE, {"id": i, "v": j - 1}, {"id": i, "v": j})
    return Transaction(str(j), LSN(j), T0 + timedelta(seconds=j), (change,))


def test_a_wait_for_opens_the_awaited_readers_gate_only_while_it_waits() -> None:
    clock = CommitClock({("erp", A): ("id",)})
    told: list[bool] = []
    clock.reader_waited("erp", told.append)
    clock.saw("erp", _update(1, 1))
    same = lambda a, b: a == b  # noqa: E731
    # found at once, or not waiting at all (timeout 0): the gate is never touched
    assert clock.wait_for("erp", A, (1,), "v", 1, same) == T0 + timedelta(seconds=1)
    assert clock.wait_for("erp", A, (2,), "v", 5, same, timeout=0) is None
    assert told == []
    # not read yet: opened while waiting, closed after, found when the reader gets there
    threading.Timer(0.1, lambda: clock.saw("erp", _update(2, 5))).start()
    assert clock.wait_for("erp", A, (2,), "v", 5, same, timeout=5) == T0 + timedelta(seconds=5)
    assert told == [True, False]
    assert clock.wait_for("erp", A, (3,), "v", 9, same, timeout=0.05) is None  # in vain: closed as well
    assert told == [True, False, True, False]
    assert clock.wait_for("crm", A, (3,), "v", 9, same, timeout=0.05) is None  # another side's reader
    assert told == [True, False, True, False]
    clock.reader_waited("erp", None)
    assert clock.wait_for("erp", A, (3,), "v", 9, same, timeout=0.05) is None
    assert told == [True, False, True, False]
