"""`Applier._expected_by_column` (the old values a conditional write compares, `update_unchanged`, for runs of
COLUMNWISE_ROWS rows or more) against the row-by-row loop (`Applier._expected_by_row`, 82159c7's
`expected_rows`, which still runs it for fewer rows): for random `expect` values of every
class over both dialects' exact kinds and their converters -- NULLs, values of another class, values a
converter refuses, NaN and infinite Decimals, naive and aware datetimes, bools among ints, a missing column,
a row without `expect` -- the same rows (values and classes), or None for exactly the same runs."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from replicator.appliers import base, mariadb, postgres
from replicator.appliers.base import Applier, Run
from replicator.changes import Op, TableRef, TargetChange
from replicator.compare import ColumnInfo
from replicator.config import Account, Connection, Secret

T = TableRef("s", "t")
MY_TYPES = {"id": "bigint", "qty": "int", "name": "varchar", "amount": "decimal", "at": "datetime",
            "d": "date", "t": "time", "f": "double"}
PG_TYPES = {"id": "bigint", "qty": "integer", "name": "text", "amount": "numeric", "at": "timestamp with time zone",
            "nv": "timestamp without time zone", "d": "date", "t": "time without time zone", "b": "boolean",
            "f": "double precision"}


def _reference(a: Applier, run: Run, rows: list[TargetChange], compared: tuple[str, ...]) -> list[list[Any]] | None:
    """The row-by-row loop (82159c7's Applier.expected_rows, kept for runs below COLUMNWISE_ROWS)."""
    return a._expected_by_row(run, rows, compared)


def _applier(dialect: str) -> Applier:
    acc = Account("u", Secret(""))
    a: Applier
    if dialect == "mariadb":
        a = mariadb.MariaDBApplier(Connection("erp", "mariadb", "h", 3306, "erp", acc, acc), "crm_to_erp")
        a._types[T] = dict(MY_TYPES)
        a._columns[T] = {c: ColumnInfo(c, ty, "mariadb", collation="utf8mb4_bin") for c, ty in MY_TYPES.items()}
        a._converters[T] = {c: mariadb._CONVERTERS[ty] for c, ty in MY_TYPES.items() if ty in mariadb._CONVERTERS}
    else:
        a = postgres.PostgresApplier(Connection("crm", "postgresql", "h", 5432, "crm", acc, acc), "erp_to_crm")
        a._types[T] = dict(PG_TYPES)
        a._converters[T] = {c: postgres._CONVERTERS[ty] for c, ty in PG_TYPES.items() if ty in postgres._CONVERTERS}
    return a


_UTC2 = timezone(timedelta(hours=2))
_any = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.decimals(), st.floats(), st.text(max_size=4),
    st.datetimes(min_value=datetime(1, 1, 2)), st.datetimes(min_value=datetime(1, 1, 2), timezones=st.sampled_from(
        [timezone.utc, _UTC2])), st.dates(), st.times(), st.timedeltas(), st.binary(max_size=3),
    st.sampled_from(["infinity", "0044-01-01 BC", "P1D", "PT1H", "1.5", "NaN"]))
_usual = {  # per column, the class it usually holds (most runs then get past the class tests)
    "qty": st.integers(-2**31, 2**31), "name": st.text(max_size=4), "amount": st.decimals(allow_nan=False,
    allow_infinity=False), "at": st.datetimes(timezones=st.just(timezone.utc)), "nv": st.datetimes(),
    "d": st.dates(), "t": st.times(), "b": st.booleans(), "f": st.floats(), "id": st.integers(),
}


@settings(max_examples=500, deadline=None)
@given(data=st.data(), dialect=st.sampled_from(["mariadb", "postgresql"]), n=st.integers(1, 5),
       odd=st.integers(0, 3))
def test_column_by_column_is_the_row_loop(data: Any, dialect: str, n: int, odd: int) -> None:
    a = _applier(dialect)
    names = list(MY_TYPES if dialect == "mariadb" else PG_TYPES)
    compared = tuple(data.draw(st.lists(st.sampled_from(names[1:]), min_size=1, max_size=4, unique=True)))
    rows = []
    for i in range(n):
        if odd == 3 and data.draw(st.integers(0, 9)) == 0:
            expect = None  # a row without `expect`
        else:
            expect = {c: data.draw(_any if odd and data.draw(st.integers(0, 4)) == 0 else
                                   st.one_of(_usual[c], st.none())) for c in compared
                      if not (odd == 2 and data.draw(st.integers(0, 19)) == 0)}  # now and then one left out
        rows.append(TargetChange(T, Op.UPDATE, ("id",), (i,), {"id": i}, expect=expect))
    run = Run(T, Op.UPDATE, ("id",), ("id", *compared), {r.key: r for r in rows})
    got, want = a._expected_by_column(run, rows, compared), _reference(a, run, rows, compared)
    assert got == want
    assert a.expected_rows(run, rows, compared) == want
    if got is not None and want is not None:
        assert [[type(v) for v in r] for r in got] == [[type(v) for v in r] for r in want]


def test_the_usual_run_qualifies_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    a = _applier("postgresql")
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    n = base.COLUMNWISE_ROWS
    rows = [TargetChange(T, Op.UPDATE, ("id",), (i,), {"id": i},
                         expect={"qty": i, "amount": Decimal("1.5"), "at": at, "name": None, "d": date(2026, 1, 1),
                                 "t": time(1)}) for i in range(n)]
    compared = ("qty", "amount", "at", "name", "d", "t")
    want = [[i, Decimal("1.5"), at, None, date(2026, 1, 1), time(1)] for i in range(n)]
    by_column: list[int] = []
    real = a._expected_by_column
    monkeypatch.setattr(a, "_expected_by_column", lambda *args: by_column.append(1) or real(*args))
    for k in (1, n - 1, n):  # the row loop below COLUMNWISE_ROWS, by column from it
        run = Run(T, Op.UPDATE, ("id",), ("id", *compared), {r.key: r for r in rows[:k]})
        assert a.expected_rows(run, rows[:k], compared) == want[:k]
    assert by_column == [1]


@pytest.mark.parametrize("dialect,column,values", [
    ("postgresql", "nv", [datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=timezone.utc)]),  # _naive fails
    ("postgresql", "at", [datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=_UTC2)]),
    ("postgresql", "amount", [Decimal("1"), Decimal("NaN")]),
    ("postgresql", "amount", [1.5, None]),
    ("postgresql", "t", [time(1), time(1, tzinfo=timezone.utc)]),
    ("postgresql", "t", [time(1), "24:00:00"]),
    ("postgresql", "qty", [1, True]),
    ("postgresql", "b", [True, 1]),
    ("mariadb", "amount", [Decimal("Infinity"), None]),
    ("mariadb", "at", [datetime(2026, 1, 1, tzinfo=_UTC2), "infinity"]),
    ("mariadb", "d", [date(2026, 1, 1), datetime(2026, 1, 1)]),
    ("mariadb", "t", ["P1D", timedelta(hours=900)]),
    ("mariadb", "name", [None, None]),
    ("mariadb", "f", [1.5, 2.5]),
])
def test_the_edges_by_example(dialect: str, column: str, values: list[Any]) -> None:
    a = _applier(dialect)
    for vs in (values, values[:1], values[1:]):
        rows = [TargetChange(T, Op.UPDATE, ("id",), (i,), {"id": i}, expect={column: v}) for i, v in enumerate(vs)]
        run = Run(T, Op.UPDATE, ("id",), ("id", column), {r.key: r for r in rows})
        got, want = a._expected_by_column(run, rows, (column,)), _reference(a, run, rows, (column,))
        assert got == want and [[type(v) for v in r] for r in got or []] == [[type(v) for v in r] for r in want or []]
