"""The contract every source and applier keeps, run in both directions against real servers (in the
manner of Benthos's connector integration suite): the same steps for PostgreSQL -> MariaDB (WAL source,
MariaDB applier) and MariaDB -> PostgreSQL (binlog source, PostgreSQL applier).

- open and close: the source streams from the checkpoint `setup` wrote, and stops quietly when told;
- capture and checkpoint: committed rows come as one final Transaction after that position; the
  applier writes them and the checkpoint in one target transaction, then the source is acked;
- restart from the checkpoint: a new source starts after what the target holds, nothing twice;
- echo dropped: a write tagged by the other direction's applier comes back as an echo, without rows.

The pieces are driven in-process, through `replicator.sources.base.Source` and the applier API, the
way stream/pipeline.py drives them; no daemon.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pytest

from replicator.appliers import make_applier
from replicator.appliers.base import Applier
from replicator.changes import Op, SourceMessage, TableRef, TargetChange, Transaction
from replicator.config import load as load_config
from replicator.loopguard import CHECKPOINT_TABLE
from replicator.mapping.model import MappingSet, load_mappings
from replicator.mapping.router import route
from replicator.sources.base import Source
from replicator.stream.pipeline import Direction, MappingHolder

PG_SCHEMA = "CREATE TABLE item (id int PRIMARY KEY, label text NOT NULL)"
MY_SCHEMA = "CREATE TABLE items (id int PRIMARY KEY, label varchar(100) NOT NULL)"
MAPPINGS = """
mappings:
  items:
    direction: both
    crm: {table: item, key: [id]}
    erp: {table: items, key: [id]}
    fields:
      id: ~
      label: ~
"""
WAIT = 15.0  # seconds for a committed row to come through a source


class Reader:
    """A source read in its own thread, as Direction._read does; messages go to a queue."""

    def __init__(self, source: Source):
        self.source = source
        self.messages: queue.Queue[SourceMessage] = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for msg in self.source.transactions():
                self.messages.put(msg)
        except BaseException as exc:
            self.error = exc

    def next_transaction(self, echo: bool = False) -> Transaction:
        """The next Transaction with rows (echo=False) or the next echo (echo=True)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.error is None, f"the source failed: {self.error!r}"
            try:
                msg = self.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            if isinstance(msg, Transaction) and (msg.echo if echo else (msg.changes and not msg.echo)):
                return msg
        raise AssertionError(f"no {'echo' if echo else 'transaction with rows'} within {WAIT} s")

    def close(self) -> None:
        started = time.monotonic()
        self.source.stop()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the source did not stop within 10 s"
        assert self.error is None, f"the source failed on stop: {self.error!r}"
        assert time.monotonic() - started < 10


class Rig:
    """One direction's source side and target applier, wired as the pipeline wires them."""

    def __init__(self, pair: Any, direction: str):
        self.pair = pair
        self.config = load_config(pair.config_path)
        self.mset: MappingSet = load_mappings(self.config)
        crm, erp = self.config.connections
        self.src, self.tgt = (crm, erp) if direction == "crm_to_erp" else (erp, crm)
        self.d = Direction(self.config, self.src, self.tgt, MappingHolder(self.mset), threading.Event())
        self.applier: Applier = make_applier(self.tgt, self.d.name, self.d.guard.echo_stream)
        self.applier.connect()

    def open(self) -> Reader:
        position = self.applier.read_checkpoint()
        self.applier.rollback()
        return Reader(self.d._make_source(self.mset, position))

    def write_source(self, *rows: tuple[int, str]) -> None:
        """Rows committed in the source database by an application, in one transaction."""
        if self.src.kind == "postgresql":
            values = ", ".join(f"({i}, '{label}')" for i, label in rows)
            self.pair.pg_query(f"INSERT INTO item (id, label) VALUES {values}")
        else:
            values = ", ".join(f"({i}, '{label}')" for i, label in rows)
            self.pair.my_query(f"INSERT INTO items (id, label) VALUES {values}")

    def target_rows(self) -> list[tuple[Any, ...]]:
        if self.tgt.kind == "postgresql":
            return [tuple(r) for r in self.pair.pg_query("SELECT id, label FROM item ORDER BY id")]
        return [tuple(r) for r in self.pair.my_query("SELECT id, label FROM items ORDER BY id")]

    def apply(self, reader: Reader, txn: Transaction) -> None:
        """What the apply loop does with one transaction: route, write, commit with the checkpoint, ack."""
        changes = [tc for ch in txn.changes for tc in route(self.mset, self.src.name, ch, txn.commit_time)]
        assert all(isinstance(c, TargetChange) for c in changes)
        self.applier.begin()
        self.applier.apply([c for c in changes if isinstance(c, TargetChange)])
        self.applier.commit(txn.position, txn.commit_time)
        reader.source.ack(txn.position)

    def close(self) -> None:
        self.applier.rollback()
        self.applier.close()


@pytest.fixture(params=["crm_to_erp", "erp_to_crm"], ids=["postgresql->mariadb", "mariadb->postgresql"])
def rig(request: pytest.FixtureRequest, make_pair: Any) -> Any:
    r = Rig(make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS), request.param)
    yield r
    r.close()


def test_open_capture_checkpoint_and_close(rig: Rig) -> None:
    start = rig.applier.read_checkpoint()
    rig.applier.rollback()
    reader = rig.open()
    try:
        rig.write_source((1, "a"), (2, "b"), (3, "c"))
        txn = reader.next_transaction()
        assert txn.final and not txn.echo and txn.position > start  # type: ignore[operator]
        assert sorted(int(c.after["id"]) for c in txn.changes if c.after) == [1, 2, 3]
        assert {c.op for c in txn.changes} == {Op.INSERT}
        assert {c.table.name for c in txn.changes} == {"item" if rig.src.kind == "postgresql" else "items"}
        rig.apply(reader, txn)
    finally:
        reader.close()
    assert rig.target_rows() == [(1, "a"), (2, "b"), (3, "c")]
    assert rig.applier.read_checkpoint() == txn.position
    rig.applier.rollback()


def test_a_restart_resumes_after_the_checkpoint_and_delivers_nothing_twice(rig: Rig) -> None:
    reader = rig.open()
    try:
        rig.write_source((1, "first"))
        first = reader.next_transaction()
        rig.apply(reader, first)
    finally:
        reader.close()
    rig.write_source((2, "while stopped"))
    reader = rig.open()
    try:
        again = reader.next_transaction()
        assert [int(c.after["id"]) for c in again.changes if c.after] == [2], "a committed row came again"
        assert again.position > first.position  # type: ignore[operator]
        rig.apply(reader, again)
    finally:
        reader.close()
    assert rig.target_rows() == [(1, "first"), (2, "while stopped")]


@pytest.mark.parametrize("keep", [False, True], ids=["dropped", "kept for a sync"])
def test_a_write_tagged_by_the_other_direction_comes_back_as_an_echo(rig: Rig, keep: bool) -> None:
    """Without keep_echoes an echo carries no rows; with it (a sync is running) it carries them, marked."""
    table = TableRef(rig.src.database if rig.src.kind == "mariadb" else "public",
                     "items" if rig.src.kind == "mariadb" else "item")
    # the opposite direction's applier writes into our source, as the daemon would
    other = make_applier(rig.src, rig.d.guard.echo_stream, rig.d.name)
    other.connect()
    reader = rig.open()
    reader.source.keep_echoes = keep
    try:
        # past the echo of the checkpoint `setup` wrote, which comes first (a row after it comes after it)
        rig.write_source((6, "before"))
        before = reader.next_transaction()
        position = other.read_checkpoint()
        other.rollback()
        assert position is not None
        other.begin()
        other.apply([TargetChange(table, Op.INSERT, ("id",), (7,), {"id": 7, "label": "echo"})])
        other.commit(position, None)
        echo = reader.next_transaction(echo=True)
        assert echo.final and echo.position > before.position  # type: ignore[operator]
        assert [int(c.after["id"]) for c in echo.changes if c.after] == ([7] if keep else [])
        rig.write_source((8, "after the echo"))
        txn = reader.next_transaction()
        assert [int(c.after["id"]) for c in txn.changes if c.after] == [8], "the echo came through as a change"
    finally:
        reader.close()
        other.rollback()
        other.close()


def test_a_checkpoint_moved_without_a_transaction_keeps_the_last_commit_time(rig: Rig) -> None:
    """A keepalive moves the checkpoint with no source transaction (commit_time None): `status`'s "last
    applied" is still the commit time of the last transaction applied, not blank."""
    table = rig.applier.quote_table(TableRef(rig.tgt.state_schema, CHECKPOINT_TABLE))

    def stored() -> tuple[Any, Any]:
        (position, commit_time), = rig.applier.query(
            f"SELECT position, source_commit_time FROM {table} WHERE stream = %s", [rig.d.name])
        rig.applier.rollback()
        return position, commit_time

    reader = rig.open()
    try:
        rig.write_source((1, "a"))
        txn = reader.next_transaction()
        rig.apply(reader, txn)
    finally:
        reader.close()
    _, applied_at = stored()
    assert applied_at is not None
    rig.applier.begin()
    rig.applier.commit(txn.position, None)
    _, kept = stored()
    assert kept == applied_at
    assert rig.applier.read_checkpoint() == txn.position
    rig.applier.rollback()
