"""A checked update run narrowed to the fields its rows change (`_Check._narrowed`) is written by
`Applier._update_rows` (`Run.exists`): PostgreSQL `UPDATE ... FROM (VALUES ...)` with typed casts or, for a
large run, from the COPY staging table; MariaDB one `UPDATE ... WHERE` per row or one `UPDATE ... JOIN
(SELECT ... UNION ALL ...)`. Before, the same rows went through the upsert with every field, the unchanged
ones with the values the locked read gave back. Both ways into two tables of one shape, on a real server:
the rows must be the same, as the server's own text of each value (PostgreSQL) or value and class
(MariaDB), and a value the column refuses the same error."""
from __future__ import annotations

from typing import Any, Iterator

import psycopg2
import pymysql
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from replicator.appliers.base import Applier, Run
from replicator.appliers.mariadb import MariaDBApplier
from replicator.appliers.postgres import PostgresApplier
from replicator.changes import Op, TableRef, TargetChange
from replicator.config import Account, Connection, Secret
from tests.integration.test_mariadb_read_rows import rows as maria_rows
from tests.integration.test_pgcopy_differential import COLUMNS as PG_COLUMNS
from tests.integration.test_pgcopy_differential import TYPE_TABLE, _type_table_rows

# every column of the type table: the old write put back what the locked read gave, and it gives the values
# psycopg2 would not write back as read (an interval, which it cannot read in the applier session's
# IntervalStyle iso_8601; a jsonb string scalar, a str that written back is no JSON; a time(6) of 24:00:00,
# datetime.time 00:00) as their text (appliers/postgres.py _READ_CASTERS)
READ_BACK = list(PG_COLUMNS)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _changes(table: TableRef, values: list[dict[str, Any]]) -> list[TargetChange]:
    return [TargetChange(table, Op.UPDATE, ("id",), (v["id"],), v) for v in values]


def write_both(a: Applier, whole: TableRef, part: TableRef, columns: list[str], keys: list[int],
               new: list[dict[str, Any]]) -> None:
    """`new` (the changed fields of the rows `keys`) into `whole` as the check wrote them before (every
    field, the others as the locked read gave them back, through the upsert) and into `part` as it does
    now (the key and the changed fields, `_update_rows`), each in one transaction."""
    try:
        _write_both(a, whole, part, columns, keys, new)
    except Exception:
        a.rollback()  # (the next example starts clean)
        raise


def _write_both(a: Applier, whole: TableRef, part: TableRef, columns: list[str], keys: list[int],
                new: list[dict[str, Any]]) -> None:
    changed = [c for c in columns if any(c in v for v in new)]
    a.begin()
    locked = {r[0]: r for r in a.read_rows(whole, ("id",), columns, [(k,) for k in keys])}
    rows = [{"id": k, **dict(zip(columns, locked[k][1:])), **v} for k, v in zip(keys, new)]
    a._upsert(Run(whole, Op.UPDATE, ("id",), ("id", *columns), {}, checked=True), _changes(whole, rows))
    a.commit_untracked()
    a.begin()
    a.read_rows(part, ("id",), changed, [(k,) for k in keys])
    locked = {r[0]: r for r in a.read_rows(part, ("id",), columns, [(k,) for k in keys])}
    rows = [{"id": k, **{c: v.get(c, locked[k][1 + columns.index(c)]) for c in changed}} for k, v in zip(keys, new)]
    a._update_rows(Run(part, Op.UPDATE, ("id",), ("id", *changed), {}, checked=True, exists=True),
                   _changes(part, rows))
    a.commit_untracked()


# ---------------------------------------------------------------- PostgreSQL

@pytest.fixture
def pg(pg_db: Any) -> Iterator[tuple[PostgresApplier, Any]]:
    conn = pg_db.connect()
    ddl = ", ".join(f"{c} {t}" for c, (t, _) in zip(PG_COLUMNS, TYPE_TABLE))
    with conn.cursor() as cur:
        for name in ("whole", "part"):
            cur.execute(f'CREATE TABLE "{name}" (id int PRIMARY KEY, {ddl})')
    conn.commit()
    acc = Account(pg_db.user, Secret(pg_db.password))
    a = PostgresApplier(Connection("crm", "postgresql", pg_db.host, pg_db.port, pg_db.dbname, acc, acc,
                                   sslmode="disable", slot=pg_db.dbname, publication="p"), "erp_to_crm")
    a.connect()
    a.load_types([TableRef("public", "whole"), TableRef("public", "part")])
    yield a, conn
    a.close()
    conn.close()


def _pg_start(a: PostgresApplier) -> None:
    """Both tables holding the type table's rows."""
    a.copy_min_rows = None
    a.begin()
    for name in ("whole", "part"):
        t = TableRef("public", name)
        a.execute(f"DELETE FROM {a.quote_table(t)}", [])
        a.apply([TargetChange(t, Op.INSERT, ("id",), (k,), {"id": k, **row})
                 for k, row in enumerate(_type_table_rows())])
    a.commit_untracked()


def _pg_rows(conn: Any, name: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        # the row's text, and each column's (to name a difference)
        cur.execute(f'SELECT id, t::text, to_jsonb(t) FROM "{name}" AS t ORDER BY id')
        out = cur.fetchall()
    conn.commit()
    return out


@SETTINGS
@given(data=st.data())
def test_postgresql_update_rows_writes_what_the_whole_upsert_wrote(pg: tuple[PostgresApplier, Any],
                                                                   data: st.DataObject) -> None:
    a, conn = pg
    whole, part = TableRef("public", "whole"), TableRef("public", "part")
    _pg_start(a)
    every = _type_table_rows(data.draw(st.integers(1, 20)))
    keys = data.draw(st.lists(st.sampled_from(range(len(every))), min_size=1, max_size=len(every), unique=True))
    cols = data.draw(st.lists(st.sampled_from(READ_BACK), min_size=1, unique=True))
    new = [{c: every[k][c] for c in cols if data.draw(st.booleans()) or c == cols[0]} for k in keys]
    # execute_values (VALUES with casts) or COPY into the staging table (any run of 2 rows or more here)
    a.copy_min_rows = data.draw(st.sampled_from([None, 2]))
    write_both(a, whole, part, READ_BACK, keys, new)
    got, want = _pg_rows(conn, "part"), _pg_rows(conn, "whole")
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g == w, {c: (g[2][c], w[2][c]) for c in g[2] if g[2][c] != w[2][c]}


def test_postgresql_update_rows_leaves_the_planner_settings_as_they_were(pg: tuple[PostgresApplier, Any]) -> None:
    """The VALUES path turns hash and merge joins off for its own statement only (a nested loop over the
    key's index), within the same round trip; the rest of the transaction plans as before."""
    a, _ = pg
    _pg_start(a)
    t = TableRef("public", "part")
    a.begin()
    # TO DEFAULT is the session's value: a SET LOCAL made earlier in the transaction (the applier makes none) is not
    # kept, as this shows
    a.execute("SET LOCAL enable_mergejoin = off", [])
    a._update_rows(Run(t, Op.UPDATE, ("id",), ("id", "c1"), {}, checked=True, exists=True),
                   _changes(t, [{"id": k, "c1": k} for k in range(3)]))
    assert a.query("SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')", []) \
        == [("on", "on")]
    assert a.query("SELECT id, c1 FROM part WHERE id < 3 ORDER BY id", []) == [(0, 0), (1, 1), (2, 2)]
    a.rollback()


@pytest.mark.parametrize("copy", [None, 1])
def test_postgresql_update_rows_refuses_what_the_upsert_refuses(pg: tuple[PostgresApplier, Any],
                                                                copy: int | None) -> None:
    a, _ = pg
    _pg_start(a)
    a.copy_min_rows = copy
    varchar = PG_COLUMNS[[t for t, _ in TYPE_TABLE].index("varchar(255)")]
    errors = []
    for name, columns in (("whole", READ_BACK), ("part", [varchar])):
        t = TableRef("public", name)
        a.begin()
        locked = {r[0]: r for r in a.read_rows(t, ("id",), columns, [(1,), (2,)])}
        rows = [{"id": k, **dict(zip(columns, locked[k][1:])), varchar: "x" * (255 + k)} for k in (1, 2)]
        run = Run(t, Op.UPDATE, ("id",), ("id", *columns), {}, checked=True, exists=name == "part")
        with pytest.raises(psycopg2.Error) as exc:
            (a._update_rows if name == "part" else a._upsert)(run, _changes(t, rows))
        errors.append((exc.value.pgcode, str(exc.value).splitlines()[0]))
        a.rollback()
    assert errors[0] == errors[1] and errors[0][0] == "22001", errors


# ---------------------------------------------------------------- MariaDB

MARIA_DDL = ("(id BIGINT PRIMARY KEY, dt6 DATETIME(6), dt0 DATETIME, dt3 DATETIME(3), ts TIMESTAMP(6) NULL, d DATE, "
             "t TIME(6), amount DECIMAL(12,2), name VARCHAR(40), note TEXT, b VARBINARY(16), f DOUBLE, "
             "big MEDIUMTEXT, wide DECIMAL(65,30), mixed VARCHAR(70))")
MARIA_COLUMNS = ["dt6", "dt0", "dt3", "ts", "d", "t", "amount", "name", "note", "b", "f", "big", "wide", "mixed"]
maria_row = st.tuples(maria_rows, st.fixed_dictionaries({
    # the extremes of DECIMAL(65,30), and values of more digits than it holds (rounded by the column): a
    # derived table of them needs more than 65 digits, so such a run goes row by row
    "wide": st.none() | st.decimals(min_value=-10**34, max_value=10**34, places=30)
    | st.sampled_from([1, -(10**34) + 1, 10**34 - 1]) | st.decimals(min_value=-1, max_value=1, places=33),
    # values of several classes in one column: not one type in a derived table, row by row
    "mixed": st.none() | st.text(alphabet="ab'%\\", max_size=5) | st.integers(-10**18, 10**18)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-10**6, max_value=10**6),
})).map(lambda p: {**p[0], **p[1]})


@pytest.fixture
def maria(maria_db: Any) -> Iterator[tuple[MariaDBApplier, Any]]:
    conn = maria_db.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE whole {MARIA_DDL}")
        cur.execute(f"CREATE TABLE part {MARIA_DDL}")
    conn.commit()
    acc = Account(maria_db.user, Secret(maria_db.password))
    a = MariaDBApplier(Connection("erp", "mariadb", maria_db.host, maria_db.port, maria_db.dbname, acc, acc,
                                  server_id=4245), "crm_to_erp")
    a.connect()
    # transactions without the loop tag (no state schema here): PyMySQL's own, autocommit off
    a.begin = lambda: None  # type: ignore[method-assign]
    a.commit_untracked = a.db.commit  # type: ignore[method-assign]
    a.test_schema = maria_db.dbname  # type: ignore[attr-defined]
    a.load_types([TableRef(maria_db.dbname, "whole"), TableRef(maria_db.dbname, "part")])
    # `wide` is rounded by the column on purpose (33 places into DECIMAL(65,30), see maria_row): what a
    # `lossy: allow` field permits; MariaDB's rounding note on any other column stops the write
    a.lossy = {(TableRef(maria_db.dbname, t), "wide") for t in ("whole", "part")}
    yield a, conn
    a.close()
    conn.close()


def _maria_rows(conn: Any, name: str) -> list[tuple[Any, ...]]:
    conn.commit()  # a fresh snapshot
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {name} ORDER BY id")
        return [tuple((type(v), v) for v in r) for r in cur.fetchall()]


@SETTINGS
@given(data=st.data())
def test_mariadb_update_rows_writes_what_the_whole_upsert_wrote(maria: tuple[MariaDBApplier, Any],
                                                                data: st.DataObject) -> None:
    a, conn = maria
    whole, part = TableRef(a.test_schema, "whole"), TableRef(a.test_schema, "part")
    n = data.draw(st.integers(1, 6))
    start = [{"id": k, **data.draw(maria_row)} for k in range(n)]
    a.begin()
    for t in (whole, part):
        a.execute(f"DELETE FROM {a.quote_table(t)}", [])
        a._upsert(Run(t, Op.INSERT, ("id",), ("id", *MARIA_COLUMNS), {}), _changes(t, start))
    a.commit_untracked()
    keys = data.draw(st.lists(st.sampled_from(range(n)), min_size=1, max_size=n, unique=True))
    cols = data.draw(st.lists(st.sampled_from(MARIA_COLUMNS), min_size=1, unique=True))
    new = []
    for _ in keys:
        drawn = data.draw(maria_row)
        new.append({c: drawn[c] for c in cols if data.draw(st.booleans()) or c == cols[0]})
    write_both(a, whole, part, MARIA_COLUMNS, keys, new)
    assert _maria_rows(conn, "part") == _maria_rows(conn, "whole")


def test_mariadb_joined_update_is_one_statement_and_refuses_what_the_upsert_refuses(
        maria: tuple[MariaDBApplier, Any]) -> None:
    a, conn = maria
    whole, part = TableRef(a.test_schema, "whole"), TableRef(a.test_schema, "part")
    a.begin()
    for t in (whole, part):
        a._upsert(Run(t, Op.INSERT, ("id",), ("id", "name"), {}), _changes(t, [{"id": k, "name": "n"} for k in range(3)]))
    a.commit_untracked()
    sent: list[Any] = []
    query = a.db.query

    def counted(sql: Any, *args: Any) -> Any:
        sent.append(sql)
        return query(sql, *args)
    a.db.query = counted
    a.begin()
    a._update_rows(Run(part, Op.UPDATE, ("id",), ("id", "name"), {}, checked=True, exists=True),
                   _changes(part, [{"id": k, "name": f"m{k}"} for k in range(3)]))
    a.commit_untracked()
    assert len(sent) == 1 and b"UNION ALL" in sent[0], sent  # one UPDATE
    a.db.query = query
    errors = []
    for t, run_exists in ((whole, False), (part, True)):
        a.begin()
        rows = _changes(t, [{"id": k, "name": "x" * (40 + k)} for k in range(3)])
        run = Run(t, Op.UPDATE, ("id",), ("id", "name"), {}, checked=True, exists=run_exists)
        with pytest.raises(pymysql.MySQLError) as exc:
            (a._update_rows if run_exists else a._upsert)(run, rows)
        code, message = exc.value.args
        errors.append((code, message.split(" at row")[0]))  # (the row number is the statement's own)
        a.rollback()
    assert errors[0] == errors[1] == (1406, "Data too long for column 'name'"), errors
    assert [(r[0], r[8]) for r in _maria_rows(conn, "part")] == [((int, k), (str, f"m{k}")) for k in range(3)]


def test_postgresql_locked_read_writes_back_what_it_read(pg: tuple[PostgresApplier, Any]) -> None:
    """A checked run writes a field it carries but did not change with the locked row's own value: a time of
    24:00:00, a jsonb string scalar, a jsonb number of many digits and an interval come back unchanged."""
    a, conn = pg
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE lossy (id int PRIMARY KEY, t time(6), j jsonb, n jsonb, i interval, q int)")
        cur.execute("INSERT INTO lossy VALUES (1, '24:00:00', '\"str\\\\ing\"', '1.100000000000000000001', "
                    "'1 day 02:03:04.5', 0)")
    conn.commit()
    t = TableRef("public", "lossy")
    a.load_types([t])
    cols = ["t", "j", "n", "i"]
    a.begin()
    locked = a.read_rows(t, ("id",), cols, [(1,)])
    row = {"id": 1, **dict(zip(cols, locked[0][1:])), "q": 1}
    a._upsert(Run(t, Op.UPDATE, ("id",), ("id", *cols, "q"), {}, checked=True), _changes(t, [row]))
    a.commit_untracked()
    with conn.cursor() as cur:
        cur.execute("SELECT t::text, j::text, n::text, i::text, q FROM lossy")
        got = cur.fetchone()
    conn.commit()
    assert got == ("24:00:00", '"str\\\\ing"', "1.100000000000000000001", "1 day 02:03:04.5", 1)
