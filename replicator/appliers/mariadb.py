"""Apply changes to MariaDB/MySQL with PyMySQL: batched upserts, tagged, checkpointed."""
from __future__ import annotations

import json
import math
import re
import socket
import uuid
from datetime import date, datetime, timedelta, timezone
from bisect import bisect_left
from itertools import accumulate, repeat
from operator import add, attrgetter, is_, itemgetter
from decimal import Decimal
from typing import Any, Callable, Collection, Iterable, Sequence, TypeVar

import pymysql
from pymysql import converters, err
from pymysql.connections import MySQLResult
from pymysql.constants import CLIENT, COMMAND, CR, FIELD_TYPE
from pymysql.protocol import MysqlPacket

from replicator import metrics
from replicator.appliers.base import EXACT_CLASSES, Applier, Converter, IoGate, Run
from replicator.appliers.myliteral import MAX_STMT_LENGTH, Formatter, split_insert
from replicator.checkpoint import session_lock_name
from replicator.compare import ColumnInfo
from replicator.changes import Position, TableRef, TargetChange, position_from_json
from replicator.config import Account, Connection
from replicator.connect import ACCESS, CONNECTION, MISSING, RETRIABLE, ROW, TIMEOUT, my_connect, my_error_class
from replicator.connect import mysql_message as _message
from replicator.errors import ConfigError, RetriableError, RowError
from replicator.identifiers import for_params, my_ident
from replicator.loopguard import CHECKPOINT_TABLE
from replicator.mypackets import PacketReader, usable

_T = TypeVar("_T")

BATCH = 1000
_INT_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
_new = object.__new__
def quote(*parts: str) -> str:
    """Quote an identifier for MariaDB (backticks, doubled inside) and escape % for PyMySQL."""
    return for_params(my_ident(*parts))


def _utc_naive(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _json_text(value: Any) -> str:
    """JSON for a list of array elements; a Decimal stays the exact number it is."""
    if isinstance(value, list):
        return "[" + ", ".join(_json_text(v) for v in value) + "]"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} has no JSON equivalent")
        return str(value)
    if isinstance(value, float) and (value != value or value in (_INF, -_INF)):
        raise ValueError(f"{value} has no JSON equivalent")
    return json.dumps(value)


def _json(value: Any) -> Any:
    items = getattr(value, "json_items", None)  # a PostgreSQL array (sources.pgoutput.PgArray): a JSON array
    if items is not None:
        return _json_text(items())
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _json_document(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (dict, list)) else value


_INF = float("inf")


def _double(value: Any) -> Any:
    if isinstance(value, Decimal) and not value.is_finite() \
            or isinstance(value, float) and (value != value or value in (_INF, -_INF)):
        raise ValueError(f"{value} cannot be stored in a MariaDB DOUBLE/FLOAT (no NaN or infinity there)")
    return value


_MAX_TIME = timedelta(hours=838, minutes=59, seconds=59, microseconds=999999)
_QUALIFIED_COLUMN = re.compile(r"for column (?:`(?:[^`]|``)*`\.)*`((?:[^`]|``)*)` at row")
# 4025 of a column's own CHECK (a JSON column's json_valid too), which MariaDB names `table.column`
_CHECK_COLUMN = re.compile(r"CONSTRAINT `((?:[^`]|``)*)` failed for (?:`(?:[^`]|``)*`\.)*`((?:[^`]|``)*)`")
# 1452 (a child row without its parent) and 1451 (a parent row its children still reference) name the constraint
# and its columns: `FOREIGN KEY (`a`, `b`) REFERENCES `parent` (`x`, `y`)`
_FOREIGN_KEY = re.compile(r"FOREIGN KEY \((.*?)\) REFERENCES (?:`(?:[^`]|``)*`\.)?`(?:[^`]|``)*` \((.*?)\)")
_DUPLICATE_KEY = re.compile(r"for key '((?:[^']|'')*)'")


def _guarded_execute(cur: Any, statement: bytes, rows: int, postfix: bytes) -> None:
    """Run a guarded upsert (`MariaDBApplier._upsert`). Its 1365 says a row collides with another row on a unique
    index other than the key; for one row, the plain INSERT of it then fails with the server's own 1062, which
    names the index (a row error naming table, key and column), or goes in if that row is gone meanwhile."""
    try:
        cur.execute(statement)
    except pymysql.MySQLError as exc:
        if getattr(exc, "args", (None,))[0] != 1365 or rows != 1 or not statement.endswith(postfix):
            raise
        cur.execute(statement[:len(statement) - len(postfix)])


_ISO_INTERVAL = re.compile(r"(-?)P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?"
                           r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+(?:\.\d+)?)S)?)?")


def _time(value: Any) -> Any:
    """A PostgreSQL interval (ISO 8601 text, the session's intervalstyle) or a timedelta into a TIME:
    exact within -838:59:59.999999..838:59:59.999999 (a day is 24 hours), else a row error."""
    if isinstance(value, str) and value.lstrip("-").startswith("P"):
        m = _ISO_INTERVAL.fullmatch(value)
        if m is None:
            raise ValueError(f"{value!r} is not an ISO 8601 interval")
        neg, years, months, days, hours, minutes, seconds = m.groups()
        if (years and int(years)) or (months and int(months)):
            raise ValueError(f"interval {value!r} has years or months, which have no fixed length in a TIME")
        whole, _, frac = (seconds or "0").partition(".")
        micros = int(whole) * 1_000_000 + (-1 if whole.startswith("-") else 1) * int((frac + "000000")[:6])
        if len(frac.rstrip("0")) > 6:
            raise ValueError(f"interval {value!r} has more than 6 fractional digits")
        value = timedelta(days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0),
                          microseconds=micros)
        value = -value if neg else value
    if isinstance(value, timedelta) and not -_MAX_TIME <= value <= _MAX_TIME:
        raise ValueError(f"{value} is outside MariaDB's TIME range (-838:59:59.999999..838:59:59.999999)")
    return value


def _beyond(value: Any) -> None:
    """PostgreSQL dates MariaDB cannot hold (pgoutput keeps them as text): infinity, BC, years past 9999."""
    if isinstance(value, str):
        text = value.strip()
        if text in ("infinity", "-infinity") or text.endswith(" BC") or text[:5].isdigit():
            raise ValueError(f"{text!r} is beyond MariaDB's date range (1000-01-01..9999-12-31)")


def _date(value: Any) -> Any:
    _beyond(value)
    return value


def _datetime(value: Any) -> Any:
    if value.__class__ is datetime:  # the usual value: _beyond looks at text only; _utc_naive inline
        return value if value.tzinfo is None else value.astimezone(timezone.utc).replace(tzinfo=None)
    _beyond(value)
    return _utc_naive(value)


def _aggregate_as_they_are(values: list[list[Any]]) -> bool:
    """Whether each column's values, as literals in a UNION, take a type that holds every one of them as
    it is: one class per column (or NULL), and for Decimals no more than the 65 digits of a DECIMAL
    between the most integer digits and the most fractional ones (else MariaDB cuts the scale: a second
    rounding before the column's own). (The classes by one `set(map(type, ...))` in C per column: this
    runs for every row of every narrowed run.)"""
    for col in zip(*values):
        classes = set(map(type, col))
        classes.discard(_NONE)
        if len(classes) > 1:
            return False
        if Decimal in classes and not _decimals_fit(col):
            return False
    return True


def _decimals_fit(col: Iterable[Any]) -> bool:
    """Whether these Decimals (and NULLs) aggregate to a DECIMAL holding each as it is: at most 65 digits
    between the most integer digits and the most fractional ones (`_aggregate_as_they_are`)."""
    ints = scale = 0
    for v in col:
        if v is not None:
            t = v.as_tuple()
            exp = t.exponent
            if not isinstance(exp, int):  # (never: the converter refuses NaN and infinities)
                return False
            ints, scale = max(ints, len(t.digits) + exp), max(scale, -exp)
    return ints + scale <= 65


_NONE = type(None)


# information_schema DATA_TYPE -> Applier.exact_kind (MariaDBApplier.exact_kind; "str" only in a utf8 charset)
_EXACT_KINDS = {
    "tinyint": "int_or_bool", "smallint": "int_or_bool", "mediumint": "int_or_bool", "int": "int_or_bool",
    "bigint": "int_or_bool", "decimal": "decimal", "date": "date", "datetime": "naive", "timestamp": "naive",
    "time": "timedelta", "char": "str", "varchar": "str", "tinytext": "str", "text": "str", "mediumtext": "str",
}
# how the stored value `c` is compared with the old value `v` (a literal or a derived table's column)
_CONDITIONS = {
    "date": "{c} <=> CAST({v} AS DATE)", "naive": "{c} <=> CAST({v} AS DATETIME(6))",
    "timedelta": "{c} <=> CAST({v} AS TIME(6))", "str": "CAST({c} AS BINARY) <=> CAST({v} AS BINARY)",
}


def _condition(kind: str, column: str, value: str) -> str:
    return _CONDITIONS.get(kind, "{c} <=> {v}").format(c=column, v=value)


def _joined_statements(fmt: Formatter, head: bytes, tail: bytes, names: Sequence[str],
                       rows: Sequence[Sequence[Any]]) -> list[bytes]:
    """`head` + the rows as a derived table (`SELECT v AS n, ... UNION ALL SELECT v, ...`, the first SELECT
    naming its columns `names`) + `tail`, up to BATCH rows and MAX_STMT_LENGTH bytes a statement: the
    joined UPDATEs' (`_update_joined`, `_unchanged_joined`)."""
    enc, literal = fmt.encoding, fmt.literal
    return _split_union(head, tail, len(rows), lambda i: (
        "SELECT " + ", ".join(f"{literal(v)} AS {n}" for v, n in zip(rows[i], names))).encode(enc),
        lambda i: (_UNION + fmt.row(rows[i])[1:-1]).encode(enc))


def _split_union(head: bytes, tail: bytes, n: int, named: Callable[[int], bytes],
                 unioned: Callable[[int], bytes]) -> list[bytes]:
    """The statements `head` + n rows' SELECTs + `tail`, split after BATCH rows or MAX_STMT_LENGTH bytes:
    row i as `named(i)` where it opens a statement (the first SELECT names the derived table's columns),
    else as `unioned(i)` (` UNION ALL SELECT ...`)."""
    out: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    for i in range(n):
        b = unioned(i) if parts else named(i)
        parts.append(b)
        size += len(b)
        if len(parts) >= BATCH or size >= MAX_STMT_LENGTH:
            out.append(head + b"".join(parts) + tail)
            parts, size = [], 0
    if parts:
        out.append(head + b"".join(parts) + tail)
    return out


_UNION = " UNION ALL SELECT "
# around a multi-row conditional write (update_unchanged); not the dead-letter queue's `replicator_row`
_SAVEPOINT = "SAVEPOINT replicator_unchanged"
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT replicator_unchanged"
_TZINFO = attrgetter("tzinfo")


def _literal_statements(enc: str, head: bytes, tail: bytes, names: Sequence[str],
                        cols: list[list[str]]) -> list[bytes]:
    """`_joined_statements` of rows already formatted, given column by column (`cols[j][i]`: row i's
    literal of column j): the same statements, split where `_split_union` splits them -- after BATCH rows,
    or after the row that brings a statement to MAX_STMT_LENGTH bytes --, found without a Python step per
    row: the rows' running byte count (`accumulate`) and a bisection per statement, each statement's
    ` UNION ALL SELECT ` rows one join (tests/unit/test_mariadb_unchanged.py: against the value-by-value
    statements, split small)."""
    bodies = list(map(str.encode, map(", ".join, zip(*cols)), repeat(enc)))
    n = len(bodies)
    union = _UNION.encode(enc)
    # ends[i]: the bytes of rows 0..i each written as union + body; rows s+1..i of a statement opened by
    # row s (written `SELECT v AS n, ...`) add ends[i] - ends[s]
    ends = list(accumulate(map(add, map(len, bodies), repeat(len(union)))))
    out: list[bytes] = []
    s = 0
    batch, max_length = BATCH, MAX_STMT_LENGTH
    while s < n:
        first = ("SELECT " + ", ".join(f"{col[s]} AS {nm}" for col, nm in zip(cols, names))).encode(enc)
        # the first row that brings the statement to max_length bytes: len(first) + ends[i] - ends[s] >= max
        last = min(bisect_left(ends, max_length - len(first) + ends[s], s), s + batch - 1, n - 1)
        if last > s:
            out.append(head + first + union + union.join(bodies[s + 1:last + 1]) + tail)
        else:
            out.append(head + first + tail)
        s = last + 1
    return out


def _column_literals(col: list[Any], conv: Converter | None, fmt: Formatter,
                     exact: tuple[frozenset[type], Callable[[Any], bool] | None] | None) -> list[str] | None:
    """One column of a joined conditional write, the run's values of one target column (new ones, or old
    ones with `exact`, their `EXACT_CLASSES` entry), as literals; None where the run cannot go that way:
    a value the converter refuses (`new_rows`/`expected_rows` give None), values of more than one class
    after it or Decimals past 65 digits (`_aggregate_as_they_are`), an old value not of an exact class or
    failing its test (`expected_rows`). The same literals as `Formatter.literal` of each converted value."""
    classes = set(map(type, col))
    has_null = _NONE in classes
    classes.discard(_NONE)
    if not classes:  # all NULL
        return ["NULL"] * len(col)
    values = [v for v in col if v is not None] if has_null else col
    cls = next(iter(classes)) if len(classes) == 1 else None
    checked = False  # the exact class test already holds by construction
    lits: list[str] | None = None
    if conv is not None:
        keep: Collection[type] = _KEEPS.get(conv, ())
        if conv is _datetime and cls is datetime:
            # the usual DATETIME value: converted (to naive UTC) and formatted in one pass over the column
            lits = fmt.utc_as_naive(values)
            if lits is not None or all(map(is_, map(_TZINFO, values), repeat(None))):
                checked = True  # naive UTC by construction, or naive already (the converter's identity)
                keep = (datetime,)
        if cls is None or cls not in keep:
            if conv is _decimal and cls is Decimal:
                if not all(map(Decimal.is_finite, values)):
                    return None  # the converter raises: new_rows / expected_rows give None
                checked = True
            else:
                try:
                    values = list(map(conv, values))
                except (ValueError, TypeError, UnicodeError, OverflowError):
                    return None
                classes = set(map(type, values))
                classes.discard(_NONE)  # (a converter never returns None for a value; kept exact anyway)
                if len(classes) != 1:
                    return None
                cls = next(iter(classes))
    if cls is None:
        return None
    if exact is not None:
        allowed, test = exact
        if cls not in allowed:
            return None
        if test is not None and not checked and not all(map(test, values)):
            return None
    if lits is None:
        lits = fmt.column(values, cls)
    if cls is Decimal and (not all(map(Decimal.is_finite, values))
                           or 2 * max(map(len, lits)) > 65 and not _decimals_fit(values)):
        return None  # (a literal's length bounds its integer digits and its scale alike)
    if has_null:
        it = iter(lits)
        return ["NULL" if v is None else next(it) for v in col]
    return lits


_MEMBER = re.compile(r"'((?:[^'\\]|''|\\.)*)'")


def members(column_type: str) -> tuple[str, ...]:
    """The members of an ENUM / SET as information_schema's COLUMN_TYPE spells them: enum('a','b''c')."""
    return tuple(m.replace("''", "'").replace("\\\\", "\\") for m in _MEMBER.findall(column_type))


def _members_only(kind: str, column_type: str) -> Converter:
    """A text into an ENUM / SET must be one of its members (for a SET, each comma-separated one) exactly:
    MariaDB finds the member by the column's collation, so 'A', 'a ' or 'e' would silently become 'a' or
    'é' under the default _ci collation (its own SET order is no change of value)."""
    allowed = frozenset(members(column_type))
    shown = column_type if len(column_type) <= 80 else column_type[:77] + "..."

    def conv(value: Any) -> Any:
        if value.__class__ is str:
            parts = (value.split(",") if value else []) if kind == "set" else [value]  # '': the empty SET
            for part in parts:
                if part not in allowed:
                    raise ValueError(f"{part!r} is not a member of {shown} (MariaDB would store the member its "
                                     f"collation finds equal, ignoring case, accents or trailing spaces)")
        return value
    return conv


def _uuid_text(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def _uuid_binary(value: Any) -> Any:
    return value.bytes if isinstance(value, uuid.UUID) else value


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"{value} cannot be stored in a MariaDB DECIMAL")
    return value


def _bits(value: Any) -> Any:
    """A bit string (PostgreSQL bit(n) / varbit, or a MariaDB BIT as the binlog reader gives it) into a BIT:
    its number. As a string MariaDB would store its characters' bytes ('101' is 24 bits: 'Data too long')."""
    if value.__class__ is str and value and not value.strip("01"):
        return int(value, 2)
    return value


def _year(value: Any) -> Any:
    """An integer into a YEAR: 0 or 1901..2155 as it is. MariaDB reads 1..69 as 2001..2069 and 70..99 as
    1970..1999 and rounds 2000.5 to 2001, without a word: refused here (it refuses the rest itself). A text
    of digits is its number (MariaDB would read '0' as 2000)."""
    n = value
    if value.__class__ is str and value.strip().isdigit():
        n = value = int(value)
    if isinstance(n, (int, Decimal, float)) and not isinstance(n, bool):
        if n != int(n) or 0 < n < 100:
            raise ValueError(f"{value} is no year MariaDB's YEAR holds as it is (0 or 1901..2155; it would store "
                             f"1..99 as 1970..2069 and round a fraction)")
    return value


_CONVERTERS: dict[str, Converter] = {
    "bit": _bits,
    "year": _year,
    "datetime": _datetime,
    "timestamp": _datetime,
    "date": _date,
    "time": _time,
    "double": _double,
    "float": _double,
    "json": _json,
    "longtext": _json_document,
    "char": _uuid_text,
    "varchar": _uuid_text,
    "uuid": _uuid_text,
    "binary": _uuid_binary,
    "varbinary": _uuid_binary,
    "decimal": _decimal,
}


# converters that hand a value of these exact classes back as it is: `_column_literals` skips their call
_KEEPS: dict[Converter, frozenset[type]] = {
    _uuid_text: frozenset({str, int, Decimal}), _decimal: frozenset({int}), _date: frozenset({date}),
    _datetime: frozenset(), _bits: frozenset({int}),
}


_fromisoformat = datetime.fromisoformat


def datetime_text(text: str) -> Any:
    """`pymysql.converters.convert_datetime` of a DATETIME/TIMESTAMP's text, in one C call for the form
    MariaDB sends ('YYYY-MM-DD hh:mm:ss', then '.' and 1-6 digits): at these fixed positions
    fromisoformat reads ASCII digits only, as PyMySQL's pattern does, and builds the same datetime.
    Any other text (a zero date, a 'T', a time zone) and any value out of range go to PyMySQL's own
    function, so the result is always its result (tests/unit/test_mariadb_read.py compares them)."""
    n = len(text)
    if (n == 19 or (20 < n < 27 and text[19] == "." and text[20:].isdigit())) and text[10] == " " \
            and text[4] == "-" and text[7] == "-" and text[13] == ":" and text[16] == ":":
        try:
            return _fromisoformat(text)
        except ValueError:
            pass
    return converters.convert_datetime(text)


_FAST_DECODERS = {FIELD_TYPE.DATETIME: datetime_text, FIELD_TYPE.TIMESTAMP: datetime_text}


class _LockedRows(MySQLResult):
    """PyMySQL's buffered result of the locked read, its rows parsed with less Python per column: a
    value of fewer than 251 bytes (nearly all) and a NULL are read off the packet inline; every other
    length form, and a packet that ends early, go through PyMySQL's own `read_length_coded_string`
    from the same position, so the values and any error are its own. Decoding and converters as in
    `MySQLResult._read_row_from_packet`, which this replaces for this one statement."""

    def _read_row_from_packet(self, packet: Any) -> tuple[Any, ...]:
        data = packet._data
        pos = packet._position
        end = len(data)
        row: list[Any] = []
        columns: list[tuple[str | None, Any]] = self.converters  # type: ignore[attr-defined]  # (not in the stubs)
        for encoding, converter in columns:
            if pos >= end:  # no more columns in this row (PyMySQL: the IndexError it catches)
                break
            n = data[pos]
            if n == 251:  # NULL
                pos += 1
                row.append(None)
                continue
            if n < 251 and pos + 1 + n <= end:
                value = data[pos + 1:pos + 1 + n]
                pos += 1 + n
            else:
                packet._position = pos
                value = packet.read_length_coded_string()
                pos = packet._position
                if value is None:
                    row.append(None)
                    continue
            if encoding is not None:
                value = value.decode(encoding)
            if converter is not None:
                value = converter(value)
            row.append(value)
        packet._position = pos
        return tuple(row)

    def _read_rowdata_packet(self) -> None:
        """`MySQLResult._read_rowdata_packet`, the row packets and the closing EOF read through a
        `PacketReader` (one buffered `read1` for many packets instead of PyMySQL's eleven calls a packet;
        the same sequence numbers, timeouts, error packets and lost-connection errors). The reader reads
        ahead, so when the result ends its buffer must be empty: the server sends nothing more until our
        next command. Bytes left over (a further result: SERVER_MORE_RESULTS_EXISTS, or anything else)
        could be nobody's now, so the connection is closed and the read fails as a lost connection
        (retried), never a byte dropped or read as the next command's. The same holds if the result
        stops half-read (a row that fails to parse): the rest of it is in our buffer or the socket."""
        conn: Any = self.connection
        if not usable(conn):
            super()._read_rowdata_packet()  # type: ignore[misc]  # (untyped in the stubs)
            return
        reader = PacketReader(conn)
        read = reader.read_data
        parse = self._read_row_from_packet
        rows: list[tuple[Any, ...]] = []
        done = False
        try:
            while True:
                try:
                    data = read()
                except pymysql.MySQLError:
                    done = True  # an error packet ends the result; a lost connection is closed already
                    raise
                packet: Any = _new(MysqlPacket)  # mypackets.packet(data), inline: one call less a row
                packet._data = data
                packet._position = 0
                # packet.is_eof_packet() inline: an EOF is 0xFE and shorter than 9 bytes
                if data[0] == 0xFE and len(data) < 9 and self._check_packet_is_eof(packet):  # type: ignore[attr-defined]
                    done = True
                    self.connection = None  # as PyMySQL: release the reference
                    break
                rows.append(parse(packet))
        finally:
            left = len(reader._buf) - reader._pos
            if (left or not done) and conn._sock is not None:
                reader._lost()  # closes the connection: the bytes after this result are nobody's
                if done:
                    raise err.OperationalError(
                        CR.CR_COMMANDS_OUT_OF_SYNC,
                        f"{left} bytes after the locked read's result (a further result?): connection closed")
        self.affected_rows = len(rows)
        self.rows = tuple(rows)


# a MariaDB warning's column and row: "Data truncated for column 'a' at row 2", "Out of range value for column ..."
_WARNING_AT = re.compile(r"column '((?:[^']|'')*)'(?: at row (\d+))?")

# warnings about the statement, never about a value stored: 1287 a deprecated syntax (MySQL 8.0.20+ says so of
# `ON DUPLICATE KEY UPDATE c = VALUES(c)` on every upsert), 1592 a statement unsafe for statement-based binary
# logging (the server's binlog_format, not the row), 3170 the range optimizer's memory limit (a plan choice)
_NOT_ABOUT_VALUES = frozenset({1287, 1592, 3170})


def _field_shape(f: Any) -> tuple[Any, ...]:
    """What a column's result metadata says of the values it holds: name, type, length (digits, characters in
    bytes, fractional seconds), decimals and character set."""
    return (f.name, f.type_code, f.length, f.scale, f.charsetnr)


def _locked_query(db: Any, stmt: str) -> list[tuple[Any, ...]]:
    """`Connection.query` + `Cursor.fetchall` for one SELECT, its result read by `_LockedRows`: the
    same command, the same packets read in the same order, the connection left in the same state."""
    db._execute_command(COMMAND.COM_QUERY, stmt.encode(db.encoding))
    db._result = None
    result = _LockedRows(db)
    result.read()
    db._result = result
    if result.server_status is not None:
        db.server_status = result.server_status
    db._affected_rows = result.affected_rows
    return list(result.rows) if result.description else []


class MariaDBApplier(Applier):
    kind = "mariadb"

    def __init__(self, conn: Connection, stream: str):
        super().__init__(conn, stream)
        self.db: Any = None
        self.ckpt_table = quote(conn.state_schema, CHECKPOINT_TABLE)
        self._sql_cache: dict[tuple[Any, ...], str] = {}
        # the column sets of each written table's unique indexes, PRIMARY too (other_unique)
        self._unique: dict[TableRef, tuple[frozenset[str], ...]] = {}
        self._other_unique: dict[tuple[TableRef, Sequence[str]], bool] = {}
        self._update_sql: dict[tuple[Any, ...], tuple[str, list[int]]] = {}  # _update_rows's, by shape
        self._inserts: dict[str, tuple[str, str]] = {}  # upsert statement -> (prefix, postfix) around its rows
        self._fmt: Formatter | None = None  # for self.db; made again after a reconnect
        self._decoders: tuple[Any, dict[int, Any]] | None = None  # (the connection's decoders, read_rows's)
        self._shapes: dict[TableRef, tuple[tuple[Any, ...], ...]] = {}  # by load_types: `_shape_moved`
        self._shape_sql: dict[tuple[TableRef, ...], str] = {}
        # tables whose shape a statement's warning read (`_warned`) in the open transaction, unchanged: our write
        # holds the table's metadata lock until the commit, which need not read them again. Forgotten at the
        # transaction's end and at a ROLLBACK TO SAVEPOINT (which may give up the locks taken after it)
        self._confirmed: set[TableRef] = set()

    # every statement goes through the connection's `query`, which tells the gate (connect.MyConnection)
    reports_waits = True

    @property
    def io_gate(self) -> IoGate | None:
        return self._io_gate

    @io_gate.setter
    def io_gate(self, gate: IoGate | None) -> None:
        self._io_gate = gate
        db = getattr(self, "db", None)
        if db is not None:
            db.gate = gate

    def connect(self) -> None:
        self.db = my_connect(self.conn, self.conn.apply)
        self.db.gate = self._io_gate
        self.tagged = False  # a new session: no transaction open
        t = self.conn.timeouts
        # an application's row lock or a runaway statement fails our statement (retried with
        # back-off) instead of holding the apply thread until the watchdog kills the process
        self._run(self._session, max(1, math.ceil(t.lock_seconds)), t.statement_seconds)
        self.report_up(1)

    def _session(self, lock_seconds: int, statement_seconds: float) -> None:
        with self.db.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = %s, SESSION max_statement_time = %s",
                        (lock_seconds, statement_seconds))

    def interrupt(self) -> None:
        """From another thread: break the statement this session runs off (a stop must not wait for
        it). The socket is shut down; the owning thread sees a lost connection."""
        sock = getattr(self.db, "_sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            except pymysql.MySQLError:
                pass
            finally:
                self.db = None
                self.report_up(0)

    def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return fn(*args)
        except (pymysql.MySQLError, ConnectionError, TimeoutError) as exc:
            cls = my_error_class(exc)
            if cls == CONNECTION:
                self.report_up(0)
            if cls in RETRIABLE:
                where = f" on {self.current_table}" if cls == TIMEOUT and self.current_table else ""
                raise RetriableError(f"{self.conn.describe()}: {cls}{where}: {_message(exc)}") from None
            if cls == ACCESS:
                raise ConfigError(f"{self.conn.describe()}: the apply account lacks a privilege: "
                                  f"{_message(exc)}") from None
            raise

    def lock(self, fail_fast: bool) -> None:
        def q() -> bool:
            with self.db.cursor() as cur:
                name = session_lock_name("mariadb", self.conn.state_schema, self.stream)
                cur.execute("SELECT GET_LOCK(%s, 0)", (name,))
                got: bool = cur.fetchone()[0] == 1
                return got
        if not self._run(q):
            self.lock_busy(fail_fast)

    def read_checkpoint(self) -> Position | None:
        def q() -> Any:
            with self.db.cursor() as cur:
                cur.execute(f"SELECT position FROM {self.ckpt_table} WHERE stream = %s", (self.stream,))
                row = cur.fetchone()
            self.db.rollback()
            return row
        row = self._run(q)
        return position_from_json(row[0]) if row else None

    def begin(self) -> None:
        self.written.clear()
        self._confirmed.clear()
        # the tag: first row event of every transaction we write (see loopguard)
        def q() -> None:
            with self.db.cursor() as cur:
                cur.execute(
                    f"INSERT INTO {self.ckpt_table} (stream, position, txn_seq) VALUES (%s, '{{}}', 1) "
                    "ON DUPLICATE KEY UPDATE txn_seq = txn_seq + 1", (self.stream,))
        self._run(q)
        self.tagged = True

    def commit(self, position: Position, commit_time: Any) -> None:
        written = sorted((t for t in self.written if t in self._shapes and t not in self._confirmed), key=str)

        def q() -> list[TableRef]:
            with self.db.cursor() as cur:
                if written:
                    changed = self._shape_moved(cur, written)
                    if changed:
                        return changed
                cur.execute(
                    # no source commit time (a keepalive moved the position): the last transaction's stays
                    f"UPDATE {self.ckpt_table} SET position = %s, "
                    "source_commit_time = COALESCE(%s, source_commit_time), "
                    "updated_at = UTC_TIMESTAMP(6) WHERE stream = %s",
                    (position.to_json(), _utc_naive(commit_time), self.stream))
            self.db.commit()
            self.tagged = False
            self.written.clear()
            self._confirmed.clear()
            return []
        changed = self._run(q)
        if changed:
            self.shape_moved(changed)

    def _shape_moved(self, cur: Any, tables: list[TableRef]) -> list[TableRef]:
        """The written tables whose columns' result metadata (name, type, length, decimals, character set) is no
        longer what load_types read: one `SELECT a.*, b.* FROM a, b LIMIT 0`, which reads no row. An ALTER TABLE
        committed before our write shows here; one after it waits for our commit (the metadata lock our writes
        hold). MariaDB's own notes cannot tell it: strict mode rounds fractional seconds without one."""
        key = tuple(tables)
        stmt = self._shape_sql.get(key)
        if stmt is None:
            stmt = self._shape_sql[key] = "SELECT " + ", ".join(f"t{i}.*" for i in range(len(tables))) + " FROM " + \
                ", ".join(f"{quote(t.schema, t.name)} t{i}" for i, t in enumerate(tables)) + " LIMIT 0"
        cur.execute(stmt)
        now: dict[str, list[tuple[Any, ...]]] = {}
        for f in self.db._result.fields:
            now.setdefault(f.table_name, []).append(_field_shape(f))
        return [t for i, t in enumerate(tables) if tuple(now.get(f"t{i}", ())) != self._shapes[t]]

    def commit_untracked(self) -> None:
        """Commit the open transaction without touching the checkpoint (state rows, repairs, `dlq retry`): the
        mapped tables written in it are confirmed in their planned shape first, as `commit` does."""
        written = sorted((t for t in self.written if t in self._shapes), key=str)

        def q() -> list[TableRef]:
            if written:
                with self.db.cursor() as cur:
                    changed = self._shape_moved(cur, written)
                if changed:
                    return changed
            self.db.commit()
            return []
        changed = self._run(q)
        if changed:
            self.shape_moved(changed)
        self.tagged = False
        self.written.clear()
        self._confirmed.clear()

    def rollback(self) -> None:
        self.tagged = False
        self.written.clear()
        self._confirmed.clear()
        if self.db is not None:
            try:
                self.db.rollback()
            except pymysql.MySQLError:
                pass

    def load_types(self, tables: Sequence[TableRef]) -> None:
        self.not_tagged()
        self._run(self._load_types, tables)

    def _load_types(self, tables: Sequence[TableRef]) -> None:
        with self.db.cursor() as cur:
            for t in tables:
                cur.execute(
                    "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE = 'NO' AND COLUMN_DEFAULT IS NULL "
                    "AND EXTRA NOT LIKE '%%auto_increment%%' AND IS_GENERATED = 'NEVER', NUMERIC_SCALE, "
                    "DATETIME_PRECISION, COLLATION_NAME, COLUMN_TYPE "
                    "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (t.schema, t.name))
                full = cur.fetchall()
                rows = [r[:6] for r in full]
                column_types = {r[0]: str(r[6]) for r in full}
                self.planned[t] = column_types
                # the shape `commit` confirms (`_shape_moved`)
                cur.execute(f"SELECT * FROM {quote(t.schema, t.name)} LIMIT 0")
                self._shapes[t] = tuple(_field_shape(f) for f in self.db._result.fields)
                types = {r[0]: r[1].lower() for r in rows}
                self._types[t] = types
                self._required[t] = frozenset(r[0] for r in rows if r[2])
                self._columns[t] = {c: ColumnInfo(c, ty.lower(), "mariadb", scale, precision, coll)
                                    for c, ty, _, scale, precision, coll in rows}
                cur.execute("SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
                            "AND TABLE_NAME = %s AND NON_UNIQUE = 0", (t.schema, t.name))
                unique: dict[str, set[str]] = {}
                for index, column in cur.fetchall():
                    unique.setdefault(str(index), set()).add(str(column))
                self._unique[t] = tuple(frozenset(u) for u in unique.values())
                self._other_unique.clear()
                # MariaDB's JSON is a LONGTEXT with CHECK (json_valid(`c`)): only those take a PostgreSQL
                # array as a JSON array; another LONGTEXT keeps the array's text
                try:
                    cur.execute("SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                                "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s", (t.schema, t.name))
                    clauses = {str(r[0]).strip() for r in cur.fetchall()}
                except pymysql.ProgrammingError:  # MySQL before 8.0.16: no such table, JSON is its own type
                    clauses = set()
                json_cols = {c for c in types if f"json_valid({my_ident(c)})" in clauses}
                self._converters[t] = {c: _json if c in json_cols else _CONVERTERS[ty]
                                       for c, ty in types.items() if ty in _CONVERTERS or c in json_cols}
                for c, ty in types.items():
                    if ty in ("enum", "set"):
                        self._converters[t][c] = _members_only(ty, column_types[c])
        self.db.rollback()


    def _upsert(self, run: Run, rows: list[TargetChange]) -> int:
        if self.is_partial(run):
            rows = self._update_existing(run, rows)
            if not rows:
                return 0
        guarded = self.other_unique(run.table, run.key_columns)
        key = ("upsert", run.table, run.columns, run.key_columns, run.insert_only, guarded)
        stmt = self._sql_cache.get(key)
        if stmt is None:
            cols = ", ".join(quote(c) for c in run.columns)
            marks = ", ".join(["%s"] * len(run.columns))
            updates = run.updates or list(run.key_columns[:1])
            action = ", ".join(f"{quote(c)} = VALUES({quote(c)})" for c in updates)
            if guarded:
                # ON DUPLICATE KEY UPDATE takes a collision on ANY unique index for the row: a new row whose e-mail
                # another row has would overwrite that row and never be written. The first assignment keeps the
                # key when the row found is the one with this key, and divides by zero (error 1365 in the
                # session's strict mode, the statement undone) when it is another row
                same = " AND ".join(f"{quote(c)} <=> VALUES({quote(c)})" for c in run.key_columns)
                first = quote(run.key_columns[0])
                guard = f"{first} = IF({same}, {first}, 1 / 0)"
                action = f"{guard}, {action}" if run.updates else guard
            stmt = (f"INSERT INTO {quote(run.table.schema, run.table.name)} ({cols}) VALUES ({marks}) "
                    f"ON DUPLICATE KEY UPDATE {action}")
            self._sql_cache[key] = stmt
        values = self.convert_rows(run, rows)
        parts = self._inserts.get(stmt)
        if parts is None:
            parts = self._inserts[stmt] = split_insert(stmt)
        prefix, postfix = parts

        def q() -> int:
            # a checked run's rows were read already; one that was missing came back on purpose (a conflict)
            existing = self._count_existing(run, rows) if run.op.value == "update" and not run.checked else len(rows)
            fmt = self._formatter()
            tail = postfix.encode(fmt.encoding) if guarded else b""
            with self.db.cursor() as cur:
                for i in range(0, len(values), BATCH):
                    # the statements executemany would send, formatted faster (appliers/myliteral.py)
                    counts: list[int] = []
                    first = i
                    for statement, n in zip(fmt.statements(prefix, postfix, values[i:i + BATCH], counts=counts),
                                            counts):
                        if guarded:
                            _guarded_execute(cur, statement, n, tail)
                        else:
                            cur.execute(statement)
                        if self.db._result.warning_count:
                            self._warned(cur, run, rows[first:first + n])
                        first += n
            return len(rows) - existing
        return self._run(q)

    def other_unique(self, table: TableRef, key_columns: Sequence[str]) -> bool:
        """Whether `table` has a unique index other than the mapping's key (`_upsert` guards its writes)."""
        found = self._other_unique.get((table, key_columns))
        if found is None:  # once per table and key: the upsert path asks per run
            key = frozenset(key_columns)
            found = self._other_unique[(table, tuple(key_columns))] = any(u != key for u in self._unique.get(table, ()))
        return found

    def updates_at_once(self, table: TableRef, key_columns: Sequence[str], columns: Sequence[str],
                        rows: int) -> bool:
        """One row; more where the key is integers: `_update_rows` joins the table with the rows as a derived
        table, and a text key would be compared under the literals' collation instead of the column's."""
        return rows == 1 or self._int_key(table, key_columns)

    def _int_key(self, table: TableRef, key_columns: Sequence[str]) -> bool:
        types = self._types.get(table, {})
        return all(types.get(c) in _INT_TYPES for c in key_columns)

    def _update_rows(self, run: Run, rows: list[TargetChange]) -> None:
        """Existing, locked rows (`Run.exists`) by key, setting `run.updates`, the values converted by
        `convert_rows` and formatted by the upserts' Formatter. One row: `UPDATE t SET c = v WHERE k = v`.
        More (an integer key, see updates_at_once): `UPDATE t JOIN (SELECT v AS k, v AS c UNION ALL SELECT
        ...) v ON t.k = v.k SET t.c = v.c`, up to BATCH rows a statement. Each column of the derived table
        takes one type for all its rows (MariaDB aggregates the literals' types), so this is done only when a
        column's values are all of one class (or NULL): literals of one class aggregate to a type that holds
        each of them as it is (BIGINT or DECIMAL, DECIMAL, DOUBLE, a string, a binary string), stored into the
        column as an INSERT stores the literal itself. Else row by row."""
        updates = run.updates
        if not updates:
            return
        values = self.convert_rows(run, rows)
        joined = len(values) > 1 and self._int_key(run.table, run.key_columns) and _aggregate_as_they_are(values)
        if joined:
            self._run(self._update_joined, run, values)
            return
        key = ("update", run.table, run.columns, run.key_columns, run.insert_only)
        cached = self._update_sql.get(key)
        if cached is None:
            sets = ", ".join(f"{quote(c)} = %s" for c in updates)
            cond = " AND ".join(f"{quote(c)} = %s" for c in run.key_columns)
            order = [run.columns.index(c) for c in (*updates, *run.key_columns)]
            cached = self._update_sql[key] = (
                f"UPDATE {quote(run.table.schema, run.table.name)} SET {sets} WHERE {cond}", order)
        text, order = cached

        def q() -> None:
            literal = self._formatter().literal
            with self.db.cursor() as cur:
                for row, change in zip(values, rows):
                    cur.execute(text % tuple([literal(v) for v in map(row.__getitem__, order)]))
                    if self.db._result.warning_count:
                        self._warned(cur, run, [change])
        self._run(q)

    def _update_joined(self, run: Run, values: list[list[Any]]) -> None:
        fmt = self._formatter()
        enc = fmt.encoding
        names = [my_ident(c) for c in run.columns]
        head = f"UPDATE {my_ident(run.table.schema, run.table.name)} AS t JOIN (".encode(enc)
        tail = (") AS v ON " + " AND ".join(f"t.{my_ident(c)} = v.{my_ident(c)}" for c in run.key_columns)
                + " SET " + ", ".join(f"t.{my_ident(c)} = v.{my_ident(c)}" for c in run.updates)).encode(enc)
        with self.db.cursor() as cur:
            for stmt in _joined_statements(fmt, head, tail, names, values):
                cur.execute(stmt)
                if self.db._result.warning_count:
                    self._warned(cur, run, None)

    def _warned(self, cur: Any, run: Run, rows: Sequence[TargetChange] | None) -> None:
        """The statement just run on `rows` (in its order; None: not known row by row) left warnings. In our
        strict sql_mode a value that does not fit is an error; what is left is a value stored otherwise than
        written, without an error -- a decimal rounded (Note 1265), where `check` refused every such cast unless
        the field says `lossy: allow`. So: first the table's shape (narrowed since load_types: the stream
        checks the new one, TargetShapeChanged); then a 1265 on a lossy field's column is what the mapping
        allows; anything else stops, naming table, key, column and the server's words. Never ignored. The shape
        is read once a transaction a table (`_confirmed`): a later warning and the commit reuse the answer."""
        cur.execute("SHOW WARNINGS")
        warnings = cur.fetchall()
        if run.table in self._shapes and run.table not in self._confirmed:
            moved = self._shape_moved(cur, [run.table])
            if moved:
                self.shape_moved(moved)
            self._confirmed.add(run.table)  # the commit reuses the answer
        for level, code, text in warnings:
            if code in _NOT_ABOUT_VALUES:
                continue
            m = _WARNING_AT.search(str(text))
            column = m.group(1) if m else None
            if code == 1265 and column is not None and (run.table, column) in self.lossy:
                continue
            n = int(m.group(2)) if m and m.group(2) else 0
            key: Any = None
            where = ""
            if rows is not None and 0 < n <= len(rows):
                key = rows[n - 1].key
            elif rows is not None and len(rows) == 1:
                key = rows[0].key
            elif rows:
                where = f" (in a statement of {len(rows)} rows, keys {rows[0].key} to {rows[-1].key})"
            else:
                where = " (in a statement of several rows)"
            raise RowError(f"{self.conn.describe()} stored a value otherwise than written, without an error: "
                           f"{level} {code}: {text}{where}. Nothing of the transaction was committed",
                           table=str(run.table), key=key, column=column)

    # -- the optimistic conditional write of a checked update run (conflicts/detect.py `_Check._optimistic`)

    def exact_kind(self, table: TableRef, column: str) -> str | None:
        """Applier.exact_kind: the types whose `<=>` with a literal (in `_condition`'s form) is exact --
        integers (a bool is 1 or 0), DECIMAL, DATE, DATETIME and TIMESTAMP (the session's time_zone is
        '+00:00', connect.my_connect: a TIMESTAMP compares as the UTC instant the converter writes, no DST),
        TIME, all against the literal CAST to the column's kind (a derived table's column of datetime
        literals is a string: never left to MariaDB's choice of a string or a temporal comparison), and
        CHAR/VARCHAR/TEXT of a utf8 character set compared as bytes (`CAST(.. AS BINARY)`: every collation,
        _bin included, is PAD SPACE or case/accent-insensitive, and the literal is utf8mb4, the connection's
        character set, whose bytes are the column's only in utf8). Not FLOAT/DOUBLE (a FLOAT column against
        a double literal), JSON/LONGTEXT, ENUM/SET, BINARY/BLOB, UUID, INET, YEAR."""
        ty = self._types.get(table, {}).get(column)
        kind = _EXACT_KINDS.get(ty or "")
        if kind == "str":
            info = self._columns.get(table, {}).get(column)
            coll = (info.collation or "").lower() if info is not None else ""
            if not coll.startswith(("utf8mb4_", "utf8mb3_", "utf8_")):
                return None
        return kind

    def update_unchanged(self, run: Run, rows: list[TargetChange],
                         compared: tuple[str, ...]) -> list[TargetChange] | None:
        """Applier.update_unchanged. One row: `UPDATE t SET c = new WHERE k = key AND c <=> old ...`; more (an
        integer key, as `_update_rows`): `UPDATE t JOIN (SELECT key AS x0, new AS x1, old AS o0 UNION ALL
        ...) v ON t.k = v.x0 SET t.c = v.x1 WHERE t.c <=> v.o0 ...`, the old columns aggregated as the new
        (`_aggregate_as_they_are`), up to BATCH rows a statement. MariaDB 10.11 has no UPDATE ... RETURNING:
        the affected-row count says whether every row was written (the connection has CLIENT.FOUND_ROWS, so
        it counts matched rows, a row already holding its new values too). Fewer: what it wrote is undone
        (ROLLBACK TO SAVEPOINT, the rows staying locked) and the whole run goes to the full check, as if this
        had not been tried."""
        if len(rows) > 1:
            if not self._int_key(run.table, run.key_columns):
                return None
            joined = self._unchanged_joined(run, rows, compared)
            if joined is None:
                return None
            statements = joined
        else:
            got = self.unchanged_inputs(run, rows, compared)
            if got is None:
                return None
            (row,), (old,) = got
            types = self._types.get(run.table, {})
            kinds = [_EXACT_KINDS[types[c]] for c in compared]
            fmt = self._formatter()
            literal = fmt.literal
            pos = {c: i for i, c in enumerate(run.columns)}
            text = (f"UPDATE {my_ident(run.table.schema, run.table.name)} SET "
                    + ", ".join(f"{my_ident(c)} = {literal(row[pos[c]])}" for c in run.updates)
                    + " WHERE " + " AND ".join(
                        [f"{my_ident(c)} = {literal(row[pos[c]])}" for c in run.key_columns]
                        + [_condition(kind, my_ident(c), literal(v)) for kind, c, v in zip(kinds, compared, old)]))
            statements = [text.encode(fmt.encoding)]

        # A run of several rows may match only some: their writes are then undone (ROLLBACK TO SAVEPOINT, the
        # row locks kept) and the whole run takes the full check as if this had not been tried -- each row
        # then written once (a row with owned fields, written unconditionally, was else written again with
        # the same values, its triggers firing twice) and counted in rows_applied once, by `_write` (the rows
        # written here were else counted nowhere: the check found them holding their new values, "the same
        # edit"). One row matches all or nothing: no savepoint, no extra round trip.
        guarded = len(rows) > 1

        def q() -> int:
            n = 0
            with self.db.cursor() as cur:
                if guarded:
                    cur.execute(_SAVEPOINT)
                for stmt in statements:
                    n += cur.execute(stmt)
                if guarded and n != len(rows):
                    cur.execute(_ROLLBACK_TO)
                    self._confirmed.clear()
            return n
        matched = self._run(q)
        if matched == len(rows):
            metrics.rows_applied.labels(self.direction, str(run.table), "update").inc(len(rows))
            return []
        return rows

    def _unchanged_joined(self, run: Run, rows: list[TargetChange],
                          compared: tuple[str, ...]) -> list[bytes] | None:
        """The joined conditional UPDATEs of a run of more than one row, or None where it cannot go that way:
        what `unchanged_inputs`, `_aggregate_as_they_are` over its new and old rows and `_joined_statements`
        give (tests/unit/test_mariadb_unchanged.py compares them), built column by column instead of value
        by value: one column's values are of one class (else the run does not qualify), so its class test
        (`EXACT_CLASSES`), its converter and its literals are each one pass over the column, in C where the
        converter hands the class back as it is and the Formatter has a column form (`Formatter.column`),
        and a DATETIME column of UTC datetimes (the WAL reader's timestamptz) is converted and formatted in
        one (`Formatter.utc_as_naive`)."""
        if not run.updates:
            return None
        table = run.table
        convs = self._converters.get(table, {})
        fmt = self._formatter()
        news = [r.values for r in rows]
        expects = [r.expect for r in rows]
        if not all(expects):  # (a row without `expect` compares nothing: never from detect)
            return None
        cols: list[list[str]] = []
        olds: list[list[str]] = []
        try:
            # the old values first: a class the comparison cannot take sends the run the other way before any
            # new value is formatted (as the value-by-value build decides)
            kinds = []
            for c in compared:
                kind = self.exact_kind(table, c)
                exact = EXACT_CLASSES.get(kind or "")
                if kind is None or exact is None:
                    return None
                lits = _column_literals(list(map(itemgetter(c), expects)),  # type: ignore[arg-type]
                                        convs.get(c), fmt, exact)
                if lits is None:
                    return None
                olds.append(lits)
                kinds.append(kind)
            for c in run.columns:
                lits = _column_literals(list(map(itemgetter(c), news)), convs.get(c), fmt, None)
                if lits is None:
                    return None
                cols.append(lits)
            cols += olds
        except KeyError:  # (never from detect: every row changes the run's columns and has each compared one)
            return None
        enc = fmt.encoding
        names = [f"x{i}" for i in range(len(run.columns))] + [f"o{j}" for j in range(len(compared))]
        pos = {c: i for i, c in enumerate(run.columns)}
        head = f"UPDATE {my_ident(table.schema, table.name)} AS t JOIN (".encode(enc)
        tail = (") AS v ON " + " AND ".join(f"t.{my_ident(c)} = v.x{pos[c]}" for c in run.key_columns)
                + " SET " + ", ".join(f"t.{my_ident(c)} = v.x{pos[c]}" for c in run.updates)
                + " WHERE " + " AND ".join(_condition(kind, f"t.{my_ident(c)}", f"v.o{j}")
                                           for j, (kind, c) in enumerate(zip(kinds, compared)))).encode(enc)
        return _literal_statements(enc, head, tail, names, cols)

    def _formatter(self) -> Formatter:
        fmt = self._fmt
        if fmt is None or fmt.conn is not self.db or not fmt.current():
            fmt = self._fmt = Formatter(self.db)
        return fmt

    def _key_condition(self, run: Run, n: int) -> str:
        if len(run.key_columns) == 1:
            return f"{quote(run.key_columns[0])} IN ({', '.join(['%s'] * n)})"
        cols = ", ".join(quote(c) for c in run.key_columns)
        one = "(" + ", ".join(["%s"] * len(run.key_columns)) + ")"
        return f"({cols}) IN ({', '.join([one] * n)})"

    def _key_params(self, run: Run, rows: list[TargetChange]) -> list[Any]:
        convs = self._converters.get(run.table, {})
        for c in run.key_columns:
            if c in convs:
                return [v for r in rows for v in self.convert_key(run, r.key)]
        # no key column has a converter (an integer key): convert_key would hand every value back as it is
        if len(run.key_columns) == 1:
            return [r.key[0] for r in rows]
        return [v for r in rows for v in r.key]

    def _count_existing(self, run: Run, rows: list[TargetChange]) -> int:
        total = 0
        literal = self._formatter().literal
        with self.db.cursor() as cur:
            for i in range(0, len(rows), BATCH):
                part = rows[i:i + BATCH]
                sql = (f"SELECT COUNT(*) FROM {quote(run.table.schema, run.table.name)} "
                       f"WHERE {self._key_condition(run, len(part))}")
                # what cur.execute(sql, params) sends -- PyMySQL's mogrify is `sql % tuple(map(db.escape,
                # params))` -- with the Formatter's literals, the same text for every value (myliteral.py), for
                # a fifth of the CPU: this runs for every row of an unchecked update run
                cur.execute(sql % tuple([literal(v) for v in self._key_params(run, part)]))
                total += cur.fetchone()[0]
        return total

    def _delete(self, run: Run, rows: list[TargetChange]) -> int:
        def q() -> int:
            deleted = 0
            with self.db.cursor() as cur:
                for i in range(0, len(rows), BATCH):
                    part = rows[i:i + BATCH]
                    deleted += cur.execute(
                        f"DELETE FROM {quote(run.table.schema, run.table.name)} "
                        f"WHERE {self._key_condition(run, len(part))}", self._key_params(run, part))
            return deleted
        return self._run(q)

    def quote_table(self, table: TableRef) -> str:
        return quote(table.schema, table.name)

    def quote_col(self, column: str) -> str:
        return quote(column)

    def read_expr(self, table: TableRef, column: str) -> str:
        """Applier.read_expr: a FLOAT as `CAST(c AS DOUBLE)`, the float32 it holds. MariaDB sends a FLOAT's text
        with 6 significant digits (1.2345671 as 1.23457): compared with what the other side sent, that was a
        concurrent edit that never happened, and a value the check kept was written back 6 digits short
        (verify's scanner reads it the same way: sources/scanmariadb.py)."""
        q = quote(column)
        return f"CAST({q} AS DOUBLE)" if self._types.get(table, {}).get(column) == "float" else q

    def read_rows(self, table: TableRef, key_columns: Sequence[str], columns: Sequence[str],
                  keys: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Applier.read_rows, the same statement and rows for less client work (it was most of a checked
        run's cost, issue 14): the keys formatted by the Formatter (PyMySQL's own text without its
        per-value escaping path, as the upserts are), the rows parsed by `_LockedRows` and DATETIME/TIMESTAMP
        values decoded by `datetime_text`. tests/integration/test_mariadb_read_rows.py compares it with
        Applier.read_rows."""
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(keys), 1000):
            part = keys[i:i + 1000]
            out += self._run(self._read_locked, self.read_rows_sql(table, key_columns, columns, len(part)),
                             self.key_params(table, key_columns, part))
        return out

    def _read_locked(self, text: str, params: list[Any]) -> list[tuple[Any, ...]]:
        literal = self._formatter().literal
        stmt = text % tuple([literal(v) for v in params])  # what Cursor.mogrify makes of (text, params)
        db = self.db
        plain = db.decoders
        known = self._decoders
        if known is None or known[0] is not plain:
            # only where the connection decodes with PyMySQL's own function (never someone else's choice)
            fast = {t: f for t, f in _FAST_DECODERS.items() if plain.get(t) is converters.convert_datetime}
            known = self._decoders = (plain, {**plain, **fast})
        db.decoders = known[1]  # read once per result, when its columns are described
        try:
            return _locked_query(db, stmt)
        finally:
            db.decoders = plain

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        def q() -> list[tuple[Any, ...]]:
            with self.db.cursor() as cur:
                cur.execute(sql, tuple(params))
                return list(cur.fetchall()) if cur.description else []
        return self._run(q)

    def execute(self, sql: str, params: Sequence[Any]) -> int:
        if sql.lstrip()[:8].upper() == "ROLLBACK":  # to a savepoint (stream/deadletter.py): see _confirmed
            self._confirmed.clear()

        def q() -> int:
            with self.db.cursor() as cur:
                rowcount: int = cur.execute(sql, tuple(params))
                return rowcount
        return self._run(q)

    def _truncate(self, table: TableRef) -> None:
        # TRUNCATE is DDL in MariaDB and would commit our transaction half-way: delete instead
        def q() -> None:
            with self.db.cursor() as cur:
                cur.execute(f"DELETE FROM {quote(table.schema, table.name)}", ())
        self._run(q)

    def describe_error(self, exc: Exception) -> str:
        return _message(exc)

    def error_column(self, exc: Exception, change: TargetChange | None = None) -> str | None:
        text = _message(exc)
        code = getattr(exc, "args", (None,))[0]
        if code in (1451, 1452):
            m = _FOREIGN_KEY.search(text)
            if m:  # the row's own columns: the foreign key's for a child (1452), the referenced ones for a parent
                return ", ".join(c.replace("``", "`") for c in re.findall(r"`((?:[^`]|``)*)`", m.group(
                    2 if code == 1451 else 1)))
        if code == 1062:
            m = _DUPLICATE_KEY.search(text)
            return None if m is None else self._index_columns(m.group(1).replace("''", "'"), change)
        # 'Incorrect string value: ... for column `db`.`t`.`c` at row 1' (1366, 1292: a value the column's type or
        # character set cannot take) names it qualified, in backquotes; others ('Data too long for column 'c'')
        # in single quotes
        m = _QUALIFIED_COLUMN.search(text)
        if m:
            return m.group(1).replace("``", "`")
        m = _CHECK_COLUMN.search(text)
        if m:
            name, table = m.group(1).replace("``", "`"), m.group(2).replace("``", "`")
            column = name[len(table) + 1:] if name.startswith(table + ".") else None
            return column if column and (change is None or column in change.values) else None
        lower = text.lower()  # 1048 says "Column 'contact_id' cannot be null", capitalised
        for marker in ("for column '", "column '"):
            at = lower.find(marker)
            if at >= 0:
                return text[at + len(marker):].split("'", 1)[0]
        return None

    def _index_columns(self, index: str, change: TargetChange | None) -> str | None:
        """The columns of the unique index a 1062 names ('Duplicate entry 'a@x' for key 'email'', 'for key
        't.email'' on MySQL 8), read from the catalog in the open transaction (a failed statement leaves a
        MariaDB transaction usable); without the row's table, the index that is named after a column of it
        (MariaDB names an unnamed one after its first column)."""
        if change is None:
            return None
        table = change.table
        name = index[len(table.name) + 1:] if index.startswith(table.name + ".") else index
        try:
            rows = self.query("SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
                              "AND TABLE_NAME = %s AND INDEX_NAME = %s ORDER BY SEQ_IN_INDEX",
                              (table.schema, table.name, name))
        except Exception:  # noqa: BLE001 -- naming the column is a courtesy; the error itself is reported as it is
            rows = []
        if rows:
            return ", ".join(str(r[0]) for r in rows)
        return name if name in change.values else None

    def is_row_error(self, exc: Exception) -> bool:
        return my_error_class(exc) in (ROW, MISSING)
