"""The COPY text of appliers/pgcopy.py against the literal psycopg2 sends for the same value.

The COPY path must hand each target column's input function the text the slow path (execute_values,
psycopg2's adapters) hands it. Here, without a server: every accepted pair of Python type and column
type, read back as COPY's text format reads it, is the text inside psycopg2's literal (less the
documented differences: -0.0, aware timestamps into `timestamp`, bytea in hex); every other pair is
refused (Unsupported: that run goes through execute_values). The real server comparison is
tests/integration/test_pgcopy_differential.py.
"""
from __future__ import annotations

import enum
import re
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg2.extensions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import replicator.appliers.postgres  # noqa: F401  (registers psycopg2's uuid adapter, as the daemon has it)
from replicator.appliers.pgcopy import RowEncoder, Unsupported



class _Color(enum.IntEnum):
    RED = 1


def unescape(field: str) -> str | None:
    """One field of COPY's text format, as the server reads it (backslash sequences it can contain)."""
    if field == "\\N":
        return None
    out, i = [], 0
    while i < len(field):
        ch = field[i]
        if ch == "\\":
            nxt = field[i + 1]
            out.append({"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}[nxt])
            i += 2
        else:
            assert ch not in "\t\n\r", "an unescaped separator in a field"
            out.append(ch)
            i += 1
    return "".join(out)


def literal_text(value: Any) -> str:
    """The text psycopg2's literal gives the server: the string inside quotes, or a constant's digits."""
    adapted = psycopg2.extensions.adapt(value)
    if isinstance(adapted, psycopg2.extensions.QuotedString):
        adapted.encoding = "utf-8"  # the connection's client_encoding (pg_connect: UTF8)
    q = adapted.getquoted().decode().strip()
    m = re.fullmatch(r"'((?:[^']|'')*)'(?:::[a-z ]+)?", q)
    if m:
        text = m.group(1).replace("''", "'")
        # without a connection of its own libpq escapes as its last connection's standard_conforming_strings
        # said (off when there was none): then a backslash is doubled
        if psycopg2.extensions.QuotedString("\\").getquoted() == b"'\\\\'":
            text = re.sub(r"\\(.)", r"\1", text)
        return text
    assert re.fullmatch(r"-?[0-9][0-9.e+E-]*|true|false", q), q
    return q


def one(data_type: str, value: Any) -> str | None:
    text = RowEncoder([data_type]).rows([[value]])
    assert text.endswith("\n") and text.count("\n") == 1  # a newline in the value is escaped
    return unescape(text[:-1])


# (column type, values) the COPY path accepts, as the converters hand them over
ACCEPTED: list[tuple[str, list[Any]]] = [
    ("smallint", [0, -32768, 32767, "12"]),
    ("integer", [-2**31, 2**31 - 1]),
    ("bigint", [-2**63, 2**63 - 1]),
    ("numeric", [0, 2**64 - 1, 10**40, Decimal("1.50"), Decimal("-0.00"), Decimal("1E+5"), Decimal("1E-30"),
                 Decimal("-99999999999999999999.999999")]),
    ("real", [1.5, 3.4028234663852886e38, 1.401298464324817e-45, float("nan"), float("inf"), float("-inf"),
              Decimal("0.1"), 7]),
    ("double precision", [0.1, 1e300, 5e-324, 2.0**53, -1.5, 2**53 + 1]),
    ("text", ["", "plain", "it's", "back\\slash", "tab\t", "line\nfeed", "cr\r", "\\N", "\\.", "%s", "ünï\U0001F600",
              12, -3]),
    ("character varying", ["x" * 300, "NULL", 0]),
    ("character", ["abc de", ""]),
    ("boolean", [True, False, "t"]),
    ("date", [date(1000, 1, 1), date(9999, 12, 31), date(1, 1, 1), "infinity"]),
    ("time without time zone", [time(0, 0), time(23, 59, 59, 999999), "24:00:00"]),
    ("timestamp without time zone", [datetime(1000, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999),
                                     datetime(1, 1, 1, 0, 0, 0, 1), "-infinity"]),
    ("timestamp with time zone", [datetime(1970, 1, 1, 0, 0, 1, tzinfo=timezone.utc),
                                  datetime(2024, 2, 29, 23, 30, tzinfo=timezone(timedelta(hours=-8))),
                                  datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30, seconds=15)))]),
    ("interval", [timedelta(0), -timedelta(microseconds=1), timedelta(hours=838, minutes=59, seconds=59,
                  microseconds=999999), -timedelta(hours=12, minutes=34, seconds=56, milliseconds=789),
                  timedelta(days=10**6), "1 day"]),
    ("jsonb", ['{"a": [1, 2.50]}', "[]", '"tab\\there"', "null"]),
    ("json", ['{"b":1,"b":2}']),
    ("uuid", [uuid.UUID(int=0), uuid.UUID("12345678-1234-5678-1234-567812345678"), "ffffffff-ffff-ffff-ffff-ffffffffffff"]),
    ("inet", ["::ffff:1.2.3.4", "10.0.0.0/8"]),
    ("USER-DEFINED", ["b c", "é"]),
    ("ARRAY", ["{1,2,NULL}", '{"a\\"b"}']),
]


@pytest.mark.parametrize("data_type,value", [(t, v) for t, vs in ACCEPTED for v in vs],
                         ids=lambda x: repr(x)[:40])
def test_each_accepted_value_is_the_text_of_psycopg2s_literal(data_type: str, value: Any) -> None:
    assert one(data_type, value) == literal_text(value)


def test_none_is_copys_null_and_never_the_text_backslash_n() -> None:
    assert RowEncoder(["text", "text", "integer"]).rows([[None, "\\N", None]]) == "\\N\t\\\\N\t\\N\n"


def test_the_documented_differences() -> None:
    # psycopg2 sends -0.0 as the numeric constant -0.0, which the server reads as 0: the COPY text says 0
    assert literal_text(-0.0) == "-0.0" and one("double precision", -0.0) == "0" and one("real", -0.0) == "0"
    # an aware datetime into a timestamp: psycopg2 sends a timestamptz that the server (session in UTC,
    # pg_connect) casts to UTC; the COPY text is that UTC time
    assert one("timestamp without time zone", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-8)))) \
        == "2024-01-02T11:04:05"
    # bytea: hex input (psycopg2 without a connection shows the escape format; the bytes are the same)
    assert one("bytea", b"") == "\\x" and one("bytea", bytes(range(256))) == "\\x" + bytes(range(256)).hex()
    assert one("bytea", bytearray(b"\0\\")) == "\\x005c" and one("bytea", memoryview(b"\n")) == "\\x0a"


REFUSED: list[tuple[str, Any]] = [
    ("text", "nul\x00byte"),                         # psycopg2 refuses it; the text converter names the column first
    ("date", 5), ("date", datetime(2024, 1, 1)),     # a typed constant the column's input would read otherwise
    ("numeric", 1.5),                                # the numeric converter makes floats Decimals before this
    ("numeric", Decimal("NaN")), ("numeric", Decimal("Infinity")),  # psycopg2 sends infinity as 'NaN'
    ("integer", True), ("integer", 1.0), ("integer", _Color.RED), ("bigint", Decimal("1")),
    ("character", 5),                                # an int cast into char(n) is not the text of the int
    ("timestamp with time zone", datetime(2024, 1, 1)),
    ("time without time zone", time(1, 2, tzinfo=timezone.utc)),
    ("time without time zone", timedelta(hours=1)),  # the converter makes a time of it before this
    ("ARRAY", [1, 2]), ("jsonb", {"a": 1}), ("text", b"bytes"), ("uuid", b"\0" * 16), ("boolean", 1),
    ("inet", uuid.UUID(int=0)), ("text", {"x"}),
]


@pytest.mark.parametrize("data_type,value", REFUSED, ids=lambda x: repr(x)[:40])
def test_other_pairs_take_the_slow_path(data_type: str, value: Any) -> None:
    with pytest.raises(Unsupported):
        RowEncoder([data_type]).rows([[value]])


@given(st.lists(st.tuples(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))),
                          st.none() | st.integers(-2**63, 2**63 - 1), st.none() | st.binary()), max_size=20))
def test_any_text_reads_back_as_it_was(rows: list[tuple[str, int | None, bytes | None]]) -> None:
    copied = RowEncoder(["text", "bigint", "bytea"]).rows([list(r) for r in rows])
    lines = copied.split("\n")
    assert lines[-1] == "" and len(lines) == len(rows) + 1
    for line, (s, i, b) in zip(lines, rows):
        fields = [unescape(f) for f in line.split("\t")]
        assert fields == [s, None if i is None else str(i), None if b is None else "\\x" + b.hex()]


_TYPES = ["integer", "bigint", "numeric", "text", "boolean", "timestamp with time zone",
          "timestamp without time zone", "date", "double precision", "bytea", "time without time zone"]
_ANY = (st.none() | st.integers(-2**70, 2**70) | st.booleans() | st.decimals() | st.floats()
        | st.text(alphabet=st.sampled_from(list("ab\\\t\n\r\x00é"))) | st.binary(max_size=3)
        | st.datetimes(timezones=st.none() | st.just(timezone.utc)) | st.dates() | st.times())


_USUAL = {
    "integer": st.integers(-2**31, 2**31 - 1), "bigint": st.integers(-2**63, 2**63 - 1),
    "numeric": st.decimals(allow_nan=False, allow_infinity=False) | st.integers(-9, 9),
    "text": st.text(alphabet=st.sampled_from(list("ab\\\t\né"))), "boolean": st.booleans(),
    # timezone.utc itself most of the time (a whole column of it takes `_timestamptz_column`), now and then
    # another zero offset, equal to it but not it ("Z"), or another offset
    "timestamp with time zone": st.datetimes(timezones=st.sampled_from(
        [timezone.utc] * 6 + [timezone(timedelta(0), "Z"), timezone(timedelta(hours=5, minutes=30))])),
    "timestamp without time zone": st.datetimes(), "date": st.dates(), "double precision": st.floats(),
    "bytea": st.binary(max_size=3), "time without time zone": st.times(),
}


@st.composite
def _runs(draw: Any) -> tuple[list[str], list[list[Any]]]:
    types = draw(st.lists(st.sampled_from(_TYPES), min_size=1, max_size=5))
    n = draw(st.integers(0, 6))
    # a column mostly of its type's usual class (the runs `columns` maps), now and then with NULLs, other
    # classes or values without an exact encoding (a NUL, NaN)
    cols = []
    for t in types:
        odd = draw(st.sampled_from([0, 0, 0, 1, 2]))
        kind = _USUAL[t] if odd == 0 else (_USUAL[t] | st.none()) if odd == 1 else (_USUAL[t] | _ANY)
        cols.append([draw(kind) for _ in range(n)])
    return types, [list(r) for r in zip(*cols)] if n else []


@settings(max_examples=400, deadline=None)
@given(_runs())
def test_columns_encode_as_rows(run: tuple[list[str], list[list[Any]]]) -> None:
    """RowEncoder.columns (the conditional write's COPY) against RowEncoder.rows: the same text, or
    Unsupported for the same runs."""
    types, rows = run
    enc = RowEncoder(types)
    try:
        want: str | None = enc.rows(rows)
    except Unsupported:
        want = None
    cols = [list(c) for c in zip(*rows)] if rows else [[] for _ in types]
    try:
        got: str | None = enc.columns(cols)
    except Unsupported:
        got = None
    assert got == want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.datetimes(timezones=st.just(timezone.utc)), min_size=1, max_size=8),
       st.lists(st.decimals(allow_nan=False, allow_infinity=False), min_size=1, max_size=8))
def test_whole_column_forms_are_the_per_value_texts(stamps: list[datetime], numbers: list[Decimal]) -> None:
    """_WHOLE_COLUMN's forms give each value's own encoder's text (fold and whole seconds included), and
    decline (None) a column they cannot take whole: another tzinfo, even an equal one; a non-finite Decimal."""
    from replicator.appliers.pgcopy import _decimal, _decimal_column, _timestamptz, _timestamptz_column
    stamps = stamps + [s.replace(fold=1) for s in stamps] + [s.replace(microsecond=0) for s in stamps]
    assert _timestamptz_column(stamps) == [_timestamptz(s) for s in stamps]
    assert timezone(timedelta(0)) is timezone.utc  # CPython's: the unnamed zero offset is the singleton
    assert _timestamptz_column(stamps + [stamps[0].replace(tzinfo=timezone(timedelta(0), "Z"))]) is None
    assert _timestamptz_column(stamps + [stamps[0].replace(tzinfo=None)]) is None
    assert _decimal_column(numbers) == [_decimal(n) for n in numbers]
    assert _decimal_column(numbers + [Decimal("NaN")]) is None
    assert _decimal_column(numbers + [Decimal("-Infinity")]) is None
