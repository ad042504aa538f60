"""The MariaDB conditional write of a run of several rows (`MariaDBApplier._unchanged_joined`, built column by
column) against the value-by-value path it replaced (82159c7: `unchanged_inputs`, `_aggregate_as_they_are`
over the new and the old rows, then `_joined_statements`, kept below as `_reference`): for random runs over
the type table -- every converter of the bench's and the exact kinds' columns, values of the usual class,
of another class, NULLs, Decimals past 65 digits, NaN, aware datetimes in UTC and at another offset, text
PostgreSQL dates, strings with characters to escape, UUIDs -- the same statements byte for byte in both
escaping modes, split at the same rows, and None (the full check) for exactly the same runs."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pymysql
import pytest
from hypothesis import given, settings, strategies as st
from pymysql.constants import SERVER_STATUS

from replicator.appliers import mariadb
from replicator.appliers.base import Run
from replicator.appliers.myliteral import Formatter
from replicator.changes import Op, TableRef, TargetChange
from replicator.compare import ColumnInfo
from replicator.config import Account, Connection, Secret
from replicator.identifiers import my_ident

T = TableRef("erp", "it%em`s")
TYPES = {"id": "bigint", "qty": "int", "name": "varchar", "amount": "decimal", "changed_at": "datetime",
         "ts": "timestamp", "d": "date", "note": "text", "f": "double", "code": "char", "t": "time"}
EXACT = ("qty", "name", "amount", "changed_at", "ts", "d", "note", "code", "t")


class _Db(pymysql.connections.Connection):  # type: ignore[misc]
    def __init__(self, no_backslash: bool):
        super().__init__(defer_connect=True, charset="utf8mb4")
        self.server_status = SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES if no_backslash else 0


def _applier(no_backslash: bool) -> mariadb.MariaDBApplier:
    acc = Account("u", Secret(""))
    a = mariadb.MariaDBApplier(Connection("erp", "mariadb", "h", 3306, "erp", acc, acc), "crm_to_erp")
    a.db = _Db(no_backslash)
    a._types[T] = dict(TYPES)
    a._columns[T] = {c: ColumnInfo(c, ty, "mariadb", collation="utf8mb4_general_ci") for c, ty in TYPES.items()}
    a._converters[T] = {c: mariadb._CONVERTERS[ty] for c, ty in TYPES.items() if ty in mariadb._CONVERTERS}
    return a


def _reference(a: mariadb.MariaDBApplier, run: Run, rows: list[TargetChange],
               compared: tuple[str, ...]) -> list[bytes] | None:
    """82159c7's joined branch of `update_unchanged`, verbatim but for the names."""
    got = a.unchanged_inputs(run, rows, compared)
    if got is None:
        return None
    values, olds = got
    if not (a._int_key(run.table, run.key_columns) and mariadb._aggregate_as_they_are(values)
            and mariadb._aggregate_as_they_are(olds)):
        return None
    types = a._types.get(run.table, {})
    kinds = [mariadb._EXACT_KINDS[types[c]] for c in compared]
    fmt = a._formatter()
    enc = fmt.encoding
    names = [f"x{i}" for i in range(len(run.columns))] + [f"o{j}" for j in range(len(compared))]
    pos = {c: i for i, c in enumerate(run.columns)}
    head = f"UPDATE {my_ident(run.table.schema, run.table.name)} AS t JOIN (".encode(enc)
    tail = (") AS v ON " + " AND ".join(f"t.{my_ident(c)} = v.x{pos[c]}" for c in run.key_columns)
            + " SET " + ", ".join(f"t.{my_ident(c)} = v.x{pos[c]}" for c in run.updates)
            + " WHERE " + " AND ".join(mariadb._condition(kind, f"t.{my_ident(c)}", f"v.o{j}")
                                       for j, (kind, c) in enumerate(zip(kinds, compared)))).encode(enc)
    return mariadb._joined_statements(fmt, head, tail, names, [[*row, *old] for row, old in zip(values, olds)])


_ZONES = [timezone.utc, timezone(timedelta(0)), timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
_naive = st.datetimes(min_value=datetime(1000, 1, 1, 12), max_value=datetime(9999, 12, 30))
_aware = st.builds(lambda d, z: d.replace(tzinfo=z), _naive, st.sampled_from(_ZONES))
_text = st.text(alphabet=st.sampled_from(list("ab '\"\\\n\r\x00\x1a%é\U0001F600")), max_size=6)
_decimals = st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-10**6, max_value=10**6)


def _values(column: str, usual_only: bool) -> st.SearchStrategy[Any]:
    """The usual class (or NULL now and then: the runs that qualify), or now and then another."""
    usual = {
        "qty": st.integers(-2**31, 2**31 - 1),
        "name": _text, "note": _text,
        "amount": _decimals,
        "changed_at": st.one_of(_aware.map(lambda d: d.astimezone(timezone.utc)), _naive),
        "ts": _aware.map(lambda d: d.astimezone(timezone.utc)),
        "d": st.dates(min_value=date(1000, 1, 1)),
        "f": st.floats(allow_nan=False, allow_infinity=False),
        "code": _text,
        "t": st.timedeltas(min_value=timedelta(hours=-800), max_value=timedelta(hours=800)),
    }[column]
    odd = st.one_of(
        st.none(), st.booleans(), st.integers(-10**70, 10**70), st.decimals(places=None), _aware, _naive,
        st.dates(min_value=date(1000, 1, 1)), _text, st.uuids(), st.sampled_from(["infinity", "0044-01-01 BC"]),
        st.decimals(min_value=Decimal("-1e40"), max_value=Decimal("1e40"), places=30),
        st.timedeltas(), st.floats())
    if usual_only or column == "f":
        return st.one_of(usual, usual, usual, st.none())
    return st.one_of(usual, usual, usual, odd)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), no_backslash=st.booleans(), n=st.integers(2, 7), small=st.booleans(),
       compared=st.lists(st.sampled_from(EXACT), min_size=1, max_size=4, unique=True),
       extra=st.lists(st.sampled_from(("f", *EXACT)), max_size=2, unique=True))
def test_the_column_wise_statements_are_the_value_by_value_ones(
        data: Any, no_backslash: bool, n: int, small: bool, compared: list[str], extra: list[str]) -> None:
    with pytest.MonkeyPatch.context() as mp:
        if small:  # statements split after 2 rows, or past a few hundred bytes
            mp.setattr(mariadb, "BATCH", 2)
            mp.setattr(mariadb, "MAX_STMT_LENGTH", data.draw(st.sampled_from([200, 400, 10**6])))
        _compare(data, no_backslash, n, compared, extra)


def _compare(data: Any, no_backslash: bool, n: int, compared: list[str], extra: list[str]) -> None:
    a = _applier(no_backslash)
    written = [c for c in TYPES if c == "id" or c in compared or c in extra]
    columns = tuple(written)
    same = data.draw(st.booleans())  # every value of a column of its usual class (or NULL): most qualify
    rows = []
    for i in range(n):
        values = {"id": i + 1}
        expect = {}
        for c in written[1:]:
            values[c] = data.draw(_values(c, same))
        for c in compared:
            expect[c] = data.draw(_values(c, same))
        rows.append(TargetChange(T, Op.UPDATE, ("id",), (i + 1,), values, expect=expect))
    run = Run(T, Op.UPDATE, ("id",), columns, {r.key: r for r in rows}, frozenset(), False, True, False, True)
    cmp = tuple(c for c in columns if c in compared)
    assert _outcome(lambda: a._unchanged_joined(run, rows, cmp)) == _outcome(lambda: _reference(a, run, rows, cmp))


def _outcome(fn: Any) -> Any:
    """The statements, or the error (an odd value the applier's converters refuse in the stream -- a float
    infinity in an INT column -- reaches no statement; unconverted here, both ways refuse it alike)."""
    try:
        return ("statements", fn())
    except Exception as exc:  # noqa: BLE001 -- the differential compares errors too
        return ("error", type(exc), str(exc))


def test_the_bench_runs_qualify_and_match() -> None:
    """The bench's shape (WAL values: aware UTC datetimes, Decimals, ints, text): written this way."""
    a = _applier(False)
    utc = timezone.utc
    rows = [TargetChange(T, Op.UPDATE, ("id",), (i,),
                         {"id": i, "qty": i * 3, "amount": Decimal(f"{i}.25"),
                          "changed_at": datetime(2026, 12, 7, 3, 4, 5, i * 7, tzinfo=utc), "note": f"n{i}'s"},
                         expect={"qty": i, "amount": Decimal(f"{i}.20"),
                                 "changed_at": datetime(2026, 12, 7, 3, 4, 5, tzinfo=utc), "note": None})
            for i in range(1, 50)]
    cols = ("id", "qty", "amount", "changed_at", "note")
    run = Run(T, Op.UPDATE, ("id",), cols, {r.key: r for r in rows}, frozenset(), False, True, False, True)
    got = a._unchanged_joined(run, rows, cols[1:])
    assert got is not None and got == _reference(a, run, rows, cols[1:])
    assert b"'2026-12-07 03:04:05.000007'" in got[0] and b"'2026-12-07 03:04:05' AS o2" in got[0]


@pytest.mark.parametrize("no_backslash", [False, True])
def test_formatter_column_is_literal_value_by_value(no_backslash: bool) -> None:
    fmt = Formatter(_Db(no_backslash))
    columns: list[list[Any]] = [
        [0, -1, 2**64], ["", "plain", "it's", "a\\b", 'q"', "nl\n", "\x00", "\x1a", "\r", "é"], ["x", "y"],
        [Decimal("1.10"), Decimal("-0.00"), Decimal("1E+5"), Decimal("1E-10")],
        [datetime(2024, 1, 2, 3, 4, 5), datetime(2024, 1, 2, 3, 4, 5, 6)],
        [datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc), datetime(2024, 1, 2)],
        [date(2024, 2, 29)], [True, False], [1.5, -0.0], [uuid.UUID(int=5)], [b"\x00'"],
    ]
    for col in columns:
        classes = {type(v) for v in col}
        if len(classes) == 1:
            assert fmt.column(col, classes.pop()) == [fmt.literal(v) for v in col]
    aware = [datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc), datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)]
    assert fmt.utc_as_naive(aware) == [fmt.literal(mariadb._datetime(v)) for v in aware]
    assert fmt.utc_as_naive([datetime(2024, 1, 2, tzinfo=timezone(timedelta(hours=1)))]) is None
    assert fmt.utc_as_naive([datetime(2024, 1, 2)]) is None


_UTC2 = timezone(timedelta(hours=2))


@pytest.mark.parametrize("column,new,old", [
    ("note", [Decimal("NaN"), Decimal("1")], ["a", "b"]),  # a NaN Decimal in a column without a converter
    ("amount", [Decimal("sNaN"), Decimal("1")], [Decimal(1), Decimal(2)]),
    ("amount", [Decimal(1), Decimal(2)], [Decimal("Infinity"), Decimal(2)]),
    ("amount", [Decimal("1e40"), Decimal("1e-30")], [Decimal(1), Decimal(2)]),  # 41 + 30 digits
    ("amount", [Decimal("1e20"), Decimal("1e-20")], [Decimal(1), None]),
    ("amount", [1, Decimal(2)], [Decimal(1), Decimal(2)]),  # two classes
    ("changed_at", [datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 1, tzinfo=_UTC2)],
     [datetime(2024, 1, 1, tzinfo=timezone.utc), None]),
    ("changed_at", [datetime(2024, 1, 1), datetime(2024, 1, 1, 5)],
     [datetime(2024, 1, 1, tzinfo=_UTC2), datetime(2024, 1, 1, tzinfo=timezone.utc)]),
    ("changed_at", [datetime(2024, 1, 1), datetime(2024, 1, 1, 5)], ["infinity", datetime(2024, 1, 1)]),
    ("d", [date(2024, 1, 1), datetime(2024, 1, 1)], [date(2024, 1, 1), date(2024, 1, 2)]),
    ("code", [uuid.UUID(int=1), "x"], ["a", None]),
    ("qty", [True, False], [1, 2]),
    ("qty", [1, 2], [True, 2]),
])
def test_the_edges_decide_as_before(column: str, new: list[Any], old: list[Any]) -> None:
    a = _applier(False)
    cols = ("id", column, "f")
    rows = [TargetChange(T, Op.UPDATE, ("id",), (i,), {"id": i, column: v, "f": 1.5}, expect={column: o})
            for i, (v, o) in enumerate(zip(new, old), 1)]
    run = Run(T, Op.UPDATE, ("id",), cols, {r.key: r for r in rows}, frozenset(), False, True, False, True)
    assert a._unchanged_joined(run, rows, (column,)) == _reference(a, run, rows, (column,))


def test_split_union_opens_each_statement_with_the_naming_select(monkeypatch: pytest.MonkeyPatch) -> None:
    # the one splitter of both joined forms: at most BATCH rows a statement, a statement closed once it
    # reaches MAX_STMT_LENGTH bytes, and row i written as `named(i)` exactly where it opens a statement
    monkeypatch.setattr(mariadb, "BATCH", 3)
    monkeypatch.setattr(mariadb, "MAX_STMT_LENGTH", 10**6)
    named, unioned = (lambda i: b"N%d" % i), (lambda i: b"+U%d" % i)
    assert mariadb._split_union(b"<", b">", 7, named, unioned) == [b"<N0+U1+U2>", b"<N3+U4+U5>", b"<N6>"]
    assert mariadb._split_union(b"<", b">", 0, named, unioned) == []
    monkeypatch.setattr(mariadb, "MAX_STMT_LENGTH", 5)  # N0 + U1 = 5 bytes: closed after the second row
    assert mariadb._split_union(b"<", b">", 4, named, unioned) == [b"<N0+U1>", b"<N2+U3>"]


def _literal_statements_by_row(enc: str, head: bytes, tail: bytes, names: Any, cols: list[list[str]]) -> list[bytes]:
    """`_literal_statements` as it was (73190fc), a Python step per row through `_split_union`."""
    bodies = list(map(str.encode, map(", ".join, zip(*cols)), [enc] * len(cols[0]) if cols else []))
    union = mariadb._UNION.encode(enc)
    return mariadb._split_union(head, tail, len(bodies), lambda i: (
        "SELECT " + ", ".join(f"{col[i]} AS {n}" for col, n in zip(cols, names))).encode(enc),
        lambda i: union + bodies[i])


@settings(max_examples=400, deadline=None)
@given(n=st.integers(0, 40), width=st.integers(1, 4), batch=st.integers(1, 6), max_length=st.integers(1, 400),
       data=st.data())
def test_literal_statements_split_where_the_row_by_row_splitter_splits(n: int, width: int, batch: int,
                                                                       max_length: int, data: Any) -> None:
    cols = [data.draw(st.lists(st.text(alphabet="ab'é", max_size=30).map(repr), min_size=n, max_size=n))
            for _ in range(width)]
    names = [f"x{j}" for j in range(width)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mariadb, "BATCH", batch)
        mp.setattr(mariadb, "MAX_STMT_LENGTH", max_length)
        got = mariadb._literal_statements("utf8", b"<", b">", names, cols)
        assert got == _literal_statements_by_row("utf8", b"<", b">", names, cols)
