"""appliers: runs keep the order of changes; values are converted or the row is named; dialect converters."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Sequence

import pytest

from replicator.appliers.base import Applier, Run, group_runs
from replicator.appliers.mariadb import (_date, _datetime, _decimal, _double, _json, _json_document, _time,
                                         _utc_naive, quote)
from replicator.appliers.postgres import _bool, _inet, _text, _time_of_day, _timestamptz, _uuid
from replicator.changes import Op, Position, TableRef, TargetChange
from replicator.config import Account, Connection, Secret
from replicator.errors import RowError

T = TableRef("public", "customer")
U = TableRef("public", "orders")


def up(table: TableRef, key: int, op: Op = Op.UPDATE, **values: Any) -> TargetChange:
    return TargetChange(table, op, ("id",), (key,), {"id": key, **values})


def dl(table: TableRef, key: int) -> TargetChange:
    return TargetChange(table, Op.DELETE, ("id",), (key,), {})


def shape(runs: list[Run]) -> list[tuple[str, str, tuple[str, ...], list[tuple]]]:
    return [(r.table.name, r.op.value, r.columns, list(r.rows)) for r in runs]


# ---------------------------------------------------------------- group_runs


def test_insert_only_columns_start_a_run_of_their_own_and_are_never_updated() -> None:
    """A sync's second side creates rows with every field but leaves existing rows' unowned fields."""
    from dataclasses import replace

    seeded = replace(up(T, 2, Op.INSERT, name="b", note="x"), insert_only=frozenset({"note"}))
    runs = group_runs([up(T, 1, Op.INSERT, name="a", note="y"), seeded])
    assert shape(runs) == [("customer", "insert", ("id", "name", "note"), [(1,)]),
                           ("customer", "insert", ("id", "name", "note"), [(2,)])]
    assert runs[0].updates == ["name", "note"]
    assert runs[1].updates == ["name"]


def test_consecutive_changes_of_one_shape_form_one_run() -> None:
    runs = group_runs([up(T, 1, name="a"), up(T, 2, name="b"), up(T, 3, name="c")])
    assert shape(runs) == [("customer", "update", ("id", "name"), [(1,), (2,), (3,)])]
    assert runs[0].key_columns == ("id",)


def test_empty_input() -> None:
    assert group_runs([]) == []


def test_runs_keep_order_and_never_merge_across_tables() -> None:
    changes = [up(T, 1, name="a"), up(U, 10, name="x"), up(T, 2, name="b")]
    assert shape(group_runs(changes)) == [
        ("customer", "update", ("id", "name"), [(1,)]),
        ("orders", "update", ("id", "name"), [(10,)]),
        ("customer", "update", ("id", "name"), [(2,)]),
    ]


def test_never_merges_across_operations() -> None:
    changes = [up(T, 1, Op.INSERT, name="a"), up(T, 2, Op.UPDATE, name="b"), dl(T, 3), up(T, 4, Op.INSERT, name="d")]
    assert [(r.op, list(r.rows)) for r in group_runs(changes)] == [
        (Op.INSERT, [(1,)]), (Op.UPDATE, [(2,)]), (Op.DELETE, [(3,)]), (Op.INSERT, [(4,)])]


def test_never_merges_across_column_sets() -> None:
    # an unchanged TOAST value is left out of one row: it cannot share the other row's statement
    changes = [up(T, 1, name="a", note="n"), up(T, 2, name="b"), up(T, 3, name="c")]
    assert shape(group_runs(changes)) == [
        ("customer", "update", ("id", "name", "note"), [(1,)]),
        ("customer", "update", ("id", "name"), [(2,), (3,)]),
    ]


def test_column_order_matters_for_the_statement() -> None:
    a = TargetChange(T, Op.UPDATE, ("id",), (1,), {"id": 1, "a": 1, "b": 2})
    b = TargetChange(T, Op.UPDATE, ("id",), (2,), {"id": 2, "b": 2, "a": 1})
    assert [r.columns for r in group_runs([a, b])] == [("id", "a", "b"), ("id", "b", "a")]


def test_later_change_of_the_same_key_replaces_the_earlier_in_a_run() -> None:
    first, second, third = up(T, 1, name="a"), up(T, 2, name="b"), up(T, 1, name="z")
    (run,) = group_runs([first, second, third])
    assert list(run.rows) == [(1,), (2,)]
    assert run.rows[(1,)] is third
    assert run.rows[(2,)] is second


def test_same_key_in_different_runs_is_kept_twice() -> None:
    # insert, delete, insert of one key must all reach the target, in order
    changes = [up(T, 1, Op.INSERT, name="a"), dl(T, 1), up(T, 1, Op.INSERT, name="b")]
    runs = group_runs(changes)
    assert [(r.op, r.rows[(1,)]) for r in runs] == [(Op.INSERT, changes[0]), (Op.DELETE, changes[1]),
                                                    (Op.INSERT, changes[2])]


def test_truncate_is_its_own_run() -> None:
    trunc = TargetChange(T, Op.TRUNCATE, ("id",), (), {})
    runs = group_runs([up(T, 1, name="a"), trunc, up(T, 2, name="b")])
    assert [r.op for r in runs] == [Op.UPDATE, Op.TRUNCATE, Op.UPDATE]


# ---------------------------------------------------------------- Applier.convert


class FakeApplier(Applier):
    kind = "fake"

    def connect(self) -> None: ...
    def close(self) -> None: ...
    def lock(self, fail_fast: bool) -> None: ...
    def is_row_error(self, exc: Exception) -> bool: return False
    def read_checkpoint(self) -> Position | None: return None
    def begin(self) -> None: ...
    def commit(self, position: Position, commit_time: Any) -> None: ...
    def commit_untracked(self) -> None: ...
    def rollback(self) -> None: ...
    def load_types(self, tables: Sequence[TableRef]) -> None: ...
    def _upsert(self, run: Run, rows: list[TargetChange]) -> int: return 0
    def _truncate(self, table: TableRef) -> None: ...
    def _delete(self, run: Run, rows: list[TargetChange]) -> int: return len(rows)
    def quote_table(self, table: TableRef) -> str: return f"{table.schema}.{table.name}"
    def quote_col(self, column: str) -> str: return column
    def query(self, sql: str, params: Sequence[Any]) -> list[tuple]: return []
    def execute(self, sql: str, params: Sequence[Any]) -> int: return 0


@pytest.fixture
def applier() -> FakeApplier:
    acc = Account("u", Secret("pw"))
    a = FakeApplier(Connection("crm", "postgresql", "h", 5432, "crm", acc, acc), "erp_to_crm")
    a._converters[T] = {"active": _bool, "name": _text}
    return a


def test_convert_applies_converters_in_column_order(applier: FakeApplier) -> None:
    ch = up(T, 1, name=b"Zo\xc3\xab", active=1, other=5)
    (run,) = group_runs([ch])
    assert applier.convert(run, ch) == [1, "Zoë", True, 5]


def test_convert_leaves_null_alone(applier: FakeApplier) -> None:
    ch = up(T, 1, active=None)
    (run,) = group_runs([ch])
    assert applier.convert(run, ch) == [1, None]


def test_convert_error_names_table_key_and_column(applier: FakeApplier) -> None:
    ch = TargetChange(T, Op.UPDATE, ("id",), (42,), {"id": 42, "name": "ok", "active": 2})
    (run,) = group_runs([ch])
    with pytest.raises(RowError) as info:
        applier.convert(run, ch)
    err = info.value
    assert (err.table, err.key, err.column) == ("public.customer", (42,), "active")
    assert str(err) == "table public.customer, key (42,), column active: cannot convert int value: 2 is not a boolean (0 or 1)"


def test_convert_error_on_invalid_utf8(applier: FakeApplier) -> None:
    ch = TargetChange(T, Op.INSERT, ("id",), (7,), {"id": 7, "name": b"\xff"})
    (run,) = group_runs([ch])
    with pytest.raises(RowError) as info:
        applier.convert(run, ch)
    assert str(info.value) == (
        "table public.customer, key (7,), column name: cannot convert bytes value: 'utf-8' codec can't decode "
        "byte 0xff in position 0: invalid start byte"
    )


def test_convert_rows_is_convert_of_each_row(applier: FakeApplier) -> None:
    """The run-at-once conversion the appliers use gives convert's values, and convert's error."""
    rows = [up(T, i, name=[b"Zo\xc3\xab", "a", None][i % 3], active=[1, 0, None, True][i % 4], other=i)
            for i in range(12)]
    (run,) = group_runs(rows)
    assert applier.convert_rows(run, rows) == [applier.convert(run, r) for r in rows]
    bad = rows[:5] + [TargetChange(T, Op.UPDATE, ("id",), (42,), {"id": 42, "name": "ok", "active": 2, "other": 0})]
    (run,) = group_runs(bad)
    with pytest.raises(RowError) as info:
        applier.convert_rows(run, bad)
    with pytest.raises(RowError) as one:
        applier.convert(run, bad[-1])
    assert str(info.value) == str(one.value)
    assert (info.value.key, info.value.column) == ((42,), "active")


def test_convert_key(applier: FakeApplier) -> None:
    applier._converters[T]["id"] = _text
    run = Run(T, Op.DELETE, ("id",), (), {})
    assert applier.convert_key(run, (b"abc",)) == ["abc"]
    assert applier.convert_key(run, (None,)) == [None]


def test_convert_key_error_is_a_row_error(applier: FakeApplier) -> None:
    """BUG: convert_key lets the converter's ValueError escape. The pipeline treats a ValueError as
    not a row error (is_row_error is False for it), so a bad key in a DELETE stops the stream with a
    bare codec message instead of a RowError naming table, key and column."""
    applier._converters[T]["id"] = _text
    run = Run(T, Op.DELETE, ("id",), (), {})
    with pytest.raises(RowError) as info:
        applier.convert_key(run, (b"\xff",))
    assert (info.value.table, info.value.key, info.value.column) == ("public.customer", (b"\xff",), "id")


def test_apply_sends_runs_in_order(applier: FakeApplier) -> None:
    calls: list[tuple[str, str, list[tuple]]] = []
    applier._upsert = lambda run, rows: calls.append(("upsert", run.table.name, [r.key for r in rows])) or 0  # type: ignore[method-assign]
    applier._delete = lambda run, rows: calls.append(("delete", run.table.name, [r.key for r in rows])) or len(rows)  # type: ignore[method-assign]
    applier._truncate = lambda table: calls.append(("truncate", table.name, []))  # type: ignore[method-assign]
    applier.apply([up(U, 1, name="a"), up(T, 5, name="b"), up(T, 6, name="c"), dl(U, 1),
                   TargetChange(T, Op.TRUNCATE, ("id",), (), {})])
    assert calls == [("upsert", "orders", [(1,)]), ("upsert", "customer", [(5,), (6,)]),
                     ("delete", "orders", [(1,)]), ("truncate", "customer", [])]


# ---------------------------------------------------------------- PostgreSQL converters


def test_pg_bool() -> None:
    assert _bool(1) is True
    assert _bool(0) is False
    assert _bool(True) is True
    assert _bool(None) is None
    with pytest.raises(ValueError, match=r"^2 is not a boolean \(0 or 1\)$"):
        _bool(2)
    with pytest.raises(ValueError, match=r"^-1 is not a boolean \(0 or 1\)$"):
        _bool(-1)


def test_pg_text() -> None:
    assert _text("plain") == "plain"
    assert _text(b"Zo\xc3\xab") == "Zoë"
    assert _text(bytearray(b"abc")) == "abc"
    assert _text({"b", "a"}) == "a,b"  # a MariaDB SET
    with pytest.raises(UnicodeDecodeError):
        _text(b"caf\xe9")  # latin-1, never mangled into U+FFFD
    with pytest.raises(ValueError, match="^text contains a NUL character, which PostgreSQL cannot store$"):
        _text("a\x00b")


def test_pg_text_rejects_nul_in_bytes() -> None:
    """BUG: a NUL inside bytes (a MariaDB TEXT/BLOB value) is decoded and returned as is; only str is
    checked. psycopg2 then fails the whole batch with a bare ValueError that is not a row error."""
    with pytest.raises(ValueError, match="^text contains a NUL character, which PostgreSQL cannot store$"):
        _text(b"a\x00b")


def test_pg_uuid_pads_stripped_binary16() -> None:
    full = uuid.UUID("12345678-9abc-def0-1234-56789abcde00")
    assert _uuid(full.bytes) == full
    assert _uuid(full.bytes.rstrip(b"\0")) == full  # the binlog strips trailing zero bytes
    assert _uuid(b"") == uuid.UUID(int=0)
    assert _uuid("12345678-9abc-def0-1234-56789abcde00") == "12345678-9abc-def0-1234-56789abcde00"
    with pytest.raises(ValueError):
        _uuid(b"\x01" * 17)


def test_pg_timestamptz_attaches_utc() -> None:
    naive = datetime(2024, 3, 31, 1, 30, 0, 123456)
    assert _timestamptz(naive) == datetime(2024, 3, 31, 1, 30, 0, 123456, tzinfo=timezone.utc)
    assert _timestamptz(naive).tzinfo is timezone.utc
    aware = datetime(2024, 3, 31, 3, 30, tzinfo=timezone(timedelta(hours=2)))
    assert _timestamptz(aware) is aware
    assert _timestamptz("2024-01-01") == "2024-01-01"


# ---------------------------------------------------------------- MariaDB converters


def test_maria_utc_naive() -> None:
    aware = datetime(2024, 3, 31, 3, 30, 15, 7, tzinfo=timezone(timedelta(hours=2)))
    assert _utc_naive(aware) == datetime(2024, 3, 31, 1, 30, 15, 7)
    assert _utc_naive(aware).tzinfo is None
    naive = datetime(2024, 1, 1)
    assert _utc_naive(naive) is naive
    assert _utc_naive(None) is None


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_maria_decimal_rejects_non_finite(bad: Decimal) -> None:
    with pytest.raises(ValueError, match=r"cannot be stored in a MariaDB DECIMAL$"):
        _decimal(bad)


def test_maria_decimal_keeps_finite_values() -> None:
    d = Decimal("-12345678901234567890.123456789")
    assert _decimal(d) is d
    assert _decimal(5) == 5


def test_maria_quote_backticks() -> None:
    assert quote("customers") == "`customers`"
    assert quote("erp", "customers") == "`erp`.`customers`"
    assert quote("we`ird") == "`we``ird`"
    assert quote("select") == "`select`"  # reserved words too


def test_maria_quote_percent_is_escaped_once() -> None:
    """PyMySQL formats the statement with `%` when parameters are given, so `%` in an identifier
    must appear as `%%` exactly once.

    BUG: SQLAlchemy's MySQL preparer (paramstyle "format") already doubles `%`; quote() doubles
    again, so `100%` reaches the server as `100%%`: the wrong table.
    """
    assert quote("100%") == "`100%%`"
    assert quote("s%", "t`%") == "`s%%`.`t``%%`"
    assert ("DELETE FROM " + quote("100%") + " WHERE id = %s") % ("1",) == "DELETE FROM `100%` WHERE id = 1"


# ---------------------------------------------------------------- the type contract's converters


def _maria_row_error(column: str, conv: Any, value: Any) -> RowError:
    acc = Account("u", Secret("pw"))
    a = FakeApplier(Connection("erp", "mariadb", "h", 3306, "erp", acc, acc), "crm_to_erp")
    a._converters[T] = {column: conv}
    ch = TargetChange(T, Op.INSERT, ("id",), (9,), {"id": 9, column: value})
    (run,) = group_runs([ch])
    with pytest.raises(RowError) as info:
        a.convert(run, ch)
    return info.value


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_maria_double_refuses_nan_and_infinity_naming_the_column(value: float) -> None:
    err = _maria_row_error("ratio", _double, value)
    assert (err.table, err.key, err.column) == ("public.customer", (9,), "ratio")
    assert "MariaDB DOUBLE" in str(err)
    assert _double(1.5) == 1.5 and _double(-0.0) == 0.0 and str(_double(-0.0)) == "-0.0"


@pytest.mark.parametrize("value", ["infinity", "-infinity", "294276-12-31", "0044-03-15 BC",
                                   "294276-12-31 23:59:59.999999", "2000-01-01 00:00:00+00 BC"])
def test_maria_dates_beyond_range_are_row_errors_naming_the_column(value: str) -> None:
    for conv in (_date, _datetime):
        err = _maria_row_error("born", conv, value)
        assert (err.table, err.key, err.column) == ("public.customer", (9,), "born")
        assert "beyond MariaDB's date range" in str(err)
    assert _date(datetime(2024, 1, 2).date()) == datetime(2024, 1, 2).date()


@pytest.mark.parametrize("text, expected", [
    ("PT0S", timedelta(0)),
    ("P1DT2H3M4.5S", timedelta(days=1, hours=2, minutes=3, seconds=4.5)),
    ("PT-12H-34M-56.789S", -timedelta(hours=12, minutes=34, seconds=56, microseconds=789000)),
    ("-PT12H34M56.789S", -timedelta(hours=12, minutes=34, seconds=56, microseconds=789000)),
    ("PT-0.000001S", timedelta(microseconds=-1)),
    ("P1DT-2H", timedelta(hours=22)),
    ("PT838H59M59.999999S", timedelta(hours=838, minutes=59, seconds=59, microseconds=999999)),
    ("PT-838H-59M-59.999999S", -timedelta(hours=838, minutes=59, seconds=59, microseconds=999999)),
])
def test_maria_time_from_an_iso_interval(text: str, expected: timedelta) -> None:
    assert _time(text) == expected
    assert _time(expected) == expected  # a MariaDB TIME / timedelta passes as is
    assert _time("12:34:56") == "12:34:56"  # text from a text column: the server decides


@pytest.mark.parametrize("text, why", [("PT839H", "outside MariaDB's TIME range"), ("P35D", "outside"),
                                       ("P1M", "years or months"), ("P1Y", "years or months"),
                                       ("PT1.0000001S", "6 fractional digits"), ("P1X", "not an ISO 8601")])
def test_maria_time_refuses_what_a_time_cannot_hold(text: str, why: str) -> None:
    err = _maria_row_error("dur", _time, text)
    assert err.column == "dur" and err.key == (9,) and why in str(err)


def test_maria_json_takes_a_pg_array_as_a_json_array() -> None:
    from replicator.sources.pgoutput import converter_for

    assert _json(converter_for(1007)(b"{1,2,NULL}")) == "[1, 2, null]"
    assert _json(converter_for(1007)(b"{}")) == "[]"  # not the object {}
    assert _json(converter_for(1231)(b"{1.50,-0}")) == "[1.50, -0]"  # exact decimals
    assert _json(converter_for(1009)(b'{"a\\"b",NULL}')) == '["a\\"b", null]'
    assert _json_document(converter_for(1007)(b"{1,2}")) == "{1,2}"  # a plain LONGTEXT keeps the text
    assert _json({"a": 1}) == '{"a": 1}' and _json('{"a": 1}') == '{"a": 1}'
    err = _maria_row_error("tags", _json, converter_for(1022)(b"{1,NaN}"))
    assert err.column == "tags" and "no JSON equivalent" in str(err)


@pytest.mark.parametrize("raw, text", [(b"\x00" * 16, "::"), (b"\x00" * 15 + b"\x01", "::1"),
                                       (b"\xff\xff" + b"\x00" * 14, "ffff::"),
                                       (b"\x00" * 10 + b"\xff\xff\x01\x02\x03\x04", "::ffff:102:304"),
                                       (b"\x01\x02\x03\x04", "1.2.3.4")])
def test_pg_inet_from_inet6_bytes(raw: bytes, text: str) -> None:
    import ipaddress

    assert ipaddress.ip_address(_inet(raw)) == ipaddress.ip_address(text)
    assert _inet("10.0.0.0/8") == "10.0.0.0/8"
    with pytest.raises(ValueError, match="not an IPv4"):
        _inet(b"\x01" * 14)


def test_pg_time_takes_only_a_time_of_day() -> None:
    from datetime import time

    assert _time_of_day(timedelta(hours=23, minutes=59, seconds=59, microseconds=999999)) == \
        time(23, 59, 59, 999999)
    assert _time_of_day(timedelta(0)) == time(0) and _time_of_day(timedelta(days=1)) == "24:00:00"
    assert _time_of_day(time(1, 2)) == time(1, 2)
    for bad in (timedelta(hours=25), timedelta(microseconds=-1), -timedelta(hours=838)):
        with pytest.raises(ValueError, match="not a time of day"):
            _time_of_day(bad)

