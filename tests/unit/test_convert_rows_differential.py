"""appliers/base.py convert_rows (one itemgetter per column tuple) against the per-row list comprehension
it replaced: the same rows, value and class, and the same error -- a RowError naming table, key and
column, or the KeyError of a row that lacks a run column -- for any columns, rows and converters."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Sequence

from hypothesis import given
from hypothesis import strategies as st

from replicator.appliers.base import Run
from replicator.appliers.postgres import _bool, _numeric, _text
from replicator.changes import Op, TableRef, TargetChange
from replicator.config import Account, Connection, Secret
from tests.unit.test_applier_runs import FakeApplier

T = TableRef("public", "customer")
NAMES = ["id", "active", "name", "n", "other"]


def reference(a: FakeApplier, run: Run, rows: Sequence[TargetChange]) -> list[list[Any]]:
    """convert_rows at e24ec1a."""
    convs = a._converters.get(run.table, {})
    cols = run.columns
    plan = [(i, convs[c]) for i, c in enumerate(cols) if c in convs]
    out = []
    for r in rows:
        values = r.values
        row = [values[c] for c in cols]
        try:
            for i, conv in plan:
                v = row[i]
                if v is not None:
                    row[i] = conv(v)
        except (ValueError, TypeError, UnicodeError, OverflowError):
            a.convert(run, r)
            raise
        out.append(row)
    return out


def _double(v: Any) -> Any:
    return v * 2 if isinstance(v, int) and not isinstance(v, bool) else int(v)  # int("x"): ValueError


values = st.one_of(st.none(), st.integers(-3, 3), st.booleans(), st.sampled_from(["a", "x", "1", b"\xff", b"ok"]),
                   st.sampled_from([Decimal("1.5"), 2.5]))


def outcome(fn: Any) -> Any:
    try:
        got = fn()
        return ("ok", got, [[type(v) for v in row] for row in got])
    except Exception as exc:  # the class and the words, RowError's table/key/column among them
        return ("error", type(exc), str(exc), getattr(exc, "key", None), getattr(exc, "column", None))


@given(cols=st.lists(st.sampled_from(NAMES), unique=True, max_size=5),
       rows=st.lists(st.dictionaries(st.sampled_from(NAMES), values), max_size=6),
       conv=st.dictionaries(st.sampled_from(NAMES), st.sampled_from([_bool, _text, _double]), max_size=3))
def test_convert_rows_equals_the_list_comprehension(cols: list[str], rows: list[dict[str, Any]],
                                                    conv: dict[str, Any]) -> None:
    acc = Account("u", Secret("pw"))
    a = FakeApplier(Connection("crm", "postgresql", "h", 5432, "crm", acc, acc), "erp_to_crm")
    a._converters[T] = conv
    changes = [TargetChange(T, Op.UPDATE, ("id",), (i,), r) for i, r in enumerate(rows)]
    run = Run(T, Op.UPDATE, ("id",), tuple(cols), {c.key: c for c in changes})
    assert outcome(lambda: a.convert_rows(run, changes)) == outcome(lambda: reference(a, run, changes))


def reference_key_params(a: FakeApplier, table: TableRef, key_columns: Sequence[str],
                         keys: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Applier.key_params at 6c8df9f."""
    convs = a._converters.get(table, {})
    n = len(key_columns)
    plan = [(j, convs[c]) for j, c in enumerate(key_columns) if c in convs]
    out: list[Any] = []
    for k in keys:
        if len(k) != n:
            out += a.convert_row(table, dict(zip(key_columns, k)), k)
            continue
        if not plan:
            out += k
            continue
        row = list(k)
        try:
            for j, conv in plan:
                v = row[j]
                if v is not None:
                    row[j] = conv(v)
        except (ValueError, TypeError, UnicodeError, OverflowError):
            a.convert_row(table, dict(zip(key_columns, k)), k)
            raise
        out += row
    return out


def key_outcome(fn: Any) -> Any:
    try:
        got = fn()
        return ("ok", got, [type(v) for v in got])
    except Exception as exc:
        return ("error", type(exc), str(exc), getattr(exc, "key", None), getattr(exc, "column", None))


@given(key_columns=st.sampled_from([["id"], ["id", "name"], ["name"]]),
       keys=st.lists(st.lists(values, min_size=1, max_size=2).map(tuple), max_size=5),
       conv=st.dictionaries(st.sampled_from(["id", "name"]), st.sampled_from([_bool, _text, _double, _numeric]),
                            max_size=2))
def test_key_params_equals_the_old_loop(key_columns: list[str], keys: list[tuple[Any, ...]],
                                        conv: dict[str, Any]) -> None:
    acc = Account("u", Secret("pw"))
    a = FakeApplier(Connection("crm", "postgresql", "h", 5432, "crm", acc, acc), "erp_to_crm")
    a._converters[T] = conv
    assert key_outcome(lambda: a.key_params(T, key_columns, keys)) == \
        key_outcome(lambda: reference_key_params(a, T, key_columns, keys))
