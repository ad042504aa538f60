"""`keep_echoes` is switched by the apply thread while the reader may be inside a source transaction
(issue 8): the switch takes effect at the reader's next transaction, so an echo transaction is
handed over whole or not at all -- never its second half only."""
from __future__ import annotations

import socket
import time
from datetime import datetime, timezone
from typing import Any, Callable

import pytest
from pymysqlreplication.event import MariadbGtidEvent, XidEvent
from pymysqlreplication.row_event import WriteRowsEvent

from replicator.changes import LSN, BinlogPosition, Op, RowChange, TableRef, Transaction
from replicator.config import Account, Connection, Secret
from replicator.loopguard import MESSAGE_PREFIX, LoopGuard
from replicator.sources.binlog import BinlogSource
from replicator.sources.wal import WalSource
from tests.unit.test_pgoutput import begin, commit, insert, message, relation

ACC = Account("u", Secret(""))
PG = Connection("crm", "postgresql", "127.0.0.1", 5432, "crm", ACC, ACC)
MY = Connection("erp", "mariadb", "127.0.0.1", 3306, "erp", ACC, ACC)
T = TableRef("public", "t")
OID = 16384


# ---------------------------------------------------------------- WAL

class _Msg:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class _Cursor:
    """A replication stream (sources.walproto.CopyStream's interface) playing scripted pgoutput
    messages; a callable in the script runs when reached (the apply thread acting between two messages)."""

    def __init__(self, source: WalSource, script: list[Any]) -> None:
        self.source, self.script = source, list(script)
        self.wal_end = 0
        self.io_time = time.time()
        self.wait_asked_at: float | None = None
        self._ready = socket.socketpair()  # select() waits on the cursor: let it return at once
        self._ready[1].send(b"x")

    def fileno(self) -> int:
        return self._ready[0].fileno()

    def read(self) -> Any:
        while self.script:
            item = self.script.pop(0)
            if callable(item):
                item()
                continue
            return _Msg(item)
        self.source.stop()
        return None

    def read_batch(self) -> list[bytes]:
        """One message per batch, so that each callable runs between the two messages it sits between."""
        msg = self.read()
        return [msg.payload] if msg is not None else []

    def confirm(self, flush_lsn: int) -> None:
        pass


def _wal_echo_txn(source: WalSource, switch: Callable[[], None]) -> list[Any]:
    return [
        relation(OID, "public", "t", [("id", 23, -1, True)]),
        begin(0x200, 0, 7),
        message(True, 0x100, MESSAGE_PREFIX, source.guard.echo_stream.encode()),  # our own tag: an echo
        insert(OID, "1"),
        switch,
        insert(OID, "2"),
        commit(0x100, 0x200, 0),
    ]


def _wal_read(keep_before: bool) -> list[Transaction]:
    source = WalSource(PG, "crm_to_erp", [T], LoopGuard("replicator", "erp_to_crm"), LSN(0x10), 1000)
    source.keep_echoes = keep_before
    source._slot_stats = lambda: None  # type: ignore[method-assign]

    def switch() -> None:
        source.keep_echoes = not keep_before
    cur = _Cursor(source, _wal_echo_txn(source, switch))
    return [t for t in source._read(cur, LSN(0x10)) if t.changes or t.echo]


@pytest.mark.parametrize("keep_before", [False, True])
def test_wal_echo_transaction_is_kept_or_dropped_whole(keep_before: bool) -> None:
    [txn] = _wal_read(keep_before)
    assert txn.echo
    ids = [c.after["id"] for c in txn.changes]
    assert ids == ([1, 2] if keep_before else []), "the switch took effect inside the transaction"


def test_wal_switch_applies_from_the_next_transaction() -> None:
    source = WalSource(PG, "crm_to_erp", [T], LoopGuard("replicator", "erp_to_crm"), LSN(0x10), 1000)
    source._slot_stats = lambda: None  # type: ignore[method-assign]
    script = _wal_echo_txn(source, lambda: setattr(source, "keep_echoes", True))
    script += [begin(0x300, 0, 8), message(True, 0x250, MESSAGE_PREFIX, b"erp_to_crm"), insert(OID, "3"),
               commit(0x250, 0x300, 0)]
    txns = [t for t in source._read(_Cursor(source, script), LSN(0x10)) if t.echo]
    assert [[c.after["id"] for c in t.changes] for t in txns] == [[], [3]]


# ---------------------------------------------------------------- binlog

def _event(cls: type, **attrs: Any) -> Any:
    event = object.__new__(cls)
    event.__dict__.update(attrs)
    return event


class _Stream:
    log_file = "bin.000001"
    log_pos = 4

    def __init__(self, source: BinlogSource, script: list[Any]) -> None:
        self.source, self.script = source, list(script)

    def fetchone(self) -> Any:
        while self.script:
            item = self.script.pop(0)
            if callable(item):
                item()
                continue
            self.log_pos += 100
            return item
        self.source.stop()
        return None


def _binlog_read(keep_before: bool) -> list[Transaction]:
    guard = LoopGuard("replicator", "crm_to_erp")
    source = BinlogSource(MY, "erp_to_crm", [T], guard, BinlogPosition("bin.000001", 4), 1000)
    source.keep_echoes = keep_before
    # rows are decoded by the real decoder in other tests; here only which rows are kept matters
    source._changes = lambda event, table: [RowChange(table, Op.INSERT, None, r["values"])  # type: ignore
                                            for r in event.rows]

    def switch() -> None:
        source.keep_echoes = not keep_before
    now = datetime.now(timezone.utc).timestamp()
    script = [
        _event(MariadbGtidEvent, gtid="0-1-5", timestamp=now, flags=0),
        _event(WriteRowsEvent, schema="replicator", table="checkpoint",
               _RowsEvent__rows=[{"values": {"stream": "crm_to_erp", "position": "{}"}}]),  # our own tag: an echo
        _event(WriteRowsEvent, schema="public", table="t", _RowsEvent__rows=[{"values": {"id": 1}}]),
        switch,
        _event(WriteRowsEvent, schema="public", table="t", _RowsEvent__rows=[{"values": {"id": 2}}]),
        _event(XidEvent, xid=9, timestamp=now),
    ]
    return [t for t in source._read(_Stream(source, script)) if t.echo]  # type: ignore[arg-type]


@pytest.mark.parametrize("keep_before", [False, True])
def test_binlog_echo_transaction_is_kept_or_dropped_whole(keep_before: bool) -> None:
    [txn] = _binlog_read(keep_before)
    ids = [c.after["id"] for c in txn.changes]
    assert ids == ([1, 2] if keep_before else []), "the switch took effect inside the transaction"
