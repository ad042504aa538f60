"""The optimistic conditional write of a checked update run (`Applier.update_unchanged`, conflicts/detect.py
`_Check._optimistic`) on real servers.

- Per type, pairs of (stored, old) values at the edges: the statement writes a row only where `Detector.equal`
  -- the full check's comparison -- calls the stored value and the old one equal (SQL may only be stricter),
  and does write where they are the same value (else the fast path would never be taken).
- Differential (Hypothesis): random runs of checked updates against random concurrent target edits (the same
  field, another field, the new value already, NULLs, the row deleted), applied through the full check alone
  and through the fast path, into two tables of one shape: the same rows after, the same conflicts recorded,
  the same rows locked before the commit, the same count of rows in `replicator_rows_applied_total`, and on
  MariaDB the same writes of each row (an AFTER UPDATE trigger's log: a run the conditional write matched
  only in part is undone to a savepoint, so no row is written twice).
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from replicator.appliers.base import Applier, Run
from replicator.appliers.mariadb import MariaDBApplier
from replicator.appliers.postgres import PostgresApplier
from replicator import metrics
from replicator.changes import Op, TableRef, TargetChange
from replicator.config import Account, Connection, Secret
from replicator.conflicts import detect
from replicator.conflicts.detect import Detector
from replicator.conflicts.model import Conflict
from tests.unit.test_conflict_rules import mappings

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
UTC = timezone.utc
T0 = datetime(2026, 3, 29, 1, 30, 0, 123456)  # (Europe's DST change that night: no matter in UTC)


# ---------------------------------------------------------------- the appliers

def _pg_applier(db: Any) -> PostgresApplier:
    acc = Account(db.user, Secret(db.password))
    a = PostgresApplier(Connection("crm", "postgresql", db.host, db.port, db.dbname, acc, acc,
                                   sslmode="disable", slot=db.dbname, publication="p"), "erp_to_crm")
    a.connect()
    a.copy_min_rows = None
    return a


def _maria_applier(db: Any) -> MariaDBApplier:
    acc = Account(db.user, Secret(db.password))
    a = MariaDBApplier(Connection("erp", "mariadb", db.host, db.port, db.dbname, acc, acc, server_id=4246),
                       "crm_to_erp")
    a.connect()
    a.begin = lambda: None  # type: ignore[method-assign]  # (no state schema here: no loop tag)
    a.commit_untracked = a.db.commit  # type: ignore[method-assign]
    return a


PG_EDGE_DDL = ("(id int PRIMARY KEY, i bigint, n numeric(12,4), b boolean, d date, ts timestamp(6), "
               "tz timestamptz(6), tm time(6), tx text, vc varchar(20), ch char(5), f double precision)")
MY_EDGE_DDL = ("(id INT PRIMARY KEY, i BIGINT, bo TINYINT(1), n DECIMAL(12,4), d DATE, dt DATETIME(6), dt0 DATETIME, "
               "ts TIMESTAMP(6) NULL, tm TIME(6), vc VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci, "
               "vb VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, ch CHAR(5) CHARACTER SET utf8mb4, "
               "lat VARCHAR(20) CHARACTER SET latin1, f DOUBLE)")

# (column, stored, old, whether the statement must match: True, must not: False, may not even try: None)
A = datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=UTC)
PG_PAIRS: list[tuple[str, Any, Any, bool | None]] = [
    ("i", 5, 5, True), ("i", 5, 6, False), ("i", None, None, True), ("i", None, 5, False), ("i", 5, None, False),
    ("n", Decimal("1.5"), Decimal("1.5000"), True), ("n", Decimal("1.5"), Decimal("1.5001"), False),
    ("n", Decimal("2"), 2, True), ("n", Decimal("1.5"), Decimal("1.50005"), False),
    ("n", Decimal("1.5"), 1.5, True),  # (the numeric converter makes a float the Decimal of its repr)
    ("b", True, True, True), ("b", True, False, False), ("b", False, None, False),
    ("d", date(2026, 2, 28), date(2026, 2, 28), True), ("d", date(2026, 2, 28), date(2026, 3, 1), False),
    ("ts", T0, T0, True), ("ts", T0, T0 + timedelta(microseconds=1), False), ("ts", T0, A, None),
    ("tz", A, A, True), ("tz", A, A.astimezone(timezone(timedelta(hours=2))), True),
    ("tz", A, T0, True), ("tz", A, A + timedelta(microseconds=1), False),
    ("tm", time(23, 59, 59, 999999), time(23, 59, 59, 999999), True),
    ("tm", time(10, 0, 0, 1), time(10, 0, 0, 2), False), ("tm", time(0), timedelta(days=1), None),
    ("tx", "a", "a", True), ("tx", "a", "a ", False), ("tx", "a", "A", False),
    ("tx", "\u00e9", "e\u0301", False), ("tx", "", None, False), ("tx", "", "", True),
    ("vc", "abc", "abc", True), ("vc", "abc", "abc  ", False),
    ("ch", "a", "a", None), ("f", 0.1, 0.1, None),
]
MY_PAIRS: list[tuple[str, Any, Any, bool | None]] = [
    ("i", 5, 5, True), ("i", 5, 6, False), ("i", None, None, True), ("i", 5, None, False),
    ("bo", 1, True, True), ("bo", 0, True, False),
    ("n", Decimal("1.5"), Decimal("1.5000"), True), ("n", Decimal("1.5"), Decimal("1.5001"), False),
    ("n", Decimal("7"), 7, True), ("n", Decimal("1.5"), Decimal("1.50005"), False), ("n", Decimal("1.5"), 1.5, None),
    ("d", date(2026, 2, 28), date(2026, 2, 28), True), ("d", date(2026, 2, 28), date(2026, 3, 1), False),
    ("dt", T0, T0, True), ("dt", T0, T0 + timedelta(microseconds=1), False), ("dt", T0, A, True),
    ("dt", T0, A.astimezone(timezone(timedelta(hours=2))), True), ("dt", T0, T0.date(), None),
    ("dt0", T0.replace(microsecond=0), T0, False), ("dt0", T0.replace(microsecond=0), T0.replace(microsecond=0), True),
    ("ts", T0, T0, True), ("ts", T0, T0 + timedelta(microseconds=1), False), ("ts", T0, A, True),
    ("tm", timedelta(hours=838, minutes=59, seconds=59), timedelta(hours=838, minutes=59, seconds=59), True),
    ("tm", timedelta(hours=1, microseconds=1), timedelta(hours=1), False), ("tm", timedelta(0), timedelta(0), True),
    ("tm", timedelta(hours=-1), timedelta(hours=-1), True),
    ("vc", "a", "a", True), ("vc", "a", "A", False), ("vc", "a", "a ", False), ("vc", "e", "\u00e9", False),
    ("vc", "\u00e9", "\u00e9", True), ("vc", "\U0001f600", "\U0001f600", True), ("vc", "", None, False),
    ("vb", "a", "a ", False), ("vb", "a", "a", True),
    ("ch", "a", "a", True), ("ch", "a", "a  ", False),
    ("lat", "a", "a", None), ("f", 0.5, 0.5, None),
]
NEW = {"i": 99, "bo": 0, "n": Decimal("9.9"), "b": False, "d": date(2000, 1, 1), "ts": datetime(2000, 1, 1),
       "dt": datetime(2000, 1, 1), "dt0": datetime(2000, 1, 1), "tz": datetime(2000, 1, 1, tzinfo=UTC),
       "tm": time(1, 2, 3), "tx": "new", "vc": "new", "vb": "new", "ch": "new", "lat": "new", "f": 9.5}


@pytest.fixture
def detector(tmp_path: Path) -> Detector:
    return Detector(mappings(tmp_path, "{priority: crm}"), "crm")


def _edge_table(db: Any, ddl: str) -> Any:
    """The `edge` table with rows 1 and 2 (their columns NULL), committed; returns the open connection."""
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE edge {ddl}")
        cur.execute("INSERT INTO edge (id) VALUES (1), (2)")
    conn.commit()
    return conn


def _edge(a: Applier, table: TableRef, pairs: list[tuple[str, Any, Any, bool | None]], det: Detector,
          fix_new: Any = None) -> None:
    info = a.column_info(table)
    assert info, "load_types found the table"
    wrong = []
    for column, stored, old, want in pairs:
        new = NEW[column] if fix_new is None else fix_new(column)
        for n in (1, 2):  # a plain UPDATE (PostgreSQL: one VALUES row) and the joined form of a run
            a.begin()
            for k in range(1, n + 1):
                a.update_by_key(table, ("id",), (k,), {column: stored})
            now = a.read_rows(table, ("id",), [column], [(1,)])[0][1]
            rows = [TargetChange(table, Op.UPDATE, ("id",), (k,), {"id": k, column: new}, expect={"id": k, column: old})
                    for k in range(1, n + 1)]
            run = Run(table, Op.UPDATE, ("id",), ("id", column), {r.key: r for r in rows}, checked=True, exists=True)
            exact = a.compares_exactly(table, column)
            left = a.update_unchanged(run, rows, (column,)) if exact else None
            written = left == []
            if left is not None and left:  # (PostgreSQL returns the rows it did not write: all of them here)
                assert len(left) == n
            after = a.read_rows(table, ("id",), [column], [(k,) for k in range(1, n + 1)])
            a.rollback()
            equal = det.equal(info, column)(now, old)
            if written and not equal:
                wrong.append((column, stored, old, n, "written where the check calls them different"))
            if written and any(not det.equal(info, column)(r[1], new) for r in after):
                wrong.append((column, stored, old, n, "written, but not the new value"))
            if want is True and not written:
                wrong.append((column, stored, old, n, "not written"))
            if want is False and written:
                wrong.append((column, stored, old, n, "written"))
            if want is None and left is not None:
                wrong.append((column, stored, old, n, "tried"))
    assert not wrong


def test_postgresql_matches_only_what_the_check_calls_equal(pg_db: Any, detector: Detector) -> None:
    conn = _edge_table(pg_db, PG_EDGE_DDL)
    a = _pg_applier(pg_db)
    try:
        t = TableRef("public", "edge")
        a.load_types([t])
        _edge(a, t, PG_PAIRS, detector)
        a.copy_min_rows = 1  # the same through COPY into a staging table
        _edge(a, t, PG_PAIRS, detector)
        a.copy_min_rows = None
        # a nondeterministic ICU collation calls 'a' and 'A' equal: compared under COLLATE "C", they differ
        with conn.cursor() as cur:
            try:
                cur.execute("CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)")
                cur.execute('ALTER TABLE edge ALTER COLUMN tx TYPE text COLLATE "ci"')
                conn.commit()
            except Exception:  # a server built without ICU: nothing more to show
                conn.rollback()
                return
        a.load_types([t])
        _edge(a, t, [("tx", "a", "A", False), ("tx", "a", "a", True)], detector)
    finally:
        a.close()
        conn.close()


def test_mariadb_matches_only_what_the_check_calls_equal(maria_db: Any, detector: Detector) -> None:
    conn = _edge_table(maria_db, MY_EDGE_DDL)
    a = _maria_applier(maria_db)
    try:
        t = TableRef(maria_db.dbname, "edge")
        a.load_types([t])
        _edge(a, t, MY_PAIRS, detector)
        # a row whose new values are its values already: matched (CLIENT.FOUND_ROWS counts it), not a fallback
        _edge(a, t, [("i", 5, 5, True), ("vc", "a", "a", True)], detector, fix_new=lambda c: {"i": 5, "vc": "a"}[c])
    finally:
        a.close()
        conn.close()


def _refused(a: Applier, table: TableRef, column: str, new: Any, old: Any) -> None:
    """A new value the column's converter refuses: no error from the conditional write (None: the full check
    decides, and a field the target wins is never written), nothing written."""
    rows = [TargetChange(table, Op.UPDATE, ("id",), (1,), {"id": 1, column: new}, expect={"id": 1, column: old})]
    a.begin()
    a.update_by_key(table, ("id",), (1,), {column: old})
    run = Run(table, Op.UPDATE, ("id",), ("id", column), {r.key: r for r in rows}, checked=True, exists=True)
    assert a.update_unchanged(run, rows, (column,)) is None
    assert a.read_rows(table, ("id",), [column], [(1,)])[0][1] is not None
    a.rollback()


def test_a_value_the_converter_refuses_goes_to_the_full_check(pg_db: Any, maria_db: Any) -> None:
    _edge_table(pg_db, PG_EDGE_DDL).close()
    a: Applier = _pg_applier(pg_db)
    try:
        t = TableRef("public", "edge")
        a.load_types([t])
        _refused(a, t, "i", 2 ** 70, 5)  # out of bigint's range
    finally:
        a.close()
    _edge_table(maria_db, MY_EDGE_DDL).close()
    a = _maria_applier(maria_db)
    try:
        t = TableRef(maria_db.dbname, "edge")
        a.load_types([t])
        _refused(a, t, "tm", timedelta(hours=900), timedelta(hours=1))  # beyond TIME's 838:59:59
    finally:
        a.close()


# ---------------------------------------------------------------- differential: the full check and the fast path

PG_DDL = ("(id integer PRIMARY KEY, name text, phone varchar(20), credit numeric(10,2), code char(5), doc jsonb, "
          "changed timestamptz, status text)")
MY_DDL = ("(id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci, "
          "phone VARCHAR(20) CHARACTER SET latin1, credit DECIMAL(10,2), code CHAR(5) CHARACTER SET utf8mb4, "
          "doc JSON, changed DATETIME(6), status VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin)")
FIELDS = ["name", "phone", "credit", "code", "doc", "changed", "status"]
C1 = datetime(2026, 1, 1, 12, 0, 0, 500000, tzinfo=UTC)
# small pools (the target's stored values and the source's old and new ones, in the source's shapes): a target
# value often equals the old or the new one, in another shape or not
POOL: dict[str, list[Any]] = {
    "name": ["a", "A", "a ", "b", None], "phone": ["0", "1", None], "code": ["X", "X  ", "Y"],
    "credit": [Decimal("1.00"), Decimal("1.5"), Decimal("1.50"), 1, Decimal("2.25"), None],
    "doc": [{"a": 1}, None], "changed": [C1, C1.replace(tzinfo=None), C1 + timedelta(microseconds=1), None],
}
STATUS = {"crm": ["active", "closed"], "erp": ["A", "C", "a"]}


def _pool(side: str, c: str) -> list[Any]:
    return STATUS[side] if c == "status" else POOL[c]


def _shapes(v: Any) -> list[Any]:
    if isinstance(v, str):
        return [v.upper(), v.lower(), v + " ", v + "  ", v.capitalize()]
    if isinstance(v, Decimal) or isinstance(v, int):
        return [Decimal(v).quantize(Decimal("0.01")), Decimal(v) + Decimal("0.01"), int(v)]
    if isinstance(v, datetime):
        aware = v if v.tzinfo is not None else v.replace(tzinfo=UTC)
        return [aware.astimezone(timezone(timedelta(hours=2))), aware.replace(tzinfo=None),
                aware + timedelta(microseconds=1)]
    return []


@st.composite
def scenario(draw: Any, side: str) -> dict[str, Any]:
    """`side`: the target's. Rows 1..n on the target (or deleted), each an old row the source saw, the target's
    edit of it, and the source's new values of the run's changed fields."""
    n = draw(st.integers(1, 4))
    changed = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True))
    rows = []
    for k in range(1, n + 1):
        old = {c: draw(st.sampled_from(_pool(side, c))) for c in FIELDS}
        mine = changed if draw(st.integers(0, 4)) else draw(st.lists(st.sampled_from(FIELDS), min_size=1, unique=True))
        new = {c: draw(st.sampled_from(_pool(side, c))) for c in mine}
        edit = draw(st.sampled_from(["none", "same field", "shape", "shape", "shape", "other field", "new value",
                                     "null", "deleted"]))
        stored: dict[str, Any] | None = dict(old)
        assert stored is not None
        if edit == "same field":
            stored[mine[0]] = draw(st.sampled_from(_pool(side, mine[0])))
        elif edit == "shape":  # the old value in another shape or almost: case, padding, scale, time zone, 1 us
            c = draw(st.sampled_from(mine))
            stored[c] = draw(st.sampled_from(_shapes(old[c]) or [None]))
        elif edit == "other field":
            other = draw(st.sampled_from(FIELDS))
            stored[other] = draw(st.sampled_from(_pool(side, other)))
        elif edit == "new value":
            stored.update(new)
        elif edit == "null":
            stored[draw(st.sampled_from(FIELDS))] = None
        elif edit == "deleted":
            stored = None
        rows.append((k, old, new, stored))
    return {"rows": rows, "copy": draw(st.booleans())}


def _locked(a: Applier, other: Any, table: TableRef) -> list[Any]:
    """The rows of `table` another session cannot lock now (SKIP LOCKED skips them)."""
    name = a.quote_table(table)
    with other.cursor() as cur:
        cur.execute(f"SELECT id FROM {name}")
        every = {r[0] for r in cur.fetchall()}
        cur.execute(f"SELECT id FROM {name} FOR UPDATE SKIP LOCKED")
        free = {r[0] for r in cur.fetchall()}
    other.rollback()
    return sorted(every - free)


def _apply(a: Applier, other: Any, det: Detector, table: TableRef, s: dict[str, Any], fast: bool,
           found: list[Conflict], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    """The scenario's start into `table`, then its run through `a.apply` with the detector: the conflicts
    recorded, the rows locked before the commit, the rows counted applied, the UPDATEs of each row (MariaDB's
    trigger log; None on PostgreSQL)."""
    a.begin()
    a.execute(f"DELETE FROM {a.quote_table(table)}", [])
    for k, _, _, stored in s["rows"]:
        if stored is not None:
            a.apply([TargetChange(table, Op.INSERT, ("id",), (k,), {"id": k, **stored})])
    a.commit_untracked()
    changes = [TargetChange(table, Op.UPDATE, ("id",), (k,), {"id": k, **new}, expect={"id": k, **old},
                            mapping="acct", source_key=(k,)) for k, old, new, _ in s["rows"]]
    recorded: list[Conflict] = []
    applied = _applied(a, table)
    logged = _update_log(a, table)
    monkeypatch.setattr(detect.store, "record", lambda applier, conflicts: recorded.extend(conflicts))
    if not fast:
        monkeypatch.setattr(a, "compares_exactly", lambda table, column: False)
    try:
        a.begin()
        a.resolver = det
        a.apply(changes)
        locked = _locked(a, other, table)
        a.commit_untracked()
    except Exception:
        a.rollback()
        raise
    finally:
        monkeypatch.undo()
    found.extend(recorded)
    after = _update_log(a, table)
    writes = None if logged is None or after is None else sorted(after[len(logged):])  # each row's UPDATEs
    return [dict(asdict(c), table=None) for c in recorded], locked, _applied(a, table) - applied, writes


def _applied(a: Applier, table: TableRef) -> float:
    """replicator_rows_applied_total of this table, updates and inserts (a missing row written whole)."""
    get = metrics.REGISTRY.get_sample_value
    return sum(get("replicator_rows_applied_total", {"direction": a.direction, "table": str(table), "op": op})
               or 0.0 for op in ("update", "insert"))


def _update_log(a: Applier, table: TableRef) -> list[Any] | None:
    """The ids the table's AFTER UPDATE trigger logged, in order (MariaDB), None without one."""
    if not isinstance(a, MariaDBApplier):
        return None
    a.begin()
    got = a.query("SELECT id FROM upd_log WHERE tbl = %s ORDER BY n", [table.name])
    a.rollback()
    return [r[0] for r in got]


def _rows(a: Applier, table: TableRef) -> list[tuple[Any, ...]]:
    a.begin()
    got = a.query(f"SELECT id, {', '.join(a.quote_col(c) for c in FIELDS)} FROM {a.quote_table(table)} ORDER BY id", [])
    a.rollback()
    return [tuple((type(v).__name__, str(v)) for v in r) for r in got]


def _differential(a: Applier, other: Any, det: Detector, tables: tuple[TableRef, TableRef], s: dict[str, Any],
                  monkeypatch: pytest.MonkeyPatch, taken: list[int]) -> None:
    found: list[Conflict] = []
    calls = []
    real = a.update_unchanged

    def spy(run: Run, rows: list[TargetChange], compared: tuple[str, ...]) -> Any:
        left = real(run, rows, compared)
        calls.append(left)
        return left
    full = _apply(a, other, det, tables[0], s, False, found, monkeypatch)
    monkeypatch.setattr(a, "update_unchanged", spy)
    fast = _apply(a, other, det, tables[1], s, True, found, monkeypatch)
    taken.append(sum(1 for left in calls if left == []))
    assert fast == full
    assert _rows(a, tables[1]) == _rows(a, tables[0])


@pytest.fixture
def pg_pair(pg_db: Any) -> Iterator[tuple[PostgresApplier, Any]]:
    conn = pg_db.connect()
    with conn.cursor() as cur:
        for name in ("full", "fast"):
            cur.execute(f'CREATE TABLE "{name}" {PG_DDL}')
    conn.commit()
    a = _pg_applier(pg_db)
    a.load_types([TableRef("public", "full"), TableRef("public", "fast")])
    yield a, conn
    a.close()
    conn.close()


@pytest.fixture
def maria_pair(maria_db: Any) -> Iterator[tuple[MariaDBApplier, Any]]:
    conn = maria_db.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE upd_log (n INT AUTO_INCREMENT PRIMARY KEY, tbl VARCHAR(10), id INT)")
        for name in ("full", "fast"):
            cur.execute(f"CREATE TABLE `{name}` {MY_DDL}")
            cur.execute(f"CREATE TRIGGER `{name}_upd` AFTER UPDATE ON `{name}` FOR EACH ROW "
                        f"INSERT INTO upd_log (tbl, id) VALUES ('{name}', NEW.id)")
    conn.commit()
    a = _maria_applier(maria_db)
    a.load_types([TableRef(maria_db.dbname, "full"), TableRef(maria_db.dbname, "fast")])
    yield a, conn
    a.close()
    conn.close()


TAKEN_PG: list[int] = []
TAKEN_MY: list[int] = []


@SETTINGS
@given(s=scenario("crm"))
def test_postgresql_fast_path_decides_as_the_full_check(pg_pair: tuple[PostgresApplier, Any], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, s: dict[str, Any]) -> None:
    a, other = pg_pair
    a.copy_min_rows = 1 if s["copy"] else None  # the VALUES statement or COPY into a staging table
    det = Detector(mappings(tmp_path, "{priority: erp}"), "erp")  # erp -> crm: the target is PostgreSQL
    _differential(a, other, det, (TableRef("public", "full"), TableRef("public", "fast")), s, monkeypatch, TAKEN_PG)


@SETTINGS
@given(s=scenario("erp"))
def test_mariadb_fast_path_decides_as_the_full_check(maria_pair: tuple[MariaDBApplier, Any], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, s: dict[str, Any]) -> None:
    a, other = maria_pair
    det = Detector(mappings(tmp_path, "manual"), "crm")  # crm -> erp: the target is MariaDB
    schema = a.conn.database
    _differential(a, other, det, (TableRef(schema, "full"), TableRef(schema, "fast")), s, monkeypatch, TAKEN_MY)


def test_the_fast_path_was_taken() -> None:
    """(After the two above, in file order) the differential tests did exercise the fast path, not only the
    full check."""
    if not TAKEN_PG and not TAKEN_MY:
        pytest.skip("the differential tests did not run")
    assert sum(TAKEN_PG) > 0 and sum(TAKEN_MY) > 0, (TAKEN_PG, TAKEN_MY)
