"""The MariaDB applier's fast row formatter against PyMySQL's own path, byte for byte.

The fast path (replicator/appliers/myliteral.py) must send exactly the statements PyMySQL's
`executemany` would send for the same rows, in both escaping modes (backslash escapes, and
NO_BACKSLASH_ESCAPES), including where a long batch is split into several statements.
"""
from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pymysql
import pytest
from hypothesis import given, settings, strategies as st
from pymysql.constants import SERVER_STATUS
from pymysql.cursors import Cursor

from replicator.appliers.mariadb import quote
from replicator.appliers import myliteral
from replicator.appliers.myliteral import Formatter, split_insert


class _Color(enum.IntEnum):
    RED = 1


# the value table: every Python type the converters hand to PyMySQL, and the awkward values of each
VALUES: list[Any] = [
    None, 0, 1, -1, 2**63 - 1, -2**63, 2**64 - 1, 10**30, True, False, _Color.RED,
    "", "plain", "it's", 'say "hi"', "back\\slash", "nul\x00byte", "line\nfeed", "cr\rlf", "ctrl-z\x1a",
    "tab\t", "ünïcödé", "emoji \U0001F600", "%s %% %(x)s", "'; DROP TABLE t; --", "\\'",
    b"", b"\x00\x01\xff", b"'", bytearray(b"ab\x00"),
    Decimal("0"), Decimal("-0.00"), Decimal("1.10"), Decimal("123456789012.34"), Decimal("1E+5"),
    Decimal("1E-10"), Decimal("-99999999999999999999.999999"),
    0.0, -0.0, 1.5, 1e300, 1e-300, 3.141592653589793, 2.0**53,
    datetime(2024, 1, 2, 3, 4, 5), datetime(2024, 1, 2, 3, 4, 5, 6), datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999),
    datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc),
    date(2024, 2, 29), date(1000, 1, 1), date(1, 1, 1),
    time(0, 0), time(23, 59, 59, 999999), timedelta(0), timedelta(hours=-1, microseconds=5),
    timedelta(hours=838, minutes=59, seconds=59), uuid.UUID("12345678-1234-5678-1234-567812345678"),
    {"a", "b"},
]


def _conn(no_backslash: bool) -> Any:
    conn = pymysql.connections.Connection(defer_connect=True, charset="utf8mb4")
    conn.server_status = SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES if no_backslash else 0
    return conn


class _Recording(Cursor):
    """PyMySQL's cursor with the network left out: what it would send."""

    def __init__(self, conn: Any):
        super().__init__(conn)
        self.sent: list[bytes] = []

    def execute(self, query: Any, args: Any = None) -> int:
        assert args is None
        self.sent.append(bytes(query) if not isinstance(query, str) else query.encode("utf-8"))
        return 0


def _id(value: Any) -> str:
    """A test id that is the same in every process: a set's repr follows string hashing, which differs
    between pytest-xdist workers (they must collect the same ids)."""
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(map(repr, value))) + "}"
    return repr(value)


@pytest.mark.parametrize("no_backslash", [False, True])
@pytest.mark.parametrize("value", VALUES, ids=_id)
def test_each_value_is_formatted_as_pymysql_escapes_it(value: Any, no_backslash: bool) -> None:
    conn = _conn(no_backslash)
    assert Formatter(conn).literal(value) == conn.escape(value)


def _stmt() -> str:
    cols = ["id", "v", "50%s", "we`ird"]
    return (f"INSERT INTO {quote('s%', 't')} ({', '.join(quote(c) for c in cols)}) VALUES (%s, %s, %s, %s) "
            f"ON DUPLICATE KEY UPDATE {quote('v')} = VALUES({quote('v')})")


@pytest.mark.parametrize("no_backslash", [False, True])
@pytest.mark.parametrize("max_length", [200, 1000, 1024000])
def test_statements_are_the_ones_executemany_sends(no_backslash: bool, max_length: int) -> None:
    conn = _conn(no_backslash)
    rows = [[i, VALUES[i % len(VALUES)], VALUES[(i * 7) % len(VALUES)], "x" * (i % 50)] for i in range(300)]
    slow = _Recording(conn)
    slow.max_stmt_length = max_length
    slow.executemany(_stmt(), rows)
    prefix, postfix = split_insert(_stmt())
    fast = Formatter(conn).statements(prefix, postfix, rows, max_length)
    assert fast == slow.sent
    if max_length == 200:
        assert len(fast) > 1  # the split itself was exercised


def test_a_value_pymysql_refuses_is_refused_the_same_way() -> None:
    conn = _conn(False)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(pymysql.err.ProgrammingError):
            conn.escape(bad)
        with pytest.raises(pymysql.err.ProgrammingError):
            Formatter(conn).literal(bad)


def test_a_changed_escaping_mode_is_noticed() -> None:
    conn = _conn(False)
    fmt = Formatter(conn)
    assert fmt.current()
    conn.server_status = SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES
    assert not fmt.current()
    assert Formatter(conn).literal("it's") == "'it''s'"


def test_not_an_insert_values_statement_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a single-row INSERT"):
        split_insert("UPDATE t SET a = %s")


# ---------------------------------------------------------------- random values of the common types

_zones = st.one_of(st.none(), st.just(timezone.utc),
                   st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))))
_texts = st.text(alphabet=st.sampled_from(list("ab '\"\\\n\r\t\x00\x1a%ü\U0001F600")) | st.characters(), max_size=12)


@settings(max_examples=300, deadline=None)  # a loaded machine is no failure
@given(value=st.one_of(_texts, st.dates(), st.builds(lambda d, z: d.replace(tzinfo=z), st.datetimes(), _zones)),
       no_backslash=st.booleans())
def test_random_texts_dates_and_datetimes_are_formatted_as_pymysql_escapes_them(value: Any,
                                                                                no_backslash: bool) -> None:
    conn = _conn(no_backslash)
    assert Formatter(conn).literal(value) == conn.escape(value)


def test_the_text_shortcut_checks_every_character_the_escape_table_changes() -> None:
    assert set(myliteral._SPECIAL) == {"\\", "'", '"', "\n", "\r", "\x00", "\x1a"}


# ---------------------------------------------------------------- the column forms (Formatter.column, utc_as_naive)

_any_decimals = st.one_of(st.decimals(), st.decimals(places=2, allow_nan=False, allow_infinity=False),
                          st.builds(lambda t: Decimal(t), st.from_regex(r"-?[0-9]{1,30}(\.[0-9]{0,30})?(E[-+]?[0-9]{1,3})?",
                                                                      fullmatch=True)))


@settings(max_examples=400, deadline=None)
@given(values=st.lists(_any_decimals, min_size=1, max_size=8), no_backslash=st.booleans())
def test_a_decimal_column_is_each_value_s_literal(values: list[Decimal], no_backslash: bool) -> None:
    # Formatter.column takes str(v) where no value's str has an exponent: the literal's format(v, "f") exactly
    conn = _conn(no_backslash)
    fmt = Formatter(conn)
    assert fmt.column(values, Decimal) == [fmt.literal(v) for v in values] == [format(v, "f") for v in values]
    for v in values:
        if "E" not in str(v):
            assert str(v) == format(v, "f")


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.datetimes(), max_size=8), no_backslash=st.booleans())
def test_a_naive_datetime_column_and_a_utc_one_are_each_value_s_literal(values: list[datetime],
                                                                         no_backslash: bool) -> None:
    conn = _conn(no_backslash)
    fmt = Formatter(conn)
    expected = [conn.escape(v) for v in values]
    if values:
        assert fmt.column(values, datetime) == expected
    aware = [v.replace(tzinfo=timezone.utc) for v in values]
    assert fmt.utc_as_naive(aware) == expected  # the naive UTC wall time: the same text
    assert fmt.utc_as_naive([*aware, datetime(2024, 1, 1, tzinfo=timezone(timedelta(0), "Z"))]) is None
