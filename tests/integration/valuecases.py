"""The type pairs and value strategies of tests/integration/test_type_values.py.

One `Case` per type pair docs/types.md says is carried (its two pair tables and the pairs its cast table
gives), with:

- `values`: a Hypothesis strategy of what is written on the source, at and beyond the type's edges (a
  Python value the driver binds, or text the server parses: PostgreSQL's 'infinity', BC dates, intervals);
  the source server may refuse it (then the example skips that value);
- `read_my` / `read_pg`: the SQL expression that reads the column exactly on each side (a MariaDB FLOAT
  as a DOUBLE, a PostgreSQL interval as its three fields, JSON as text...) and `norm_my` / `norm_pg`, the
  driver's value in a canonical form: the documented equivalence is equality of these forms;
- `verdict`: what `replicator check` says of the pair (fit or warning), and for a warning `holds`: whether
  the target can hold a source value (its canonical form). A value that holds must arrive equal; one that
  does not must be a row error naming table, key and column (queued under `on_error: quarantine`);
- `arrives`: the documented change a value undergoes (-0 arrives as 0 in MariaDB), default none.
"""
from __future__ import annotations

import ipaddress
import json
import math
import struct
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterator

from hypothesis import strategies as st

UTC = timezone.utc
US = 1_000_000
TIME_MAX = 838 * 3600 * US + 59 * 60 * US + 59 * US + 999_999


def f32(v: float) -> float:
    return struct.unpack("<f", struct.pack("<f", v))[0]


# ------------------------------------------------------------------------------------------------ canonical forms

def ident(v: Any) -> Any:
    return v


def as_int(v: Any) -> Any:
    return int(v)


def as_dec(v: Any) -> Any:
    return ("dec", Decimal(v))  # by value: 1.50 == 1.5 (the target's scale is its column's)


def as_float(v: Any) -> Any:
    return ("float", repr(float(v)))  # the sign of zero counts, NaN equals NaN


def as_float32(v: Any) -> Any:
    return ("float", repr(f32(float(v))))


def no_neg_zero(c: Any) -> Any:
    """MariaDB has no -0: documented, the one float whose sign is not kept."""
    return ("float", "0.0") if c == ("float", "-0.0") else c


def as_text(v: Any) -> Any:
    return v.decode("utf-8") if isinstance(v, bytes) else v


def as_char(v: Any) -> Any:
    return as_text(v).rstrip(" ")  # a CHAR's pad spaces are no part of its value, on either side


def as_bytes(v: Any) -> Any:
    return bytes(v)


def as_utc(v: Any) -> Any:
    return v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo else v


def td_micros(v: timedelta) -> int:
    return (v.days * 86400 + v.seconds) * US + v.microseconds


def interval_fields(v: Any) -> Any:
    """PostgreSQL interval read as 'months days micros' (read_pg INTERVAL): a day counts 24 h when there are
    no months (what TIME and the docs' rule I / V say)."""
    months, days, micros = (int(Decimal(x)) for x in v.split())
    return ("months", months, days, micros) if months else days * 86400 * US + micros


def pg_time_micros(v: Any) -> int:
    return int(Decimal(v))


def json_tree(v: Any) -> Any:
    """JSON text as a canonical tree: objects as sorted pairs, numbers by value, a duplicate key kept as
    ('dup', key) so a document with one never equals one without."""
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode("utf-8")

    def pairs(items: list[tuple[str, Any]]) -> Any:
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            return ("dup", tuple(items))
        return ("obj", tuple(sorted(items)))

    def conv(x: Any) -> Any:
        if isinstance(x, bool) or x is None:
            return ("lit", x)
        if isinstance(x, (int, Decimal)):
            return ("num", Decimal(x))
        if isinstance(x, float):
            return ("num", Decimal(repr(x)))
        if isinstance(x, list):
            return ("arr", tuple(conv(e) for e in x))
        return x
    tree = json.loads(v, parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal,
                      object_pairs_hook=lambda items: pairs([(k, conv(x)) for k, x in items]))
    return conv(tree)


def json_fits_jsonb(tree: Any) -> bool:
    """jsonb has no duplicate keys, no NUL in text, no lone surrogates, numbers within numeric's range."""
    if isinstance(tree, tuple) and tree and tree[0] == "dup":
        return False
    if isinstance(tree, str):
        return "\x00" not in tree and not any(0xD800 <= ord(c) <= 0xDFFF for c in tree)
    if isinstance(tree, tuple) and tree[0] == "num":
        n = tree[1]
        return n.is_finite() and (n == 0 or (n.adjusted() < 131072 and -n.as_tuple().exponent <= 16383))
    if isinstance(tree, tuple) and tree[0] == "obj":
        return all(json_fits_jsonb(k) and json_fits_jsonb(x) for k, x in tree[1])
    if isinstance(tree, tuple) and tree[0] == "arr":
        return all(json_fits_jsonb(x) for x in tree[1])
    return True


def array_tree(v: Any) -> Any:
    """A PostgreSQL array read by psycopg2 (a list) as the JSON tree it should become."""
    def conv(x: Any) -> Any:
        if isinstance(x, list):
            return ("arr", tuple(conv(e) for e in x))
        if isinstance(x, bool) or x is None:
            return ("lit", x)
        if isinstance(x, (int, Decimal)):
            return ("num", Decimal(x))
        if isinstance(x, float):
            return ("num", Decimal(repr(x)) if math.isfinite(x) else Decimal(str(x)))
        if isinstance(x, uuid.UUID):
            return str(x)
        return x
    return conv(v)


def finite_tree(tree: Any) -> bool:
    if isinstance(tree, tuple) and tree[0] == "num":
        return tree[1].is_finite()
    if isinstance(tree, tuple) and tree[0] == "arr":
        return all(finite_tree(x) for x in tree[1])
    return True


def uuid_in_mariadb(u: uuid.UUID) -> bool:
    """MariaDB 10.11's UUID refuses a 7th byte 80-ff with a 9th byte 01-80 (its rec_need_swap: a uuid it
    would take for one it stored byte-swapped)."""
    return not (u.bytes[6] >= 0x80 and 0x01 <= u.bytes[8] <= 0x80)


def json_valid_in_mariadb(text: str) -> bool:
    """MariaDB's json_valid refuses a surrogate escape without its pair (keys and values alike)."""
    def strings(x: Any) -> Iterator[str]:
        if isinstance(x, str):
            yield x
        elif isinstance(x, Pairs):
            for k, v in x:
                yield k
                yield from strings(v)
        elif isinstance(x, list):
            for e in x:
                yield from strings(e)
    tree = json.loads(text, object_pairs_hook=Pairs)
    return not any(0xD800 <= ord(c) <= 0xDFFF for t in strings(tree) for c in t)


class Pairs(list):
    """A JSON object as its pairs, duplicates kept."""


def as_uuid(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return uuid.UUID(bytes=bytes(v))
    return uuid.UUID(str(v))


def as_addr(v: Any) -> Any:
    return ipaddress.ip_address(str(v).split("/")[0])


def as_bits(v: Any) -> Any:
    return int(v, 2) if isinstance(v, str) else int(v)


def latin1_holds(text: str) -> bool:
    """MariaDB's latin1 is cp1252 plus the five bytes cp1252 leaves undefined (read as U+0081...)."""
    return all(c in "\x81\x8d\x8f\x90\x9d" or _cp1252(c) for c in text)


def _cp1252(c: str) -> bool:
    try:
        c.encode("cp1252")
        return True
    except UnicodeEncodeError:
        return False


# ------------------------------------------------------------------------------------------------ strategies

def ints(lo: int, hi: int) -> st.SearchStrategy:
    edges = [lo, hi, 0, -1, 1, lo - 1, hi + 1]
    return st.sampled_from(edges) | st.integers(lo - 3, hi + 3) | st.integers(lo, hi)


def text_chars(**kw: Any) -> st.SearchStrategy:
    return st.characters(exclude_categories=("Cs",), **kw)


SPECIAL_TEXT = ["", " ", "a ", " a", "a\t", "A", "\u00e9", "e\u0301", "\U0001F600", "\uffff", "\U0010FFFF",
                "\x00", "a\x00b", "\\", "'", "%s", "\\N", "\u2028", "\r\n", "\x7f", "\x81\x8d", "\u20ac"]


def texts(max_size: int, nul: bool = True) -> st.SearchStrategy:
    chars = text_chars() if nul else text_chars(exclude_characters="\x00")
    special = [t for t in SPECIAL_TEXT if nul or "\x00" not in t]
    return (st.sampled_from(special) | st.text(chars, max_size=max_size)
            | st.builds(lambda a, b: a + b, st.text(chars, max_size=max_size // 2), st.sampled_from(special)))


def decimals(p: int, s: int, unsigned: bool = False) -> st.SearchStrategy:
    top = Decimal(10) ** (p - s) - Decimal(1).scaleb(-s)
    lo = Decimal(0) if unsigned else -top
    raw = [str(top), str(-top), "0", "-0", "0." + "0" * (s - 1) + "1" if s else "1", str(top + 1),
           "1e-" + str(s + 1), "-0." + "0" * max(s - 1, 0) + "1", "1E+" + str(p - s - 1)]
    return (st.sampled_from(raw) | st.decimals(lo, top, places=s).map(str)
            | st.decimals(allow_nan=False, allow_infinity=False).map(str))


def json_texts() -> st.SearchStrategy:
    scalars = (st.sampled_from(["null", "true", "false", "-0", "0", "1e400", "1E-400", "0.1", "1.50", "-1.0e+2",
                                "123456789012345678901234567890", '"\\u0000"', '"\\ud800"', '"\\ud83d\\ude00"',
                                '"\U0001F600"', '"a\\"b"', '""', '"\\\\"', "1e131072", "1e-16384"])
               | st.integers().map(str) | st.floats(allow_nan=False, allow_infinity=False).map(repr)
               | st.text(text_chars(), max_size=5).map(json.dumps))
    keys = st.sampled_from(["a", "b", "A", "\u00e9", "", "a "]) | st.text(text_chars(), max_size=3)

    def extend(children: st.SearchStrategy) -> st.SearchStrategy:
        arrays = st.lists(children, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]")
        objects = st.lists(st.tuples(keys, children), max_size=4).map(
            lambda kv: "{" + ", ".join(f"{json.dumps(k)}: {x}" for k, x in kv) + "}")
        return arrays | objects
    return st.recursive(scalars, extend, max_leaves=8)


def rect(element: st.SearchStrategy) -> st.SearchStrategy:
    """A PostgreSQL array value: flat, or two-dimensional and rectangular."""
    flat = st.lists(element, max_size=5)
    grid = st.integers(1, 3).flatmap(lambda n: st.lists(st.lists(element, min_size=n, max_size=n), min_size=1,
                                                        max_size=3))
    return flat | grid


def my_time_text(us: int) -> str:
    sign = "-" if us < 0 else ""
    us = abs(us)
    h, rest = divmod(us, 3600 * US)
    m, rest = divmod(rest, 60 * US)
    s, frac = divmod(rest, US)
    return f"{sign}{h}:{m:02d}:{s:02d}.{frac:06d}"


def interval_text(months: int, days: int, us: int) -> str:
    return f"{months} mons {days} days {us} microseconds"


DATES_PG = (st.sampled_from(["0001-01-01", "9999-12-31", "infinity", "-infinity", "0044-03-15 BC", "0001-12-31 BC",
                             "10000-01-01", "1000-01-01", "0999-12-31", "2024-02-29", "1970-01-01"])
            | st.dates().map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}"))
WHEN = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999))
PG_TS = (st.sampled_from(["0001-01-01 00:00:00", "9999-12-31 23:59:59.999999", "infinity", "-infinity",
                          "0001-01-01 00:00:00 BC", "10000-01-01 00:00:00", "2016-12-31 23:59:60",
                          "2024-03-31 02:30:00", "2024-10-27 02:30:00", "2024-11-03 01:30:00",
                          "2024-03-10 02:30:00", "1970-01-01 00:00:00", "2038-01-19 03:14:07.999999",
                          "2038-01-19 03:14:08", "1970-01-01 00:00:01"])
         | WHEN.map(lambda d: d.isoformat(sep=" ")))
PG_ZONES = ["UTC", "Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe", "Pacific/Kiritimati",
            "America/New_York", "Asia/Kathmandu"]
TS_LO, TS_HI = datetime(1970, 1, 1, 0, 0, 1), datetime(2038, 1, 19, 3, 14, 7, 999999)


def pg_intervals() -> st.SearchStrategy:
    edges = st.sampled_from([(0, 0, TIME_MAX), (0, 0, -TIME_MAX), (0, 0, TIME_MAX + 1), (0, 0, -1), (0, 0, 0),
                             (0, 1, -7200 * US), (0, 34, 22 * 3600 * US), (0, 35, 0), (1, 0, 0), (-1, 30, 0),
                             (0, -34, -(22 * 3600 + 3599) * US - 999_999), (12, 0, 0)])
    return (edges | st.tuples(st.just(0), st.integers(-40, 40), st.integers(-TIME_MAX - 2, TIME_MAX + 2))
            | st.tuples(st.integers(-13, 13), st.integers(-3, 3), st.integers(-10 ** 9, 10 ** 9))
            ).map(lambda f: interval_text(*f))


def interval_holds(c: Any) -> bool:
    return isinstance(c, int) and abs(c) <= TIME_MAX


# ------------------------------------------------------------------------------------------------ the cases

@dataclass
class Case:
    way: str  # "m2p" (MariaDB source) or "p2m" (PostgreSQL source)
    my: str  # MariaDB column type
    pg: str  # PostgreSQL column type
    values: st.SearchStrategy
    verdict: str = "fit"
    holds: Callable[[Any], bool] = lambda c: True
    norm_my: Callable[[Any], Any] = ident
    norm_pg: Callable[[Any], Any] = ident
    read_my: str = "c"
    read_pg: str = "c"
    arrives: Callable[[Any], Any] = ident  # the source's canonical form -> the target's, where documented
    zone: bool = False  # a PostgreSQL source written in a drawn session TimeZone
    name: str = field(default="")

    @property
    def norm_src(self) -> Callable[[Any], Any]:
        return self.norm_my if self.way == "m2p" else self.norm_pg

    @property
    def norm_dst(self) -> Callable[[Any], Any]:
        return self.norm_pg if self.way == "m2p" else self.norm_my


FLOAT_MY = "CAST(c AS DOUBLE)"  # a FLOAT's text has 6 digits
INTERVAL_PG = ("concat_ws(' ', (extract(year from c) * 12 + extract(month from c))::text, extract(day from c)::text, "
               "(extract(hour from c) * 3600000000 + extract(minute from c) * 60000000 "
               "+ extract(microseconds from c))::text)")
TIME_PG = "(extract(epoch from c) * 1000000)::text"
LATIN1_MY = "CONVERT(c USING utf8mb4)"
F32S = st.floats(width=32, allow_nan=False, allow_infinity=False)
F64S = st.floats(allow_nan=False, allow_infinity=False)
F32_EDGES = [3.4028234663852886e38, -3.4028234663852886e38, 1.1754943508222875e-38, 1.401298464324817e-45,
             -1.401298464324817e-45, 0.0, -0.0, f32(0.1), 16777217.0]
F64_EDGES = [1.7976931348623157e308, -1.7976931348623157e308, 5e-324, -5e-324, 2.2250738585072014e-308,
             2.225073858507201e-308, 0.0, -0.0, 0.1, 2.0 ** 53 + 1, 1e-310]
NON_FINITE = ["NaN", "Infinity", "-Infinity"]


def _i(way: str, my: str, pg: str, lo: int, hi: int, verdict: str = "fit",
       holds: Callable[[Any], bool] = lambda c: True, **kw: Any) -> Case:
    kw.setdefault("norm_my", as_int)
    kw.setdefault("norm_pg", as_int)
    return Case(way, my, pg, ints(lo, hi), verdict, holds, **kw)


M2P = [
    _i("m2p", "TINYINT", "smallint", -128, 127),
    _i("m2p", "TINYINT UNSIGNED", "smallint", 0, 255),
    _i("m2p", "SMALLINT", "smallint", -32768, 32767),
    _i("m2p", "SMALLINT UNSIGNED", "integer", 0, 65535),
    _i("m2p", "MEDIUMINT", "integer", -2 ** 23, 2 ** 23 - 1),
    _i("m2p", "MEDIUMINT UNSIGNED", "integer", 0, 2 ** 24 - 1),
    _i("m2p", "INT", "integer", -2 ** 31, 2 ** 31 - 1),
    _i("m2p", "INT UNSIGNED", "bigint", 0, 2 ** 32 - 1),
    _i("m2p", "BIGINT", "bigint", -2 ** 63, 2 ** 63 - 1),
    _i("m2p", "BIGINT UNSIGNED", "numeric(20,0)", 0, 2 ** 64 - 1),
    _i("m2p", "BIGINT UNSIGNED", "bigint", 0, 2 ** 64 - 1, "warning", lambda c: c <= 2 ** 63 - 1),
    _i("m2p", "INT", "double precision", -2 ** 31, 2 ** 31 - 1, norm_pg=lambda v: int(v)),
    _i("m2p", "SMALLINT", "real", -32768, 32767, norm_pg=lambda v: int(v)),
    _i("m2p", "YEAR", "smallint", 1901, 2155),
    _i("m2p", "BOOLEAN", "boolean", -128, 127, "warning", lambda c: c in (0, 1)),
    _i("m2p", "BOOLEAN CHECK (c IN (0, 1))", "boolean", 0, 1),
    Case("m2p", "DECIMAL(65,30)", "numeric(65,30)", decimals(65, 30), norm_my=as_dec, norm_pg=as_dec),
    Case("m2p", "DECIMAL(10,2) UNSIGNED", "numeric(12,2)", decimals(10, 2, True), norm_my=as_dec, norm_pg=as_dec),
    Case("m2p", "DECIMAL(10,2)", "numeric", decimals(10, 2), norm_my=str, norm_pg=str),  # digits kept: 1.50
    Case("m2p", "DECIMAL(5,0)", "integer", decimals(5, 0), norm_my=as_int, norm_pg=as_int),
    Case("m2p", "DECIMAL(15,5)", "double precision", decimals(15, 5), norm_my=as_float, norm_pg=as_float),
    Case("m2p", "FLOAT", "real", st.sampled_from(F32_EDGES) | F32S, read_my=FLOAT_MY, norm_my=as_float32,
         norm_pg=as_float32),
    Case("m2p", "FLOAT", "double precision", st.sampled_from(F32_EDGES) | F32S, read_my=FLOAT_MY,
         norm_my=as_float, norm_pg=as_float),  # the float32's exact value
    Case("m2p", "DOUBLE", "double precision", st.sampled_from(F64_EDGES) | F64S, norm_my=as_float,
         norm_pg=as_float),
    Case("m2p", "VARCHAR(255)", "varchar(255)", texts(255), "warning", lambda c: "\x00" not in c, as_text, as_text),
    Case("m2p", "VARCHAR(50) COLLATE utf8mb4_general_ci", "text", texts(50), "warning", lambda c: "\x00" not in c,
         as_text, as_text),
    Case("m2p", "CHAR(10)", "char(10)", texts(10), "warning", lambda c: "\x00" not in c, as_char, as_char),
    Case("m2p", "TEXT", "text", texts(300), "warning", lambda c: "\x00" not in c, as_text, as_text),
    Case("m2p", "VARCHAR(40) CHARACTER SET latin1", "text", texts(40), "warning", lambda c: "\x00" not in c,
         as_text, as_text, read_my=LATIN1_MY),
    Case("m2p", "VARCHAR(40) CHARACTER SET utf8mb3", "text", texts(40), "warning", lambda c: "\x00" not in c,
         as_text, as_text),
    Case("m2p", "ENUM('a','b c','é','')", "text", st.sampled_from(["a", "b c", "é", "", "A", "e", "x", 1, 2, 3, 4]),
         norm_my=as_text, norm_pg=as_text),
    Case("m2p", "SET('x','y','z')", "text", st.lists(st.sampled_from(["x", "y", "z", "X", " y"]), max_size=4).map(
        ",".join), "warning", norm_my=as_text, norm_pg=as_text),
    Case("m2p", "DATE", "date", st.sampled_from([date(1, 1, 1), date(9999, 12, 31), date(1000, 1, 1),
                                                 date(2024, 2, 29)]) | st.dates()),
    Case("m2p", "DATE", "timestamp(6)", st.sampled_from([date(1, 1, 1), date(9999, 12, 31)]) | st.dates(),
         norm_pg=lambda v: v.date() if v.time() == time(0) else v),
    Case("m2p", "DATETIME(6)", "timestamp(6)", st.sampled_from([datetime(1, 1, 1), datetime.max]) | WHEN),
    Case("m2p", "DATETIME(3)", "timestamp(3)", st.sampled_from([datetime(1, 1, 1), datetime.max]) | WHEN),
    Case("m2p", "DATETIME(6)", "timestamptz(6)", st.sampled_from([datetime(1, 1, 1), datetime.max]) | WHEN,
         norm_pg=as_utc),
    Case("m2p", "TIMESTAMP(6) NULL", "timestamptz(6)",
         st.sampled_from([TS_LO, TS_HI, datetime(1970, 1, 1), datetime(2038, 1, 19, 3, 14, 8)])
         | st.datetimes(TS_LO, TS_HI), norm_my=as_utc, norm_pg=as_utc, zone=True),
    Case("m2p", "TIME(6)", "interval", (st.sampled_from([TIME_MAX, -TIME_MAX, -1, 0, 1, 86400 * US])
                                        | st.integers(-TIME_MAX - 1, TIME_MAX + 1)).map(my_time_text),
         norm_my=td_micros, read_pg=INTERVAL_PG, norm_pg=interval_fields),
    Case("m2p", "TIME(0)", "interval", st.integers(-TIME_MAX, TIME_MAX).map(my_time_text), norm_my=td_micros,
         read_pg=INTERVAL_PG, norm_pg=interval_fields),
    Case("m2p", "TIME(6)", "time(6)", (st.sampled_from([0, 86400 * US - 1, 86400 * US, -1])
                                       | st.integers(-TIME_MAX, TIME_MAX)).map(my_time_text), "warning",
         lambda c: 0 <= c <= 86400 * US, norm_my=td_micros, read_pg=TIME_PG, norm_pg=pg_time_micros),
    Case("m2p", "JSON", "jsonb", json_texts(), "warning", json_fits_jsonb, json_tree, json_tree, read_pg="c::text"),
    Case("m2p", "BLOB", "bytea", st.sampled_from([bytes(range(256)), b"", b"\x00"]) | st.binary(max_size=300),
         norm_my=as_bytes, norm_pg=as_bytes),
    Case("m2p", "VARBINARY(16)", "bytea", st.binary(max_size=17), norm_my=as_bytes, norm_pg=as_bytes),
    Case("m2p", "BINARY(16)", "bytea", st.binary(max_size=16), norm_my=as_bytes, norm_pg=as_bytes),
    Case("m2p", "BINARY(16)", "uuid", st.binary(min_size=16, max_size=16), norm_my=as_uuid, norm_pg=as_uuid),
    Case("m2p", "UUID", "uuid", st.sampled_from([uuid.UUID(int=0), uuid.UUID(int=2 ** 128 - 1)]) | st.uuids(),
         norm_my=as_uuid, norm_pg=as_uuid),
    Case("m2p", "INET6", "inet", (st.ip_addresses(v=6) | st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}")).map(str),
         norm_my=as_addr, norm_pg=as_addr),
    Case("m2p", "INET4", "inet", st.ip_addresses(v=4).map(str), norm_my=as_addr, norm_pg=as_addr),
    Case("m2p", "BIT(8)", "bit(8)", ints(0, 255), "warning", read_my="c + 0", norm_my=as_int, read_pg="c::text",
         norm_pg=as_bits),
]

P2M = [
    _i("p2m", "SMALLINT", "smallint", -32768, 32767),
    _i("p2m", "INT", "integer", -2 ** 31, 2 ** 31 - 1),
    _i("p2m", "BIGINT", "bigint", -2 ** 63, 2 ** 63 - 1),
    _i("p2m", "TINYINT", "smallint", -32768, 32767, "warning", lambda c: -128 <= c <= 127),
    _i("p2m", "INT UNSIGNED", "integer", -2 ** 31, 2 ** 31 - 1, "warning", lambda c: c >= 0),
    _i("p2m", "BIGINT UNSIGNED", "bigint", -2 ** 63, 2 ** 63 - 1, "warning", lambda c: c >= 0),
    _i("p2m", "DOUBLE", "integer", -2 ** 31, 2 ** 31 - 1, norm_my=lambda v: int(v)),
    _i("p2m", "YEAR", "smallint", -32768, 32767, "warning", lambda c: c == 0 or 1901 <= c <= 2155),
    Case("p2m", "DECIMAL(65,30)", "numeric(65,30)", decimals(65, 30) | st.just("NaN"), "warning",
         lambda c: c[1].is_finite(), as_dec, as_dec),
    Case("p2m", "DECIMAL(10,2)", "numeric(14,2)", decimals(14, 2) | st.just("NaN"), "warning",
         lambda c: c[1].is_finite() and abs(c[1]) < 10 ** 8, as_dec, as_dec),
    Case("p2m", "BIGINT UNSIGNED", "numeric(20,0)", decimals(20, 0), "warning", lambda c: 0 <= c < 2 ** 64,
         as_int, as_int),
    Case("p2m", "DOUBLE", "numeric(15,5)", decimals(15, 5) | st.just("NaN"), "warning",
         lambda c: not c[1].startswith("nan"), as_float, as_float),
    Case("p2m", "FLOAT", "real", st.sampled_from(F32_EDGES + NON_FINITE) | F32S, "warning",
         lambda c: c[1] not in ("nan", "inf", "-inf"), as_float32, as_float32, read_my=FLOAT_MY, arrives=no_neg_zero),
    Case("p2m", "DOUBLE", "double precision", st.sampled_from(F64_EDGES + NON_FINITE) | F64S, "warning",
         lambda c: c[1] not in ("nan", "inf", "-inf"), as_float, as_float, arrives=no_neg_zero),
    Case("p2m", "DOUBLE", "real", st.sampled_from(F32_EDGES + NON_FINITE) | F32S, "warning",
         lambda c: c[1] not in ("nan", "inf", "-inf"), as_float, as_float32, arrives=no_neg_zero),  # its exact value
    Case("p2m", "VARCHAR(255)", "varchar(255)", texts(255, nul=False), norm_my=as_text, norm_pg=as_text),
    Case("p2m", "CHAR(10)", "char(10)", texts(10, nul=False), norm_my=as_char, norm_pg=as_char),
    Case("p2m", "LONGTEXT", "text", texts(300, nul=False), norm_my=as_text, norm_pg=as_text),
    Case("p2m", "TEXT", "text", texts(300, nul=False), "warning", norm_my=as_text, norm_pg=as_text),
    Case("p2m", "VARCHAR(40) CHARACTER SET latin1", "varchar(40)", texts(40, nul=False), "warning", latin1_holds,
         as_text, as_text, read_my=LATIN1_MY),
    Case("p2m", "VARCHAR(40) CHARACTER SET utf8mb3", "varchar(40)", texts(40, nul=False), "warning",
         lambda c: all(ord(ch) <= 0xFFFF for ch in c), as_text, as_text),
    Case("p2m", "VARCHAR(50) COLLATE utf8mb4_general_ci", "varchar(50)", texts(50, nul=False), norm_my=as_text,
         norm_pg=as_text),
    Case("p2m", "ENUM('a','b c','é')", "mood", st.sampled_from(["a", "b c", "é"]), norm_my=as_text,
         norm_pg=as_text),
    Case("p2m", "ENUM('a','b c','é') COLLATE utf8mb4_general_ci", "text",
         st.sampled_from(["a", "b c", "é", "A", "e", "a ", "B C", ""]), "warning", lambda c: c in ("a", "b c", "é"),
         as_text, as_text),
    Case("p2m", "BOOLEAN", "boolean", st.booleans(), norm_my=as_int, norm_pg=as_int),
    Case("p2m", "DATE", "date", DATES_PG, "warning", lambda c: isinstance(c, date), read_pg="c::text",
         norm_pg=lambda v: date.fromisoformat(v) if len(v) == 10 else v),
    Case("p2m", "DATETIME(6)", "date", DATES_PG, "warning", lambda c: isinstance(c, date), read_pg="c::text",
         norm_pg=lambda v: date.fromisoformat(v) if len(v) == 10 else v,
         norm_my=lambda v: v.date() if v.time() == time(0) else v),
    Case("p2m", "DATETIME(6)", "timestamp(6)", PG_TS, "warning", lambda c: isinstance(c, datetime),
         read_pg="c::text", norm_pg=lambda v: _pg_ts(v)),
    Case("p2m", "DATETIME(0)", "timestamp(0)", PG_TS, "warning", lambda c: isinstance(c, datetime),
         read_pg="c::text", norm_pg=lambda v: _pg_ts(v)),
    Case("p2m", "DATETIME(6)", "timestamptz(6)", PG_TS, "warning", lambda c: isinstance(c, datetime),
         read_pg="(c AT TIME ZONE 'UTC')::text", norm_pg=lambda v: _pg_ts(v), zone=True),
    Case("p2m", "TIMESTAMP(6) NULL", "timestamptz(6)", PG_TS, "warning",
         lambda c: isinstance(c, datetime) and TS_LO <= c <= TS_HI, read_pg="(c AT TIME ZONE 'UTC')::text",
         norm_pg=lambda v: _pg_ts(v), norm_my=as_utc, zone=True),
    Case("p2m", "TIME(6)", "time(6)", st.sampled_from(["24:00:00", "23:59:59.999999", "00:00:00", "23:59:60"])
         | st.times().map(str), read_pg=TIME_PG, norm_pg=pg_time_micros, norm_my=td_micros),
    Case("p2m", "TIME(6)", "interval", pg_intervals(), "warning", interval_holds, read_pg=INTERVAL_PG,
         norm_pg=interval_fields, norm_my=td_micros),
    Case("p2m", "JSON", "jsonb", json_texts(), read_pg="c::text", norm_pg=json_tree, norm_my=json_tree),
    Case("p2m", "JSON", "json", json_texts(), "warning", json_valid_in_mariadb, read_pg="c::text", norm_pg=as_text,
         norm_my=as_text),  # json keeps its text exactly
    Case("p2m", "JSON", "integer[]", rect(st.none() | st.integers(-2 ** 31, 2 ** 31 - 1)), norm_pg=array_tree,
         norm_my=json_tree),
    Case("p2m", "JSON", "text[]", rect(st.none() | texts(8, nul=False) | st.sampled_from(["NULL", '"', "{}", ","])),
         norm_pg=array_tree, norm_my=json_tree),
    Case("p2m", "JSON", "numeric[]", rect(st.none() | decimals(20, 10).map(Decimal)), norm_pg=array_tree,
         norm_my=json_tree),
    Case("p2m", "JSON", "boolean[]", rect(st.none() | st.booleans()), norm_pg=array_tree, norm_my=json_tree),
    Case("p2m", "JSON", "uuid[]", rect(st.none() | st.uuids()).map(lambda v: _uuid_array(v)), norm_pg=array_tree,
         norm_my=json_tree, read_pg="c::text[]"),
    Case("p2m", "JSON", "float8[]", rect(st.none() | st.sampled_from([math.nan, math.inf, -0.0]) | F64S),
         "warning", finite_tree, norm_pg=array_tree, norm_my=json_tree),
    Case("p2m", "LONGBLOB", "bytea", st.sampled_from([bytes(range(256)), b"", b"\x00"]) | st.binary(max_size=300),
         norm_my=as_bytes, norm_pg=as_bytes),
    Case("p2m", "VARBINARY(16)", "bytea", st.binary(max_size=18), "warning", lambda c: len(c) <= 16,
         as_bytes, as_bytes),
    Case("p2m", "UUID", "uuid", st.sampled_from([uuid.UUID(int=0), uuid.UUID(int=2 ** 128 - 1),
                                                 uuid.UUID("ffffffff-ffff-8fff-7fff-ffffffffffff"),
                                                 uuid.UUID("0e31f607-076e-9aa1-8055-93fefc6e0e06"),
                                                 uuid.UUID("0e31f607-076e-9aa1-8155-93fefc6e0e06")]) | st.uuids(),
         "warning", uuid_in_mariadb, norm_my=as_uuid, norm_pg=as_uuid),
    Case("p2m", "BINARY(16)", "uuid", st.uuids(), norm_my=as_uuid, norm_pg=as_uuid),
    Case("p2m", "CHAR(36)", "uuid", st.uuids(), norm_my=as_uuid, norm_pg=as_uuid),
    Case("p2m", "VARCHAR(43)", "inet", (st.ip_addresses().map(str)
                                        | st.tuples(st.ip_addresses(v=6), st.integers(0, 128)).map(
                                            lambda a: f"{a[0]}/{a[1]}")
                                        | st.sampled_from(["10.0.0.1/8", "::ffff:1.2.3.4", "::1/64"])),
         norm_my=as_text, norm_pg=as_text),
    Case("p2m", "BIT(8)", "bit(8)", st.integers(0, 255).map(lambda n: format(n, "08b")), "warning",
         read_my="c + 0", norm_my=as_int, read_pg="c::text", norm_pg=as_bits),
]


def _pg_ts(v: str) -> Any:
    """A PostgreSQL timestamp's text: a naive datetime, or the text itself (infinity, BC, past 9999)."""
    try:
        return datetime.fromisoformat(v)
    except ValueError:
        return v


def _uuid_array(v: list) -> Any:
    return [_uuid_array(x) if isinstance(x, list) else (str(x) if x is not None else None) for x in v]


CASES = M2P + P2M
for _n, _c in enumerate(CASES):
    _c.name = f"{_c.way}{_n}"


def pg_literal(value: Any) -> Any:
    """A value as psycopg2 should bind it: an array as PostgreSQL's text of it (psycopg2's ARRAY[...] types
    ARRAY[NULL] as text[]), a uuid as its text."""
    if isinstance(value, list):
        return "{" + ",".join(_element(x) for x in value) + "}"
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _element(x: Any) -> str:
    if isinstance(x, list):
        return pg_literal(x)
    if x is None:
        return "NULL"
    if isinstance(x, bool):
        return "t" if x else "f"
    if isinstance(x, float):
        return "NaN" if x != x else "Infinity" if x == math.inf else "-Infinity" if x == -math.inf else repr(x)
    if isinstance(x, str):
        return '"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(x)
