"""The table scanner's MariaDB values: each column read as the binlog reader would decode it
(sources/binlog.py with sources/rowdecode.py), and key values passed back as the server takes them."""
from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from replicator.changes import TableRef
from replicator.sources.mycharset import exact_encoding
from replicator.sources.scancolumn import ScanColumn, TableScanError

_UTC = timezone.utc


_INTS = {"tinyint", "smallint", "mediumint", "int", "bigint"}
_TEXTS = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext"}
_BLOBS = {"varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_GEOMETRY = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
             "geometrycollection"}
_UTF8 = {"utf8mb4", "utf8mb3", "utf8"}
_OLD_FORMAT = "/* mariadb-5.3 */"
_CHARSET_NAME = re.compile(r"^[a-z0-9_]+$")


def _binlog_encoding(collation_id: Any, dbms: str) -> str | None:
    """The codec the binlog reader decodes a string column of this collation with (as rowcompile's exact
    path finds it: mysql-replication's, MariaDB's own latin1 for cp1252), or None when it keeps the raw bytes."""
    from pymysqlreplication.row_event import RowsEvent, find_charset
    encode_name = find_charset(str(collation_id), dbms=dbms)[0] if collation_id is not None else "utf8"
    encoding = exact_encoding(RowsEvent.charset_to_encoding(encode_name))
    if not isinstance(encoding, str):
        return None
    try:
        b"\x00".decode(encoding)
    except LookupError:
        return None
    except ValueError:
        pass
    return encoding


def _is_utf8(encoding: str | None) -> bool:
    if encoding is None:
        return False
    import codecs
    return codecs.lookup(encoding).name == "utf-8"


def _bits(n: int) -> Callable[[bytes], str]:
    spec = f"0{n}b"
    mask = (1 << n) - 1
    return lambda raw: format(int.from_bytes(raw, "big") & mask, spec)




def _timestamp(value: Any) -> Any:
    if value.__class__ is datetime:
        return value.replace(tzinfo=_UTC)
    return None  # '0000-00-00 00:00:00': PyMySQL leaves the text


def _timestamp_param(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(_UTC).replace(tzinfo=None)
    return value


def _datetime2(value: Any) -> Any:
    # a DATETIME(n) that datetime() rejects (zero date, zero month or day, a day past the month's end) is
    # None in the binlog; PyMySQL leaves such values as text
    return value if value.__class__ is datetime else None


def _zero_parts(text: str) -> bool:
    """A DATE/DATETIME text PyMySQL left as text that the binlog reader reads as None: a zero year, month or day,
    or an impossible date (all set, a day past the month's end: 2024-02-30, stored under ALLOW_INVALID_DATES)."""
    return _DATE_TEXT.match(text) is not None


_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2}(\.\d{1,6})?)?$")


def _date(value: Any) -> Any:
    if value.__class__ is date:
        return value
    if isinstance(value, str) and _zero_parts(value):
        return None
    raise ValueError(f"{value!r} is not a date (the binlog reader fails on it too)")


def _old_datetime(value: Any) -> Any:
    if value.__class__ is datetime:
        return value
    if isinstance(value, str) and _zero_parts(value):
        return None
    raise ValueError(f"{value!r} is not a date and time (the binlog reader fails on it too)")


# the converters that read a MariaDB zero date (or a date with a zero part) as None: tablescan names such columns
ZERO_DATE_CONVERTERS = frozenset({_date, _old_datetime, _datetime2, _timestamp})

_SECOND = 1_000_000


def _time_param(value: timedelta) -> str:
    micros = value // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    seconds, us = divmod(abs(micros), _SECOND)
    return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{us:06d}"


def _old_time(value: timedelta) -> timedelta:
    """An old-format (MariaDB 5.3) TIME as the library reads it: the stored signed 3-byte integer
    [-]HHMMSS read unsigned, then split into hours, minutes and seconds."""
    if value >= timedelta(0):
        return value
    seconds = -(value // timedelta(seconds=1))
    stored = (-(seconds // 3600 * 10000 + seconds // 60 % 60 * 100 + seconds % 60)) & 0xFFFFFF
    return timedelta(hours=int(stored / 10000), minutes=int((stored % 10000) / 100), seconds=int(stored % 100))


def _binary(value: bytes) -> Any:
    return bytes(value)  # all n bytes of a BINARY(n): the binlog source pads the stored value back to n


def _blob(value: bytes) -> Any:
    return value if value else ""  # the library gives an empty binary value as ''


def _binary_param(size: int) -> Callable[[Any], bytes]:
    return lambda value: (b"" if value == "" else bytes(value)).ljust(size, b"\x00")  # a key from older rows


def _blob_param(value: Any) -> bytes:
    return b"" if value == "" else bytes(value)


def _inet6(text: str) -> Any:
    return _binary(ipaddress.IPv6Address(text).packed)


def _inet6_param(value: Any) -> str:
    return str(ipaddress.IPv6Address(_binary_param(16)(value)))


def _inet4(text: str) -> Any:
    return _binary(ipaddress.IPv4Address(text).packed)  # 4 bytes, as the binlog carries an INET4


def _inet4_param(value: Any) -> str:
    return str(ipaddress.IPv4Address(_binary_param(4)(value)))


def _uuid(text: str) -> Any:
    return _binary(uuid.UUID(text).bytes)


def _uuid_param(value: Any) -> str:
    return str(uuid.UUID(bytes=_binary_param(16)(value)))


def _decode(encoding: str | None) -> Callable[[bytes], Any]:
    if encoding is None:  # no Python codec: the library keeps the bytes
        return _blob
    return lambda raw: raw.decode(encoding)


def _member_name(raw: bytes) -> str:
    """An ENUM/SET member name as mysql-replication reads it from the table map: UTF-8, or ''."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return ""


_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def _members(column_type: str) -> list[str]:
    """Member names from information_schema's COLUMN_TYPE "set('a','it''s')"."""
    body = column_type[column_type.index("(") + 1:column_type.rindex(")")]
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        if body[i] != "'":
            i += 1
            continue
        i += 1
        chars = []
        while i < n:
            ch = body[i]
            if ch == "'" and i + 1 < n and body[i + 1] == "'":
                chars.append("'")
                i += 2
            elif ch == "'":
                i += 1
                break
            elif ch == "\\" and i + 1 < n:
                chars.append(_ESCAPES.get(body[i + 1], body[i + 1]))
                i += 2
            else:
                chars.append(ch)
                i += 1
        out.append("".join(chars))
    return out


def _set_text(db: Any, table: TableRef, name: str, column_type: str, charset: str) -> Callable[[int], str]:
    """SET bitmask -> the text binlog.py makes of the library's value for a SET in a non-UTF-8 character set:
    members whose (library) name is among the set ones, in definition order."""
    if not _CHARSET_NAME.match(charset):
        raise TableScanError(f"unexpected character set {charset!r}", table=table, column=name)
    members = _members(column_type)
    if not members:
        raise TableScanError(f"cannot read the members of {column_type}", table=table, column=name)
    # the names' bytes in the column's character set, converted by the server itself
    raw = db.query("SELECT " + ", ".join(f"CAST(CONVERT(%s USING {charset}) AS BINARY)" for _ in members),
                   members)[0]
    names = [_member_name(bytes(r)) for r in raw]
    bits = [(1 << i, v) for i, v in enumerate(names)]
    cache: dict[int, str] = {}

    def text(mask: int) -> str:
        value = cache.get(mask)
        if value is None:
            chosen = {v for bit, v in bits if mask & bit}
            value = ",".join(v for v in names if v in chosen)
            if len(cache) < 4096:
                cache[mask] = value
        return value
    return text


def my_column(db: Any, table: TableRef, name: str, dtype: str, ctype: str, charset: str | None,
               collation_id: Any, octets: Any, precision: Any, fsp: Any, dbms: str) -> ScanColumn:
    q = db.quote_col(name)
    column_type, ctype = ctype, ctype.lower()
    old = _OLD_FORMAT in ctype

    def unsupported(why: str) -> TableScanError:
        return TableScanError(f"{ctype}: {why}", table=table, column=name)

    if dtype in _INTS or dtype == "decimal" or dtype == "double" and "(" not in ctype:
        return ScanColumn(name, q)  # a DOUBLE's text is the shortest that reads back to the same double
    if dtype in ("float", "double"):
        # the text of a FLOAT has 6 significant digits, a DOUBLE(M,D)'s has D decimals; as a plain DOUBLE
        # either is the stored value exactly
        return ScanColumn(name, f"CAST({q} AS DOUBLE)")
    if dtype == "bit":
        return ScanColumn(name, q, _bits(int(precision)), lambda bits: int(bits, 2))
    if dtype == "year":
        if ctype not in ("year", "year(4)"):
            raise unsupported("two-digit YEAR is not supported")
        return ScanColumn(name, q)  # 0 for 0000, as the binlog reader's exact path gives it
    if dtype in ("date", "datetime", "timestamp", "time") and old and fsp:
        raise unsupported("an old-format (MariaDB 5.3) temporal column with a fraction of a second; the binlog "
                          "reader cannot decode it either (ALTER TABLE ... FORCE converts it)")
    if dtype == "date":
        return ScanColumn(name, q, _date)
    if dtype == "datetime":
        return ScanColumn(name, q, _old_datetime if old else _datetime2)
    if dtype == "timestamp":
        return ScanColumn(name, q, _timestamp, _timestamp_param)
    if dtype == "time":
        if old:
            return ScanColumn(name, q, _old_time, unsupported_key="an old-format TIME cannot be passed back as a key")
        return ScanColumn(name, q, None, _time_param)
    if dtype == "binary":
        return ScanColumn(name, q, _binary, _binary_param(int(octets)))
    if dtype in _BLOBS:
        return ScanColumn(name, q, _blob, _blob_param)
    if dtype in _GEOMETRY:
        return ScanColumn(name, q, _blob, unsupported_key="a geometry key is not supported")
    if dtype == "inet6":
        return ScanColumn(name, q, _inet6, _inet6_param)
    if dtype == "inet4":
        return ScanColumn(name, q, _inet4, _inet4_param)
    if dtype == "uuid":
        return ScanColumn(name, q, _uuid, _uuid_param)
    if dtype in _TEXTS or dtype in ("enum", "set"):
        encoding = _binlog_encoding(collation_id, dbms)
        utf8 = (charset or "").lower() in _UTF8 and _is_utf8(encoding)
        no_key = "ENUM and SET keys are not supported (the server orders them by member number)"
        if dtype == "enum":
            if utf8:
                return ScanColumn(name, q, unsupported_key=no_key)
            # the library's member name: the table map's bytes (in the column's charset) read as UTF-8, or ''
            return ScanColumn(name, f"CAST({q} AS BINARY)", _member_name, unsupported_key=no_key)
        if dtype == "set":
            if utf8:
                return ScanColumn(name, q, unsupported_key=no_key)
            return ScanColumn(name, f"{q} + 0", _set_text(db, table, name, column_type, charset or ""),
                           unsupported_key=no_key)
        if utf8:
            return ScanColumn(name, q)
        # another character set: the raw bytes, decoded with the library's codec
        why = None if encoding is not None else f"character set {charset} has no Python codec"
        return ScanColumn(name, f"CAST({q} AS BINARY)", _decode(encoding), unsupported_key=why)
    if dtype == "json":
        raise unsupported("MySQL's binary JSON is decoded by the binlog reader into Python objects; not supported")
    raise unsupported(f"type {dtype} is not supported")
