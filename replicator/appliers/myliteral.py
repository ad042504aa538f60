"""The multi-row INSERT the MariaDB applier sends, built without PyMySQL's per-value escaping path.

PyMySQL's `executemany` formats every row with `query % tuple(map(conn.escape, row))` and encodes
each row on its own: for every value an isinstance chain in `Connection.escape`, a dictionary
look-up in `escape_item`, then `%`-formatting and `.encode` per row. Profiling the crm_to_erp burst
put that at about a tenth of the applier's time. Here one look-up by exact type picks the function
for a value; the common types (int, str, bytes, None, Decimal, datetime, float) are formatted
directly with the same text PyMySQL produces, and any other type goes to `Connection.escape`
itself, so the SQL is the same text either way (tests/unit/test_myliteral.py compares them value
by value and statement by statement). Statements are split where PyMySQL splits them: before one
would exceed `max_stmt_length` bytes.
"""
from __future__ import annotations

import datetime
import re
from decimal import Decimal
from itertools import repeat
from operator import attrgetter, is_
from typing import Any, Callable, Iterable, Sequence

from pymysql import converters
from pymysql.constants import SERVER_STATUS

# the same table converters.escape_string uses
_ESCAPE: dict[int, str] = {i: c for i, c in enumerate(converters._escape_table)}  # type: ignore[attr-defined]
# pymysql.cursors.RE_INSERT_VALUES, reduced to what the applier's statement looks like
_VALUES = re.compile(r"\bVALUES\s*\(\s*%s\s*(?:,\s*%s\s*)*\)")
MAX_STMT_LENGTH = 1024000  # pymysql.cursors.Cursor.max_stmt_length


def _none(v: None) -> str:
    return "NULL"


def _bool(v: bool) -> str:
    return "1" if v else "0"


def _bytes(v: bytes | bytearray) -> str:
    return "X'" + v.hex() + "'"


def _decimal(v: Decimal) -> str:
    return format(v, "f")


def _datetime(v: datetime.datetime) -> str:
    if v.tzinfo is None:
        # the same text as below (PyMySQL's, which leaves any zone out), by C: ~2.5x cheaper than the format
        return "'" + v.isoformat(" ") + "'"
    if v.microsecond:
        return (f"'{v.year:04}-{v.month:02}-{v.day:02} "
                f"{v.hour:02}:{v.minute:02}:{v.second:02}.{v.microsecond:06}'")
    return f"'{v.year:04}-{v.month:02}-{v.day:02} {v.hour:02}:{v.minute:02}:{v.second:02}'"


def _date(v: datetime.date) -> str:
    return "'" + v.isoformat() + "'"  # YYYY-MM-DD, as PyMySQL's '{year:04}-{month:02}-{day:02}'


_QUOTED = "'{}'".format  # "'" + text + "'" as one C call per value (map(_QUOTED, ...))
_isoformat = datetime.datetime.isoformat


def _quoted_isoformats(values: list[datetime.datetime]) -> list[str]:
    """`["'" + v.isoformat(" ") + "'" for v in values]` for naive datetimes (their isoformat holds no "'" and no
    "\x00"): joined quoted and NUL-separated, then split, in C (one string a value instead of two)."""
    if not values:
        return []
    return ("'" + "'\x00'".join(map(_isoformat, values, repeat(" "))) + "'").split("\x00")
_UTC = datetime.timezone.utc
_TZINFO = attrgetter("tzinfo")

# the characters either escaping mode changes (_ESCAPE maps every other ASCII character to itself)
_SPECIAL = tuple(chr(i) for i, c in enumerate(converters._escape_table) if c != chr(i))  # type: ignore[attr-defined]


class Formatter:
    """Formats rows as SQL literals for one PyMySQL connection (its escaping mode and charset)."""

    def __init__(self, conn: Any):
        self.conn = conn
        self.encoding: str = conn.encoding
        no_backslash = bool(conn.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES)

        def text(v: str) -> str:
            if no_backslash:
                return "'" + v.replace("'", "''") + "'"
            # most values hold nothing to escape: seven scans in C are cheaper than translate's copy of
            # every character (the characters of _SPECIAL; tests/unit/test_myliteral.py holds them equal)
            if "\\" in v or "'" in v or '"' in v or "\n" in v or "\r" in v or "\x00" in v or "\x1a" in v:
                return "'" + v.translate(_ESCAPE) + "'"
            return "'" + v + "'"
        self._no_backslash = no_backslash
        self._by_type: dict[type, Callable[[Any], str]] = {
            # int.__repr__ itself, not a function around it: one C call per integer instead of a Python frame
            int: int.__repr__, str: text, bytes: _bytes, bytearray: _bytes, type(None): _none, bool: _bool,
            Decimal: _decimal, datetime.datetime: _datetime, datetime.date: _date,
            float: converters.escape_float,
        }

    def current(self) -> bool:
        """False when the session's escaping mode changed since (a reconnect, a changed sql_mode)."""
        mode = bool(self.conn.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES)
        return mode == self._no_backslash

    def literal(self, v: Any) -> str:
        fn = self._by_type.get(type(v))
        return fn(v) if fn is not None else str(self.conn.escape(v))

    def column(self, values: list[Any], cls: type) -> list[str]:
        """`literal` of each of `values`, all of exactly class `cls` (no None), with the per-class work done
        once for the column where it can be: the loop in C (`map`) for ints, Decimals, naive datetimes and
        strings holding nothing to escape (one scan of the column joined instead of seven of each value). The
        same text as `literal` value by value (tests/unit/test_myliteral.py)."""
        if cls is int:
            return list(map(int.__repr__, values))
        if cls is Decimal:
            # _decimal's format(v, "f"): str(v) is that same text wherever it has no exponent (str writes
            # one only past the plain form's range), for about half the cost (tests/unit/test_myliteral.py)
            texts = list(map(Decimal.__str__, values))
            if "E" not in "".join(texts):
                return texts
            return list(map(format, values, repeat("f")))
        if cls is datetime.datetime and all(map(is_, map(_TZINFO, values), repeat(None))):
            return _quoted_isoformats(values)  # _datetime's naive branch
        if cls is str:
            joined = "".join(values)
            if "'" not in joined and (self._no_backslash or not (
                    "\\" in joined or '"' in joined or "\n" in joined or "\r" in joined or "\x00" in joined
                    or "\x1a" in joined)):
                return list(map(_QUOTED, values))  # text(): nothing to escape in either mode
        fn = self._by_type.get(cls)
        if fn is None:
            return [self.literal(v) for v in values]
        return list(map(fn, values))

    def utc_as_naive(self, values: list[datetime.datetime]) -> list[str] | None:
        """The literals of these datetimes converted to naive UTC (the applier's DATETIME/TIMESTAMP converter:
        `astimezone(utc).replace(tzinfo=None)`), where each is a datetime in UTC (`tzinfo` is timezone.utc,
        what the WAL reader makes of a timestamptz): its isoformat less "+00:00", the same wall time and text,
        without the two datetimes per value the conversion makes. None where one is not."""
        if not all(map(is_, map(_TZINFO, values), repeat(_UTC))):  # identity: no look-alike zone
            return None
        if not values:
            return []
        # each isoformat ends with "+00:00" (the zone is UTC) and holds no "'" and no "\x00": joined quoted and
        # separated by NULs, the offsets dropped by one replace and the literals cut apart by one split, in C,
        # instead of a slice and a format -- two strings -- per value
        return ("'" + "'\x00'".join(map(_isoformat, values, repeat(" "))) + "'").replace("+00:00'", "'").split("\x00")

    def row(self, values: Iterable[Any]) -> str:
        by_type, escape = self._by_type, self.conn.escape
        parts = []
        for v in values:
            fn = by_type.get(type(v))
            parts.append(fn(v) if fn is not None else str(escape(v)))
        return "(" + ", ".join(parts) + ")"  # the separator of the "%s, %s" template

    def statements(self, prefix: str, postfix: str, rows: Sequence[Sequence[Any]],
                   max_length: int = MAX_STMT_LENGTH, counts: list[int] | None = None) -> list[bytes]:
        """`prefix` + the rows' tuples + `postfix`, in as few statements as stay within `max_length` bytes
        (a single row longer than that still goes alone, as with PyMySQL); `counts` gets each statement's number
        of rows."""
        enc = self.encoding
        head, tail = prefix.encode(enc), postfix.encode(enc)
        out: list[bytes] = []
        parts: list[bytes] = []
        size = len(head) + len(tail)
        for values in rows:
            b = self.row(values).encode(enc)
            if parts and size + len(b) + 1 > max_length:
                out.append(head + b",".join(parts) + tail)
                if counts is not None:
                    counts.append(len(parts))
                parts, size = [], len(head) + len(tail)
            size += len(b) + (1 if parts else 0)
            parts.append(b)
        if parts:
            out.append(head + b",".join(parts) + tail)
            if counts is not None:
                counts.append(len(parts))
        return out


def split_insert(stmt: str) -> tuple[str, str]:
    """An `INSERT ... VALUES (%s, ...) ...` statement with %-escaped identifiers as the prefix before its
    row tuple and the postfix after it, both with %% read back as % (as PyMySQL's executemany does)."""
    m = _VALUES.search(stmt)
    if m is None:
        raise ValueError(f"not a single-row INSERT ... VALUES (%s, ...) statement: {stmt[:80]}")
    return stmt[:m.start()] % () + "VALUES ", stmt[m.end():] % ()
