"""Differential test of replicator.sources.rowdecode against mysql-replication on a real MariaDB binlog.

Tables covering every column type MariaDB writes (several tables, shuffled column orders, NULL-heavy rows,
random values from a fixed seed plus edge values) get inserts, updates and deletes; the binlog of those
writes is then read with BinLogStreamReader once through the library's ``event.rows`` and once through
``RowDecoder.decode(event)``, and every decoded row must be identical (==, same type, same Decimal digits,
same float bits, same tzinfo) with the same count of zero dates. Tables the decoder must not handle
(GEOMETRY, partial row images) and bodies the library rejects must fall back to ``event.rows`` intact.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import random
import struct
import uuid
from decimal import Decimal
from typing import Any, Callable, Iterator

import pytest
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import FIELD_TYPE as T
from pymysqlreplication.constants import NONE_SOURCE
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from replicator import metrics
from replicator.changes import TableRef, ZeroDatedRow, zero_dated
from replicator.testing.devservers import Database
from tests.integration.harness import master_position
from replicator.sources.binlog import _TIMESTAMP_TYPES, BinlogSource, exact_columns
from replicator.sources.rowdecode import RowDecoder

SEED = 20240611
ZERO = {NONE_SOURCE.OUT_OF_DATE_RANGE, NONE_SOURCE.OUT_OF_DATETIME_RANGE, NONE_SOURCE.OUT_OF_DATETIME2_RANGE}
ROW_EVENTS = [WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent]
# what replicator.sources.binlog passes to RowDecoder (see the report's patch)
BINLOG_SOURCE_OPTIONS = {"utc_timestamps": True, "sets_as_text": "definition", "zero_timestamps_as_none": True,
                         "exact_values": True}

Gen = Callable[[random.Random], Any]


# --- value generators ------------------------------------------------------------------------------------------

UTF8_ALPHABET = "abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789_-.,'\"\\%éèüößñÆ€£¥©–“”😀🎉🚀中文字한국어ありがとうЖжΩ"
LATIN1_ALPHABET = "abcdefXYZ 0123456789'\"\\éèüößñÆ€£¥©ŒœŠšŽžŸ–—‘’“”•…™"


def text(alphabet: str, max_chars: int, min_chars: int = 0) -> Gen:
    return lambda r: "".join(r.choice(alphabet) for _ in range(r.randint(min_chars, max_chars)))


def long_text(alphabet: str, big: int) -> Gen:
    short = text(alphabet, 300)
    return lambda r: ("".join(r.choice(alphabet) for _ in range(big)) if r.random() < 0.02 else short(r))


def binary(max_len: int, big: int = 0) -> Gen:
    def gen(r: random.Random) -> bytes:
        if big and r.random() < 0.02:
            return r.randbytes(big)
        n = r.choice([0, 1, max_len, r.randint(0, max_len)])
        data = r.randbytes(n)
        if n and r.random() < 0.2:
            data = data[:-1] + b"\x00"  # trailing zero byte
        return data
    return gen


def integer(bits: int, unsigned: bool) -> Gen:
    lo, hi = (0, 2 ** bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return lambda r: r.choice([lo, hi, 0, 1, lo + 1, hi - 1, r.randint(lo, hi), r.randint(lo, hi),
                               r.randint(max(lo, -300), min(hi, 300))])


def bit(n: int) -> Gen:
    return lambda r: r.choice([0, 2 ** n - 1, r.getrandbits(n), r.getrandbits(n)])


def float_(r: random.Random) -> float:
    return r.choice([0.0, -0.0, 1.5, -2.25, 0.1, 3.4e38, -3.4e38, 1.17e-38, 1e-30, r.uniform(-1e6, 1e6),
                     r.gauss(0, 1), r.uniform(-1e30, 1e30)])


def double(r: random.Random) -> float:
    return r.choice([0.0, -0.0, 0.1, 1 / 3, 1.7976931348623157e308, -1.7976931348623157e308,
                     2.2250738585072014e-308, r.uniform(-1e300, 1e300), r.uniform(-1, 1), r.gauss(0, 1e6),
                     float(r.getrandbits(53))])


def decimal(precision: int, scale: int) -> Gen:
    integral = precision - scale

    def gen(r: random.Random) -> Decimal:
        sign = r.choice(["", "-"])
        kind = r.random()
        if kind < 0.1:
            i, f = "9" * integral, "9" * scale  # the maximum (or minimum)
        elif kind < 0.15:
            i, f = "0", "0" * scale
        else:
            i = "".join(r.choice("0123456789") for _ in range(r.randint(0, integral))) or "0"
            f = "".join(r.choice("0123456789") for _ in range(r.randint(0, scale)))
        return Decimal(f"{sign}{i or '0'}.{f}" if f else f"{sign}{i or '0'}")
    return gen


DATE_SPAN = (dt.date(9999, 12, 31) - dt.date(1000, 1, 1)).days
DATETIME_SPAN = int((dt.datetime(9999, 12, 31, 23, 59, 59) - dt.datetime(1000, 1, 1)).total_seconds())


def date_(r: random.Random) -> Any:
    if r.random() < 0.12:
        return r.choice(["0000-00-00", "2020-00-15", "2020-05-00", "0000-01-01", "0001-01-01", "1000-01-01",
                         "9999-12-31", "1970-01-01"])
    return dt.date(1000, 1, 1) + dt.timedelta(days=r.randrange(DATE_SPAN + 1))


def fraction(r: random.Random, fsp: int) -> str:
    if not fsp:
        return ""
    digits = r.choice(["0" * fsp, "9" * fsp, "".join(r.choice("0123456789") for _ in range(fsp))])
    return "." + digits


def datetime_(fsp: int) -> Gen:
    def gen(r: random.Random) -> str:
        if r.random() < 0.1:
            return r.choice(["0000-00-00 00:00:00", "2020-00-00 00:00:00", "2021-02-00 10:00:00",
                             "9999-12-31 23:59:59" + ("." + "9" * fsp if fsp else ""), "1000-01-01 00:00:00",
                             "0001-01-01 00:00:00"])
        d = dt.datetime(1000, 1, 1) + dt.timedelta(seconds=r.randrange(DATETIME_SPAN + 1))
        return d.strftime("%Y-%m-%d %H:%M:%S") + fraction(r, fsp)
    return gen


def timestamp(fsp: int) -> Gen:
    def gen(r: random.Random) -> str:
        if r.random() < 0.08:
            return r.choice(["0000-00-00 00:00:00", "1970-01-01 00:00:01", "2038-01-19 03:14:07"])
        d = dt.datetime(1970, 1, 1, 0, 0, 1) + dt.timedelta(seconds=r.randrange(2 ** 31 - 2))
        return d.strftime("%Y-%m-%d %H:%M:%S") + fraction(r, fsp)
    return gen


def time_(fsp: int) -> Gen:
    def gen(r: random.Random) -> str:
        if r.random() < 0.1:
            return r.choice(["00:00:00", "838:59:59", "-838:59:59", "-00:00:01", "-12:34:56" + fraction(r, fsp)])
        sign = r.choice(["", "-"])
        return f"{sign}{r.randrange(839)}:{r.randrange(60):02d}:{r.randrange(60):02d}{fraction(r, fsp)}"
    return gen


def year(r: random.Random) -> int:
    return r.choice([0, 1901, 2155, 2000, r.randint(1901, 2155)])


def json_(r: random.Random) -> str:
    def value(depth: int) -> Any:
        k = r.random()
        if depth > 2 or k < 0.4:
            return r.choice([None, True, False, r.randint(-10 ** 12, 10 ** 12), r.uniform(-1e6, 1e6),
                             text(UTF8_ALPHABET, 12)(r)])
        if k < 0.7:
            return [value(depth + 1) for _ in range(r.randrange(4))]
        return {text(UTF8_ALPHABET, 6, 1)(r): value(depth + 1) for _ in range(r.randrange(4))}
    return json.dumps(value(0), ensure_ascii=r.random() < 0.5)


def inet6(r: random.Random) -> str:
    return str(ipaddress.IPv6Address(r.getrandbits(128) if r.random() < 0.8 else r.getrandbits(32)))


def uuid_(r: random.Random) -> str:
    return str(uuid.UUID(int=r.getrandbits(128)))


def enum(values: list[str]) -> Gen:
    return lambda r: r.choice(values) if r.random() < 0.95 else "not-a-member"  # '' (index 0) when not strict


def set_(values: list[str]) -> Gen:
    return lambda r: ",".join(v for v in values if r.random() < 0.3)


E300 = [f"e{k:03d}" for k in range(300)]
S64 = [f"m{k}" for k in range(64)]
S10 = [f"s{k}" for k in range(10)]

# (column SQL type, generator)
INTS = [
    ("TINYINT", integer(8, False)), ("TINYINT UNSIGNED", integer(8, True)),
    ("TINYINT(1)", lambda r: r.choice([0, 1, 1, 0, -1, 127])),
    ("SMALLINT", integer(16, False)), ("SMALLINT UNSIGNED", integer(16, True)),
    ("MEDIUMINT", integer(24, False)), ("MEDIUMINT UNSIGNED", integer(24, True)),
    ("INT", integer(32, False)), ("INT UNSIGNED", integer(32, True)),
    ("BIGINT", integer(64, False)), ("BIGINT UNSIGNED", integer(64, True)),
    ("YEAR", year), ("BIT(1)", bit(1)), ("BIT(8)", bit(8)), ("BIT(12)", bit(12)), ("BIT(64)", bit(64)),
    ("BOOLEAN", lambda r: r.choice([0, 1])),
]
NUMBERS = [
    ("FLOAT", float_), ("DOUBLE", double), ("DECIMAL(10,2)", decimal(10, 2)), ("DECIMAL(65,30)", decimal(65, 30)),
    ("DECIMAL(5,0)", decimal(5, 0)), ("DECIMAL(18,9)", decimal(18, 9)), ("DECIMAL(9,9)", decimal(9, 9)),
    ("DECIMAL(1,0)", decimal(1, 0)), ("DECIMAL(38,0)", decimal(38, 0)), ("DECIMAL(30,5)", decimal(30, 5)),
    ("DECIMAL(65,0)", decimal(65, 0)), ("DECIMAL(12,12)", decimal(12, 12)), ("DECIMAL(20,10)", decimal(20, 10)),
    ("DECIMAL(4,1)", decimal(4, 1)), ("DECIMAL(27,18)", decimal(27, 18)),
]
STRINGS = [
    ("VARCHAR(10)", text(UTF8_ALPHABET, 10)), ("VARCHAR(100)", text(UTF8_ALPHABET, 100)),
    ("VARCHAR(200) CHARACTER SET latin1", text(LATIN1_ALPHABET, 200)),
    ("VARCHAR(300) CHARACTER SET latin1", text(LATIN1_ALPHABET, 300)),
    ("VARCHAR(60) CHARACTER SET ascii", text("abcXYZ 0123456789'\"\\_-", 60)),
    ("VARCHAR(20) CHARACTER SET utf8mb3", text("abcéü€中文ЖΩ", 20)),
    ("CHAR(5)", text(UTF8_ALPHABET, 5)), ("CHAR(100)", text(UTF8_ALPHABET, 100)),
    ("CHAR(10) CHARACTER SET latin1", text(LATIN1_ALPHABET, 10)),
    ("BINARY(8)", binary(8)), ("VARBINARY(300)", binary(300)), ("VARBINARY(10)", binary(10)),
    ("TINYBLOB", binary(255)), ("BLOB", binary(2000)), ("MEDIUMBLOB", binary(3000, big=70000)),
    ("LONGBLOB", binary(3000, big=70000)),
    ("TINYTEXT", text(UTF8_ALPHABET, 60)), ("TEXT", long_text(UTF8_ALPHABET, 20000)),
    ("MEDIUMTEXT", long_text(UTF8_ALPHABET, 20000)), ("LONGTEXT", long_text(UTF8_ALPHABET, 20000)),
    ("TEXT CHARACTER SET latin1", text(LATIN1_ALPHABET, 500)), ("JSON", json_), ("INET6", inet6),
    ("UUID", uuid_),
]
ENUMS = [
    ("ENUM('a','b','c')", enum(["a", "b", "c", ""])), (f"ENUM({','.join(repr(v) for v in E300)})", enum(E300)),
    ("SET('x','y','z')", set_(["x", "y", "z"])), (f"SET({','.join(repr(v) for v in S64)})", set_(S64)),
    (f"SET({','.join(repr(v) for v in S10)})", set_(S10)),
    ("ENUM('é','ü','€') CHARACTER SET latin1", enum(["é", "ü", "€"])),
    ("SET('é','ü') CHARACTER SET latin1", set_(["é", "ü"])),
]
TEMPORAL = [("DATE", date_)] + [
    (f"DATETIME({n})" if n else "DATETIME", datetime_(n)) for n in range(7)] + [
    (f"TIMESTAMP({n}) NULL DEFAULT NULL" if n else "TIMESTAMP NULL DEFAULT NULL", timestamp(n)) for n in range(7)] + [
    (f"TIME({n})" if n else "TIME", time_(n)) for n in range(7)] + [("YEAR", year)]
MIXED = [  # the benchmark's columns
    ("INT", integer(32, False)), ("BIGINT", integer(64, False)), ("VARCHAR(64)", text(UTF8_ALPHABET, 64)),
    ("DECIMAL(12,2)", decimal(12, 2)), ("DATETIME(6)", datetime_(6)),
    ("TIMESTAMP NULL DEFAULT NULL", timestamp(0)), ("DATE", date_), ("TINYINT(1)", lambda r: r.choice([0, 1])),
    ("TEXT", text(UTF8_ALPHABET, 120, 80)), ("DOUBLE", double),
]
OLD_TEMPORAL = [("DATE", date_), ("DATETIME", datetime_(0)), ("TIME", time_(0)),
                ("TIMESTAMP NULL DEFAULT NULL", timestamp(0))]


# --- workload ----------------------------------------------------------------------------------------------------

class Table:
    def __init__(self, name: str, columns: list[tuple[str, Gen]], rnd: random.Random, shuffle: bool = False):
        self.name = name
        cols = list(columns)
        if shuffle:
            rnd.shuffle(cols)
        self.columns = [(f"c{i}", sql, gen) for i, (sql, gen) in enumerate(cols)]
        # the primary key somewhere in the middle for shuffled tables
        self.id_pos = rnd.randrange(len(self.columns) + 1) if shuffle else 0

    def ddl(self) -> str:
        defs = [f"`{n}` {sql}" for n, sql, _ in self.columns]
        defs.insert(self.id_pos, "`id` INT NOT NULL")
        return f"CREATE TABLE `{self.name}` ({', '.join(defs)}, PRIMARY KEY (`id`)) ENGINE=InnoDB"

    def random_row(self, r: random.Random, null_rate: float) -> list[Any]:
        return [None if r.random() < null_rate else gen(r) for _, _, gen in self.columns]


def run_workload(conn: Any, table: Table, rnd: random.Random, rows: int) -> None:
    names = [n for n, _, _ in table.columns]
    cols = ", ".join(f"`{n}`" for n in names)
    marks = ", ".join(["%s"] * (len(names) + 1))
    with conn.cursor() as cur:
        cur.execute(table.ddl())
        # inserts, in multi-row statements of varying size
        ids = list(range(1, rows + 1))
        conn.begin()
        pos = 0
        while pos < len(ids):
            chunk = ids[pos:pos + rnd.choice([1, 7, 50, 120])]
            pos += len(chunk)
            batch = []
            for i in chunk:
                null_rate = rnd.choice([0.0, 0.0, 0.25, 0.6, 0.95, 1.0])
                batch.append([i] + table.random_row(rnd, null_rate))
            cur.executemany(f"INSERT INTO `{table.name}` (`id`, {cols}) VALUES ({marks})", batch)
            if rnd.random() < 0.3:
                conn.commit()
                conn.begin()
        conn.commit()
        # single-row updates of random column subsets, in transactions
        conn.begin()
        for i in rnd.sample(ids, k=len(ids) * 2 // 5):
            chosen = rnd.sample(names, k=rnd.randint(1, max(1, len(names) // 2)))
            values = [None if rnd.random() < 0.2 else gen(rnd) for n, _, gen in table.columns if n in chosen]
            sets = ", ".join(f"`{n}` = %s" for n, _, _ in table.columns if n in chosen)
            cur.execute(f"UPDATE `{table.name}` SET {sets} WHERE `id` = %s", values + [i])
        conn.commit()
        # multi-row updates: a column to NULL, another one copied from a random row's value
        target = rnd.choice(names)
        cur.execute(f"UPDATE `{table.name}` SET `{target}` = NULL WHERE `id` MOD 5 = 2")
        name, _, gen = rnd.choice(table.columns)
        cur.execute(f"UPDATE `{table.name}` SET `{name}` = %s WHERE `id` MOD 3 = 1", (gen(rnd),))
        # deletes, multi-row and single
        cur.execute(f"DELETE FROM `{table.name}` WHERE `id` MOD 4 = 3")
        cur.execute(f"DELETE FROM `{table.name}` WHERE `id` = %s", (rnd.choice(ids),))


# --- reading the binlog -------------------------------------------------------------------------------------------

def row_events(db: Database, start: tuple[str, int], **kwargs: Any) -> Iterator[Any]:
    stream = BinLogStreamReader(
        connection_settings={"host": db.host, "port": db.port, "user": db.user, "passwd": db.password},
        server_id=random.randrange(10 ** 6, 2 ** 31), resume_stream=True, log_file=start[0], log_pos=start[1],
        blocking=False, only_events=ROW_EVENTS, only_schemas=[db.dbname], **kwargs)
    try:
        yield from stream
    finally:
        stream.close()


def library_rows(event: Any) -> tuple[list, int]:
    """The library's rows as our (before, after) pairs, and the zero-date count binlog.py would make."""
    pairs, zero = [], 0
    for r in event.rows:
        def named(values: dict, k: str) -> dict:  # as the decoder gives it: its zero dates' columns named
            return zero_dated(values, [c for c, s in (r.get(k) or {}).items() if s in ZERO])
        if isinstance(event, UpdateRowsEvent):
            pairs.append((named(r["before_values"], "before_none_sources"),
                          named(r["after_values"], "after_none_sources")))
            keys = ("before_none_sources", "after_none_sources")
        elif isinstance(event, WriteRowsEvent):
            pairs.append((None, named(r["values"], "none_sources")))
            keys = ("none_sources",)
        else:
            pairs.append((named(r["values"], "none_sources"), None))
            keys = ("none_sources",)
        for k in keys:
            zero += sum(1 for s in (r.get(k) or {}).values() if s in ZERO)
    return pairs, zero


def binlog_source_rows(event: Any) -> tuple[list, int]:
    """The library's rows put through replicator.sources.binlog's own conversions (BinlogSource._row:
    TIMESTAMP to UTC-aware or, when zero, None; SET to text), and the zero dates it counted."""
    src = BinlogSource.__new__(BinlogSource)
    src.direction = f"rowdecode-test-{uuid.uuid4().hex[:8]}"
    table = TableRef(event.schema, event.table)
    fix = (  # as BinlogSource._changes builds it
        tuple(c.name for c in event.columns if c.type in _TIMESTAMP_TYPES),
        tuple((c.name, tuple(c.set_values or ())) for c in event.columns if c.type == T.SET),
        exact_columns(event.columns),
    )
    pairs = []
    for r in event.rows:
        if isinstance(event, UpdateRowsEvent):
            pairs.append((src._row(r["before_values"], r, "before_none_sources", fix, table),
                          src._row(r["after_values"], r, "after_none_sources", fix, table)))
        elif isinstance(event, WriteRowsEvent):
            pairs.append((None, src._row(r["values"], r, "none_sources", fix, table)))
        else:
            pairs.append((src._row(r["values"], r, "none_sources", fix, table), None))
    zero = metrics.REGISTRY.get_sample_value("replicator_zero_dates_total",
                                             {"direction": src.direction, "table": str(table)})
    return pairs, int(zero or 0)


def read_all(db: Database, start: tuple[str, int], mode: str, **kwargs: Any) -> list[tuple]:
    """[(event kind, table, pairs, zero dates, column types)], decoded by mode: 'library' (event.rows),
    'decoder' (RowDecoder, library-identical values), 'binlog-source' (event.rows through binlog.py's
    conversions) or 'converted' (RowDecoder doing those conversions itself, with the options binlog.py
    uses)."""
    decoder = RowDecoder(**(BINLOG_SOURCE_OPTIONS if mode == "converted" else {}))
    out = []
    for event in row_events(db, start, **kwargs):
        types = tuple(c.type for c in event.columns)
        if mode in ("decoder", "converted"):
            result = decoder.decode(event)
            assert result is not None, f"{event.table}: decoder fell back: {decoder.last_fallback}"
            pairs, zero = result
            assert event.rows == [], "the decoder must consume the rows body"
        elif mode == "binlog-source":
            pairs, zero = binlog_source_rows(event)
        else:
            pairs, zero = library_rows(event)
        out.append((type(event).__name__, event.table, pairs, zero, types))
    return out


def assert_same(a: Any, b: Any, where: str) -> None:
    assert type(a) is type(b), f"{where}: {type(a).__name__} {a!r} != {type(b).__name__} {b!r}"
    if isinstance(a, ZeroDatedRow):  # the decoder names the columns the library read as zero dates
        assert set(a.zero_dates) == set(b.zero_dates), f"{where}: zero dates {a.zero_dates} != {b.zero_dates}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: columns {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, Decimal):
        assert a.as_tuple() == b.as_tuple(), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, dt.datetime):
        assert a == b and a.tzinfo is b.tzinfo, f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def decoder_stats(got: list[tuple]) -> str:
    values = [v for e in got for pair in e[2] for image in pair if image is not None for v in image.values()]
    kinds: dict[str, int] = {}
    for v in values:
        kinds[type(v).__name__] = kinds.get(type(v).__name__, 0) + 1
    return f"{len(values)} values: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))


def compare(expected: list[tuple], got: list[tuple]) -> int:
    assert len(expected) == len(got), f"{len(expected)} events from the library, {len(got)} from the decoder"
    rows = 0
    for n, (e, g) in enumerate(zip(expected, got)):
        assert e[:2] == g[:2], f"event {n}: {e[:2]} != {g[:2]}"
        assert_same(g[2], e[2], f"event {n} {e[0]} {e[1]}")
        assert g[3] == e[3], f"event {n} {e[0]} {e[1]}: zero dates {g[3]} != {e[3]}"
        rows += len(e[2])
    return rows


# --- tests ---------------------------------------------------------------------------------------------------------

def execute(db: Database, *statements: str) -> None:
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            for s in statements:
                cur.execute(s)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def workload(maria_server: Any) -> Iterator[tuple[Database, tuple[str, int]]]:
    """All the tables written (once for the module); the database and the binlog position before the writes."""
    maria_server.start()
    db = maria_server.create_database(f"t_rowdecode_{uuid.uuid4().hex[:8]}")
    try:
        yield db, write_workload(db)
    finally:
        maria_server.start()
        maria_server.drop_database(db.dbname)


def write_workload(maria_db: Database) -> tuple[str, int]:
    rnd = random.Random(SEED)
    tables = [
        Table("t_int", INTS, rnd), Table("t_num", NUMBERS, rnd), Table("t_str", STRINGS, rnd),
        Table("t_enum", ENUMS, rnd), Table("t_time", TEMPORAL, rnd),
        Table("t_str_shuffled", STRINGS + ENUMS, rnd, shuffle=True),
        Table("t_time_shuffled", TEMPORAL + NUMBERS[:4], rnd, shuffle=True),
    ]
    tables += [Table(f"t_mixed_{k}", MIXED, rnd, shuffle=k > 0) for k in range(3)]
    pool = INTS + NUMBERS + STRINGS[:9] + ENUMS[:4] + TEMPORAL
    tables.append(Table("t_wide", [rnd.choice(pool) for _ in range(70)], rnd))
    start = master_position(maria_db)
    conn = maria_db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")  # zero dates, invalid ENUM members, clipped values
            cur.execute("SET SESSION time_zone = '+00:00'")
        for table in tables:
            run_workload(conn, table, rnd, rows=150 if table.name == "t_wide" else 320)
        # the old (pre-MySQL 5.6) temporal formats: DATETIME, TIME, TIMESTAMP type codes
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL mysql56_temporal_format = OFF")
        try:
            run_workload(conn, Table("t_old_temporal", OLD_TEMPORAL, rnd), rnd, rows=200)
        finally:
            with conn.cursor() as cur:
                cur.execute("SET GLOBAL mysql56_temporal_format = ON")
        # edge rows by hand
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE t_edge (id INT PRIMARY KEY, u BIGINT UNSIGNED, s BIGINT, b VARBINARY(10), "
                        "t VARCHAR(10), d DATE, dt DATETIME(6), e ENUM('a'), st SET('a','b'), "
                        "n DECIMAL(65,30))")
            cur.executemany("INSERT INTO t_edge VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", [
                (1, 2 ** 64 - 1, -(2 ** 63), b"", "", "0000-00-00", "0000-00-00 00:00:00", "", "", Decimal("0")),
                (2, 0, 2 ** 63 - 1, b"\x00", "😀", "9999-12-31", "9999-12-31 23:59:59.999999", "a", "a,b",
                 Decimal("-" + "9" * 35 + "." + "9" * 30)),
                (3, None, None, None, None, None, None, None, None, None),
                (4, 1, -1, b"\x00\x00", " ", "2000-02-29", "2000-02-29 00:00:00.000001", "a", "b",
                 Decimal("0.000000000000000000000000000001")),
            ])
            cur.execute("UPDATE t_edge SET u = u, s = -s + 0 WHERE id <> 3 AND s > -9223372036854775807")
            cur.execute("DELETE FROM t_edge")
    finally:
        conn.close()
    return start


def test_decoder_matches_library_on_real_binlog(workload: tuple[Database, tuple[str, int]]) -> None:
    db, start = workload
    expected = read_all(db, start, "library")
    got = read_all(db, start, "decoder")
    rows = compare(expected, got)
    print(f"{rows} row changes in {len(expected)} events identical; "
          f"{sum(e[3] for e in expected)} zero dates; {decoder_stats(got)}")
    assert rows >= 4000, rows
    kinds = {e[0] for e in expected}
    assert kinds == {"WriteRowsEvent", "UpdateRowsEvent", "DeleteRowsEvent"}
    tables = {e[1] for e in expected}
    assert len(tables) == 13, tables
    seen = {t for e in expected for t in e[4]}
    wanted = {T.TINY, T.SHORT, T.INT24, T.LONG, T.LONGLONG, T.FLOAT, T.DOUBLE, T.NEWDECIMAL, T.VARCHAR, T.STRING,
              T.BLOB, T.DATE, T.DATETIME2, T.TIMESTAMP2, T.TIME2, T.YEAR, T.ENUM, T.SET, T.BIT, T.DATETIME,
              T.TIME, T.TIMESTAMP}
    assert wanted <= seen, wanted - seen
    assert sum(e[3] for e in expected) > 50  # zero dates were seen, and counted alike
    multi = [e for e in expected if len(e[2]) > 20]
    assert multi, "multi-row events expected"
    # the updates left most columns as they were: the decoder's after image took those values from the
    # before image (rowcompile's share_unchanged) -- identical to the library's all the same (compared above)
    # (not ENUM or SET columns, whose decoder hands out the same member objects anyway, nor cached DATEs)
    text_decimal_time = {T.VARCHAR, T.STRING, T.BLOB, T.NEWDECIMAL, T.DATETIME2, T.TIMESTAMP2, T.TIME2}
    shared = sum(1 for e in got if e[0] == "UpdateRowsEvent" for before, after in e[2]
                 for (c, v), t in zip(before.items(), e[4])
                 if t in text_decimal_time and v is not None and len(str(v)) > 1 and after[c] is v)
    assert shared > 5000, shared  # 17,677 at the fixed seed; 442 without sharing (1-byte bytes are cached)


def test_converted_values_match_binlog_source(workload: tuple[Database, tuple[str, int]]) -> None:
    """With the options binlog.py is to use, the decoder gives exactly what BinlogSource._row makes of the
    library's values (TIMESTAMP UTC-aware, zero TIMESTAMP None and counted, SET as MariaDB's text)."""
    db, start = workload
    rows = compare(read_all(db, start, "binlog-source"), read_all(db, start, "converted"))
    assert rows >= 4000


def test_unsupported_tables_and_images_fall_back(maria_db: Database) -> None:
    start = master_position(maria_db)
    execute(maria_db,
            "CREATE TABLE g (id INT PRIMARY KEY, pt POINT, note VARCHAR(10))",
            "INSERT INTO g VALUES (1, ST_GeomFromText('POINT(1 2)'), 'x'), (2, NULL, 'y')",
            "UPDATE g SET note = 'z'",
            "CREATE TABLE m (id INT PRIMARY KEY, a INT, b TEXT, c VARCHAR(10))",
            "INSERT INTO m VALUES (1, 1, 'b', 'c'), (2, 2, 'bb', 'cc')",
            "SET SESSION binlog_row_image = 'MINIMAL'",
            "UPDATE m SET a = a + 10",
            "DELETE FROM m WHERE id = 1",
            "SET SESSION binlog_row_image = 'NOBLOB'",
            "UPDATE m SET c = 'nb'",
            "SET SESSION binlog_row_image = 'FULL'",
            "UPDATE m SET a = 0")
    expected = read_all(maria_db, start, "library")
    decoder = RowDecoder()
    outcomes = []
    for n, event in enumerate(row_events(maria_db, start)):
        result = decoder.decode(event)
        outcomes.append((event.table, type(event).__name__, result is not None))
        if result is None:  # fallback: the packet must be untouched
            pairs, zero = library_rows(event)
        else:
            pairs, zero = result
        assert_same(pairs, expected[n][2], f"event {n}")
    assert [o for o in outcomes if o[0] == "g"] and not any(ok for table, _, ok in outcomes if table == "g")
    m = [ok for table, _, ok in outcomes if table == "m"]
    # FULL insert, MINIMAL update and delete, NOBLOB update, FULL update
    assert m == [True, False, False, False, True], outcomes


@pytest.mark.parametrize("sql_mode, ddl, value, error", [
    ("", "v VARCHAR(10) CHARACTER SET latin1", "CONVERT(UNHEX('41812B') USING latin1)", UnicodeDecodeError),
])
def test_values_the_library_rejects_fail_the_same_way(maria_db: Database, sql_mode: str, ddl: str, value: str,
                                                      error: type) -> None:
    start = master_position(maria_db)
    execute(maria_db, f"SET SESSION sql_mode = '{sql_mode}'", f"CREATE TABLE bad (id INT PRIMARY KEY, {ddl})",
            "INSERT INTO bad VALUES (1, NULL)", f"INSERT INTO bad VALUES (2, {value})")
    decoder = RowDecoder()
    events = row_events(maria_db, start)
    first = next(events)
    assert decoder.decode(first) is not None
    second = next(events)
    assert decoder.decode(second) is None
    with pytest.raises(error):
        second.rows  # exactly what the library does without the decoder
    events.close()


def test_an_impossible_date_is_none_and_named_where_the_library_raises(maria_db: Database) -> None:
    """The one value the decoder reads on purpose otherwise than the library: a DATE past its month's end (stored
    under ALLOW_INVALID_DATES) is None, counted and named with its text like a zero date, where the bare library
    raises ValueError; the library as binlog.py's fallback wraps it (libraryrows.watch_zero_dates) agrees."""
    from replicator.sources import libraryrows

    start = master_position(maria_db)
    execute(maria_db, "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'",
            "CREATE TABLE bad (id INT PRIMARY KEY, v DATE, w DATETIME)",
            "INSERT INTO bad VALUES (2, '2020-02-30', '2021-04-31 10:11:12'), (3, '2020-02-29', NULL)")
    events = row_events(maria_db, start)
    event = next(events)
    result = RowDecoder().decode(event)
    assert result is not None
    pairs, zero = result
    assert zero == 2
    first, second = (after for _, after in pairs)
    assert first == {"id": 2, "v": None, "w": None} and second["v"] == dt.date(2020, 2, 29)
    assert first.zero_texts == {"v": "2020-02-30", "w": "2021-04-31 10:11:12"}
    events.close()
    bare = next(row_events(maria_db, start))
    with pytest.raises(ValueError, match="day is out of range for month"):
        bare.rows
    watched = next(row_events(maria_db, start))
    texts = libraryrows.watch_zero_dates(watched)
    assert [r["values"]["v"] for r in watched.rows] == [None, dt.date(2020, 2, 29)]
    assert list(texts or ()) == ["2020-02-30", "2021-04-31 10:11:12"]


def test_ignore_decode_errors_is_honoured(maria_db: Database) -> None:
    start = master_position(maria_db)
    execute(maria_db, "CREATE TABLE bad (id INT PRIMARY KEY, v VARCHAR(10) CHARACTER SET latin1)",
            "INSERT INTO bad VALUES (1, CONVERT(UNHEX('41812B') USING latin1)), (2, 'é')")
    expected = read_all(maria_db, start, "library", ignore_decode_errors=True)
    got = read_all(maria_db, start, "decoder", ignore_decode_errors=True)
    compare(expected, got)
    assert got[0][2][0][1]["v"] == "A+"


def test_binlog_source_lean_rows_match_rows_events(workload: tuple[Database, tuple[str, int]],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """BinlogSource over the whole type table's binlog: the rows handed over as LEAN_ROWS tuples (the fast
    reader's fetchone(lean=True) decoding the body) give the Transactions the rows events gave -- every value
    with its class, the positions, GTIDs, commit times, zero-date metrics and decoder counts."""
    from tests.integration.test_binlogfast_differential import _source_transactions, assert_same_transactions

    db, start = workload
    mix = {"server": db, "db": db, "start": start, "end": master_position(db)}
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            names = tuple(sorted(r[0] for r in cur.fetchall()))
    finally:
        conn.close()
    old_stats: dict = {}
    new_stats: dict = {}
    old = _source_transactions(mix, True, monkeypatch, lean_rows=False, stats=old_stats, names=names)
    new = _source_transactions(mix, True, monkeypatch, stats=new_stats, names=names)
    assert_same_transactions(old, new)
    rows = sum(len(t.changes) for t in old)
    print(f"{len(old)} transactions, {rows} row changes of {len(names)} tables identical; "
          f"{new_stats['lean_rows']} rows events as LEAN_ROWS")
    assert rows >= 4000 and len(names) >= 13
    assert new_stats["lean_rows"] == new_stats["decoded"] == old_stats["decoded"] > 100
    assert sum(v or 0 for k, v in old_stats.items() if k.startswith("zero_dates")) > 50
    assert {k: v for k, v in new_stats.items() if k != "lean_rows"} == \
           {k: v for k, v in old_stats.items() if k != "lean_rows"}
