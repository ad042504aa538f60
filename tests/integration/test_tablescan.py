"""replicator.sources.tablescan against real servers.

The key tests are differential: rows of every type are written, the real change stream (WalSource with
pgoutput, BinlogSource with the compiled row decoder) is read back, and the scanner must return, for every
row still in the table, exactly the stream's last after-image: the same columns in the same order, equal
values of the same Python types (floats bit for bit, Decimals digit for digit, the same tzinfo).
Then pagination, key values passed back, by_keys, lock_keys and the errors for what cannot be matched.
"""
from __future__ import annotations

import random
import struct
import threading
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Iterator

import psycopg2
import psycopg2.errors
import pymysql
import pytest

from replicator.appliers.mariadb import MariaDBApplier
from replicator.appliers.postgres import PostgresApplier
from replicator.changes import LSN, BinlogPosition, Op, RowChange, TableRef, ZeroDatedRow, zero_dated
from replicator.config import Account, Connection, Secret
from replicator.testing.devservers import Database
from replicator.loopguard import LoopGuard
from replicator.sources.binlog import BinlogSource
from replicator.sources.wal import WalSource
from replicator.sources.tablescan import TableScanError, TableScanner
from tests.integration.test_rowdecode_differential import (ENUMS, INTS, NUMBERS, OLD_TEMPORAL, STRINGS, TEMPORAL,
                                                            Table, run_workload)

PUBLICATION = "scanpub"


# --- comparing ----------------------------------------------------------------------------------------------------

def assert_same(got: Any, want: Any, where: str) -> None:
    assert type(got) is type(want), f"{where}: {type(got).__name__} {got!r} != stream's {type(want).__name__} {want!r}"
    if isinstance(want, ZeroDatedRow):  # the scanner finds the stream's zero dates, column by column
        assert set(got.zero_dates) == set(want.zero_dates), f"{where}: zero dates {got.zero_dates} != {want.zero_dates}"
    if isinstance(want, dict):
        assert list(got) == list(want), f"{where}: columns {list(got)} != stream's {list(want)}"
        for k in want:
            assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, float):
        assert struct.pack("<d", got) == struct.pack("<d", want), f"{where}: {got!r} != stream's {want!r}"
    elif isinstance(want, Decimal):
        assert got.as_tuple() == want.as_tuple(), f"{where}: {got!r} != stream's {want!r}"
    elif isinstance(want, datetime):
        assert got == want and got.tzinfo is want.tzinfo, f"{where}: {got!r} != stream's {want!r}"
    else:
        assert got == want, f"{where}: {got!r} != stream's {want!r}"


def final_images(changes: list[RowChange], key: str = "id") -> dict[TableRef, dict[Any, dict]]:
    """The last after-image of every row still there, per table, from the stream's changes in order."""
    out: dict[TableRef, dict[Any, dict]] = {}
    for ch in changes:
        rows = out.setdefault(ch.table, {})
        if ch.op is Op.DELETE:
            rows.pop(ch.before[key], None)
        elif ch.op in (Op.INSERT, Op.UPDATE):
            rows[ch.after[key]] = zero_dated(dict(ch.after), getattr(ch.after, "zero_dates", ()))
    return out


def scan_all(scanner: TableScanner, limit: int) -> list[dict]:
    rows: list[dict] = []
    after = None
    while True:
        part = scanner.chunk(after, limit)
        assert len(part) <= limit
        if not part:
            return rows
        rows.extend(part)
        after = scanner.key_of(part[-1])


def assert_scan_equals_stream(scanner: TableScanner, want: dict[Any, dict], limit: int = 37) -> int:
    got = {r["id"]: r for r in scan_all(scanner, limit)}
    assert sorted(got) == sorted(want), f"{scanner.table}: keys differ from the stream's"
    values = 0
    for key, row in want.items():
        assert_same(got[key], row, f"{scanner.table} id {key}")
        values += len(row)
    return values


def check_pagination(scanner: TableScanner, limit: int, count: int) -> list[dict]:
    """Chunks of `limit` visit every row exactly once, in the server's order (one big chunk is that order)."""
    everything = scanner.chunk(None, 100_000)
    assert len(everything) == count
    paged = scan_all(scanner, limit)
    keys = [repr(scanner.key_of(r)) for r in paged]  # repr: a NaN key equals itself
    assert keys == [repr(scanner.key_of(r)) for r in everything]
    assert len(set(keys)) == count, "a row was visited twice"
    assert repr(paged) == repr(everything)
    assert scanner.chunk(scanner.key_of(paged[-1]), limit) == []
    # every key passed back finds its row again
    found = scanner.by_keys([scanner.key_of(r) for r in paged])
    assert sorted(map(repr, found)) == sorted(map(repr, paged))
    return paged


def counting_queries(monkeypatch: pytest.MonkeyPatch, db: Any) -> list[tuple[str, list]]:
    seen: list[tuple[str, list]] = []
    original = db.query

    def query(sql: str, params: Any) -> list[tuple]:
        seen.append((sql, list(params)))
        return original(sql, params)
    monkeypatch.setattr(db, "query", query)
    return seen


# --- PostgreSQL ---------------------------------------------------------------------------------------------------

PG_SCHEMA = """
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN flag AS boolean;
CREATE DOMAIN code3 AS char(3);
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE pair AS (a int, b text);
CREATE TABLE t_types (
    id int PRIMARY KEY,
    b boolean, bya bytea, i2 smallint, i4 int, i8 bigint, f4 real, f8 double precision, n numeric,
    n30 numeric(30,10), d date, t time, t3 time(3), ttz timetz, ts timestamp, ts3 timestamp(3), tstz timestamptz,
    iv interval, u uuid, js json, jb jsonb, tx text, vc varchar(20), ch char(5), ch1 "char", nm name, ip inet,
    net cidr, mac macaddr, mo money, bt bit(4), vb varbit, ia int[], ta text[], ba bool[], dp posint, df flag,
    dc code3, e mood, p pair, r tstzrange, x xml, o oid, tv tsvector, pt point,
    g int GENERATED ALWAYS AS (id * 2) STORED
);
CREATE TABLE t_cols (id int PRIMARY KEY, a text, b int, c text);
CREATE TABLE t_bad (id int PRIMARY KEY, d date, tm time)
"""
PG_ROWS = """
INSERT INTO t_types VALUES (1, true, '\\x00ff10', -32768, -2147483648, 9223372036854775807, 0.1, 0.30000000000000004,
    1.50, 12345678901234567890.0123456789, '2024-02-29', '12:34:56.789012', '23:59:59.999', '12:00:00+02',
    '2024-02-29 23:59:59.999999', '1999-12-31 23:59:59.5', '2024-03-10 07:30:00.123456+05:30', '1 day 02:03:04.5',
    '6ba7b810-9dad-11d1-80b4-00c04fd430c8', '{ "a" : [1, 2.5, null],  "a": "dup" }', '{"b": 1, "a": "😀"}',
    'Grüße 👋🏽 漢字 "q" \\ %s', 'ab', 'ab', 'z', 'a name', '10.0.0.1', '10.0.0.0/8', '08:00:2b:01:02:03', 12.5,
    B'1010', B'101', '{1,2,NULL}', '{"a,b",NULL,"\\"q\\"",""}', '{t,f}', 5, false, 'xy', 'happy', ROW(1, 'q'),
    '[2020-01-01,2021-01-01)', '<?xml version="1.0" encoding="UTF-8"?><a>x</a>', 4294967295, 'a fat cat', '(1.5,-2)');
INSERT INTO t_types (id) VALUES (2);
INSERT INTO t_types (id, b, bya, f4, f8, n, n30, d, ts, tstz, iv, js, jb, tx, vc, ch, ia, ta, p, x, dp, dc, e)
VALUES (3, false, '\\x', '-0', 'Infinity', 'NaN', -0.0000000001, '0001-01-01', '0001-01-01 00:00:00',
    '1970-01-01 00:00:00+00', '-1 days -00:00:01.5', '[]', '{}', '', '', '', '{}', '{}', ROW(NULL, NULL), '<a/>', 1,
    'a  ', 'sad');
INSERT INTO t_types (id, f4, f8, n, i2, i8, tx, t, ts, tstz) VALUES (4, 'NaN', '-Infinity', '-Infinity', 32767,
    -9223372036854775808, repeat('x', 5000) || '€', '00:00:00', '9999-12-31 23:59:59.999999',
    '2038-01-19 03:14:07.999999+00');
INSERT INTO t_types (id, tx) VALUES (5, 'deleted below');
UPDATE t_types SET tx = 'updated 😀', n = 2.000 WHERE id = 1;
DELETE FROM t_types WHERE id = 5;
INSERT INTO t_cols VALUES (1, 'not published', 10, 'neither'), (2, NULL, NULL, NULL);
INSERT INTO t_bad VALUES (1, 'infinity', NULL), (2, NULL, '24:00:00'), (3, '2020-01-01', '12:00:00')
"""
PG_STREAM_CHANGES = 9  # rows of t_types and t_cols written above (t_bad is not published)


def pg_connection(db: Database, publication: str = PUBLICATION) -> Connection:
    acc = Account(db.user, Secret(db.password))
    return Connection("crm", "postgresql", db.host, db.port, db.dbname, acc, acc, sslmode="disable",
                      slot=db.dbname, publication=publication)


def pg_applier(db: Database, publication: str = PUBLICATION) -> PostgresApplier:
    applier = PostgresApplier(pg_connection(db, publication), "erp_to_crm")
    applier.connect()
    return applier


def pg_exec(db: Database, *statements: str) -> None:
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            for s in statements:
                cur.execute(s)
    finally:
        conn.close()


def wal_changes(db: Database, start: LSN, tables: list[TableRef], expected: int) -> list[RowChange]:
    """Row changes of `tables` read through the daemon's own WalSource (pgoutput), from `start`."""
    source = WalSource(pg_connection(db), "crm_to_erp", tables, LoopGuard("replicator", "erp_to_crm"), start,
                       chunk_rows=100_000)
    timer = threading.Timer(60, source.stop)
    timer.start()
    out: list[RowChange] = []
    try:
        gen = source.transactions()
        for txn in gen:
            out.extend(txn.changes)
            if len(out) >= expected:
                break
        source.stop()
        gen.close()
    finally:
        timer.cancel()
    assert len(out) == expected, f"{len(out)} changes from the WAL stream, {expected} expected"
    return out


@pytest.fixture(scope="module")
def pg_env(pg_server: Any) -> Iterator[dict]:
    pg_server.start()
    db = pg_server.create_database(f"t_tablescan_{uuid.uuid4().hex[:8]}")
    applier = None
    try:
        pg_exec(db, *filter(str.strip, PG_SCHEMA.split(";")))
        pg_exec(db, f"CREATE PUBLICATION {PUBLICATION} FOR TABLE t_types, t_cols (id, b)")
        conn = db.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (db.dbname,))
                start = LSN.parse(cur.fetchone()[0])
                for stmt in filter(str.strip, PG_ROWS.split(";\n")):
                    cur.execute(stmt.replace("%", "%%"), ())
        finally:
            conn.close()
        tables = [TableRef("public", "t_types"), TableRef("public", "t_cols")]
        changes = wal_changes(db, start, tables, PG_STREAM_CHANGES)
        applier = pg_applier(db)
        yield {"db": db, "applier": applier, "stream": final_images(changes)}
    finally:
        if applier is not None:
            applier.close()
        pg_server.start()
        pg_server.drop_database(db.dbname)


def test_pg_scan_equals_the_wal_stream(pg_env: dict) -> None:
    applier, stream = pg_env["applier"], pg_env["stream"]
    types = TableRef("public", "t_types")
    scanner = TableScanner(applier, types, ["id"])
    # pgoutput sends no generated column; the scanner leaves it out too
    assert scanner.columns == tuple(stream[types][1]) and "g" not in scanner.columns
    assert scanner.key == ("id",)
    values = assert_scan_equals_stream(scanner, stream[types], limit=2)
    assert values > 150
    row = {r["id"]: r for r in scan_all(scanner, 10)}
    # the stream's own quirks, for the record: output-function text, domain and enum values as text
    assert row[1]["b"] is True and row[1]["df"] == "f" and row[1]["dp"] == "5" and row[1]["ch"] == "ab   "
    assert row[1]["ip"] == "10.0.0.1" and row[3]["p"] == "(,)" and row[3]["f4"] == 0.0
    # a publication with a column list: the stream has only those columns, and so has the scanner
    cols = TableRef("public", "t_cols")
    scanner = TableScanner(applier, cols, ["id"])
    assert scanner.columns == ("id", "b") == tuple(stream[cols][1])
    assert_scan_equals_stream(scanner, stream[cols])


def test_pg_values_python_cannot_hold_are_their_text_as_in_the_stream(pg_env: dict) -> None:
    """infinity and 24:00:00 are valid PostgreSQL values: the stream carries their text (the target decides,
    sources/pgoutput.py), and so does the scanner."""
    scanner = TableScanner(pg_env["applier"], TableRef("public", "t_bad"), ["id"])
    assert scanner.chunk(None, 10) == [{"id": 1, "d": "infinity", "tm": None}, {"id": 2, "d": None, "tm": "24:00:00"},
                                       {"id": 3, "d": datetime(2020, 1, 1).date(),
                                        "tm": datetime(2000, 1, 1, 12).time()}]


def test_pg_composite_key_pagination_by_keys_and_estimate(pg_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    db, applier = pg_env["db"], pg_env["applier"]
    pg_exec(db, "CREATE TABLE pages (a int, b text, v int, PRIMARY KEY (a, b))",
            "INSERT INTO pages SELECT a, b, a * 10 FROM generate_series(1, 7) a, unnest(ARRAY['a', 'B', 'c']) b",
            "ANALYZE pages")
    scanner = TableScanner(applier, TableRef("public", "pages"), ["a", "b"])
    server_order = [tuple(r) for r in pg_db_query(db, "SELECT a, b FROM pages ORDER BY a, b")]
    paged = check_pagination(scanner, 3, 21)
    assert [scanner.key_of(r) for r in paged] == server_order
    got = scanner.by_keys([(1, "a"), (7, "c"), (99, "zz"), (1, "A")])  # 'A' is not 'a' here
    assert sorted(got, key=lambda r: r["a"]) == [{"a": 1, "b": "a", "v": 10}, {"a": 7, "b": "c", "v": 70}]
    assert scanner.by_keys([]) == []
    assert scanner.estimate() == 21
    # 2500 keys: a few statements, not one per key
    seen = counting_queries(monkeypatch, applier)
    keys = [(a, b) for a in range(1, 1000) for b in ("a", "B", "c")][:2500]
    assert len(scanner.by_keys(keys)) == 21
    assert len(seen) <= 3
    assert applier.db.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE  # rolled back


def pg_db_query(db: Database, sql: str, params: Any = None) -> list[tuple]:
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


PG_KEY_TABLES = {
    "k_uuid": ("uuid", ["'6ba7b810-9dad-11d1-80b4-00c04fd430c8'", "'00000000-0000-0000-0000-000000000000'",
                        "'ffffffff-ffff-4fff-bfff-ffffffffffff'", "'1b4e28ba-2fa1-4d2e-883f-0016d3cca427'"]),
    "k_tstz": ("timestamptz", ["'2024-03-10 07:30:00.123456+05:30'", "'1970-01-01 00:00:00+00'",
                               "'2024-03-10 02:00:00.123457+00'", "'0001-01-01 00:00:00+00'"]),
    "k_bytea": ("bytea", ["'\\x'", "'\\x00'", "'\\x0000'", "'\\xff'", "'\\x00ff'"]),
    "k_numeric": ("numeric", ["1.50", "-0.001", "'NaN'", "12345678901234567890.12345678901"]),
    "k_float": ("double precision", ["0.1", "0.30000000000000004", "'-Infinity'", "-0.5", "1e300"]),
    "k_domain": ("posint", ["5", "10", "9", "100"]),
    "k_enum": ("mood", ["'happy'", "'sad'", "'ok'"]),
    "k_char": ("char(3)", ["'a'", "'a b'", "'B'", "''"]),
    "k_interval": ("interval", ["'1 day'", "'-1 day 00:00:01.5'", "'25 hours'", "'1 mon'"]),
    "k_inet": ("inet", ["'10.0.0.1'", "'10.0.0.1/8'", "'::1'", "'192.168.0.0/16'"]),
    "k_ts": ("timestamp(3)", ["'2024-01-01 00:00:00.5'", "'2024-01-01'", "'1999-12-31 23:59:59.999'"]),
    "k_bool": ("boolean", ["true", "false"]),
}


def test_pg_key_values_of_every_kind_are_passed_back(pg_env: dict) -> None:
    db, applier = pg_env["db"], pg_env["applier"]
    for name, (sqltype, values) in PG_KEY_TABLES.items():
        pg_exec(db, f"CREATE TABLE {name} (k {sqltype} PRIMARY KEY, n serial)",
                *(f"INSERT INTO {name} (k) VALUES ({v})" for v in values))
        scanner = TableScanner(applier, TableRef("public", name), ["k"])
        check_pagination(scanner, 2, len(values))
    # a two-column key of mixed types
    pg_exec(db, "CREATE TABLE k_mixed (b boolean, t timestamptz, u uuid, v int, PRIMARY KEY (b, t, u))",
            "INSERT INTO k_mixed SELECT i % 2 = 0, '2024-01-01'::timestamptz + (i % 3) * interval '1 microsecond', "
            "md5(i::text)::uuid, i FROM generate_series(1, 25) i")
    check_pagination(TableScanner(applier, TableRef("public", "k_mixed"), ["b", "t", "u"]), 4, 25)


def test_pg_lock_keys_holds_a_share_lock_until_the_caller_ends_the_transaction(pg_env: dict) -> None:
    db = pg_env["db"]
    pg_exec(db, "CREATE TABLE locked (id int PRIMARY KEY, v int)", "INSERT INTO locked VALUES (1, 1), (2, 2)")
    applier = pg_applier(db)
    other = db.connect()
    try:
        scanner = TableScanner(applier, TableRef("public", "locked"), ["id"])
        assert scanner.lock_keys([(1,), (3,)]) == [{"id": 1, "v": 1}]
        assert applier.db.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
        with other.cursor() as cur:
            cur.execute("SET lock_timeout = '300ms'")
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                cur.execute("UPDATE locked SET v = 10 WHERE id = 1")
            cur.execute("UPDATE locked SET v = 20 WHERE id = 2")  # only the locked row waits
            cur.execute("SELECT v FROM locked WHERE id = 1 FOR SHARE")  # a shared lock: readers may share it
            applier.rollback()
            cur.execute("UPDATE locked SET v = 10 WHERE id = 1")
            assert cur.rowcount == 1
    finally:
        other.close()
        applier.close()


def test_pg_refuses_keys_and_sessions_it_cannot_page_exactly(pg_env: dict) -> None:
    db, applier = pg_env["db"], pg_env["applier"]
    pg_exec(db, "CREATE TABLE loose (id int, u int UNIQUE, v int NOT NULL)")
    with pytest.raises(TableScanError, match=r"public\.loose, column u: key column is nullable"):
        TableScanner(applier, TableRef("public", "loose"), ["u"])
    with pytest.raises(TableScanError, match=r"neither the primary key nor a unique index"):
        TableScanner(applier, TableRef("public", "loose"), ["v"])
    with pytest.raises(TableScanError, match=r"column nope: key column nope is not a column"):
        TableScanner(applier, TableRef("public", "t_types"), ["nope"])
    with pytest.raises(TableScanError, match=r"no such table"):
        TableScanner(applier, TableRef("public", "missing"), ["id"])
    other = pg_applier(db)
    try:
        other.execute("SET TimeZone = 'Europe/Paris'", [])
        other.db.commit()
        with pytest.raises(TableScanError, match=r"does not format values like the WAL stream"):
            TableScanner(other, TableRef("public", "t_types"), ["id"])
    finally:
        other.close()


# --- MariaDB ------------------------------------------------------------------------------------------------------

MY_EDGE = """
CREATE TABLE t_edge (
    id INT PRIMARY KEY,
    u BIGINT UNSIGNED, s TINYINT(1), dec30 DECIMAL(30,10), f FLOAT, dbl DOUBLE,
    tx VARCHAR(20), l1 VARCHAR(20) CHARACTER SET latin1, c5 CHAR(5) CHARACTER SET latin1,
    u16 VARCHAR(10) CHARACTER SET utf16, sw VARCHAR(10) CHARACTER SET swe7, cy VARCHAR(10) CHARACTER SET cp1251,
    bin16 BINARY(16), vb VARBINARY(10), bl BLOB, bt BIT(5), bt1 BIT(1),
    st SET('x','y','z'), stl SET('é','ü','a') CHARACTER SET latin1, en ENUM('a','b'),
    enl ENUM('é','a') CHARACTER SET latin1, js JSON, d DATE, dt6 DATETIME(6), ts TIMESTAMP(3) NULL DEFAULT NULL,
    tm2 TIME(2), tm6 TIME(6), tm0 TIME, y YEAR, ip INET6, uu UUID, pt POINT,
    v INT AS (id * 2) VIRTUAL, p VARCHAR(30) AS (CONCAT(tx, '!')) PERSISTENT, h INT INVISIBLE, ip4 INET4
)
"""
MY_EDGE_COLUMNS = ("id", "u", "s", "dec30", "f", "dbl", "tx", "l1", "c5", "u16", "sw", "cy", "bin16", "vb", "bl",
                   "bt", "bt1", "st", "stl", "en", "enl", "js", "d", "dt6", "ts", "tm2", "tm6", "tm0", "y", "ip", "uu",
                   "h", "ip4")
MY_EDGE_ROWS = [
    (1, 2 ** 64 - 1, 1, Decimal("12345678901234567890.0123456789"), 0.1, 0.1 + 0.2, "😀 emoji", "é€ŠŽ", "ab", "ab",
     "abc", "Жж", b"\x01\x00", b"", b"", 0b10101, 1, "", "", "b", "é", '{"a": [1, 2.5, null], "😀": "x"}',
     "0000-00-00", "0000-00-00 00:00:00", "0000-00-00 00:00:00", "-00:00:00.1", "-12:34:56.000001", "-838:59:59", 0,
     "::1", "6ba7b810-9dad-11d1-80b4-00c04fd430c8", 5, "1.2.3.4"),
    (2, 0, 0, Decimal("-0.0000000001"), -0.0, 1.7976931348623157e308, "", "", "", "", "", "", b"\x00" * 16, b"\x00",
     b"\x00\x00", 0, 0, "z,x", "a,ü,é", "a", "a", "[]", "2020-00-15", "2021-02-00 10:00:00.5",
     "2038-01-19 03:14:07.999", "-00:00:01.25", "838:59:59", "00:00:00", 2155, "::",
     "00000000-0000-0000-0000-000000000000", -1, "0.0.0.0"),
    (3,) + (None,) * 32,
    (4, 9223372036854775808, -1, Decimal("99999999999999999999.9999999999"), 3.4e38, 2.2250738585072014e-308,
     "x" * 20, "'\"\\", "é", "z", "z", "я", b"\x00\x01" + b"\x00" * 14, b"a\x00", bytes(range(256)), 31, 1, "y",
     "é", "", "", "{}", "2000-02-29", "9999-12-31 23:59:59.999999", "1970-01-01 05:30:01", "-00:00:59.99",
     "-00:00:00.000001", "00:00:01", 1901, "ffff::1.2.3.4", "ffffffff-ffff-4fff-bfff-ffffffffffff", 0, "255.255.255.255"),
    (5, 1, 0, Decimal("0"), 1e-30, -0.0, "deleted", None, None, None, None, None, None, None, None, None, None, None,
     None, None, None, None, None, None, None, None, None, None, None, None, None, 1, None),
]


def my_connection(db: Database) -> Connection:
    acc = Account(db.user, Secret(db.password))
    return Connection("erp", "mariadb", db.host, db.port, db.dbname, acc, acc,
                      server_id=random.randrange(10 ** 6, 10 ** 9))


def my_applier(db: Database) -> MariaDBApplier:
    applier = MariaDBApplier(my_connection(db), "crm_to_erp")
    applier.connect()
    return applier


def my_exec(db: Database, *statements: str, params: Any = None) -> list[tuple]:
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            rows: list[tuple] = []
            for s in statements:
                cur.execute(s, params)
                rows = list(cur.fetchall()) if cur.description else []
            return rows
    finally:
        conn.close()


def binlog_position(db: Database) -> tuple[str, int]:
    file, pos = my_exec(db, "SHOW MASTER STATUS")[0][:2]
    return file, int(pos)


def binlog_changes(db: Database, start: tuple[str, int], end: tuple[str, int],
                   tables: list[TableRef]) -> list[RowChange]:
    """Row changes of `tables` read through the daemon's own BinlogSource, from `start` up to `end`."""
    source = BinlogSource(my_connection(db), "erp_to_crm", tables, LoopGuard("replicator", "crm_to_erp"),
                          BinlogPosition(*start), chunk_rows=100_000, heartbeat_seconds=1.0)
    timer = threading.Timer(60, source.stop)
    timer.start()
    out: list[RowChange] = []
    try:
        gen = source.transactions()
        for txn in gen:
            out.extend(txn.changes)
            if txn.final and (txn.position.file, txn.position.pos) >= end:
                break
        source.stop()
        gen.close()
    finally:
        timer.cancel()
    return out


@pytest.fixture(scope="module")
def maria_env(maria_server: Any) -> Iterator[dict]:
    maria_server.start()
    db = maria_server.create_database(f"t_tablescan_{uuid.uuid4().hex[:8]}")
    applier = None
    try:
        rnd = random.Random(20240612)
        tables = [Table("t_int", INTS, rnd), Table("t_num", NUMBERS, rnd), Table("t_str", STRINGS, rnd),
                  Table("t_enum", ENUMS, rnd), Table("t_time", TEMPORAL, rnd)]
        start = binlog_position(db)
        conn = db.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION sql_mode = ''")  # zero dates, invalid ENUM members, clipped values
                cur.execute("SET SESSION time_zone = '+00:00'")
            for table in tables:
                run_workload(conn, table, rnd, rows=70)
            with conn.cursor() as cur:
                cur.execute("SET GLOBAL mysql56_temporal_format = OFF")  # the old temporal formats
            try:
                old = Table("t_old", OLD_TEMPORAL, rnd)
                run_workload(conn, old, rnd, rows=70)
            finally:
                with conn.cursor() as cur:
                    cur.execute("SET GLOBAL mysql56_temporal_format = ON")
            with conn.cursor() as cur:
                # TIMESTAMPs are stored in UTC whatever the writer's time zone
                cur.execute("SET SESSION time_zone = '+05:30'")
                cur.execute(MY_EDGE)
                marks = ", ".join(["%s"] * len(MY_EDGE_COLUMNS))
                cur.executemany(f"INSERT INTO t_edge ({', '.join(MY_EDGE_COLUMNS)}, pt) VALUES ({marks}, "
                                f"IF(%s, POINT(1.5, -2), NULL))", [r + (r[0] != 3,) for r in MY_EDGE_ROWS])
                cur.execute("UPDATE t_edge SET tx = 'updated', y = 0 WHERE id = 2")
                cur.execute("DELETE FROM t_edge WHERE id = 5")
        finally:
            conn.close()
        end = binlog_position(db)
        names = [t.name for t in tables] + ["t_old", "t_edge"]
        changes = binlog_changes(db, start, end, [TableRef(db.dbname, n) for n in names])
        applier = my_applier(db)
        yield {"db": db, "applier": applier, "stream": final_images(changes), "tables": names}
    finally:
        if applier is not None:
            applier.close()
        maria_server.start()
        maria_server.drop_database(db.dbname)


def test_maria_scan_equals_the_binlog_stream(maria_env: dict) -> None:
    db, applier, stream = maria_env["db"], maria_env["applier"], maria_env["stream"]
    total = 0
    for name in maria_env["tables"]:
        table = TableRef(db.dbname, name)
        want = stream[table]
        assert want, f"{name}: no rows in the stream"
        scanner = TableScanner(applier, table, ["id"])
        assert scanner.columns == tuple(next(iter(want.values())))
        total += assert_scan_equals_stream(scanner, want)
    assert total > 5000
    edge = {r["id"]: r for r in TableScanner(applier, TableRef(db.dbname, "t_edge"), ["id"]).chunk(None, 10)}
    # the stream's quirks, for the record
    assert edge[1]["f"] == struct.unpack("<f", struct.pack("<f", 0.1))[0] and edge[1]["y"] == 0  # YEAR 0000, not 1900
    assert edge[2]["y"] == 0 and edge[2]["bin16"] == b"\x00" * 16 and edge[2]["vb"] == b"\x00" and edge[1]["vb"] == ""
    assert edge[1]["enl"] == "" and edge[4]["stl"] == "," and edge[2]["st"] == "x,z"  # latin1 member names, SET text
    assert edge[1]["d"] is None and edge[1]["ts"] is None and edge[2]["dt6"] is None  # zero dates
    assert edge[1]["tm2"] == timedelta(microseconds=-100000)  # -00:00:00.1 exactly (the library: -00:00:00.9)
    assert edge[4]["bin16"] == b"\x00\x01" + b"\x00" * 14 and edge[1]["uu"] == uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8").bytes
    assert edge[1]["v"] == 2 and edge[1]["h"] == 5 and edge[1]["bt"] == "10101" and edge[4]["sw"] == b"z"


def test_maria_composite_key_pagination_is_a_range_scan(maria_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    db, applier = maria_env["db"], maria_env["applier"]
    my_exec(db, "CREATE TABLE pages (a INT, b VARCHAR(10) COLLATE utf8mb4_general_ci, v INT, PRIMARY KEY (a, b))",
            "INSERT INTO pages SELECT a.seq, b.v, a.seq * 10 FROM seq_1_to_7 a, "
            "(SELECT 'a' AS v UNION ALL SELECT 'B' UNION ALL SELECT 'c') b", "ANALYZE TABLE pages")
    scanner = TableScanner(applier, TableRef(db.dbname, "pages"), ["a", "b"])
    server_order = [tuple(r) for r in my_exec(db, "SELECT a, b FROM pages ORDER BY a, b")]
    paged = check_pagination(scanner, 3, 21)
    assert [scanner.key_of(r) for r in paged] == server_order
    assert [r["b"] for r in paged[:3]] == ["a", "B", "c"]  # case-insensitive order, as the server sorts
    got = scanner.by_keys([(1, "a"), (7, "c"), (99, "zz")])
    assert sorted(got, key=lambda r: r["a"]) == [{"a": 1, "b": "a", "v": 10}, {"a": 7, "b": "c", "v": 70}]
    assert isinstance(scanner.estimate(), int) and scanner.estimate() >= 0
    # the chunk statement is a range scan of the primary key, not a full index scan from the start
    my_exec(db, "INSERT INTO pages SELECT seq, 'x', 0 FROM seq_8_to_3000", "ANALYZE TABLE pages")
    seen = counting_queries(monkeypatch, applier)
    assert len(scanner.chunk((1500, "x"), 5)) == 5
    sql, params = next((s, p) for s, p in seen if s.startswith("SELECT") and "LIMIT" in s)
    plan = my_exec(db, "EXPLAIN " + sql, params=params)
    assert plan[0][3] == "range" and plan[0][5] == "PRIMARY", plan
    # 2500 keys: a few statements, not one per key
    seen.clear()
    keys = [(a, b) for a in range(1, 1000) for b in ("a", "B", "c")][:2500]
    assert len(scanner.by_keys(keys)) == 21
    assert len(seen) <= 3


MY_KEY_TABLES = {
    "k_binary": ("BINARY(16)", [b"\x01", b"\x01\x00\x02", b"\x00" * 16, b"\xff" * 16, b"a", b"\x00\x01"]),
    "k_varbinary": ("VARBINARY(8)", [b"", b"\x00", b"\x00\x00", b"a", b"a\x00"]),
    "k_timestamp": ("TIMESTAMP(6)", ["2024-01-01 00:00:00.5", "1970-01-01 00:00:01", "2038-01-19 03:14:07.999999",
                                     "2024-01-01 00:00:00.499999"]),
    "k_datetime": ("DATETIME(6)", ["1000-01-01 00:00:00", "9999-12-31 23:59:59.999999", "2024-01-01 00:00:00.5"]),
    "k_bit": ("BIT(8)", [0, 1, 5, 255, 128]),
    "k_decimal": ("DECIMAL(10,3)", [Decimal("-1.5"), Decimal("0"), Decimal("2.25"), Decimal("-0.001")]),
    "k_time": ("TIME(2)", ["-00:00:00.10", "-00:00:00.90", "-00:00:01.50", "00:00:00", "-838:59:59", "838:59:59",
                           "-12:00:00.01", "-00:00:59.99", "00:00:00.99"]),
    "k_time6": ("TIME(6)", ["-00:00:00.000001", "-00:00:00.999999", "-00:00:01", "00:00:00.000001"]),
    "k_year": ("YEAR", [0, 1901, 2000, 2155]),
    "k_uuid": ("UUID", ["6ba7b810-9dad-11d1-80b4-00c04fd430c8", "00000000-0000-0000-0000-000000000000",
                        "1b4e28ba-2fa1-4d2e-883f-0016d3cca427", "ffffffff-ffff-4fff-bfff-ffffffffffff",
                        "00000000-0000-4000-8000-000000000000"]),
    "k_inet6": ("INET6", ["::", "::1", "ffff::", "1::", "::ffff:1.2.3.4"]),
    "k_inet4": ("INET4", ["0.0.0.0", "0.0.0.1", "1.0.0.0", "10.0.0.1", "255.255.255.255"]),
    "k_latin1": ("VARCHAR(10) CHARACTER SET latin1", ["é", "a", "f", "€", "Z", "ä"]),
    "k_float": ("FLOAT", [0.1, -1.5, 3.4e38, 0.0]),
    "k_double": ("DOUBLE", [0.1, 0.30000000000000004, -1e308, 2.2250738585072014e-308]),
    "k_char": ("CHAR(5)", ["a", "a b", "B", "", "😀"]),
    "k_date": ("DATE", ["1000-01-01", "9999-12-31", "2024-02-29"]),
}


def test_maria_key_values_of_every_kind_are_passed_back(maria_env: dict) -> None:
    db, applier = maria_env["db"], maria_env["applier"]
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            for name, (sqltype, values) in MY_KEY_TABLES.items():
                cur.execute(f"CREATE TABLE {name} (k {sqltype} NOT NULL PRIMARY KEY, n INT AUTO_INCREMENT UNIQUE)")
                cur.executemany(f"INSERT INTO {name} (k) VALUES (%s)", [(v,) for v in values])
    finally:
        conn.close()
    for name, (_, values) in MY_KEY_TABLES.items():
        scanner = TableScanner(applier, TableRef(db.dbname, name), ["k"])
        check_pagination(scanner, 2, len(values))
    my_exec(db, "CREATE TABLE k_mixed (t TIMESTAMP(6) NOT NULL, b BINARY(4) NOT NULL, y YEAR NOT NULL, v INT, "
                "PRIMARY KEY (t, b, y))",
            "INSERT INTO k_mixed SELECT '2024-01-01' + INTERVAL (seq % 3) SECOND, UNHEX(LPAD(HEX(seq % 5), 2, '0')), "
            "IF(seq % 2, 0, 2000), seq FROM seq_1_to_30")
    check_pagination(TableScanner(applier, TableRef(db.dbname, "k_mixed"), ["t", "b", "y"]), 4, 30)


def test_maria_lock_keys_holds_a_share_lock_until_the_caller_ends_the_transaction(maria_env: dict) -> None:
    db = maria_env["db"]
    my_exec(db, "CREATE TABLE locked (id INT PRIMARY KEY, v INT)", "INSERT INTO locked VALUES (1, 1), (2, 2)")
    applier = my_applier(db)
    other = db.connect()
    try:
        scanner = TableScanner(applier, TableRef(db.dbname, "locked"), ["id"])
        assert scanner.lock_keys([(1,), (3,)]) == [{"id": 1, "v": 1}]
        with other.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
            with pytest.raises(pymysql.err.OperationalError) as exc:
                cur.execute("UPDATE locked SET v = 10 WHERE id = 1")
            assert exc.value.args[0] == 1205  # lock wait timeout
            cur.execute("UPDATE locked SET v = 20 WHERE id = 2")  # only the locked row waits
            applier.rollback()
            assert cur.execute("UPDATE locked SET v = 10 WHERE id = 1") == 1
    finally:
        other.close()
        applier.close()


def test_maria_refuses_what_it_cannot_match(maria_env: dict) -> None:
    db, applier = maria_env["db"], maria_env["applier"]
    my_exec(db, "SET GLOBAL mysql56_temporal_format = OFF")
    try:
        my_exec(db, "CREATE TABLE old_frac (id INT PRIMARY KEY, dt DATETIME(3))")
    finally:
        my_exec(db, "SET GLOBAL mysql56_temporal_format = ON")
    with pytest.raises(TableScanError, match=r"old_frac, column dt: .*old-format.*fraction"):
        TableScanner(applier, TableRef(db.dbname, "old_frac"), ["id"])
    my_exec(db, "CREATE TABLE enum_key (e ENUM('z', 'a') PRIMARY KEY, v INT)")
    with pytest.raises(TableScanError, match=r"enum_key, column e: cannot be a key column.*ENUM"):
        TableScanner(applier, TableRef(db.dbname, "enum_key"), ["e"])
    # a zero date in a key column reads as None: the scan stops with the column named, not silently short
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")
            cur.execute("CREATE TABLE zero_key (d DATE NOT NULL PRIMARY KEY, v INT)")
            cur.execute("INSERT INTO zero_key VALUES ('0000-00-00', 1), ('2020-01-01', 2)")
    finally:
        conn.close()
    scanner = TableScanner(applier, TableRef(db.dbname, "zero_key"), ["d"])
    with pytest.raises(TableScanError, match=r"zero_key, column d, key \(None,\): key value reads as NULL"):
        scanner.chunk(None, 10)
    my_exec(db, "CREATE TABLE loose (id INT, u INT UNIQUE)")
    with pytest.raises(TableScanError, match=r"loose, column u: key column is nullable"):
        TableScanner(applier, TableRef(db.dbname, "loose"), ["u"])
    my_exec(db, "CREATE TABLE nonunique (id INT PRIMARY KEY, v INT NOT NULL)")
    with pytest.raises(TableScanError, match=r"neither the primary key nor a unique index"):
        TableScanner(applier, TableRef(db.dbname, "nonunique"), ["v"])
