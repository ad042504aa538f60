"""FastBinLogStreamReader against mysql-replication's BinLogStreamReader on the same real binlog.

One mixed binlog (single- and multi-row InnoDB transactions on several tables, an unmapped table, DDL with the
standalone GTID flag, TRUNCATE, MyISAM and Aria commits via a COMMIT query, FLUSH BINARY LOGS rotations and a
server restart in the middle) is read from the same start position by both readers, with binlog.py's reader
arguments and with other filter settings; every returned event (class, position after it, its attributes,
decoded rows) must be identical. Then BinlogSource itself, with each reader, must give the same Transactions;
and with the fast reader, its rows handed over as LEAN_ROWS tuples (fetchone(lean=True) decoding the body) must
give what the rows events gave before: the same Transactions, RowChange for RowChange and value for value (class
included), the same positions, GTIDs, commit times, decoder counts and metrics -- echo transactions, kept and
dropped, and sync watermarks included.
"""
from __future__ import annotations

import random
import threading
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import HeartbeatLogEvent, MariadbGtidEvent, QueryEvent, RotateEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from replicator import metrics
from replicator.changes import BinlogPosition, TableRef
from replicator.config import Account, Connection, Secret
from replicator.loopguard import LoopGuard
from replicator.sources import binlog as binlog_mod
from replicator.sources.binlogfast import FastBinLogStreamReader, check_library
from replicator.mypackets import PacketReader

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
    # 60 single-row events in one transaction: the reader's chunk (chunk_rows=50) ends on a single-row event
    txn(*(f"UPDATE a SET v = v + 1 WHERE id = {k % 30 + 1}" for k in range(60)))
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
    assert isinstance(reader._packets, PacketReader)  # the packets were read by mypackets.py
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


def _source_transactions(mix: dict, fast: bool, monkeypatch: pytest.MonkeyPatch, lean_rows: bool = True,
                         stats: dict | None = None, names: tuple[str, ...] = ("a", "b", "c", "m", "ar"),
                         guard: LoopGuard | None = None, keep_echoes: bool = False) -> list:
    """BinlogSource's Transactions from mix["start"] to mix["end"]; lean_rows=False: the fast reader's rows come as
    events (the path before LEAN_ROWS). ``stats`` gets the reader's and decoder's counts and the metrics."""
    server, db = mix["server"], mix["db"].dbname
    account = Account(server.user, Secret(server.password))
    conn = Connection(name="maria", kind="mariadb", host=server.host, port=server.port, database=db,
                      apply=account, capture=account, server_id=random.randrange(10 ** 6, 10 ** 9))
    tables = [TableRef(db, t) for t in names]
    direction = f"maria_to_pg_{uuid.uuid4().hex[:8]}"  # the metrics of this run alone
    with monkeypatch.context() as m:
        if not lean_rows:
            m.setattr(binlog_mod.BinlogSource, "_lean_wanted", lambda self, schema, name, columns: None)
        # _open builds BinLogStreamReader, or FastBinLogStreamReader once binlog.py is patched: set both names
        cls = FastBinLogStreamReader if fast else BinLogStreamReader
        m.setattr(binlog_mod, "BinLogStreamReader", cls)
        m.setattr(binlog_mod, "FastBinLogStreamReader", cls, raising=False)
        source = binlog_mod.BinlogSource(conn, direction, tables, guard or LoopGuard("replicator", "pg_to_maria"),
                                         BinlogPosition(*mix["start"]), chunk_rows=50, heartbeat_seconds=1.0)
        source.keep_echoes = keep_echoes
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
    if stats is not None:
        sample = metrics.REGISTRY.get_sample_value
        stats.update(
            lean_rows=getattr(source._stream, "lean_rows", 0), decoded=source._decoder.decoded_events,
            fallback=source._decoder.fallback_events, last_fallback=source._decoder.last_fallback,
            paused=getattr(source._stream, "lean_rows_paused", False),
            dropped=sample("replicator_loop_dropped_batches_total", {"direction": direction}),
            **{f"{kind} {t}": sample(f"replicator_{kind}_total", {"direction": direction, "table": str(t)})
               for t in tables for kind in ("changes_read", "zero_dates")})
    return out


def _assert_same_values(a: Any, b: Any, where: str) -> None:
    """Equal, and of the same classes all the way down (1 == 1.0 == True would hide a changed value)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} {a!r} != {type(b).__name__} {b!r}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: {list(a)} != {list(b)}"
        for k in a:
            _assert_same_values(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_values(x, y, f"{where}[{i}]")
    elif isinstance(a, datetime):
        assert a == b and a.tzinfo is b.tzinfo, f"{where}: {a!r} != {b!r}"
    elif isinstance(a, Decimal):
        assert a.as_tuple() == b.as_tuple(), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_transactions(old: list, new: list) -> None:
    """Transaction for Transaction, RowChange for RowChange, value for value with its class."""
    for i, (x, y) in enumerate(zip(old, new)):
        assert x == y, f"transaction {i} differs"
        assert (x.txid, x.position, x.position.gtid, x.commit_time, x.final, x.echo, x.watermarks) == \
               (y.txid, y.position, y.position.gtid, y.commit_time, y.final, y.echo, y.watermarks), i
        assert x.commit_time is None or x.commit_time.tzinfo is y.commit_time.tzinfo
        for j, (a, b) in enumerate(zip(x.changes, y.changes)):
            assert type(a) is type(b) and a.table == b.table and a.op is b.op, (i, j)
            _assert_same_values(a.before, b.before, f"transaction {i} change {j} before")
            _assert_same_values(a.after, b.after, f"transaction {i} change {j} after")
    assert len(old) == len(new)


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


def test_lean_rows_same_transactions(mixed_binlog: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows events as LEAN_ROWS tuples against the same reader handing them over as events."""
    old_stats: dict = {}
    new_stats: dict = {}
    old = _source_transactions(mixed_binlog, True, monkeypatch, lean_rows=False, stats=old_stats)
    # count the packets read, and the MysqlPackets made of them (none for a lean event)
    import replicator.sources.binlogfast as fast_module
    counts = {"read": 0, "made": 0}
    own_read, own_packet = PacketReader.read_data, fast_module.packet

    def read_data(self: PacketReader) -> bytes:
        counts["read"] += 1
        return own_read(self)

    def made(data: bytes) -> Any:
        counts["made"] += 1
        return own_packet(data)
    monkeypatch.setattr(PacketReader, "read_data", read_data)
    monkeypatch.setattr(fast_module, "packet", made)
    new = _source_transactions(mixed_binlog, True, monkeypatch, stats=new_stats)
    assert len(old) > 50 and any(not t.final for t in old)
    # a chunk of the 60 single-row events (the reader's inline single-row path) ended on one of them
    assert any(not t.final and len(t.changes) == 50 and {c.table.name for c in t.changes} == {"a"} for t in new)
    assert_same_transactions(old, new)
    assert old_stats["lean_rows"] == 0
    # at least the lean rows events, GTIDs and XIDs were read without a MysqlPacket
    assert counts["made"] + new_stats["lean_rows"] + 2 * len(new) <= counts["read"], (counts, len(new))
    # every rows event the decoder took came as a tuple ...
    assert new_stats["lean_rows"] == new_stats["decoded"] == old_stats["decoded"] > 50
    # ... the rest (the loop tag's, other tables') as events; decoded, fallen back and counted alike
    assert {k: v for k, v in new_stats.items() if k != "lean_rows"} == \
           {k: v for k, v in old_stats.items() if k != "lean_rows"}


def _echo_binlog(server: Any, db: Any) -> dict:
    """Echo transactions (the loop tag row first, as an applier writes it), sync watermarks, mapped rows with
    zero dates, an unmapped table, and a table whose rows the library decodes (GEOMETRY: no compiled decoder)."""
    conn = db.connect()
    start = _master_status(server)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("CREATE TABLE `checkpoint` (stream VARCHAR(64) PRIMARY KEY, pos VARCHAR(200)) ENGINE=InnoDB")
        cur.execute("CREATE TABLE watermark (stream VARCHAR(64), kind VARCHAR(16), mark VARCHAR(64), "
                    "PRIMARY KEY (stream, kind, mark)) ENGINE=InnoDB")
        cur.execute("CREATE TABLE a (id INT PRIMARY KEY, v INT, d DATE, t TIMESTAMP NULL, s SET('x','y')) "
                    "ENGINE=InnoDB")
        cur.execute("CREATE TABLE g (id INT PRIMARY KEY, p POINT) ENGINE=InnoDB")
        cur.execute("CREATE TABLE other (id INT PRIMARY KEY) ENGINE=InnoDB")
        for i in range(1, 31):
            cur.execute("BEGIN")
            echo = i % 3 == 0
            if echo:  # the tag row first, then the applied rows, then the checkpoint again
                cur.execute("INSERT INTO `checkpoint` VALUES ('pg_to_maria', %s) "
                            "ON DUPLICATE KEY UPDATE pos = VALUES(pos)", (f"tag {i}",))
            cur.execute("INSERT INTO a VALUES (%s, %s, %s, %s, 'x,y')",
                        (i, i, "0000-00-00" if i % 4 == 0 else "2020-01-02", None if i % 2 else "2021-03-04 05:06:07"))
            if i > 1:
                cur.execute("UPDATE a SET v = v + 1, d = '0000-00-00' WHERE id = %s", (i - 1,))
            if i % 5 == 0:
                cur.execute("INSERT INTO watermark VALUES ('maria_to_pg', 'low', %s)", (f"m{i}",))
            if i % 7 == 0:
                cur.execute("INSERT INTO other VALUES (%s)", (i,))
                cur.execute("INSERT INTO g VALUES (%s, POINT(%s, 1))", (i, i))
            if echo:
                cur.execute("UPDATE `checkpoint` SET pos = %s WHERE stream = 'pg_to_maria'", (f"end {i}",))
            else:
                cur.execute("INSERT INTO `checkpoint` VALUES ('maria_to_pg', %s) "
                            "ON DUPLICATE KEY UPDATE pos = VALUES(pos)", (f"ours {i}",))
            cur.execute("COMMIT")
        cur.execute("DELETE FROM a WHERE id > 20")
    conn.close()
    settings = {"host": server.host, "port": server.port, "user": server.user, "passwd": server.password}
    return {"start": start, "end": _master_status(server), "settings": settings, "db": db, "server": server}


@pytest.mark.parametrize("keep_echoes", [False, True])
def test_lean_rows_echoes_and_watermarks(maria_server: Any, maria_db: Any, monkeypatch: pytest.MonkeyPatch,
                                         keep_echoes: bool) -> None:
    mix = _echo_binlog(maria_server, maria_db)
    guard = LoopGuard(maria_db.dbname, "pg_to_maria")  # the test database is the state schema
    kwargs: dict[str, Any] = dict(names=("a", "g"), guard=guard, keep_echoes=keep_echoes)
    old_stats: dict = {}
    new_stats: dict = {}
    old = _source_transactions(mix, True, monkeypatch, lean_rows=False, stats=old_stats, **kwargs)
    new = _source_transactions(mix, True, monkeypatch, stats=new_stats, **kwargs)
    assert_same_transactions(old, new)
    echoes = [t for t in old if t.echo]
    assert len(echoes) == 10 and old_stats["dropped"] == 10
    # an echo's rows are dropped unless a sync keeps them; its watermarks (i = 15, 30) too
    assert all(bool(t.changes) is keep_echoes for t in echoes)
    assert sum(len(t.watermarks) for t in old) == (6 if keep_echoes else 4)
    assert any(c.after and c.after["d"] is None for t in old for c in t.changes)  # zero dates
    assert old_stats["zero_dates " + str(TableRef(maria_db.dbname, "a"))] > 0
    assert any(c.table.name == "g" for t in old for c in t.changes)  # rows the library decoded
    # every decoded rows event came as a tuple; a dropped echo's rows are neither (lean_rows_paused)
    assert new_stats["lean_rows"] == new_stats["decoded"] > 20
    assert new_stats["paused"] is False
    assert {k: v for k, v in new_stats.items() if k != "lean_rows"} == \
           {k: v for k, v in old_stats.items() if k != "lean_rows"}
    assert old_stats["fallback"] > 0 and "g" in (old_stats["last_fallback"] or "")
