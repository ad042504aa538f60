"""The PostgreSQL applier's COPY path (appliers/pgcopy.py) against its execute_values path, on a real server.

The same changes go through both paths into two tables of the same shape; the rows must be the same,
column by column, as PostgreSQL's own text of each value (so -0 and 0, 1.50 and 1.5, key order in
jsonb, trailing zero bytes all count). Values: every target type of the MariaDB -> PostgreSQL table of
docs/types.md, with its edge values as the binlog decoder hands them to the applier, then a hypothesis
property test. Errors, the loop tag and the staging table's life across rollbacks are checked as well.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterator

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replicator.appliers.postgres import PostgresApplier
from replicator.changes import Op, TableRef, TargetChange
from replicator.config import Account, Connection, Secret
from replicator.errors import RowError
from replicator.loopguard import MESSAGE_PREFIX
from tests.integration.harness import wait_until

UTC = timezone.utc
F32_MAX = 3.4028234663852886e38

# (column type, values as the MariaDB decoder and the mapping give them): docs/types.md, MariaDB -> PostgreSQL
TYPE_TABLE: list[tuple[str, list[Any]]] = [
    ("smallint", [-128, 127, -32768, 32767, 0]),
    ("integer", [-8388608, 8388607, -2**31, 2**31 - 1, 0]),
    ("bigint", [-2**63, 2**63 - 1, 0, 2**32 - 1]),
    ("numeric(20,0)", [0, 2**64 - 1, Decimal("18446744073709551615")]),
    ("numeric(65,30)", [Decimal("99999999999999999999999999999999999.999999999999999999999999999999"),
                        Decimal("-99999999999999999999999999999999999.999999999999999999999999999999"),
                        Decimal("-1E-30"), Decimal("0E-30"), Decimal("-0.00"), Decimal("1E+5"), Decimal("1.50"),
                        0.1, 12]),
    ("numeric", [Decimal("1.10"), Decimal("-0"), Decimal("1E-10"), 2.5, -0.0]),
    ("real", [F32_MAX, -F32_MAX, 1.1754943508222875e-38, 1.401298464324817e-45, 0.0, -0.0,
              0.10000000149011612, float("nan"), float("inf"), float("-inf"), Decimal("0.1"), 7]),
    ("double precision", [1.7976931348623157e308, -1.7976931348623157e308, 5e-324, 2.2250738585072014e-308,
                          0.0, -0.0, 0.1, float("nan"), float("-inf"), Decimal("2.50"), 2**53 + 1]),
    ("varchar(255)", ["", "\U0001F600" * 255, "it's", 'say "hi"', "back\\slash", "%s %% %(x)s", "\\N", "\\.",
                      "NULL", "tab\tnew\nline\rcr", "\\x00", b"bytes \xc3\xa9", 42]),
    ("char(10)", ["", "a", "abc de", "  lead"]),
    ("text", ["x" * 65535, "", "\\", "\t", "\n", "mixed ünï\U0001F600\\n" * 1000, frozenset({"z", "x"}), set()]),
    ("boolean", [0, 1, True, False]),
    ("date", [date(1000, 1, 1), date(9999, 12, 31), date(2024, 2, 29), "2024-01-02"]),
    ("timestamp(6)", [datetime(1000, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999),
                      datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-8)))]),
    ("timestamptz(6)", [datetime(1970, 1, 1, 0, 0, 1), datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
                        datetime(2024, 2, 29, 23, 30, tzinfo=timezone(timedelta(hours=-8)))]),
    ("interval", [timedelta(hours=838, minutes=59, seconds=59, microseconds=999999),
                  -timedelta(hours=838, minutes=59, seconds=59, microseconds=999999),
                  -timedelta(microseconds=1), timedelta(0), -timedelta(hours=12, minutes=34, seconds=56, milliseconds=789),
                  -timedelta(milliseconds=1), -timedelta(milliseconds=999)]),
    ("time(6)", [timedelta(0), timedelta(hours=23, minutes=59, seconds=59, microseconds=999999), timedelta(hours=24)]),
    ("jsonb", ['{"b": 1, "a": [1, 2.50, null]}', "[]", "{}", '"str\\\\ing"', b'{"x": "\\t"}',
               {"k": [1, None, "é"]}, [1, 2]]),
    ("bytea", [b"", bytes(range(256)), b"\0" * 10, bytearray(b"\\N\t\n"), b"\x00"]),
    ("uuid", [b"\x12" * 15 + b"\0", b"\0" * 16, b"\xff" * 16, uuid.UUID("12345678-1234-5678-1234-567812345678"),
              "00000000-0000-0000-0000-000000000000", b"\x01" * 15]),
    ("inet", [b"\0" * 16, b"\0" * 15 + b"\1", b"\xff\xff" + b"\0" * 14, b"\0" * 10 + b"\xff\xff\1\2\3\4",
              bytes.fromhex("20010db8000000000000ff0000428329"), b"\x0a\0\0\1"]),
]
COLUMNS = [f"c{i}" for i in range(len(TYPE_TABLE))]


def _applier(db: Any) -> PostgresApplier:
    acc = Account(db.user, Secret(db.password))
    return PostgresApplier(Connection("crm", "postgresql", db.host, db.port, db.dbname, acc, acc,
                                      sslmode="disable", slot=db.dbname, publication="p"), "erp_to_crm")


class Paths:
    """One applier session, two tables of one shape: `slow` written by execute_values, `fast` by COPY."""

    def __init__(self, db: Any, ddl: str):
        self.conn = db.connect()
        with self.conn.cursor() as cur:
            for name in ("slow", "fast"):
                cur.execute(f'CREATE TABLE "{name}" (id int PRIMARY KEY, {ddl})')
        self.applier = _applier(db)
        self.applier.connect()
        self.tables = {name: TableRef("public", name) for name in ("slow", "fast")}
        self.applier.load_types(list(self.tables.values()))
        self.merges = 0
        merge = self.applier._merge

        def counted_merge(*a: Any) -> int:
            self.merges += 1
            return merge(*a)
        self.applier._merge = counted_merge  # type: ignore[method-assign]

    def apply(self, name: str, changes: list[tuple[Op, int, dict[str, Any]]]) -> None:
        table = self.tables[name]
        self.applier.copy_min_rows = 1 if name == "fast" else None
        self.applier.begin()
        self.applier.apply([TargetChange(table, op, ("id",), (k,), {"id": k, **vals} if op is not Op.DELETE else {})
                            for op, k, vals in changes])
        self.applier.commit_untracked()

    def both(self, changes: list[tuple[Op, int, dict[str, Any]]]) -> None:
        before = self.merges
        self.apply("slow", changes)
        assert self.merges == before
        self.apply("fast", changes)
        if any(op is not Op.DELETE for op, _, _ in changes):
            assert self.merges > before, "the COPY path was not taken"
        else:
            assert self.merges == before, "deletes are written by execute_values"

    def rows(self, name: str) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(f'SELECT id, t::text FROM "{name}" AS t ORDER BY id')
            return cur.fetchall()

    def assert_same(self) -> None:
        slow, fast = self.rows("slow"), self.rows("fast")
        assert len(slow) == len(fast)
        for s, f in zip(slow, fast):
            assert s == f

    def close(self) -> None:
        self.applier.close()
        self.conn.close()


@pytest.fixture
def type_table(pg_db: Any) -> Iterator[Paths]:
    paths = Paths(pg_db, ", ".join(f"{c} {t}" for c, (t, _) in zip(COLUMNS, TYPE_TABLE)))
    yield paths
    paths.close()


def _type_table_rows(shift: int = 0) -> list[dict[str, Any]]:
    n = max(len(values) for _, values in TYPE_TABLE) + 1
    rows = []
    for k in range(n):
        row = {}
        for c, (_, values) in zip(COLUMNS, TYPE_TABLE):
            i = k + shift
            row[c] = None if i % (len(values) + 1) == len(values) else values[i % (len(values) + 1)]
        rows.append(row)
    return rows


def test_every_value_of_the_type_table_arrives_the_same_by_copy_and_by_execute_values(type_table: Paths) -> None:
    inserts = [(Op.INSERT, k, row) for k, row in enumerate(_type_table_rows())]
    type_table.both(inserts)
    type_table.assert_same()
    assert len(type_table.rows("fast")) == len(inserts)
    # the same keys again, other values: ON CONFLICT DO UPDATE, with the count of missing rows
    updates = [(Op.UPDATE, k, row) for k, row in enumerate(_type_table_rows(shift=3))]
    updates.append((Op.UPDATE, 1000, _type_table_rows()[0]))  # an update of a missing row is inserted
    type_table.both(updates)
    type_table.assert_same()
    type_table.both([(Op.DELETE, k, {}) for k in range(0, 1001, 2)])
    type_table.assert_same()
    assert [r[0] for r in type_table.rows("fast")] == list(range(1, len(inserts), 2))  # 1000 is gone too


def test_a_value_the_copy_text_does_not_carry_exactly_takes_the_slow_path(type_table: Paths) -> None:
    rows = [(Op.INSERT, 1, {"c0": 1}), (Op.INSERT, 2, {"c0": 2})]
    type_table.both(rows)
    before = type_table.merges
    # an int into a date column: psycopg2 sends an integer constant, which no cast turns into a date;
    # COPY would hand "5" to date_in. Not encodable: the run goes through execute_values and fails there
    date_col = COLUMNS[[t for t, _ in TYPE_TABLE].index("date")]
    type_table.applier.copy_min_rows = 1
    type_table.applier.begin()
    with pytest.raises(psycopg2.Error, match="date"):
        type_table.applier.apply([TargetChange(type_table.tables["fast"], Op.INSERT, ("id",), (k,),
                                               {"id": k, date_col: 5}) for k in (3, 4)])
    type_table.applier.rollback()
    assert type_table.merges == before


@st.composite
def _rows(draw: Any) -> list[dict[str, Any]]:
    keys = draw(st.lists(st.integers(0, 40), min_size=1, max_size=25, unique=True))
    text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30)
    value = {
        "t": text, "f": st.floats(), "r": st.floats(width=32), "n": st.decimals(allow_nan=False, allow_infinity=False),
        "b": st.binary(max_size=20), "ts": st.datetimes(min_value=datetime(1, 1, 1)),
        "tz": st.datetimes(timezones=st.just(UTC)),
        "iv": st.timedeltas(min_value=-timedelta(days=10**6), max_value=timedelta(days=10**6)),
        "bi": st.integers(-2**63, 2**63 - 1), "j": st.dictionaries(text, st.integers() | text, max_size=3),
    }
    return [{"id": k, **{c: draw(st.none() | s) for c, s in value.items()}} for k in keys]


PROPERTY_DDL = ("t text, f double precision, r real, n numeric, b bytea, ts timestamp(6), tz timestamptz, "
                "iv interval, bi bigint, j jsonb")


def test_property_any_rows_arrive_the_same_by_both_paths(pg_db: Any) -> None:
    paths = Paths(pg_db, PROPERTY_DDL)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_rows(), st.sampled_from([Op.INSERT, Op.UPDATE, Op.DELETE]))
    def prop(rows: list[dict[str, Any]], op: Op) -> None:
        changes = [(op, r["id"], {c: v for c, v in r.items() if c != "id"}) for r in rows]
        paths.both(changes)
        paths.assert_same()

    try:
        prop()
    finally:
        paths.close()


def test_a_row_the_server_refuses_in_a_copied_run_is_named_as_on_the_slow_path(pg_db: Any) -> None:
    paths = Paths(pg_db, "v varchar(3), n numeric(4,2)")
    errors = {}
    try:
        for name in ("slow", "fast"):
            changes = [TargetChange(paths.tables[name], Op.INSERT, ("id",), (k,),
                                    {"id": k, "v": "abcd" if k == 3 else "ab", "n": Decimal("1.5")})
                       for k in range(6)]
            paths.applier.copy_min_rows = 1 if name == "fast" else None
            paths.applier.begin()
            with pytest.raises(psycopg2.Error) as info:
                paths.applier.apply(changes)
            located = paths.applier.locate_row_error(changes, info.value)
            assert isinstance(located, RowError)
            errors[name] = (located.key, located.column, str(located).replace(name, "T"))
        assert errors["fast"] == errors["slow"]
        assert errors["fast"][0] == (3,)
        assert paths.rows("fast") == paths.rows("slow") == []
        # the staging table made in the rolled-back transaction is gone: the next run makes another
        paths.both([(Op.INSERT, k, {"v": "x", "n": Decimal("2")}) for k in range(3)])
        paths.assert_same()
    finally:
        paths.close()


def test_a_copied_run_is_tagged_and_leaves_no_staging_rows_behind(pg_db: Any) -> None:
    paths = Paths(pg_db, "v text")
    try:
        with paths.conn.cursor() as cur:
            cur.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (pg_db.dbname,))
        # two runs of one shape in one transaction (another table's run between): the staging table is reused
        paths.applier.copy_min_rows = 1
        paths.applier.begin()
        fast, slow = paths.tables["fast"], paths.tables["slow"]
        paths.applier.apply([TargetChange(fast, Op.INSERT, ("id",), (k,), {"id": k, "v": "a"}) for k in range(3)]
                            + [TargetChange(slow, Op.INSERT, ("id",), (1,), {"id": 1, "v": "b"})]
                            + [TargetChange(fast, Op.INSERT, ("id",), (k,), {"id": k, "v": "c"}) for k in range(2, 5)])
        paths.applier.commit_untracked()
        assert [r[1] for r in paths.rows("fast")] == ["(0,a)", "(1,a)", "(2,c)", "(3,c)", "(4,c)"]
        def decode() -> list[str]:
            # the dev server commits asynchronously: decoding sees a commit once the WAL writer flushed it
            with paths.conn.cursor() as cur:
                cur.execute("SELECT data FROM pg_logical_slot_peek_changes(%s, NULL, NULL)", (pg_db.dbname,))
                return [r[0] for r in cur.fetchall()]
        decoded = wait_until(lambda: [d for d in decode() if "public.fast" in d] and decode(), what="decoded rows")
        # the transaction starts with our tag (the loop guard drops it on the way back) and the staging
        # table's rows are never decoded (temporary tables are not logged)
        body = [d for d in decoded if not d.startswith(("BEGIN", "COMMIT"))]
        assert MESSAGE_PREFIX in body[0], body[0]
        assert not any("replicator_stage" in d for d in decoded)
        assert sum(1 for d in body if d.startswith("table public.fast")) == 6  # key 2 twice: inserted, updated
        # after a reconnect the session's temporary tables are gone: made again
        paths.applier.close()
        paths.applier.connect()
        paths.both([(Op.UPDATE, k, {"v": "d"}) for k in range(5)])
        with paths.conn.cursor() as cur:
            cur.execute("SELECT pg_drop_replication_slot(%s)", (pg_db.dbname,))
    finally:
        paths.close()



def test_an_account_without_the_temporary_privilege_keeps_execute_values(pg_db: Any) -> None:
    """Temporary tables need the database's TEMPORARY privilege (PUBLIC has it unless revoked): without it
    large runs are written as before instead of stopping the stream on a missing privilege."""
    user = f"apply_{uuid.uuid4().hex[:8]}"
    conn = pg_db.connect()
    with conn.cursor() as cur:
        cur.execute('CREATE TABLE t (id int PRIMARY KEY, v text)')
        cur.execute(f'REVOKE TEMPORARY ON DATABASE "{pg_db.dbname}" FROM PUBLIC')
        cur.execute(f"CREATE ROLE {user} LOGIN PASSWORD 'pw'")
        cur.execute(f'GRANT CONNECT ON DATABASE "{pg_db.dbname}" TO {user}')
        cur.execute(f"GRANT SELECT, INSERT, UPDATE ON t TO {user}")
    acc = Account(user, Secret("pw"))
    applier = PostgresApplier(Connection("crm", "postgresql", pg_db.host, pg_db.port, pg_db.dbname, acc, acc,
                                         sslmode="disable", slot=pg_db.dbname, publication="p"), "erp_to_crm")
    applier.connect()
    try:
        table = TableRef("public", "t")
        applier.load_types([table])
        applier.copy_min_rows = 1
        applier.begin()
        applier.apply([TargetChange(table, Op.INSERT, ("id",), (k,), {"id": k, "v": "x"}) for k in range(10)])
        applier.commit_untracked()
        assert applier._stages == {}
    finally:
        applier.close()
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM t")
        assert cur.fetchone()[0] == 10
        cur.execute(f"DROP OWNED BY {user}")
        cur.execute(f"DROP ROLE {user}")
    conn.close()


def test_a_staging_table_undone_by_a_rollback_to_savepoint_is_made_again(pg_db: Any) -> None:
    """The dead-letter queue applies a batch inside a savepoint and rolls back to it when a row fails
    (stream/deadletter.py try_apply): a staging table created inside it is gone, though the transaction
    goes on and commits. Found with every run through COPY: the next large run stopped the stream on
    `schema "pg_temp" does not exist`."""
    from replicator.stream.deadletter import try_apply

    paths = Paths(pg_db, "v varchar(3)")
    try:
        fast = paths.tables["fast"]
        paths.applier.copy_min_rows = 1

        def rows(keys: range, v: str) -> list[TargetChange]:
            return [TargetChange(fast, Op.INSERT, ("id",), (k,), {"id": k, "v": v}) for k in keys]
        paths.applier.begin()
        failed = try_apply(paths.applier, rows(range(0, 3), "abcd"))  # too long: the whole run fails
        assert failed is not None
        assert try_apply(paths.applier, rows(range(3, 6), "ok")) is None  # the staging table is made again
        paths.applier.commit_untracked()
        paths.applier.begin()
        paths.applier.apply(rows(range(6, 9), "ok"))  # a later transaction finds it too
        paths.applier.commit_untracked()
        assert [r[0] for r in paths.rows("fast")] == list(range(3, 9))
        # a staging table made in an earlier transaction is not affected by a savepoint
        paths.applier.begin()
        assert try_apply(paths.applier, rows(range(9, 12), "abcd")) is not None
        assert try_apply(paths.applier, rows(range(12, 15), "ok")) is None
        paths.applier.commit_untracked()
        assert [r[0] for r in paths.rows("fast")] == list(range(3, 9)) + list(range(12, 15))
    finally:
        paths.close()


def test_a_delete_by_a_char_or_bit_key_deletes_that_row_and_no_other(pg_db: Any) -> None:
    """The delete casts its VALUES list to the key's type; a bare `::character` (or `::bit`) is a length of
    one, so 'ABCDE' became 'A': the row 'A' was deleted instead of 'ABCDE' (and bit '101' matched '1')."""
    conn = pg_db.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute('CREATE TABLE ck (k char(5) PRIMARY KEY, v int)')
        cur.execute("INSERT INTO ck VALUES ('ABCDE', 1), ('A', 2)")
        cur.execute('CREATE TABLE bk (k bit(3) PRIMARY KEY, v int)')
        cur.execute("INSERT INTO bk VALUES (B'101', 1), (B'100', 2)")
    applier = _applier(pg_db)
    applier.connect()
    try:
        ck, bk = TableRef("public", "ck"), TableRef("public", "bk")
        applier.load_types([ck, bk])
        applier.begin()
        applier.apply([TargetChange(ck, Op.DELETE, ("k",), ("ABCDE",), {}),
                       TargetChange(bk, Op.DELETE, ("k",), ("101",), {})])
        applier.commit_untracked()
        with conn.cursor() as cur:
            cur.execute("SELECT k, v FROM ck ORDER BY v")
            assert cur.fetchall() == [("A    ", 2)]
            cur.execute("SELECT k::text, v FROM bk ORDER BY v")
            assert cur.fetchall() == [("100", 2)]
    finally:
        applier.close()
        conn.close()
