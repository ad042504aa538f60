"""The run-time helpers the compiled row decoders call (sources/rowcompile.py), and the names their
generated code sees: the values mysql-replication 1.0.17 returns, built the same way."""
from __future__ import annotations

import datetime as _datetime_mod
import decimal
import struct
from typing import Any, Callable, Optional, Sequence

from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.json_binary import parse_json
from pymysqlreplication.row_event import RowsEvent




_UTC = _datetime_mod.timezone.utc


# --- helpers used by generated code --------------------------------------------------------------------------

def _old_datetime(value: int) -> Optional[_datetime_mod.datetime]:
    """FIELD_TYPE.DATETIME (pre-5.6 format), exactly as RowsEvent.__read_datetime (float arithmetic and all)."""
    if value == 0:
        return None
    date = value / 1000000
    time = int(value % 1000000)
    year = int(date / 10000)
    month = int((date % 10000) / 100)
    day = int(date % 100)
    if year == 0 or month == 0 or day == 0:
        return None
    return _datetime_mod.datetime(year=year, month=month, day=day, hour=int(time / 10000),
                                  minute=int((time % 10000) / 100), second=int(time % 100))


def zero_datetime_text(value: int) -> str:
    """The text MariaDB shows for a FIELD_TYPE.DATETIME (pre-5.6 format) `_old_datetime` reads as None: a zero
    date or one with a zero part ('2024-00-15 10:00:00'), from its packed YYYYMMDDhhmmss integer."""
    date, time = divmod(value, 1000000)
    return "%04d-%02d-%02d %02d:%02d:%02d" % (date // 10000, date // 100 % 100, date % 100,
                                              time // 10000, time // 100 % 100, time % 100)


def _old_time(time: int) -> _datetime_mod.timedelta:
    """FIELD_TYPE.TIME (pre-5.6 format), exactly as RowsEvent.__read_time."""
    return _datetime_mod.timedelta(hours=int(time / 10000), minutes=int((time % 10000) / 100),
                                   seconds=int(time % 100))


def _time2(data: int, microseconds: int) -> _datetime_mod.timedelta:
    """TIME2 from its 24-bit signed big-endian integer part, exactly as RowsEvent.__read_time2 (including its
    handling of negative values with a fraction)."""
    sign = 1 if (data >> 23) & 1 else -1
    if sign == -1:
        data = ~data + 1
    return _datetime_mod.timedelta(hours=(data >> 12) & 0x3FF, minutes=(data >> 6) & 0x3F, seconds=data & 0x3F,
                                   microseconds=microseconds) * sign


def exact_time(value: _datetime_mod.timedelta) -> _datetime_mod.timedelta:
    """The true value of a TIME(n) the library (and ``_time2``) read: for a negative value with a fraction,
    -(n + f) comes out as -(n + 1 - f) (the whole seconds are rounded away from zero and the stored,
    negative, fraction is added back), so -12:34:56.789 reads as -12:34:56.211. The sign applies to the
    whole value; this puts it back. Its own inverse; values without a fraction or >= 0 are unchanged."""
    if value.microseconds == 0 or value >= _datetime_mod.timedelta(0):
        return value
    whole, frac = divmod(-(value // _datetime_mod.timedelta(microseconds=1)), 1_000_000)
    return _datetime_mod.timedelta(microseconds=-((whole + 1) * 1_000_000 - frac))


def fixed_binary_length(column: Any) -> Optional[int]:
    """n for a BINARY(n) column (also INET6 and UUID, stored as BINARY(16)), else None. The binlog stores
    such a value without its trailing zero bytes; padding it back to n keeps the value exact."""
    if column.type != FIELD_TYPE.STRING or not isinstance(column.max_length, int):
        return None
    try:
        binary = _string_decode(column, "strict") is None
    except _Unsupported:
        return None
    return column.max_length if binary else None


def _set_decoder(values: Sequence[str], as_text: Optional[str]) -> Callable[[int], Any]:
    pairs = tuple((1 << i, v) for i, v in enumerate(values))
    if not as_text:
        def decode_set(mask: int) -> Optional[set[str]]:
            ret = {v for bit, v in pairs if mask & bit}
            return ret or None
        return decode_set
    cache: dict[int, Optional[str]] = {}

    def decode_set_text(mask: int) -> Optional[str]:
        try:
            return cache[mask]
        except KeyError:
            ret = {v for bit, v in pairs if mask & bit}
            if as_text == "definition":  # what MariaDB shows: definition order, '' for the empty set
                # from the set, like binlog.py does with the library's value (the same text even when the
                # library made several member names '', see the module docstring)
                text: Optional[str] = ",".join(v for v in values if v in ret)
            else:
                text = ",".join(sorted(ret)) if ret else None
            if len(cache) < 4096:
                cache[mask] = text
            return text
    return decode_set_text


class _DayCache(dict[int, tuple[int, int, int]]):
    """days since 1970-01-01 -> (year, month, day); for TIMESTAMP2 without timedelta arithmetic."""

    def __missing__(self, days: int) -> tuple[int, int, int]:
        d = _datetime_mod.date.fromordinal(719163 + days)
        ymd = (d.year, d.month, d.day)
        if len(self) < 100000:
            self[days] = ymd
        return ymd


_S8 = tuple(range(128)) + tuple(range(-128, 0))  # signed byte by unsigned value


def _struct(fmt: str) -> Callable[..., tuple[Any, ...]]:
    return struct.Struct(fmt).unpack_from


_BASE_NS: dict[str, Any] = {
    "_S8": _S8, "_date": _datetime_mod.date, "_dt": _datetime_mod.datetime, "_UTC": _UTC,
    "_utcfromtimestamp": _datetime_mod.datetime.utcfromtimestamp, "_Decimal": decimal.Decimal,
    "_int": int, "_from": int.from_bytes, "_parse_json": parse_json, "_old_datetime": _old_datetime,
    "_old_datetime_text": zero_datetime_text,
    "_old_time": _old_time, "_time2": _time2, "_exact_time": exact_time, "_DAYS": _DayCache(),
    "_format": format,
    "_h": _struct("<h"), "_H": _struct("<H"), "_i": _struct("<i"), "_I": _struct("<I"),
    "_q": _struct("<q"), "_Q": _struct("<Q"), "_f": _struct("<f"), "_d": _struct("<d"),
    "_bh": _struct(">h"), "_bi": _struct(">i"), "_bQ": _struct(">Q"), "_DATES": {},
    "_fromtimestamp": _datetime_mod.datetime.fromtimestamp,
    # exact: no rounding whatever the number of digits (the thread's decimal context is not used)
    "_scaleb": decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN).scaleb,
}


class _Unsupported(Exception):
    pass


def _string_decode(column: Any, errors: str) -> Optional[str]:
    """The encoding RowsEvent.__read_string decodes this column with, or None to keep bytes."""
    name = column.character_set_name
    if name is None:
        encoding = "utf-8"  # bytes.decode(errors=...) default
    else:
        encoding = RowsEvent.charset_to_encoding(name)
    if not isinstance(encoding, str):
        raise _Unsupported(f"character set {name!r}")
    try:
        b"\x00".decode(encoding, errors)  # not b"": decoding nothing never looks the codec up
    except LookupError:  # unknown or not a text encoding: the library catches it and keeps the raw bytes
        return None
    except ValueError:  # UnicodeDecodeError: the codec exists
        pass
    return encoding
