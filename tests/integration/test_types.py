"""Values survive the trip in both directions, compared as exact Python values.

One wide table is mapped `direction: both`: rows written on MariaDB are read back from PostgreSQL
and rows written on PostgreSQL are read back from MariaDB, each compared with the value that was
written. Types that only make sense one way (SET, zero dates, BIGINT UNSIGNED into bigint) have
their own one-way mappings. The daemon runs with a non-UTC local time zone (TZ) so that any
local-time conversion in the daemon shows up as a wrong timestamp.
"""
from __future__ import annotations

import json
import random
import string
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from replicator.changes import BinlogPosition, position_from_json
from tests.integration.harness import wait_until

UTC = timezone.utc

# ------------------------------------------------------------------------------------------------
# the wide table, mapped both ways

PG_TYPED = """
CREATE TABLE typed (
    id int PRIMARY KEY,
    i_tiny smallint, i_int int, i_big bigint, u_int bigint, u_big numeric(20,0),
    amount numeric(30,10),
    dt timestamp(6), ts timestamptz(6), d date,
    flag boolean,
    txt text,
    doc jsonb,
    b_blob bytea, vbin bytea,
    uid_bin uuid, uid uuid,
    status text,
    tm time(6)
);
CREATE TABLE note (id int PRIMARY KEY, body text, n int);
ALTER TABLE note ALTER COLUMN body SET STORAGE EXTERNAL
"""
MY_TYPED = """
CREATE TABLE typed (
    id INT PRIMARY KEY,
    i_tiny TINYINT, i_int INT, i_big BIGINT, u_int INT UNSIGNED, u_big BIGINT UNSIGNED,
    amount DECIMAL(30,10),
    dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, d DATE,
    flag TINYINT(1),
    txt TEXT CHARACTER SET utf8mb4,
    doc JSON,
    b_blob BLOB, vbin VARBINARY(64),
    uid_bin BINARY(16), uid UUID,
    status ENUM('new','paid','shipped'),
    tm TIME(6)
);
CREATE TABLE note (id INT PRIMARY KEY, body MEDIUMTEXT, n INT)
"""
COLUMNS = ("i_tiny", "i_int", "i_big", "u_int", "u_big", "amount", "dt", "ts", "d", "flag", "txt", "doc",
           "b_blob", "vbin", "uid_bin", "uid", "status", "tm")
MAPPINGS_BOTH = """
mappings:
  typed:
    direction: both
    crm: {table: typed, key: [id]}
    erp: {table: typed, key: [id]}
    fields:
      id: ~
%s
  note:
    direction: both
    crm: {table: note, key: [id]}
    erp: {table: note, key: [id]}
    fields:
      id: ~
      body: ~
      n: ~
""" % "\n".join(f"      {c}: ~" for c in COLUMNS)

# Canonical values. Each side's driver returns its own Python types; `canon_pg` / `canon_my` turn
# them into these before comparing.
VALUES: list[dict[str, Any]] = [
    dict(
        i_tiny=-128, i_int=-2147483648, i_big=-9223372036854775808, u_int=4294967295,
        u_big=18446744073709551615,
        amount=Decimal("12345678901234567890.0123456789"),
        dt=datetime(2024, 2, 29, 23, 59, 59, 999999),
        ts=datetime(2024, 3, 10, 7, 30, 0, 123456, tzinfo=UTC),
        d=date(1999, 12, 31),
        flag=True,
        txt="Grüße 👋🏽 漢字 \"q\" 'a' \\ %s %% \t tab",
        doc={"a": [1, 2.5, None, True], "emoji": "😀", "big": 12345678901234567890, "nested": {"k": "v"}},
        b_blob=bytes(range(256)),
        vbin=b"\x00\x01\x00\x00",
        uid_bin=uuid.UUID("0f1e2d3c-4b5a-4978-8796-a5b4c3d2e100"),  # trailing zero byte
        uid=uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),  # version 1 (time based)
        status="paid",
        tm=time(12, 34, 56, 789012),
    ),
    dict(
        i_tiny=127, i_int=2147483647, i_big=9223372036854775807, u_int=0, u_big=0,
        amount=Decimal("-0.0000000001"),
        dt=datetime(1000, 1, 1, 0, 0, 0),
        ts=datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        d=date(1000, 1, 1),
        flag=False,
        txt="",
        doc=[],
        b_blob=b"",
        vbin=b"",
        uid_bin=uuid.UUID("00000000-0000-4000-8000-000000000001"),
        uid=uuid.UUID("1b4e28ba-2fa1-4d2e-883f-0016d3cca427"),  # version 4
        status="new",
        tm=time(0, 0, 0),
    ),
    dict(
        i_tiny=0, i_int=0, i_big=0, u_int=1, u_big=9223372036854775808,  # just past the signed range
        amount=Decimal("99999999999999999999.9999999999"),
        dt=datetime(9999, 12, 31, 23, 59, 59, 999999),
        ts=datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
        d=date(9999, 12, 31),
        flag=True,
        txt="x" * 5000 + "€",
        doc={"s": "quote \" backslash \\ newline \n", "n": -0.5, "t": False},
        b_blob=b"\xff\xfe\x00\x80" * 1000,
        vbin=b"\xff",
        uid_bin=uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffffff"),
        uid=uuid.UUID("00000000-0000-4000-8000-000000000000"),  # all trailing zero bytes
        status="shipped",
        tm=time(23, 59, 59, 999999),
    ),
    {c: None for c in COLUMNS},  # NULL in every type
]


def canon_pg(col: str, v: Any) -> Any:
    if v is None:
        return None
    if col in ("uid_bin", "uid"):
        return uuid.UUID(str(v))
    if col in ("b_blob", "vbin"):
        return bytes(v)
    if col == "u_big":  # numeric(20,0): a Decimal without fraction
        assert isinstance(v, Decimal) and v.as_tuple().exponent == 0, v
        return int(v)
    return v  # jsonb arrives parsed, timestamptz aware, time as datetime.time


def canon_my(col: str, v: Any) -> Any:
    if v is None:
        return None
    if col == "uid_bin":
        assert isinstance(v, bytes) and len(v) == 16, v
        return uuid.UUID(bytes=v)
    if col == "uid":
        return uuid.UUID(v)
    if col == "doc":
        return json.loads(v)
    if col == "flag":
        assert v in (0, 1), v
        return bool(v)
    if col == "ts":  # the reading session's time_zone is +00:00
        return v.replace(tzinfo=UTC)
    if col == "tm":
        assert isinstance(v, timedelta) and timedelta(0) <= v < timedelta(days=1), v
        return (datetime.min + v).time()
    return v


def pg_param(col: str, v: Any) -> Any:
    if v is None:
        return None
    if col in ("uid_bin", "uid"):
        return str(v)
    if col == "doc":
        return json.dumps(v)
    return v


def my_param(col: str, v: Any) -> Any:
    if v is None:
        return None
    if col == "uid_bin":
        return v.bytes
    if col == "uid":
        return str(v)
    if col == "doc":
        return json.dumps(v)
    if col == "ts":  # written in a +05:30 session: MariaDB converts to UTC itself
        return (v.astimezone(timezone(timedelta(hours=5, minutes=30)))).replace(tzinfo=None)
    return v


def pg_rows(pair, ids: list[int]) -> dict[int, dict]:
    rows = pair.pg_query(f"SELECT id, {', '.join(COLUMNS)} FROM typed WHERE id = ANY(%s)", (ids,))
    return {r[0]: {c: canon_pg(c, v) for c, v in zip(COLUMNS, r[1:])} for r in rows}


def my_rows(pair, ids: list[int]) -> dict[int, dict]:
    marks = ", ".join(["%s"] * len(ids))
    rows = pair.my_query(f"SELECT id, {', '.join(COLUMNS)} FROM typed WHERE id IN ({marks})", ids)
    return {r[0]: {c: canon_my(c, v) for c, v in zip(COLUMNS, r[1:])} for r in rows}


def differences(got: dict[int, dict], want: dict[int, dict]) -> list[str]:
    out = []
    for key, row in want.items():
        if key not in got:
            out.append(f"id {key}: missing")
            continue
        for c in COLUMNS:
            if got[key][c] != row[c] or type(got[key][c]) is not type(row[c]):
                out.append(f"id {key} {c}: got {got[key][c]!r}, want {row[c]!r}")
    return out


@pytest.fixture
def daemon_tz(monkeypatch):
    """The daemon inherits a local time zone far from UTC: local-time conversions would show."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")


@pytest.fixture
def typed_pair(make_pair, daemon_tz):
    p = make_pair(PG_TYPED, MY_TYPED, MAPPINGS_BOTH)
    p.start()
    yield p
    p.stop()


def test_every_type_survives_both_directions(typed_pair):
    pair = typed_pair
    from_my = {1 + i: v for i, v in enumerate(VALUES)}  # written on MariaDB, read on PostgreSQL
    from_pg = {101 + i: v for i, v in enumerate(VALUES)}  # written on PostgreSQL, read on MariaDB

    conn = pair.maria.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+05:30'")
            for key, row in from_my.items():
                cur.execute(f"INSERT INTO typed (id, {', '.join(COLUMNS)}) VALUES (%s{', %s' * len(COLUMNS)})",
                            [key] + [my_param(c, row[c]) for c in COLUMNS])
    finally:
        conn.close()
    conn = pair.pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'America/New_York'")
            for key, row in from_pg.items():
                cur.execute(f"INSERT INTO typed (id, {', '.join(COLUMNS)}) VALUES (%s{', %s' * len(COLUMNS)})",
                            [key] + [pg_param(c, row[c]) for c in COLUMNS])
    finally:
        conn.close()

    # the writes themselves are what we think they are (sanity of the test, not of the daemon)
    assert differences(my_rows(pair, list(from_my)), from_my) == []
    assert differences(pg_rows(pair, list(from_pg)), from_pg) == []

    every = list(from_my) + list(from_pg)
    wait_until(lambda: len(pg_rows(pair, every)) == len(every) and len(my_rows(pair, every)) == len(every),
               what="all rows on both sides")
    problems = ([f"MariaDB -> PostgreSQL: {d}" for d in differences(pg_rows(pair, list(from_my)), from_my)]
                + [f"PostgreSQL -> MariaDB: {d}" for d in differences(my_rows(pair, list(from_pg)), from_pg)])
    assert problems == [], "\n".join(problems)

    # updates to the other extreme and to NULL travel too, in both directions
    pair.my_query(f"UPDATE typed SET {', '.join(f'{c} = NULL' for c in COLUMNS)} WHERE id = 1")
    pair.pg_query(f"UPDATE typed SET {', '.join(f'{c} = NULL' for c in COLUMNS)} WHERE id = 101")
    nulls = {c: None for c in COLUMNS}
    wait_until(lambda: pg_rows(pair, [1])[1] == nulls and my_rows(pair, [101])[101] == nulls,
               what="updates to NULL on the other side")
    assert pair.metric("replicator_rows_applied_total", direction="erp_to_crm", op="update") == 1
    assert pair.metric("replicator_rows_applied_total", direction="crm_to_erp", op="update") == 1
    assert pair.metric("replicator_errors_total") == 0


def test_unchanged_toast_column_is_kept_not_nulled(typed_pair):
    pair = typed_pair
    rnd = random.Random(7)
    big = "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(20_000)) + "🙂"
    pair.pg_query("INSERT INTO note (id, body, n) VALUES (1, %s, 0)", (big,))
    wait_until(lambda: pair.my_query("SELECT n FROM note WHERE id = 1") == [(0,)], what="insert on MariaDB")
    assert pair.my_query("SELECT body FROM note WHERE id = 1")[0][0] == big
    # the value really lives out of line in the TOAST table, so pgoutput omits it from UPDATEs
    toast = pair.pg_query("SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = 'note'")[0][0]
    assert pair.pg_query(f"SELECT count(*) FROM {toast}")[0][0] > 0

    pair.pg_query("UPDATE note SET n = 1 WHERE id = 1")
    wait_until(lambda: pair.my_query("SELECT n FROM note WHERE id = 1") == [(1,)], what="update on MariaDB")
    assert pair.my_query("SELECT body FROM note WHERE id = 1")[0][0] == big  # kept, never NULL
    # and the other way round the full row arrives and PostgreSQL keeps the value as well
    pair.my_query("UPDATE note SET n = 2 WHERE id = 1")
    wait_until(lambda: pair.pg_query("SELECT n FROM note WHERE id = 1") == [(2,)], what="update on PostgreSQL")
    assert pair.pg_query("SELECT body FROM note WHERE id = 1")[0][0] == big
    assert pair.metric("replicator_rows_applied_total", direction="crm_to_erp", op="update") == 1


# ------------------------------------------------------------------------------------------------
# one-way types: MariaDB ENUM/SET and zero dates into PostgreSQL text and date/time columns

PG_LEGACY = """
CREATE TABLE legacy (id int PRIMARY KEY, tags text, d date, dt timestamp, ts timestamptz);
CREATE TABLE labels (id int PRIMARY KEY, status text);
CREATE TABLE dated (id int PRIMARY KEY, d date, dt timestamp, ts timestamptz)
"""
MY_LEGACY = """
CREATE TABLE legacy (id INT PRIMARY KEY, tags SET('red','green','blue'), d DATE, dt DATETIME,
                     ts TIMESTAMP NULL DEFAULT NULL);
CREATE TABLE labels (id INT PRIMARY KEY, status ENUM('new','paid','shipped'));
CREATE TABLE dated (id INT PRIMARY KEY, d DATE, dt DATETIME(3), ts TIMESTAMP NULL DEFAULT NULL, other DATE,
                    kind VARCHAR(10) NOT NULL)
"""
# legacy wants NULL for every zero date (the mapping's zero_date: null); dated refuses them (row errors, queued)
# except in dt (the field's zero_date: null), carries no `other` column and filters out kind 'skip'
MAPPINGS_LEGACY = """
mappings:
  legacy:
    direction: erp_to_crm
    zero_date: null
    crm: {table: legacy, key: [id]}
    erp: {table: legacy, key: [id]}
    fields: {id: ~, tags: ~, d: ~, dt: ~, ts: ~}
  labels_in:
    direction: erp_to_crm
    crm: {table: labels, key: [id]}
    erp: {table: labels, key: [id]}
    fields: {id: ~, status: ~}
  dated:
    direction: erp_to_crm
    on_error: %s
    filter: {erp_to_crm: {kind: {ne: skip}}}
    crm: {table: dated, key: [id]}
    erp: {table: dated, key: [id]}
    fields: {id: ~, d: ~, dt: {zero_date: null}, ts: ~}
"""


@pytest.fixture
def legacy_pair(make_pair, daemon_tz):
    p = make_pair(PG_LEGACY, MY_LEGACY, MAPPINGS_LEGACY % "quarantine")
    p.start()
    yield p
    p.stop()


def legacy_insert(pair, rows: list[tuple]) -> None:
    conn = pair.maria.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")  # allows zero dates, as legacy applications do
            for row in rows:
                cur.execute("INSERT INTO legacy (id, tags, d, dt, ts) VALUES (%s, %s, %s, %s, %s)", row)
    finally:
        conn.close()


def test_set_becomes_the_text_mariadb_shows(legacy_pair):
    pair = legacy_pair
    legacy_insert(pair, [(1, "blue,red", None, None, None), (2, "green", None, None, None),
                         (3, "", None, None, None), (4, None, None, None, None),
                         (5, "red,green,blue", None, None, None)])
    shown = dict(pair.my_query("SELECT id, tags FROM legacy"))
    # MariaDB lists SET members in definition order, whatever order they were written in
    assert shown == {1: "red,blue", 2: "green", 3: "", 4: None, 5: "red,green,blue"}
    wait_until(lambda: len(pair.pg_query("SELECT id FROM legacy")) == 5, what="rows in PostgreSQL")
    assert dict(pair.pg_query("SELECT id, tags FROM legacy")) == shown  # '' stays '', NULL stays NULL


def test_enum_to_text(legacy_pair):
    pair = legacy_pair
    pair.my_query("INSERT INTO labels VALUES (1, 'new'), (2, 'shipped'), (3, NULL)")
    wait_until(lambda: len(pair.pg_query("SELECT id FROM labels")) == 3, what="rows in PostgreSQL")
    assert pair.pg_query("SELECT id, status FROM labels ORDER BY id") == [(1, "new"), (2, "shipped"), (3, None)]
    pair.my_query("UPDATE labels SET status = 'paid' WHERE id = 3")
    wait_until(lambda: pair.pg_query("SELECT status FROM labels WHERE id = 3") == [("paid",)], what="update")


def test_zero_dates_arrive_as_null_and_are_counted(legacy_pair):
    pair = legacy_pair
    zero_dt = "0000-00-00 00:00:00"
    legacy_insert(pair, [
        (1, None, "0000-00-00", zero_dt, zero_dt),  # three zero dates
        (2, None, "2024-00-15", "2024-02-00 10:00:00", "2024-05-06 07:08:09"),  # two zero-in-date values
        (3, None, "2024-05-06", "2024-05-06 07:08:09", "2024-05-06 07:08:09"),  # valid
        (4, None, None, None, None),  # NULLs are not zero dates
    ])
    wait_until(lambda: len(pair.pg_query("SELECT id FROM legacy")) == 4, what="rows in PostgreSQL")
    valid_ts = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert pair.pg_query("SELECT id, d, dt, ts FROM legacy ORDER BY id") == [
        (1, None, None, None),
        (2, None, None, valid_ts),
        (3, date(2024, 5, 6), datetime(2024, 5, 6, 7, 8, 9), valid_ts),
        (4, None, None, None),
    ]
    table = f"{pair.maria.dbname}.legacy"
    assert pair.metric("replicator_zero_dates_total", direction="erp_to_crm", table=table) == 5
    assert pair.metric("replicator_errors_total") == 0


ZERO = "0000-00-00 00:00:00"
# (id, d, dt, ts, other, kind): in one multi-row INSERT (one rows event), so that the reader has to find which
# rows and columns of the event hold the zero dates it counted
DATED = [
    (1, "0000-00-00", None, None, None, "keep"),  # refused: d
    (2, "2024-05-06", ZERO, None, None, "keep"),  # dt says zero_date: null -> NULL
    (3, "2024-05-06", None, ZERO, None, "keep"),  # refused: ts (the zero TIMESTAMP)
    (4, "2024-05-06", None, None, "0000-00-00", "keep"),  # other is not carried: passes
    (5, "0000-00-00", ZERO, ZERO, None, "skip"),  # filtered out: nothing
    (6, "2024-00-15", None, None, None, "keep"),  # refused: d (a zero month)
    (7, "2024-05-06", "2024-05-06 07:08:09.123", "2024-05-06 07:08:09", None, "keep"),
]


def dated_insert(pair, rows: list[tuple]) -> None:
    conn = pair.maria.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")  # allows zero dates, as legacy applications do
            cur.execute("INSERT INTO dated (id, d, dt, ts, other, kind) VALUES "
                        + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows)), [v for r in rows for v in r])
    finally:
        conn.close()


def queued(pair) -> dict[str, tuple[str, str]]:
    return {key: (error, cls) for key, error, cls in pair.pg_query(
        "SELECT target_key, error, error_class FROM replicator.dead_letter WHERE target_table LIKE '%dated'")}


def check_dated(pair, streamed: bool) -> None:
    """What DATED becomes: rows 2, 4 and 7 written (2's dt NULL), 1, 3 and 6 queued naming key and column."""
    wait_until(lambda: len(queued(pair)) == 3 and len(pair.pg_query("SELECT id FROM dated")) == 3, 30,
               "three rows written, three queued")
    assert pair.pg_query("SELECT id, d, dt, ts FROM dated ORDER BY id") == [
        (2, date(2024, 5, 6), None, None),
        (4, date(2024, 5, 6), None, None),
        (7, date(2024, 5, 6), datetime(2024, 5, 6, 7, 8, 9, 123000), datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
    ]
    q = queued(pair)
    assert sorted(q) == ["[1]", "[3]", "[6]"], q
    table = f"{pair.maria.dbname}.dated"
    for key, column, value in (("[1]", "d", "0000-00-00"), ("[3]", "ts", ZERO), ("[6]", "d", "2024-00-15")):
        error = q[key][0]
        assert f"table {table}" in error and f"key ({key[1:-1]},)" in error and f"column {column}" in error, error
        assert f"field {column}: the value '{value}' is a MariaDB zero date" in error, error
        assert "zero_date: null" in error, error
    if streamed:  # every zero date read, carried or not: one each in rows 1, 2, 3, 4 and 6, three in row 5
        assert pair.metric("replicator_zero_dates_total", direction="erp_to_crm", table=table) == 8


def test_zero_dates_are_row_errors_unless_the_field_says_null(legacy_pair):
    pair = legacy_pair
    dated_insert(pair, DATED)
    check_dated(pair, streamed=True)
    # verify: the refused rows cannot be mapped (not "equal to NULL"), known as queued; the others agree
    verified = pair.cli("verify", check=False)
    refused = [line for line in verified.stdout.splitlines() if "cannot be mapped" in line and "zero date" in line]
    assert [line.split(":", 1)[0] for line in refused] == [
        f"dated erp_to_crm public.dated key=({k},)" for k in (1, 3, 6)], verified.stdout
    assert "the sides agree but for 3 row(s) with changes in the dead-letter queue" in verified.stdout
    # an update that writes a zero date into a refused column is refused too; into dt it is NULL
    conn = pair.maria.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")
            cur.execute("UPDATE dated SET d = '0000-00-00' WHERE id = 7")
            cur.execute("UPDATE dated SET dt = '0000-00-00' WHERE id = 4")
    finally:
        conn.close()
    wait_until(lambda: "[7]" in queued(pair), 30, "the update of row 7 queued")
    wait_until(lambda: pair.pg_query("SELECT dt FROM dated WHERE id = 4") == [(None,)], 30, "row 4 unchanged dt")
    assert pair.pg_query("SELECT d FROM dated WHERE id = 7") == [(date(2024, 5, 6),)]  # not overwritten by NULL
    assert "column d" in queued(pair)["[7]"][0]


def test_zero_dates_copied_by_the_initial_sync(make_pair, daemon_tz):
    """The same rows written before the first run: the table scanner finds the zero dates, the copy queues the
    rows it cannot carry (on_error: quarantine) and writes the others."""
    pair = make_pair(PG_LEGACY, MY_LEGACY, MAPPINGS_LEGACY % "quarantine")
    dated_insert(pair, DATED)
    # check: d and ts of dated (not dt, which says zero_date: null; not legacy's) already hold zero dates, which
    # check counts in its bounded read of the table (rows 1 and 6; 3: row 5 is one the mapping's filter leaves out);
    # a field is named once, the stored rows before the sql_mode that allows more
    checked = pair.cli("check", check=False)
    warned = [line for line in checked.stdout.splitlines() if "zero dates" in line]
    assert [w.split(": field ", 1)[1].split(" ", 1)[0] for w in warned] == ["d", "ts"], checked.stdout
    assert all(".dated." in w for w in warned), warned
    kept = "in its 7 rows, of the rows the mapping's filter or slice keeps"
    assert f"already holds zero dates (2 {kept})" in warned[0], warned
    assert f"already holds zero dates (1 {kept})" in warned[1], warned
    assert checked.stdout.count("give the field zero_date: null") == 2, checked.stdout
    pair.start()
    try:
        wait_until(lambda: "sync of dated done" in pair.log() or pair.proc.poll() is not None, 60, "the sync")
        assert pair.proc.poll() is None, pair.log()[-3000:]
        check_dated(pair, streamed=False)
    finally:
        pair.stop()


def test_a_zero_date_stops_a_mapping_that_does_not_quarantine(make_pair, daemon_tz):
    pair = make_pair(PG_LEGACY, MY_LEGACY, MAPPINGS_LEGACY % "stop")
    pair.start()
    dated_insert(pair, [DATED[6], DATED[0]])  # one rows event: a good row, then the zero date
    code = pair.wait_exit(60)
    log = pair.log()
    assert code != 0, log
    stopped = [line for line in log.splitlines() if "stopped on" in line]
    assert stopped, log
    message = stopped[-1]
    assert f"{pair.maria.dbname}.dated" in message and "(1,)" in message and "column d" in message, message
    assert "zero date" in message, message
    assert pair.pg_query("SELECT count(*) FROM dated") == [(0,)]  # nothing of the transaction applied


# ------------------------------------------------------------------------------------------------
# BIGINT UNSIGNED beyond PostgreSQL's bigint: a clear error, nothing applied

PG_BIG = "CREATE TABLE big (id int PRIMARY KEY, v bigint); CREATE TABLE side (id int PRIMARY KEY)"
MY_BIG = "CREATE TABLE big (id INT PRIMARY KEY, v BIGINT UNSIGNED); CREATE TABLE side (id INT PRIMARY KEY)"
MAPPINGS_BIG = """
mappings:
  big:
    direction: erp_to_crm
    crm: {table: big, key: [id]}
    erp: {table: big, key: [id]}
    fields: {id: ~, v: ~}
  side:
    direction: erp_to_crm
    crm: {table: side, key: [id]}
    erp: {table: side, key: [id]}
    fields: {id: ~}
"""


def _binlog_start_of(pair: Any, gtid: str) -> BinlogPosition:
    """Where the transaction with this GTID starts in the binlog (its GTID event)."""
    for (name, _size, *_rest) in pair.my_query("SHOW BINARY LOGS"):
        for row in pair.my_query(f"SHOW BINLOG EVENTS IN '{name}'"):
            if row[2] == "Gtid" and row[5].endswith(f"GTID {gtid}"):
                return BinlogPosition(name, int(row[1]))
    raise AssertionError(f"GTID {gtid} not found in the binlog")


def _checkpoint_not_past(pair: Any, bad: BinlogPosition) -> None:
    rows = pair.pg_query("SELECT position FROM replicator.checkpoint WHERE stream = 'erp_to_crm'")
    assert rows, "no checkpoint"
    checkpoint = position_from_json(rows[0][0])
    assert isinstance(checkpoint, BinlogPosition) and checkpoint <= bad, (checkpoint, bad)


def test_unsigned_bigint_that_does_not_fit_stops_with_a_named_error(make_pair):
    pair = make_pair(PG_BIG, MY_BIG, MAPPINGS_BIG)
    pair.start()
    pair.my_query("INSERT INTO big VALUES (1, 9223372036854775807)")  # the largest that fits
    wait_until(lambda: pair.pg_query("SELECT v FROM big WHERE id = 1") == [(9223372036854775807,)],
               what="the largest bigint")
    conn = pair.maria.connect(autocommit=False)
    with conn.cursor() as cur:  # one transaction: a good row in another table, then the bad one
        cur.execute("INSERT INTO side VALUES (1)")
        cur.execute("INSERT INTO big VALUES (2, 5)")
        cur.execute("INSERT INTO big VALUES (3, 18446744073709551615)")
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SELECT @@last_gtid")
        bad_gtid = cur.fetchone()[0]
    conn.close()
    bad = _binlog_start_of(pair, bad_gtid)

    code = pair.wait_exit(60)
    log = pair.log()
    assert code != 0, log
    stopped = [line for line in log.splitlines() if "stopped on" in line]
    assert stopped, log
    message = stopped[-1]
    assert f"{pair.maria.dbname}.big" in message or "public.big" in message, message
    assert "(3,)" in message, message  # the key
    assert "column v" in message, message
    # nothing of that transaction was applied, and the checkpoint did not pass it
    assert pair.pg_query("SELECT id FROM big ORDER BY id") == [(1,)]
    assert pair.pg_query("SELECT count(*) FROM side") == [(0,)]
    # the checkpoint (where the next transaction starts) is at or before the bad transaction's first event;
    # other transactions (the other direction's tagged writes) may have moved it up to there
    _checkpoint_not_past(pair, bad)

    # a restart meets the same row again: it is not skipped
    again = pair.cli("run", check=False, timeout=90)
    assert again.returncode != 0
    assert "(3,)" in again.stderr and "column v" in again.stderr, again.stderr
    assert pair.pg_query("SELECT id FROM big ORDER BY id") == [(1,)]
