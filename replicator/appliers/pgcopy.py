"""COPY text for the PostgreSQL applier's large runs: the same values `execute_values` would send.

A large run of upserts goes to the server as COPY into a temporary staging table plus one
`INSERT ... SELECT ... ON CONFLICT` (replicator/appliers/postgres.py). Below a measured size
(`COPY_MIN_ROWS`, docs/performance.md) the statement of `execute_values` is cheaper, and a run whose
values this module does not carry exactly goes that way as well. (Deletes always do: `DELETE ...
USING` a staging table measured slower than `execute_values` at every size.)

What "exactly" means: the staging table's columns have the target columns' types (it is created
`AS SELECT <columns> FROM <target> WITH NO DATA`), so a field's text reaches the target column's own
input function, as the quoted literal psycopg2 sends does. The text written here is the text
psycopg2's adapter writes for the same value (isoformat for dates and times, `%d days %d.%06d
seconds` for an interval, repr for a float, str for a Decimal), escaped for COPY's text format.
Where psycopg2's literal is not typed `unknown` (an int, a bool, a float, a Decimal, a timestamp:
the server casts a typed constant into the column), only the pairs of Python type and column type
whose cast gives the same value as the column's input function are accepted (`_column`); any other
pair raises `Unsupported` and the run is written by `execute_values`, so a value never depends on the
path it took. tests/unit/test_pgcopy.py and tests/integration/test_pgcopy_differential.py compare the
two paths on the type table of docs/types.md.
"""
from __future__ import annotations

import datetime
import math
import operator
import uuid
from decimal import Decimal
from itertools import repeat
from typing import Any, Callable, Iterable, Sequence

# measured with bench/pg_apply_paths.py (docs/performance.md): COPY + merge was 0.4x execute_values
# at 10 rows, 0.6-1.0x at 100-300, 1.1x at 500, 1.7-1.9x at 1,000 and 1.4-2.5x at 10,000 (it costs a
# round trip and a statement more; it saves psycopg2's per-value quoting and the server's parsing)
COPY_MIN_ROWS = 500

NULL = "\\N"

# COPY text format: backslash, and the row and column separators, escaped by a backslash
_ESCAPE = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


class Unsupported(Exception):
    """A value this module does not carry exactly like execute_values: the run takes the slow path."""


def _text(v: str) -> str:
    # most values have nothing to escape: five scans in C are several times cheaper than translate's copy
    if "\\" in v or "\t" in v or "\n" in v or "\r" in v or "\x00" in v:
        if "\x00" in v:
            # psycopg2 refuses a NUL in a literal (the text converter names table/key/column before that);
            # whatever happens to it there must happen here as well
            raise Unsupported("NUL character")
        return v.translate(_ESCAPE)
    return v


def _bool(v: bool) -> str:
    return "true" if v else "false"


def _float(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if v == 0 and math.copysign(1.0, v) < 0:
        # psycopg2 sends -0.0 as the numeric constant -0.0, which the server reads as 0 (numeric has
        # no negative zero): the slow path stores 0, and so must this one
        return "0"
    return float.__repr__(v)


def _decimal(v: Decimal) -> str:
    if not v.is_finite():
        raise Unsupported("non-finite Decimal")  # psycopg2 sends NaN (and infinity?) its own way
    return str(v)


def _bytes(v: bytes | bytearray | memoryview) -> str:
    return "\\\\x" + bytes(v).hex()  # bytea's hex input, its backslash escaped for COPY


def _iso(v: datetime.date | datetime.time) -> str:
    return v.isoformat()


def _utc_naive(v: datetime.datetime) -> str:
    # psycopg2 sends an aware value as timestamptz; the server casts it into a timestamp column in
    # the session's time zone, which pg_connect pins to UTC
    return v.astimezone(datetime.timezone.utc).replace(tzinfo=None).isoformat()


def _interval(v: datetime.timedelta) -> str:
    return "%d days %d.%06d seconds" % (v.days, v.seconds, v.microseconds)


def _uuid(v: uuid.UUID) -> str:
    return str(v)


_NUMBERS = frozenset({"smallint", "integer", "bigint", "numeric", "real", "double precision"})
_TEXTS = frozenset({"text", "character varying"})  # not character(n): an int cast into it is not padded the same


def _column(data_type: str) -> dict[type, Callable[[Any], str]]:
    """The encoders of one column, by exact Python type: only the pairs that give the slow path's value."""
    enc: dict[type, Callable[[Any], str]] = {str: _text}  # an untyped literal: the column's own input
    if data_type in _NUMBERS or data_type in _TEXTS:
        # an integer constant: its digits, in any number or text column (int.__repr__ itself, not a
        # function around it: one C call per value instead of a Python frame)
        enc[int] = int.__repr__
    if data_type == "boolean":
        enc[bool] = _bool
    if data_type in ("real", "double precision"):
        enc[float] = _float
    if data_type in ("numeric", "real", "double precision"):
        enc[Decimal] = _decimal
    if data_type == "bytea":
        enc[bytes] = enc[bytearray] = enc[memoryview] = _bytes
    if data_type == "date":
        enc[datetime.date] = _iso
    if data_type == "time without time zone":
        enc[datetime.time] = _naive_time
    if data_type == "timestamp without time zone":
        enc[datetime.datetime] = _timestamp
    if data_type == "timestamp with time zone":
        enc[datetime.datetime] = _timestamptz
    if data_type == "interval":
        enc[datetime.timedelta] = _interval
    if data_type == "uuid":
        enc[uuid.UUID] = _uuid
    return enc


def _naive_time(v: datetime.time) -> str:
    if v.tzinfo is not None:
        raise Unsupported("time with a time zone")
    return v.isoformat()


def _timestamp(v: datetime.datetime) -> str:
    return v.isoformat() if v.tzinfo is None else _utc_naive(v)


def _timestamptz(v: datetime.datetime) -> str:
    if v.tzinfo is None:
        raise Unsupported("naive datetime into timestamptz")  # the converter makes it UTC before this
    return v.isoformat()


class RowEncoder:
    """COPY text rows for one run's columns (their information_schema data types, in order)."""

    def __init__(self, data_types: Sequence[str]):
        self._columns = [_column(t) for t in data_types]

    def rows(self, rows: Iterable[Sequence[Any]]) -> str:
        """The COPY text of `rows`; Unsupported when a value has no exact encoding here."""
        columns = self._columns
        lines: list[str] = []
        for values in rows:
            parts = []
            for enc, v in zip(columns, values):
                if v is None:
                    parts.append(NULL)
                    continue
                fn = enc.get(type(v))
                if fn is None:
                    raise Unsupported(f"{type(v).__name__} value")
                parts.append(fn(v))
            lines.append("\t".join(parts))
        lines.append("")
        return "\n".join(lines)

    def columns(self, columns: Sequence[Sequence[Any]]) -> str:
        """`rows` of the same values given column by column (`columns[j][i]`: row i's value of column j, every
        column as long): a column whose values are all of one class is encoded by one `map` of that class's
        function (in C for ints; `_WHOLE_COLUMN`'s C-only forms for UTC timestamps and finite Decimals), its
        class looked up once instead of per value. The same text, and
        Unsupported for the same runs (maybe for another of its values: the caller only needs to know that
        one has no exact encoding). tests/unit/test_pgcopy.py compares the two."""
        out: list[list[str]] = []
        for enc, col in zip(self._columns, columns):
            classes = set(map(type, col))
            if len(classes) == 1 and _NONE not in classes:
                fn = enc.get(next(iter(classes)))
                if fn is None:
                    raise Unsupported(f"{next(iter(classes)).__name__} value")
                whole = _WHOLE_COLUMN.get(fn)
                texts = whole(col) if whole is not None else None
                out.append(list(map(fn, col)) if texts is None else texts)
                continue
            parts = []
            for v in col:
                if v is None:
                    parts.append(NULL)
                    continue
                fn = enc.get(type(v))
                if fn is None:
                    raise Unsupported(f"{type(v).__name__} value")
                parts.append(fn(v))
            out.append(parts)
        lines = list(map("\t".join, zip(*out)))
        lines.append("")
        return "\n".join(lines)


_NONE = type(None)
_UTC = datetime.timezone.utc
_TZINFO = operator.attrgetter("tzinfo")
_COMBINE = datetime.datetime.combine
_TIME = datetime.datetime.time
_ISO = datetime.datetime.isoformat
_ADD = str.__add__


def _timestamptz_column(col: Sequence[datetime.datetime]) -> list[str] | None:
    """`list(map(_timestamptz, col))` for a column of datetimes whose every tzinfo is timezone.utc itself (what
    the converter makes of a binlog DATETIME): the naive value's isoformat + "+00:00", which is what an aware
    UTC value's isoformat is, in C calls only (0.46 against 0.69 us a value); None for any other column."""
    if set(map(id, map(_TZINFO, col))) != {id(_UTC)}:
        return None
    return list(map(_ADD, map(_ISO, map(_COMBINE, col, map(_TIME, col))), repeat("+00:00")))


def _decimal_column(col: Sequence[Decimal]) -> list[str] | None:
    """`list(map(_decimal, col))` for a column of finite Decimals (str of each, without a Python frame per
    value); None when one is not finite (then `_decimal` raises, as always)."""
    if not all(map(Decimal.is_finite, col)):
        return None
    return list(map(Decimal.__str__, col))


# a column's encoder -> its whole-column form for `RowEncoder.columns` (the same texts, or None: per value)
_WHOLE_COLUMN: dict[Callable[[Any], str], Callable[[Sequence[Any]], list[str] | None]] = {
    _timestamptz: _timestamptz_column, _decimal: _decimal_column}
