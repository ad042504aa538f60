"""The sync driver's threads (issue 8): a snapshotter belongs to one streaming session, stopping it
does not wait out its query, the peer's watched deletes are shared under a lock, and a snapshotter's
error either backs off (retriable) or stops with a message naming the copy -- never loops forever."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import pytest

from replicator import metrics
from replicator.changes import Op, RowChange
from replicator.config import Config
from replicator.errors import FatalError, RetriableError
from replicator.mapping.model import MappingSet
from replicator.sync import driver as driver_module
from replicator.sync import snapshot as snapshot_module
from replicator.sync.driver import SyncDriver
from replicator.sync.snapshot import Job, Snapshotter
from tests.unit.test_mapping import CUSTOMER
from tests.unit.mapsets import load, make_config
from tests.unit.test_sync import OWNED_YAML, YAML, txn


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "maps").mkdir()
    return make_config(tmp_path)


@pytest.fixture
def mset(config: Config) -> MappingSet:
    return load(config, YAML)


class _StuckDb:
    """The snapshotter's source session: its chunk query hangs until `interrupt` (a cancel) or
    `release` (the query finally returns)."""

    kind = "postgresql"

    def __init__(self) -> None:
        self.in_query = threading.Event()
        self.released = threading.Event()
        self.interrupted = False
        self.watermarks: list[Any] = []

    def connect(self) -> None:
        pass

    def interrupt(self) -> None:
        self.interrupted = True
        self.released.set()

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass

    def query(self, sql: str, params: Any) -> list:
        self.watermarks.append(params)
        return []

    def commit_untracked(self) -> None:
        pass


class _Scanner:
    def __init__(self, db: _StuckDb, table: Any, key: Any) -> None:
        self.db = db

    def estimate(self) -> int:
        return 3

    def chunk(self, after: Any, n: int) -> list[dict]:
        self.db.in_query.set()
        self.db.released.wait(60)
        if self.db.interrupted:
            raise RetriableError("canceling statement due to user request")
        return [{"id": 1, "name": "a"}]

    @staticmethod
    def key_of(row: dict) -> tuple:
        return (row["id"],)


def test_a_snapshotter_stuck_in_a_query_is_cancelled_and_never_feeds_the_next_session(
        config: Config, mset: MappingSet, monkeypatch: pytest.MonkeyPatch) -> None:
    crm, erp = config.connections
    d = SyncDriver(config, crm, erp, threading.Event())
    db = _StuckDb()
    monkeypatch.setattr(snapshot_module, "make_applier", lambda *_a: db)
    monkeypatch.setattr(driver_module, "make_applier", lambda *_a: db)
    monkeypatch.setattr(snapshot_module, "TableScanner", _Scanner)
    flow = mset.by_name["customers"].flow("crm")
    assert flow is not None
    old = Snapshotter(d, [Job("customers", flow, None, 0)], lambda _m: True)
    d._snapshotter = old
    old.start()
    assert db.in_query.wait(5)

    began = time.monotonic()
    d.stop_snapshotter()  # the session ends (a reconnect): its snapshotter is stuck in a query
    stopped_in = time.monotonic() - began
    d._snapshotter = Snapshotter(d, [], lambda _m: True)  # the next session's
    db.released.set()  # whatever the old query does now, it must not reach the new session
    old.thread.join(5)
    assert not old.thread.is_alive()
    assert d._chunks == {} and db.watermarks == [], "the old session's chunk went into the new session"
    assert stopped_in < 2.0, f"stopping waited {stopped_in:.1f} s for a stuck query"
    assert old.error is None  # the cancel's own error is not reported as the sync failing


def test_a_snapshotter_of_an_ended_session_gets_no_room_and_no_chunk(config: Config, mset: MappingSet) -> None:
    crm, erp = config.connections
    d = SyncDriver(config, crm, erp, threading.Event())
    old = Snapshotter(d, [], lambda _m: True)
    d._snapshotter = old
    d.stop_snapshotter()
    new = d._snapshotter = Snapshotter(d, [], lambda _m: True)
    flow = mset.by_name["customers"].flow("crm")
    assert flow is not None
    chunk = snapshot_module.Chunk(Job("customers", flow, None, 0), [{"id": 1, "name": "a"}], (1,), 1, 1, True)
    assert d.wait_room(old) is False and d.add_chunk(old, chunk) is None
    assert d.wait_room(new) is True and d.add_chunk(new, chunk) is not None


def test_deleted_keys_are_handed_over_as_a_snapshot(config: Config) -> None:
    """The peer's apply thread reads our watched keys while ours adds to them: it gets a copy."""
    mset = load(config, OWNED_YAML)
    crm, erp = config.connections
    ours, peer = SyncDriver(config, crm, erp, threading.Event()), SyncDriver(config, erp, crm, threading.Event())
    ours.peer, peer.peer = peer, ours
    flow = mset.by_name["customers"].flow("crm")
    assert flow is not None
    ours.track([Job("customers", flow, None, 0)])
    table = flow.target.table
    peer.observe(txn(RowChange(table, Op.DELETE, {"cid": 2, "customer_name": "b"}, None)))
    seen = ours.peer.deleted(table)
    peer.observe(txn(RowChange(table, Op.DELETE, {"cid": 5, "customer_name": "e"}, None)))
    assert seen == {(2,)}  # what the reader got does not change under it
    assert ours.peer.deleted(table) == {(2,), (5,)}


def test_watch_and_unwatch_from_the_other_thread_while_deletes_are_observed(config: Config) -> None:
    mset = load(config, OWNED_YAML)
    crm, erp = config.connections
    ours, peer = SyncDriver(config, crm, erp, threading.Event()), SyncDriver(config, erp, crm, threading.Event())
    ours.peer, peer.peer = peer, ours
    flow = mset.by_name["customers"].flow("crm")
    assert flow is not None
    table = flow.target.table
    errors: list[BaseException] = []
    done = threading.Event()

    def other_thread() -> None:
        try:
            while not done.is_set():
                peer.watch(table, ("cid",))
                ours.peer.deleted(table)
                peer.unwatch_all()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    t = threading.Thread(target=other_thread)
    t.start()
    try:
        for i in range(20000):
            peer.observe(txn(RowChange(table, Op.DELETE, {"cid": i, "customer_name": "x"}, None)))
    finally:
        done.set()
        t.join(5)
    assert errors == []
    peer.watch(table, ("cid",))
    peer.observe(txn(RowChange(table, Op.DELETE, {"cid": -1, "customer_name": "x"}, None)))
    assert peer.deleted(table) == {(-1,)}


def _failing(d: SyncDriver, error: BaseException) -> Snapshotter:
    snap = Snapshotter(d, [], lambda _m: True)
    snap.mapping, snap.error = "customers", error
    d._snapshotter = snap
    return snap


def _count(kind: str) -> float:
    return metrics.REGISTRY.get_sample_value("replicator_sync_errors_total",
                                             {"direction": "crm_to_erp", "kind": kind}) or 0.0


def test_an_unexpected_snapshotter_error_stops_with_the_copy_named(config: Config, mset: MappingSet) -> None:
    crm, erp = config.connections
    d = SyncDriver(config, crm, erp, threading.Event())
    before = _count("fatal")
    bug = psycopg2.errors.lookup("42703")
    _failing(d, type("UndefinedColumn", (bug,), {"pgcode": "42703"})("Spalte »nick« existiert nicht"))
    with pytest.raises(FatalError, match=r"crm_to_erp: sync of customers failed .*Spalte »nick«"):
        d.poll(None, mset)  # type: ignore[arg-type]
    _failing(d, KeyError("a bug"))
    with pytest.raises(FatalError, match="sync of customers failed"):
        d.poll(None, mset)  # type: ignore[arg-type]
    assert _count("fatal") == before + 2


def test_a_lost_connection_of_the_snapshotter_backs_off(config: Config, mset: MappingSet) -> None:
    crm, erp = config.connections
    d = SyncDriver(config, crm, erp, threading.Event())
    before = _count("retriable")
    _failing(d, psycopg2.OperationalError("server closed the connection unexpectedly"))
    with pytest.raises(RetriableError, match="sync of customers"):
        d.poll(None, mset)  # type: ignore[arg-type]
    _failing(d, RetriableError("connection lost"))
    with pytest.raises(RetriableError):
        d.poll(None, mset)  # type: ignore[arg-type]
    assert _count("retriable") == before + 2
