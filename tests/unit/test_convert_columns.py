"""`Applier.convert_rows` column by column (`_convert_by_column`, runs of COLUMNWISE_ROWS rows or more, with the
dialect's `whole_converters`) against its row loop (the path below COLUMNWISE_ROWS, and the one that names a
failing row): the same rows, values and classes (tzinfo and fold included), or the same RowError for the same
row and column. And each whole-column form against its converter value by value."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from replicator.appliers import base, postgres
from replicator.appliers.base import Run
from replicator.changes import Op, TargetChange
from replicator.errors import RowError

from tests.unit.test_expected_rows import PG_TYPES, T, _any, _applier, _usual

_UTC2 = timezone(timedelta(hours=2))
# the column classes the bench and a binlog bring (naive DATETIMEs into timestamptz), and the odd ones
_usual_new = dict(_usual, at=st.datetimes(timezones=st.none() | st.just(timezone.utc)), name=st.text(max_size=4))
_odd = {"at": st.datetimes(timezones=st.just(_UTC2)) | st.datetimes().map(lambda d: d.replace(fold=1)),
        "name": st.just("a\x00b"), "qty": st.sampled_from([2**31, -2**31 - 1, True]),
        "id": st.sampled_from([2**63, -2**63 - 1, False]), "amount": st.floats(allow_nan=False) | st.integers()}


def _outcome(a: Any, run: Run, rows: list[TargetChange]) -> Any:
    try:
        out = a.convert_rows(run, rows)
    except RowError as exc:
        return ("error", str(exc), exc.table, exc.key, exc.column)
    return out, [[(type(v), getattr(v, "tzinfo", None), getattr(v, "fold", None)) for v in r] for r in out]


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n=st.integers(base.COLUMNWISE_ROWS, base.COLUMNWISE_ROWS + 8), odd=st.integers(0, 3))
def test_column_by_column_is_the_row_loop(data: Any, n: int, odd: int) -> None:
    a = _applier("postgresql")
    names = list(PG_TYPES)
    cols = ("id", *data.draw(st.lists(st.sampled_from(names[1:]), min_size=1, max_size=5, unique=True)))
    # a column holds its usual class (and NULLs now and then); with `odd`, now and then a value of another
    # class, or one its converter refuses or converts
    usual = {c: data.draw(st.sampled_from(["plain", "nulls"])) for c in cols}
    rows = []
    for i in range(n):
        values = {}
        for c in cols:
            s = _usual_new[c]
            if usual[c] == "nulls":
                s = s | st.none()
            if odd and data.draw(st.integers(0, 3 * n)) == 0:
                s = _odd.get(c, _any) if odd == 1 else _any
            values[c] = data.draw(s)
        if odd == 3 and data.draw(st.integers(0, 2 * n)) == 0:
            values.pop(data.draw(st.sampled_from(cols)))  # a missing column: the same KeyError either way
        rows.append(TargetChange(T, Op.UPDATE, ("id",), (i,), values))
    run = Run(T, Op.UPDATE, ("id",), cols, {r.key: r for r in rows})
    loop = _applier("postgresql")
    loop.whole_converters = {}  # the row loop only
    try:
        want = _outcome(loop, run, rows)
    except KeyError as exc:
        with pytest.raises(KeyError) as got_exc:
            _outcome(a, run, rows)
        assert got_exc.value.args == exc.args
        return
    assert _outcome(a, run, rows) == want


def test_the_usual_run_goes_by_column(monkeypatch: pytest.MonkeyPatch) -> None:
    a = _applier("postgresql")
    n = base.COLUMNWISE_ROWS
    rows = [TargetChange(T, Op.UPDATE, ("id",), (i,), {"id": i, "qty": i, "amount": Decimal("1.5"),
                                                          "at": datetime(2026, 1, 1, 0, 0, i), "name": "x"})
            for i in range(n)]
    cols = ("id", "qty", "amount", "at", "name")
    calls: list[int] = []
    real = a._convert_by_column
    monkeypatch.setattr(a, "_convert_by_column", lambda *args: calls.append(1) or real(*args))
    for k in (1, n - 1, n):
        run = Run(T, Op.UPDATE, ("id",), cols, {r.key: r for r in rows[:k]})
        got = a.convert_rows(run, rows[:k])
        assert got == [[i, i, Decimal("1.5"), datetime(2026, 1, 1, 0, 0, i, tzinfo=timezone.utc), "x"]
                       for i in range(k)]
        assert all(r[3].tzinfo is timezone.utc for r in got)
    assert calls == [1]


@settings(max_examples=150, deadline=None)
@given(conv=st.sampled_from(sorted(postgres._WHOLE, key=lambda f: f.__qualname__ + str(id(f)))),
       col=st.lists(st.one_of(st.none(), _any, st.integers(-2**64, 2**64), st.datetimes().map(
           lambda d: d.replace(fold=1)), st.datetimes(timezones=st.just(timezone.utc))), min_size=1, max_size=6),
       same=st.booleans())
def test_each_whole_form_is_its_converter(conv: Any, col: list[Any], same: bool) -> None:
    """A whole-column form gives, where it answers, what its converter gives value by value (the same
    objects' values and classes, tzinfo and fold); it never answers for a column the converter refuses."""
    if same:  # a column of one class, as runs mostly are
        col = [v for v in col if type(v) is type(col[0])] or col[:1]
    got = postgres._WHOLE[conv](col)
    if got is None:
        return
    want = [None if v is None else conv(v) for v in col]  # (raises if a value is refused: the form must not answer)
    assert got == want
    assert [(type(v), getattr(v, "tzinfo", None), getattr(v, "fold", None)) for v in got] == \
           [(type(v), getattr(v, "tzinfo", None), getattr(v, "fold", None)) for v in want]
