"""The MariaDB applier's locked read (`MariaDBApplier.read_rows`: keys formatted by the Formatter, rows
parsed by `_LockedRows`, DATETIME/TIMESTAMP decoded by `datetime_text`) returns what the generic `Applier.read_rows` (PyMySQL's
own escaping and decoders) returns, value for value and type for type, on random rows and keys."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from replicator.appliers.base import Applier
from replicator.appliers.mariadb import MariaDBApplier
from replicator.changes import TableRef
from replicator.config import Account, Connection, Secret
from replicator.errors import RetriableError

COLUMNS = ["dt6", "dt0", "dt3", "ts", "d", "t", "amount", "name", "note", "b", "f", "big"]
DDL = ("CREATE TABLE item (id BIGINT PRIMARY KEY, dt6 DATETIME(6), dt0 DATETIME, dt3 DATETIME(3), "
       "ts TIMESTAMP(6) NULL, d DATE, t TIME(6), amount DECIMAL(12,2), name VARCHAR(40), note TEXT, "
       "b VARBINARY(16), f DOUBLE, big MEDIUMTEXT)")
DDL2 = "CREATE TABLE pair (a VARCHAR(20), b INT, dt DATETIME(6), PRIMARY KEY (a, b))"

moments = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999))
texts = st.text(alphabet="ab'\"\\%_ \u00e9\u4e2d\U0001f600\n", max_size=12)
rows = st.fixed_dictionaries({
    "dt6": st.none() | moments, "dt0": st.none() | moments, "dt3": st.none() | moments,
    "ts": st.none() | st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2038, 1, 1)),
    "d": st.none() | st.dates(min_value=datetime(1000, 1, 1).date()),
    "t": st.none() | st.timedeltas(min_value=-timedelta(hours=838), max_value=timedelta(hours=838)),
    "amount": st.none() | st.decimals(min_value=-10**9, max_value=10**9, places=2),
    "name": st.none() | texts, "note": st.none() | texts, "b": st.none() | st.binary(max_size=16),
    "f": st.none() | st.floats(allow_nan=False, allow_infinity=False, width=32),
    # every length form of the protocol: one byte (< 251), 0xFC + 2 bytes, 0xFD + 3 bytes
    "big": st.none() | st.sampled_from([0, 1, 249, 250, 251, 252, 300, 65535, 65536, 70000]).map(lambda n: "x" * n),
})


@pytest.fixture
def applier(maria_db: Any) -> Any:
    conn = maria_db.connect()
    with conn.cursor() as cur:
        cur.execute(DDL)
        cur.execute(DDL2)
    conn.close()
    acc = Account(maria_db.user, Secret(maria_db.password))
    a = MariaDBApplier(Connection("erp", "mariadb", maria_db.host, maria_db.port, maria_db.dbname, acc, acc,
                                  server_id=4243), "crm_to_erp")
    a.connect()
    a.table = TableRef(maria_db.dbname, "item")
    a.pair = TableRef(maria_db.dbname, "pair")
    a.load_types([a.table, a.pair])
    yield a
    a.rollback()
    a.close()


def _typed(found: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple((type(v), v) for v in row) for row in found]


def _state(a: MariaDBApplier) -> tuple[Any, ...]:
    """What the connection is left with after a read: PyMySQL's status and count, and a next query working."""
    db = a.db
    return db.server_status, db._affected_rows, db.insert_id(), a.query("SELECT 1", [])


def _counted(a: MariaDBApplier, fn: Any, *args: Any) -> tuple[Any, int]:
    """fn(*args) and how many packets PyMySQL's own Connection._read_packet read meanwhile."""
    db = a.db
    calls = [0]
    own = db._read_packet

    def counting(*xs: Any) -> Any:
        calls[0] += 1
        return own(*xs)
    db._read_packet = counting
    try:
        return fn(*args), calls[0]
    finally:
        del db._read_packet


def _both(a: MariaDBApplier, table: TableRef, key: tuple[str, ...], cols: list[str],
          keys: list[tuple[Any, ...]]) -> tuple[Any, Any]:
    a.query("SELECT 1", [])  # both reads start from the same state (no keys: no statement at all)
    found, own = _counted(a, a.read_rows, table, key, cols, keys)
    fast = (_typed(found), _state(a))
    # the row packets and the EOF were read by mypackets.PacketReader: PyMySQL read only the first packet
    # and the column definitions and their EOF, per statement
    statements = (len(keys) + 999) // 1000
    assert own == statements * (1 + len(key) + len(cols) + 1), (own, statements)
    plain = (_typed(Applier.read_rows(a, table, key, cols, keys)), _state(a))
    return fast, plain


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.lists(rows, min_size=1, max_size=20), asked=st.lists(st.integers(0, 25), max_size=25),
       cols=st.permutations(COLUMNS))
def test_read_rows_equals_the_generic_read(applier: Any, data: list[dict[str, Any]], asked: list[int],
                                           cols: list[str]) -> None:
    a = applier
    a.rollback()  # a transaction of its own (begin() would write the tag: no state tables here)
    a.execute(f"DELETE FROM {a.quote_table(a.table)}", [])
    for i, row in enumerate(data):
        a.execute(f"INSERT INTO {a.quote_table(a.table)} (id, {', '.join(COLUMNS)}) "
                  f"VALUES (%s{', %s' * len(COLUMNS)})", a.convert_row(a.table, {"id": i, **{c: row[c] for c in COLUMNS}}))
    keys = [(k,) for k in asked]
    fast, plain = _both(a, a.table, ("id",), cols, keys)
    assert fast == plain
    assert {r[0][1] for r in fast[0]} == {k for k in asked if k < len(data)}
    a.rollback()


def test_zero_dates_and_many_keys(applier: Any) -> None:
    """Zero dates (kept as text by PyMySQL), composite keys with quotes, and more than one statement's
    1000 keys."""
    a = applier
    a.rollback()  # a transaction of its own (begin() would write the tag: no state tables here)
    a.execute("SET SESSION sql_mode = ''", [])
    a.execute(f"INSERT INTO {a.quote_table(a.table)} (id, dt6, dt0, d) VALUES "
              "(1, '0000-00-00 00:00:00', '2026-02-00 10:00:00', '0000-00-00'), (2, NULL, '2026-01-01', NULL)", [])
    a.execute(f"INSERT INTO {a.quote_table(a.table)} (id, dt6) SELECT seq, '2026-01-01 00:00:00.5' "
              "FROM seq_3_to_2600", [])
    fast, plain = _both(a, a.table, ("id",), ["dt6", "dt0", "d"], [(k,) for k in range(2600, 0, -1)])
    assert fast == plain and len(fast[0]) == 2600
    one = next(r for r in fast[0] if r[0] == (int, 1))  # PyMySQL keeps a zero date as its text
    assert one == ((int, 1), (str, "0000-00-00 00:00:00.000000"), (str, "2026-02-00 10:00:00"), (str, "0000-00-00")), one
    assert next(r for r in fast[0] if r[0] == (int, 3))[1] == (datetime, datetime(2026, 1, 1, 0, 0, 0, 500000))
    names = ["it's", "back\\slash", "50%", 'dq"', "plain"]
    for n, name in enumerate(names):
        a.execute(f"INSERT INTO {a.quote_table(a.pair)} (a, b, dt) VALUES (%s, %s, %s)",
                  [name, n, datetime(2026, 1, 1, 0, 0, n, n)])
    fast, plain = _both(a, a.pair, ("a", "b"), ["dt"], [(name, n) for n, name in enumerate(names)] + [("x", 1)])
    assert fast == plain and len(fast[0]) == len(names)
    a.rollback()


def _outcome(fn: Any, *args: Any) -> tuple[Any, ...]:
    try:
        return ("rows", _typed(fn(*args)))
    except Exception as exc:  # noqa: BLE001 - what is raised is what is compared
        return (type(exc), str(exc))


def _locked_behind(a: MariaDBApplier, maria_db: Any, n: int) -> Any:
    """n rows of 2000 bytes each (far more than the server's 16 KiB net buffer, so rows are sent before
    the wait), the last one locked by another session; returns that session."""
    a.rollback()
    a.execute(f"DELETE FROM {a.quote_table(a.table)}", [])
    a.execute(f"INSERT INTO {a.quote_table(a.table)} (id, big, note) SELECT seq, REPEAT('x', 2000), NULL "
              f"FROM seq_1_to_{n}", [])
    a.execute("COMMIT", [])
    other = maria_db.connect()
    with other.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(f"SELECT id FROM {a.quote_table(a.table)} WHERE id = %s FOR UPDATE", (n,))
    return other


def _packets_read(monkeypatch: Any) -> list[int]:
    """How many packets the locked read's PacketReaders read, counted from now on."""
    import replicator.appliers.mariadb as module
    from replicator.mypackets import PacketReader
    count = [0]

    class Counting(PacketReader):
        __slots__ = ()

        def read_data(self) -> bytes:
            count[0] += 1
            return super().read_data()
    monkeypatch.setattr(module, "PacketReader", Counting)
    return count


def test_a_lock_wait_timeout_mid_result(applier: Any, maria_db: Any, monkeypatch: Any) -> None:
    """The server's error packet after rows were sent: the same error (a retried lock timeout) and the
    connection left in the same state, usable."""
    a = applier
    count = _packets_read(monkeypatch)
    other = _locked_behind(a, maria_db, 300)
    try:
        a.execute("SET SESSION innodb_lock_wait_timeout = 1", [])
        keys = [(k,) for k in range(1, 301)]
        a.query("SELECT 1", [])  # the same state before each read
        fast = _outcome(a.read_rows, a.table, ("id",), ["big", "note"], keys), _state(a)
        a.rollback()
        a.query("SELECT 1", [])
        plain = _outcome(Applier.read_rows, a, a.table, ("id",), ["big", "note"], keys), _state(a)
        assert fast == plain
        assert fast[0][0] is RetriableError and "Lock wait timeout" in fast[0][1], fast[0]
        assert count[0] == 300  # 299 rows, then the error packet: the error came mid-result
        a.rollback()
        other.rollback()
        ok = _outcome(a.read_rows, a.table, ("id",), ["note"], keys[:3])  # and the next read works
        assert ok == ("rows", [((int, k), (type(None), None)) for k in (1, 2, 3)])
    finally:
        other.close()


def test_a_lost_connection_mid_result(applier: Any, maria_db: Any) -> None:
    """The socket shut down (Applier.interrupt) while the read waits after rows were sent: the same
    retried lost-connection error from both paths."""
    a = applier
    other = _locked_behind(a, maria_db, 300)
    try:
        a.execute("SET SESSION innodb_lock_wait_timeout = 20", [])
        keys = [(k,) for k in range(1, 301)]
        outcomes = []
        for fn in (MariaDBApplier.read_rows, Applier.read_rows):
            timer = threading.Timer(1.0, a.interrupt)
            timer.start()
            outcomes.append(_outcome(fn, a, a.table, ("id",), ["big"], keys))
            timer.join()
            assert a.db is not None and a.db._sock is None  # closed, as PyMySQL closes it
            a.close()
            a.connect()
            a.execute("SET SESSION innodb_lock_wait_timeout = 20", [])
        assert outcomes[0] == outcomes[1]
        assert outcomes[0][0] is RetriableError and "Lost connection" in outcomes[0][1], outcomes[0]
        assert a.query("SELECT 1", []) == [(1,)]
    finally:
        other.close()
