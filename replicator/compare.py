"""Comparing a mapped row with its counterpart: normalisation, row agreement, display.

Pure functions, no I/O (used by `replicator.verify.flow`, and by `replicator.conflicts.detect` to tell a
conflict from a value the target merely holds in another shape).

Both sides hold the same data in different shapes: PostgreSQL `real` reads back as the shortest
decimal while the binlog gives a MariaDB FLOAT with float32 noise, DECIMAL(12,2) holds a value
rounded from numeric(14,4), a `timestamptz` is aware while a DATETIME is naive (naive means UTC in
this project), a boolean is 0/1 on MariaDB, a UUID is bytes in BINARY(16) and text in CHAR(36), jsonb
re-formats JSON text, a SET is text in definition order, PostgreSQL pads char(n) with spaces. So each
compared column gets a *kind* from its target column type (and from the source column type when the
field copies the value unchanged), and values are compared in that kind:

- `canonical(kind, value)` is a hashable, type-uniform form: equal data gives equal canonical forms
  (in nearly every case: see `values_equal` for the rest). Row digests hash canonical forms.
- `values_equal(kind, a, b)` is the authority: canonical equality, or a tolerance where the servers
  themselves round: times within the target's fractional-second precision, a decimal written from a float
  within one unit of the target scale. Floats have none: every driver reads a float exactly (the shortest
  text that reads back as the same double, or float32 for a single-precision column, compared as the
  float32 it is), so one unit in the last place is a difference. The target column's precision decides: a
  double holding a copied float32 is compared as a double (the float32's exact value is what was carried).
- `row_agrees(rules)` compiles the check that a whole row's canonical forms are equal (so every column is
  `values_equal`), with a fast path for two equal values of one plain class, which need no normalising.
  Only rows it does not pass are compared column by column.

No checksums and no bisecting: the mappings' transforms run in Python, so the source side can never be
checksummed in SQL and both sides are read anyway; `replicator verify` holds both sides of a chunk and
compares rows directly, which is cheaper than hashing them and has no collisions.

Key values are matched with `key_canonical`, which also follows the target collation (MariaDB's
default collations ignore case and trailing spaces when they find a key).
"""
from __future__ import annotations

import ipaddress
import json
import math
import re
import struct
import unicodedata
import uuid
from dataclasses import dataclass
from operator import itemgetter
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any, Callable, Sequence

# kinds of compared columns
INT = "int"
DECIMAL = "decimal"
FLOAT32 = "float32"
FLOAT64 = "float64"
BOOL = "bool"
TEXT = "text"
CHAR = "char"  # fixed width: trailing spaces do not count
JSON = "json"
SET = "set"
BYTES = "bytes"
BINARY = "binary"  # fixed width: trailing zero bytes do not count
UUID = "uuid"
TIMESTAMP = "timestamp"
DATE = "date"
TIME = "time"  # also a PostgreSQL interval (a MariaDB TIME goes there): microseconds
INET = "inet"  # an address: MariaDB INET6 bytes or text, PostgreSQL inet text
BITS = "bits"  # a bit string (MariaDB BIT, PostgreSQL bit / varbit): the number its bits spell
OTHER = "other"

_CTX = Context(prec=200)  # wide enough for any DECIMAL(65,30) / numeric value we quantize
_F32 = struct.Struct("<f")

_PG_KINDS = {
    "smallint": INT, "integer": INT, "bigint": INT, "numeric": DECIMAL, "real": FLOAT32,
    "double precision": FLOAT64, "boolean": BOOL, "text": TEXT, "character varying": TEXT, "character": CHAR,
    "json": JSON, "jsonb": JSON, "bytea": BYTES, "uuid": UUID, "timestamp without time zone": TIMESTAMP,
    "timestamp with time zone": TIMESTAMP, "date": DATE, "time without time zone": TIME, "USER-DEFINED": TEXT,
    "interval": TIME, "inet": INET, "cidr": INET, "bit": BITS, "bit varying": BITS,
}
_MY_KINDS = {
    "tinyint": INT, "smallint": INT, "mediumint": INT, "int": INT, "integer": INT, "bigint": INT, "year": INT,
    "decimal": DECIMAL, "float": FLOAT32, "double": FLOAT64, "char": CHAR, "varchar": TEXT, "tinytext": TEXT,
    "text": TEXT, "mediumtext": TEXT, "longtext": TEXT, "enum": TEXT, "set": SET, "json": JSON,
    "binary": BINARY, "varbinary": BYTES, "tinyblob": BYTES, "blob": BYTES, "mediumblob": BYTES,
    "longblob": BYTES, "uuid": UUID, "datetime": TIMESTAMP, "timestamp": TIMESTAMP, "date": DATE, "time": TIME,
    "bit": BITS,
}


@dataclass(frozen=True)
class ColumnInfo:
    """One column as the catalog describes it (information_schema.columns)."""

    name: str
    data_type: str
    dialect: str  # postgresql | mariadb
    scale: int | None = None  # numeric_scale
    precision: int | None = None  # datetime_precision (fractional-second digits)
    collation: str | None = None

    @property
    def kind(self) -> str:
        table = _PG_KINDS if self.dialect == "postgresql" else _MY_KINDS
        return table.get(self.data_type if self.dialect == "postgresql" else self.data_type.lower(), OTHER)


@dataclass(frozen=True)
class Rule:
    """How one target column is compared."""

    column: str
    kind: str
    scale: int | None = None
    precision: int | None = None
    case_insensitive: bool = False  # key matching only
    pad_space: bool = False  # key matching only
    dialect: str = ""  # the database holding the column


def rule_for(target: ColumnInfo | None, source: ColumnInfo | None, column: str) -> Rule:
    """The comparison rule of a target column. `source` is the source column when the field copies the
    value unchanged (no map, transform, default or constant), else None."""
    if target is None:
        return Rule(column, OTHER)
    kind = target.kind
    skind = source.kind if source is not None else None
    # a double holding a copied float32 (a MariaDB FLOAT into double precision, a real into DOUBLE) stays FLOAT64:
    # the value carried is the float32's exact value as a double, and every reader gives the source that way
    # (the binlog's 4 bytes, pgoutput's real snapped to float32, the scanner's CAST(c AS DOUBLE)); compared at
    # single precision, a double changed below float32's step passed
    if kind in (TEXT, CHAR) and skind == JSON:
        kind = JSON
    elif kind in (TEXT, CHAR) and skind == SET:
        kind = SET
    if kind in (FLOAT32, FLOAT64) and target.dialect == "mariadb" and target.scale is not None:
        # a FLOAT(M,D) / DOUBLE(M,D) (Akaunting's double(15,4) amounts): the server rounds every value to D
        # places, as a DECIMAL(M,D) does; compared as one, or each such value would differ forever
        kind = DECIMAL
    scale = target.scale if kind in (DECIMAL, INT) else None
    if kind == INT:
        scale = 0
    precision = target.precision if kind in (TIMESTAMP, TIME) else None
    ci = pad = False
    if target.dialect == "mariadb" and target.collation:
        name = target.collation.lower()
        ci = name.endswith("_ci") or "_ci_" in name or name.endswith("_ai_ci")
        pad = "nopad" not in name
    return Rule(column, kind, scale, precision, ci, pad, target.dialect)


def exact_rule(rule: Rule, target: ColumnInfo | None, source: ColumnInfo | None) -> Rule:
    """`rule` for a field that copies a value unchanged and that the mapping does not declare lossy: a decimal,
    a timestamp or a time compared with the source value itself, not as rounded to the target column's scale or
    fractional seconds. `check` refuses such a pair when the target holds fewer digits, so a difference here is
    a value the target rounded behind replicator's back (a column narrowed while it ran, or before a repair).
    A DOUBLE(M,D) target (compared as a decimal, `rule_for`) and a float source keep the target's rounding."""
    if target is None or source is None:
        return rule
    if rule.kind == DECIMAL and target.kind == DECIMAL and source.kind in (DECIMAL, INT) and rule.scale is not None:
        return Rule(rule.column, rule.kind, None, rule.precision, rule.case_insensitive, rule.pad_space, rule.dialect)
    if rule.kind in (TIMESTAMP, TIME) and source.kind == rule.kind and rule.precision is not None \
            and rule.precision < 6:
        return Rule(rule.column, rule.kind, rule.scale, None, rule.case_insensitive, rule.pad_space, rule.dialect)
    return rule


# ---------------------------------------------------------------- canonical forms


def _to_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else Decimal(str(value))
    if isinstance(value, (str, bytes)):
        try:
            return Decimal(value.decode() if isinstance(value, bytes) else value.strip())
        except (InvalidOperation, UnicodeDecodeError):
            return None
    return None


def _to_float(value: Any) -> float | None:
    if isinstance(value, (bool, int, float, Decimal)):
        try:
            return float(value)
        except OverflowError:
            return math.copysign(math.inf, value)
    if isinstance(value, (str, bytes)):
        try:
            return float(value)
        except ValueError:
            return None
    return None


_EXPONENTS: dict[int, Decimal] = {}


def _number(n: Decimal, scale: int | None) -> Any:
    """With a scale (the target column's): the value rounded to it as the server rounds (half away from
    zero), an int for scale 0. Without: an int when integral, else the normalised text (1.50 == 1.5)."""
    if not n.is_finite():
        return ("num", str(n))
    if scale is not None:
        exp = _EXPONENTS.get(scale)
        if exp is None:
            exp = _EXPONENTS.setdefault(scale, Decimal(1).scaleb(-scale))
        n = n.quantize(exp, rounding=ROUND_HALF_UP, context=_CTX)
        return int(n) if scale <= 0 else n
    if n == n.to_integral_value(context=_CTX):
        return int(n)
    return ("num", str(n.normalize(_CTX)))


def _json_value(value: Any) -> Any:
    """JSON as a canonical tree: objects sorted, numbers by value, true/false apart from 1/0."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return ("bool", value)
    if value is None:
        return ("null",)
    if isinstance(value, (int, float, Decimal)):
        n = _to_decimal(value)
        return _number(n, None) if n is not None else ("num", repr(value))
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return ("obj", tuple(sorted((k.decode() if isinstance(k, bytes) else str(k), _json_value(v))
                                    for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("arr", tuple(_json_value(v) for v in value))
    return ("?", repr(value))


def _json(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_float=Decimal)
        except ValueError:
            return ("jsontext", value)
    return ("json", _json_value(value))


def _utc_naive(value: datetime) -> datetime:
    if value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _truncate_us(us: int, precision: int | None) -> int:
    if precision is None or precision >= 6 or precision < 0:
        return us
    step: int = 10 ** (6 - precision)
    return us - us % step


def _timestamp(value: Any, precision: int | None) -> Any:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = _utc_naive(value)
        return value.replace(microsecond=_truncate_us(value.microsecond, precision))
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return _generic(value)


def _date(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return value
    if isinstance(value, datetime):
        return _utc_naive(value).date()
    return _generic(value)


_ISO_INTERVAL = re.compile(r"(-?)P(?:(-?\d+)D)?(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+)(?:\.(\d{1,6}))?S)?)?")


def _micros(value: Any) -> int | None:
    if isinstance(value, timedelta):
        return (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    if isinstance(value, time):
        return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
    if isinstance(value, str):
        text = value.strip()
        if text == "24:00:00":  # PostgreSQL's end of a day (a MariaDB TIME holds it as 1 day)
            return 86_400_000_000
        m = _ISO_INTERVAL.fullmatch(text)  # a PostgreSQL interval (IntervalStyle iso_8601) without years/months
        if m and text not in ("P", "-P"):
            neg, d, h, mi, sec, frac = m.groups()
            sign = -1 if (sec or "").startswith("-") else 1
            us = int(sec or 0) * 1_000_000 + sign * int((frac or "").ljust(6, "0"))
            us += ((int(d or 0) * 24 + int(h or 0)) * 60 + int(mi or 0)) * 60_000_000
            return -us if neg else us
        try:
            return _micros(time.fromisoformat(text))
        except ValueError:
            return None
    return None


def _bits(value: Any) -> Any:
    """A bit string as the number it spells: PostgreSQL's '00000101', MariaDB's BIT as the binlog reader
    gives it ('101'), a boolean written into a BIT(1), or the bytes PyMySQL reads: one value."""
    if isinstance(value, (bool, int)):
        return ("bits", int(value))
    if isinstance(value, str) and value and not value.strip("01"):
        return ("bits", int(value, 2))
    if isinstance(value, (bytes, bytearray)):
        return ("bits", int.from_bytes(bytes(value), "big"))
    return _generic(value)


def _inet(value: Any) -> Any:
    """An address as ipaddress reads it (an IPv4-mapped IPv6 address in any spelling is one value); a
    network with its prefix. A prefix of the whole address (/32, /128) is the address itself: a cidr shows
    the INET6 ::1 it holds as ::1/128, an inet hides it."""
    try:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return ("inet", ipaddress.ip_address(bytes(value)))
        if isinstance(value, str):
            text = value.strip()
            if "/" not in text:
                return ("inet", ipaddress.ip_address(text))
            interface = ipaddress.ip_interface(text)
            if interface.network.prefixlen == interface.max_prefixlen:
                return ("inet", interface.ip)
            return ("inet", interface)
    except ValueError:
        pass
    return _generic(value)


def _text(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (set, frozenset)):
        return ",".join(sorted(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(" ")
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _uuid(value: Any) -> Any:
    if isinstance(value, (str, bytes)) and len(value) == 0:  # all zero bytes, stripped (tablescan, binlog)
        return str(uuid.UUID(int=0))
    try:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
            if len(raw) <= 16:
                return str(uuid.UUID(bytes=raw.ljust(16, b"\0")))
            return str(uuid.UUID(raw.decode()))
        if isinstance(value, str):
            return str(uuid.UUID(value.strip()))
    except (ValueError, UnicodeDecodeError):
        pass
    return _generic(value)


def _bytes(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, uuid.UUID):
        return value.bytes
    return _generic(value)


def _set(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        value = [v for v in value.split(",") if v != ""]
    if isinstance(value, (set, frozenset, list, tuple)):
        return ("set", tuple(sorted(str(v) for v in value)))
    return _generic(value)


def _generic(value: Any) -> Any:
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return _number(value, None)
    if isinstance(value, float):
        return ("float", value) if not math.isnan(value) else ("float", "nan")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return _utc_naive(value)
    if isinstance(value, timedelta):
        return ("us", _micros(value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted(map(str, value))))
    if isinstance(value, (dict, list, tuple)):
        return ("json", _json_value(value))
    return value


def canonical(kind: str, value: Any, scale: int | None = None, precision: int | None = None) -> Any:
    """A hashable form of `value` as a column of `kind` holds it; None stays None (SQL NULL)."""
    if value is None:
        return None
    if kind in (INT, DECIMAL):
        n = _to_decimal(value)
        return _number(n, scale) if n is not None else _generic(value)
    if kind in (FLOAT32, FLOAT64):
        f = _to_float(value)
        if f is None:
            return _generic(value)
        if math.isnan(f):
            return ("float", "nan")
        if math.isinf(f):
            return ("float", "inf" if f > 0 else "-inf")
        if kind == FLOAT32:  # the float32 it is: exact, whatever decimal text a driver read it from
            try:
                f = _F32.unpack(_F32.pack(f))[0]
            except OverflowError:  # beyond float32: no column holds it, and it equals no other value
                return ("float", "beyond float32", f)
        return ("float", f + 0.0 if f != 0 else 0.0)  # MariaDB has no -0: equal to 0
    if kind == BOOL:
        if isinstance(value, (bool, int)):
            return int(value)
        if isinstance(value, str) and value.strip().lower() in ("t", "true", "1", "f", "false", "0"):
            return int(value.strip().lower() in ("t", "true", "1"))
        return _generic(value)
    if kind == TEXT:
        return _text(value)
    if kind == CHAR:
        text = _text(value)
        return text.rstrip(" ") if isinstance(text, str) else text
    if kind == JSON:
        return _json(value)
    if kind == SET:
        return _set(value)
    if kind == BYTES:
        return _bytes(value)
    if kind == BINARY:
        raw = _bytes(value)
        return raw.rstrip(b"\0") if isinstance(raw, bytes) else raw
    if kind == UUID:
        return _uuid(value)
    if kind == TIMESTAMP:
        return _timestamp(value, precision)
    if kind == DATE:
        return _date(value)
    if kind == TIME:
        us = _micros(value)
        return ("us", _truncate_us(us, precision)) if us is not None else _generic(value)
    if kind == INET:
        return _inet(value)
    if kind == BITS:
        return _bits(value)
    return _generic(value)


def canonical_by(rule: Rule, value: Any) -> Any:
    return canonical(rule.kind, value, rule.scale, rule.precision)


def canonicalizer(rule: Rule) -> Callable[[Any], Any]:
    """`canonical_by(rule, value)` as a function with fast paths for the common value types (the same
    results; it runs for every compared value of every row)."""
    kind, scale, precision = rule.kind, rule.scale, rule.precision

    def slow(v: Any) -> Any:
        return canonical(kind, v, scale, precision)

    if kind == INT:
        return lambda v: v if v is None or v.__class__ is int else slow(v)
    if kind == DECIMAL and scale is not None:
        exp = Decimal(1).scaleb(-scale)

        def decimal(v: Any) -> Any:
            if v.__class__ is Decimal and v.is_finite():
                return v.quantize(exp, rounding=ROUND_HALF_UP, context=_CTX) if scale > 0 else slow(v)
            return None if v is None else slow(v)
        return decimal
    if kind == TEXT:
        return lambda v: v if v is None or v.__class__ is str else slow(v)
    if kind == CHAR:
        return lambda v: v.rstrip(" ") if v.__class__ is str else (None if v is None else slow(v))
    if kind == TIMESTAMP and (precision is None or precision >= 6):
        return lambda v: v if v is None or (v.__class__ is datetime and v.tzinfo is None) else slow(v)
    if kind in (DATE, OTHER):
        return lambda v: v if v is None or v.__class__ in (int, str, date) else slow(v)
    return lambda v: None if v is None else slow(v)


# Value classes for which two values of the same class that are == have equal canonical forms, per kind (so
# `row_agrees` may skip canonicalising them). Containers are never listed: {"a": True} == {"a": 1}.
_NONE_TYPE = type(None)
_NUMBERS = frozenset({int, bool, Decimal, float})
_SAME_IF_EQUAL: dict[str, frozenset[Any]] = {
    INT: _NUMBERS, DECIMAL: _NUMBERS, FLOAT32: _NUMBERS, FLOAT64: _NUMBERS, BOOL: frozenset({bool, int}),
    TEXT: frozenset({str}), CHAR: frozenset({str}), JSON: frozenset({str, bytes}), SET: frozenset({str}),
    BYTES: frozenset({bytes}), BINARY: frozenset({bytes}), UUID: frozenset({str, bytes, uuid.UUID}),
    TIMESTAMP: frozenset({datetime, date, str}), DATE: frozenset({datetime, date, str}),
    TIME: frozenset({timedelta, time, str}), INET: frozenset({str}), BITS: frozenset({str, int}),
    OTHER: frozenset({int, bool, Decimal, float, str, bytes, datetime, date, time, timedelta, uuid.UUID}),
}


def same_if_equal(rule: Rule) -> frozenset[Any]:
    """The value classes for which `a == b` (same class) implies equal canonical forms under `rule`."""
    return _SAME_IF_EQUAL.get(rule.kind, frozenset()) | {_NONE_TYPE}


def row_agrees(rules: Sequence[Rule]) -> Callable[[Any, Any], bool]:
    """`agrees(expected, actual)` for two dicts holding the columns of `rules`: True when every column's
    values have equal canonical forms (then `values_equal` holds for each; False: compare column by column).

    Fast path, in C: both rows' values are equal as tuples and of the same classes, each one for which
    equality means equal canonical forms (`same_if_equal`). Otherwise straight-line code per column
    canonicalises the values that differ in class or value."""
    if not rules:
        return lambda expected, actual: True
    columns = [r.column for r in rules]
    allowed = [same_if_equal(r) for r in rules]
    ns: dict[str, Any] = {}
    lines = []
    for i, r in enumerate(rules):
        ns[f"c{i}"], ns[f"k{i}"] = canonicalizer(r), allowed[i]
        lines.append(f"        a = expected.get({r.column!r}); b = actual.get({r.column!r})\n"
                     f"        if (a.__class__ is not b.__class__ or a.__class__ not in k{i} or a != b) "
                     f"and c{i}(a) != c{i}(b):\n"
                     f"            return False")
    # an odd value that cannot even be compared (a signalling NaN...): the column-by-column comparison decides
    src = ("def by_column(expected, actual):\n    try:\n" + "\n".join(lines)
           + "\n    except Exception:\n        return False\n    return True\n")
    exec(compile(src, "<compare>", "exec"), ns)  # noqa: S102 - column names only appear as repr() literals
    by_column: Callable[[Any, Any], bool] = ns["by_column"]
    pick = itemgetter(*columns) if len(columns) > 1 else (lambda d, c=columns[0]: (d[c],))
    plain: dict[tuple[Any, ...], bool] = {}  # classes of a row's values -> all of them allowed

    def agrees(expected: Any, actual: Any) -> bool:
        try:
            e, a = pick(expected), pick(actual)
            if e == a:
                classes = tuple(map(type, e))
                if classes == tuple(map(type, a)):
                    ok = plain.get(classes)
                    if ok is None:
                        ok = all(c in k for c, k in zip(classes, allowed))
                        if len(plain) < 4096:
                            plain[classes] = ok
                    if ok:
                        return True
        except Exception:  # a missing column, a value that cannot be compared: by column
            pass
        return by_column(expected, actual)
    return agrees


def key_canonicalizer(rules: Sequence[Rule]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """`key_canonical(rules, key)` as a function (the same results)."""
    if all(r.kind == INT for r in rules):
        fns = [canonicalizer(r) for r in rules]

        def ints(key: Sequence[Any]) -> tuple[Any, ...]:
            for v in key:
                if v.__class__ is not int:
                    return tuple([f(v) for f, v in zip(fns, key)])
            return tuple(key)
        return ints
    return lambda key: key_canonical(rules, key)


def values_equal(rule: Rule, expected: Any, actual: Any) -> bool:
    """The authority on whether a target value holds the expected value."""
    a, b = canonical_by(rule, expected), canonical_by(rule, actual)
    if a == b:
        return True
    if a is None or b is None:
        return False
    kind = rule.kind
    if kind == DECIMAL and (isinstance(expected, float) or isinstance(actual, float)) and rule.scale is not None:
        da, db = _to_decimal(expected), _to_decimal(actual)
        if da is None or db is None or not (da.is_finite() and db.is_finite()):
            return False
        return abs(da - db) <= Decimal(1).scaleb(-rule.scale)  # a float's noise at a rounding boundary
    if kind in (TIMESTAMP, TIME) and rule.precision is not None and rule.precision < 6:
        step = 10 ** (6 - rule.precision)  # the server rounds or truncates to its precision
        if kind == TIMESTAMP and isinstance(a, datetime) and isinstance(b, datetime):
            ta = _timestamp(expected, None)
            tb = _timestamp(actual, None)
            return bool(abs(ta - tb) < timedelta(microseconds=step))
        if kind == TIME:
            ma, mb = _micros(expected), _micros(actual)
            return ma is not None and mb is not None and abs(ma - mb) < step
    return False


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def key_canonical(rules: Sequence[Rule], key: Sequence[Any]) -> tuple[Any, ...]:
    """A key as the target finds it: canonical values, folded like the column's collation."""
    out = []
    for rule, value in zip(rules, key):
        c = canonical_by(rule, value)
        if isinstance(c, str):
            if rule.pad_space:
                c = c.rstrip(" ")
            if rule.case_insensitive:
                c = _fold(c)
        out.append(c)
    return tuple(out)


def stream_value(rule: Rule, value: Any) -> Any:
    """A key value (as an applier would write it) in the form the change stream and `TableScanner` give it,
    which is what `TableScanner.by_keys` takes: MariaDB BINARY(n) and UUID as bytes without trailing zero
    bytes, an empty binary value as ''."""
    if value is None or rule.dialect != "mariadb":
        return value
    if rule.kind in (UUID, BINARY):
        raw: Any = value
        if isinstance(value, uuid.UUID):
            raw = value.bytes
        elif isinstance(value, str) and rule.kind == UUID:
            try:
                raw = uuid.UUID(value).bytes
            except ValueError:
                return value
        elif isinstance(value, str):
            raw = value.encode("utf-8")
        if isinstance(raw, (bytes, bytearray, memoryview)):
            raw = bytes(raw).rstrip(b"\0")
            return raw if raw else ""
        return raw
    if rule.kind == BYTES and isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value) if len(value) else ""
    return value


# ---------------------------------------------------------------- display


def show(value: Any, limit: int = 80) -> str:
    """A value for a report line: text quoted, NULL, numbers and times plain, bytes in hex."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        text = "0x" + bytes(value).hex()
    elif isinstance(value, Decimal):
        text = str(value)
    elif isinstance(value, datetime):
        text = value.isoformat(" ")
    elif isinstance(value, (date, time, uuid.UUID)):
        text = str(value)
    elif isinstance(value, timedelta):
        text = str(value)
    elif isinstance(value, (set, frozenset)):
        text = "{" + ",".join(sorted(map(str, value))) + "}"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, default=str, ensure_ascii=False)
    else:
        text = repr(value)
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return text


def show_key(key: Sequence[Any] | None) -> str:
    if key is None:
        return "()"
    return "(" + ", ".join(show(v, 40) for v in key) + ("," if len(key) == 1 else "") + ")"
