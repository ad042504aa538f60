"""FastBinLogStreamReader against mysql-replication's BinLogStreamReader on the same real binlog.

One mixed binlog (single- and multi-row InnoDB transactions on several tables, an unmapped table, DDL with the
standalone GTID flag, TRUNCATE, MyISAM and Aria commits via a COMMIT query, FLUSH BINARY LOGS rotations and a
server restart in the middle) is read from the same start position by both readers, with binlog.py's reader
arguments and with other filter settings; every returned event (class, position after it, its attributes,
decoded rows) must be identical. Then BinlogSource itself, with each reader, must give the same Transactions.
"""
from __future__ import annotations

import random
import threading
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import HeartbeatLogEvent, MariadbGtidEvent, QueryEvent, RotateEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from replicator.changes import BinlogPosition, TableRef
from replicator.config import Account, Connection, Secret
from replicator.loopguard import LoopGuard
from replicator.sources import binlog as binlog_mod
from replicator.sources.binlogfast import FastBinLogStreamReader, check_library
from replicator.sources.binlogpackets import PacketReader

ROWS = (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)
ONLY_EVENTS = [MariadbGtidEvent, XidEvent, QueryEvent, RotateEvent, HeartbeatLogEvent, *ROWS]
SKIP_ATTRS = {"packet", "table_map", "_ctl_connection", "_RowsEvent__rows", "table_obj", "optional_metadata",
              "_RowsEvent__none_sources"}


def _master_status(server: Any) -> tuple[str, int]:
    row = server.execute("SHOW MASTER STATUS")[0]
    return row[0], int(row[1])


def _generate(server: Any, db: Any) -> None:
    conn = db.connect()
    rnd = random.Random(7)

    def run(*stmts: str, params: Any = None) -> None:
        with conn.cursor() as cur:
            for s in stmts:
                cur.execute(s, params)

    run("CREATE TABLE a (id INT PRIMARY KEY, v INT NOT NULL, name VARCHAR(40), amount DECIMAL(10,2), "
        "ts DATETIME(6), t TIMESTAMP NULL, s SET('x','y','z'), note TEXT) ENGINE=InnoDB",
        "CREATE TABLE b (id BIGINT PRIMARY KEY, payload VARBINARY(100), d DATE) ENGINE=InnoDB",
        "CREATE TABLE other (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
        "CREATE TABLE m (id INT PRIMARY KEY, v INT) ENGINE=MyISAM",
        "CREATE TABLE ar (id INT PRIMARY KEY, v INT) ENGINE=Aria TRANSACTIONAL=0")

    def txn(*stmts: str) -> None:
        run("BEGIN", *stmts, "COMMIT")

    for i in range(1, 41):  # single-row transactions
        txn(f"INSERT INTO a VALUES ({i}, {i}, 'n{i}', {Decimal(i) / 7:.2f}, '2024-01-0{i % 9 + 1} 10:00:00.{i:06d}', "
            f"{'NULL' if i % 3 else chr(39) + '2021-05-05 01:02:03' + chr(39)}, 'x,z', REPEAT('q', {i}))")
        if i % 5 == 0:
            txn(f"UPDATE a SET v = v + 1 WHERE id = {i - 1}")
        if i % 7 == 0:
            txn(f"INSERT INTO other VALUES ({i}, 1)")
    txn("UPDATE a SET v = v * 2 WHERE id <= 20", "INSERT INTO b VALUES (1, x'00ff', '2020-02-29'), (2, NULL, NULL)",
        "DELETE FROM a WHERE id > 35")  # multi-row, several tables
    run("FLUSH BINARY LOGS")
    txn("INSERT INTO b SELECT seq + 10, RANDOM_BYTES(10), '2001-01-01' FROM seq_1_to_300")  # big, several events?
    run("INSERT INTO m VALUES (1, 1)", "UPDATE m SET v = 2")  # MyISAM: BEGIN .. COMMIT queries
    run("INSERT INTO ar VALUES (1, 1)")  # Aria, non-transactional
    run("ALTER TABLE a ADD COLUMN extra INT NULL")  # standalone DDL
    for i in range(5):
        txn(f"UPDATE a SET extra = {rnd.randrange(1000)} WHERE id = {i + 1}")
    run("TRUNCATE TABLE b")
    run("FLUSH BINARY LOGS")
    txn("INSERT INTO b VALUES (5, 'x', NULL)")
    conn.close()
    server.restart()  # a new binlog file; table ids may be reused
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE c (id INT PRIMARY KEY, j LONGTEXT) ENGINE=InnoDB")
        for i in range(10):
            cur.execute("BEGIN")
            cur.execute("INSERT INTO c VALUES (%s, %s)", (i, "x" * (i * 100)))
            cur.execute("UPDATE a SET v = v + 1 WHERE id = 1")
            cur.execute("COMMIT")
        cur.execute("DELETE FROM c WHERE id < 5")
        cur.execute("UPDATE a SET name = 'last' WHERE id = 2")  # the end marker: a mapped InnoDB transaction
    conn.close()


@pytest.fixture
def mixed_binlog(maria_server: Any, maria_db: Any) -> dict:
    start = _master_status(maria_server)
    _generate(maria_server, maria_db)
    end = _master_status(maria_server)
    settings = {"host": maria_server.host, "port": maria_server.port, "user": maria_server.user,
                "passwd": maria_server.password}
    return {"start": start, "end": end, "settings": settings, "db": maria_db, "server": maria_server}


def _value(v: Any, depth: int = 0) -> Any:
    """Comparable by value: objects (columns, GTID list entries, ...) by their attributes."""
    if isinstance(v, (list, tuple)):
        return type(v)(_value(x, depth) for x in v)
    if isinstance(v, dict):
        return {k: _value(x, depth) for k, x in v.items()}
    if isinstance(v, (str, bytes, int, float, type(None), bool, frozenset, set, Decimal, datetime, type)):
        return v
    if hasattr(v, "__dict__") and depth < 3:
        return type(v).__name__, {k: _value(x, depth + 1) for k, x in vars(v).items() if k not in SKIP_ATTRS}
    return type(v).__name__


def _describe(stream: Any, event: Any) -> tuple:
    attrs = {k: _value(v) for k, v in vars(event).items() if k not in SKIP_ATTRS}
    rows = event.rows if isinstance(event, ROWS) else None
    packet = event.packet
    pk = (getattr(packet, "read_bytes", None), packet.log_pos, packet.event_size, packet.timestamp,
          packet.server_id, packet.flags, packet.event_type)
    return type(event).__name__, stream.log_file, stream.log_pos, attrs, rows, pk


def _read(cls: type, mix: dict, until_heartbeats: int = 0, **kwargs: Any) -> tuple[list, list, Any]:
    args = dict(connection_settings=dict(mix["settings"]), server_id=random.randrange(10 ** 6, 10 ** 9),
                resume_stream=True, log_file=mix["start"][0], log_pos=mix["start"][1], enable_logging=False)
    args.update(kwargs)
    stream = cls(**args)
    out, heartbeats = [], []
    try:
        while True:
            event = stream.fetchone()
            if event is None:
                break
            if isinstance(event, HeartbeatLogEvent):
                heartbeats.append(_describe(stream, event))
                if (stream.log_file, stream.log_pos) >= mix["end"] and len(heartbeats) >= until_heartbeats:
                    break
                continue
            out.append(_describe(stream, event))
    finally:
        stream.close()
    return out, heartbeats, stream


def _binlog_py_args(db: str) -> dict:
    return dict(only_events=ONLY_EVENTS, only_schemas=sorted({db, "replicator"}),
                only_tables=sorted({"a", "b", "c", "m", "ar", "replicator_checkpoint"}))


def test_library_supported() -> None:
    assert check_library() is None


@pytest.mark.parametrize("config", ["binlog_py", "all_events", "all_tables", "ignored"])
def test_same_events(mixed_binlog: dict, config: str) -> None:
    mix = mixed_binlog
    db = mix["db"].dbname
    binlog_mod._install_table_map_cache()  # as BinlogSource runs it: both readers see the patched TableMapEvent
    kwargs: dict[str, Any] = {"blocking": False}
    if config == "binlog_py":
        kwargs.update(_binlog_py_args(db))
    elif config == "all_events":
        kwargs.update(only_schemas=[db])
    elif config == "all_tables":
        kwargs.update(only_events=ONLY_EVENTS + [TableMapEvent])
    else:
        kwargs.update(ignored_tables=["other"], ignored_events=[QueryEvent], only_schemas=[db, "mysql"])
    lib, _, _ = _read(BinLogStreamReader, mix, **kwargs)
    fast, _, reader = _read(FastBinLogStreamReader, mix, **kwargs)
    assert len(lib) > 100
    assert reader.fast_events > 50 and reader.library_events > 0
    assert isinstance(reader._packets, PacketReader)  # the packets were read by sources/binlogpackets.py
    for i, (x, y) in enumerate(zip(lib, fast)):
        if x != y:  # name the parts that differ, not 300 lines of repr
            parts = [n for n, (a, b) in enumerate(zip(x, y)) if a != b]
            attrs = {k: (x[3].get(k), y[3].get(k)) for k in set(x[3]) | set(y[3])
                     if x[3].get(k) != y[3].get(k)} if 3 in parts else {}
            raise AssertionError(f"event {i} ({x[0]}) differs in parts {parts}: {attrs!r:.600}")
    assert len(lib) == len(fast)
    names = {e[0] for e in lib}
    if config == "binlog_py":
        assert names == {"MariadbGtidEvent", "XidEvent", "QueryEvent", "RotateEvent", "WriteRowsEvent",
                         "UpdateRowsEvent", "DeleteRowsEvent"}
        assert any(e[0] == "QueryEvent" and e[3]["query"] == "COMMIT" for e in lib)
        assert any(e[0] == "MariadbGtidEvent" and e[3]["flags"] & 1 for e in lib)
        assert len({e[1] for e in lib}) >= 4  # two flushes and a restart
    assert (lib[-1][1], lib[-1][2]) == mix["end"] or config == "ignored"


def test_heartbeats_and_end_of_stream(mixed_binlog: dict) -> None:
    mix = mixed_binlog
    kwargs = dict(blocking=True, slave_heartbeat=0.3, **_binlog_py_args(mix["db"].dbname))
    kwargs["connection_settings"] = dict(mix["settings"], read_timeout=5)
    lib, lib_hb, _ = _read(BinLogStreamReader, mix, until_heartbeats=2, **kwargs)
    fast, fast_hb, reader = _read(FastBinLogStreamReader, mix, until_heartbeats=2, **kwargs)
    assert lib == fast
    assert lib_hb and fast_hb
    # heartbeats come with time and name the server's current end of the binlog, which other work on the
    # shared server may move between the two reads: compare what both readers made of them, not the position
    assert lib_hb[-1][0] == fast_hb[-1][0] == "HeartbeatLogEvent"
    assert lib_hb[-1][1] == fast_hb[-1][1]  # the same binlog file
    assert set(lib_hb[-1][3]) == set(fast_hb[-1][3])  # the same attributes decoded
    assert reader.fast_events > 0


def test_end_log_pos_and_skip_to_timestamp(mixed_binlog: dict) -> None:
    mix = mixed_binlog
    base = dict(blocking=False, **_binlog_py_args(mix["db"].dbname))
    full, _, _ = _read(BinLogStreamReader, mix, **base)
    middle = full[len(full) // 2]
    for extra in ({"end_log_pos": middle[2]} if middle[1] == mix["start"][0] else {},
                  {"skip_to_timestamp": 1}):
        if not extra:
            continue
        lib, _, _ = _read(BinLogStreamReader, mix, **base, **extra)
        fast, _, _ = _read(FastBinLogStreamReader, mix, **base, **extra)
        assert lib == fast, extra


def _source_transactions(mix: dict, fast: bool, monkeypatch: pytest.MonkeyPatch) -> list:
    server, db = mix["server"], mix["db"].dbname
    account = Account(server.user, Secret(server.password))
    conn = Connection(name="maria", kind="mariadb", host=server.host, port=server.port, database=db,
                      apply=account, capture=account, server_id=random.randrange(10 ** 6, 10 ** 9))
    tables = [TableRef(db, t) for t in ("a", "b", "c", "m", "ar")]
    with monkeypatch.context() as m:
        # _open builds BinLogStreamReader, or FastBinLogStreamReader once binlog.py is patched: set both names
        cls = FastBinLogStreamReader if fast else BinLogStreamReader
        m.setattr(binlog_mod, "BinLogStreamReader", cls)
        m.setattr(binlog_mod, "FastBinLogStreamReader", cls, raising=False)
        source = binlog_mod.BinlogSource(conn, "maria_to_pg", tables, LoopGuard("replicator", "pg_to_maria"),
                                         BinlogPosition(*mix["start"]), chunk_rows=50, heartbeat_seconds=1.0)
        timer = threading.Timer(120, source.stop)
        timer.start()
        out = []
        try:
            gen = source.transactions()
            for txn in gen:
                out.append(txn)
                if txn.final and (txn.position.file, txn.position.pos) >= mix["end"]:
                    break
            source.stop()
            gen.close()
        finally:
            timer.cancel()
        assert type(source._stream) is cls
        # the fast reader handed GTID and XID events over as tuples (fetchone(lean=True)), the library as objects
        assert getattr(source._stream, "lean_events", False) is fast
    return out


def test_binlog_source_same_transactions(mixed_binlog: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = _source_transactions(mixed_binlog, False, monkeypatch)
    fast = _source_transactions(mixed_binlog, True, monkeypatch)
    assert len(lib) > 50
    assert any(not t.final for t in lib)  # the 300-row insert came in chunks
    assert any(c.op.name == "TRUNCATE" for t in lib for c in t.changes)
    for i, (x, y) in enumerate(zip(lib, fast)):
        assert x == y, f"transaction {i} differs"
        assert x.position.gtid == y.position.gtid
    assert len(lib) == len(fast)
    assert (lib[-1].position.file, lib[-1].position.pos) == mixed_binlog["end"]
